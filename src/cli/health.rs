//! `predictd health`: for probes, one GET of `/healthz` (or `/readyz`)
//! within a deadline; 0 for a 200, else 69 saying why.

use super::error::CliError;
use super::runtime;
use crate::client::Client;
use crate::config::Config;
use hyper::{Method, StatusCode};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Default: the built-in default socket (predictd.sock in the current folder).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Ask /readyz (every model loaded) instead of /healthz.
    #[arg(long)]
    ready: bool,
    /// Deadline of the whole check.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let socket = match args.socket {
        Some(s) => s,
        None => Config::load(None)?.server.socket,
    };
    let route = if args.ready { "/readyz" } else { "/healthz" };
    let client = Client::new(&socket).timeout(Duration::from_millis(args.timeout_ms));
    let answer =
        runtime(1)?.block_on(client.send(Method::GET, route, "text/plain", Default::default()));
    match answer {
        Ok((StatusCode::OK, _)) => {
            println!("ok {} {route}", socket.display());
            Ok(())
        }
        Ok((status, body)) => Err(CliError::Unavailable {
            what: format!("{} {route}", socket.display()),
            code: status.as_u16().to_string(),
            message: String::from_utf8_lossy(&body).trim().to_string(),
        }),
        Err(e) => Err(CliError::Client(e)),
    }
}
