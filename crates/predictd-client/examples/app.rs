//! A tiny application that asks predictd for suggestions, the way a web
//! application would: within its own deadline, and with a page to show
//! whatever predictd does.
//!
//! ```sh
//! cargo run -p predictd-client --example app -- ./predictd.sock tests/fixtures/photos/tuxpaint-strawberry2.jpg 149 333
//! ```

use predictd_client::{blocking::Client, Options};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, image, x, y] = args.as_slice() else {
        eprintln!("usage: app SOCKET IMAGE X Y");
        std::process::exit(64);
    };
    let (Ok(x), Ok(y)) = (x.parse::<f64>(), y.parse::<f64>()) else {
        eprintln!("X and Y are numbers");
        std::process::exit(64);
    };
    // One client for the whole application: it keeps connections and the
    // circuit breaker between calls.
    let client = Client::new(socket).timeout(Duration::from_millis(500));
    let started = Instant::now();
    let answer = client.predict(std::path::Path::new(image), x, y, &Options::default());
    let took = started.elapsed().as_secs_f64() * 1000.0;
    if answer.ok {
        println!(
            "suggestions in {took:.0} ms (prediction {})",
            answer.id.as_deref().unwrap_or("?")
        );
        for (model, labels) in &answer.predictions {
            let names: Vec<String> = labels
                .iter()
                .map(|s| format!("{} {:.0}%", s.label, s.probability * 100.0))
                .collect();
            println!("  {model}: {}", names.join(", "));
        }
        // What the user picked, so that real accuracy can be tracked.
        if let (Some(id), Some(first)) = (&answer.id, answer.suggestions("theme").first()) {
            client.feedback(id, "theme", &first.label);
        }
    } else {
        // The page is shown anyway, without suggestions.
        println!(
            "no suggestions in {took:.0} ms: {} ({})",
            answer.error.as_deref().unwrap_or("?"),
            answer.message.as_deref().unwrap_or("")
        );
    }
}
