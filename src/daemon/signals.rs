//! Signals, handled on one named thread: SIGHUP asks for a reload, SIGTERM
//! and SIGINT for a graceful stop. What a reload and a stop are is the
//! caller's (`cli::serve` wires them to the loader and the server), so the
//! process layer knows nothing of what is served.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Installs the handlers and starts the `predictd-signals` thread. Call
/// after any fork and before the runtime starts. `reload` must return at
/// once (hand the work to another thread), so that this one stays free to
/// see a SIGTERM during a long reload.
pub fn spawn(
    reload: impl Fn() + Send + 'static,
    stop: impl Fn() + Send + 'static,
) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("predictd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    log::info!("reload: SIGHUP received");
                    reload();
                } else {
                    let name = if signal == SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    log::info!("stop: {name} received");
                    stop();
                }
            }
        })?;
    Ok(())
}
