//! Signals, handled on one named thread: SIGHUP reloads, SIGTERM and
//! SIGINT start a graceful stop.

use crate::service::state::State;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::sync::Arc;
use tokio::sync::watch;

/// Installs the handlers and starts the `predictd-signals` thread. Call
/// after any fork and before the runtime starts.
pub fn spawn(state: Arc<State>, shutdown: watch::Sender<bool>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("predictd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    log::info!("reload: SIGHUP received");
                    // The loader thread reloads; this one stays free to see
                    // a SIGTERM during a long reload.
                    state.request_reload();
                } else {
                    let name = if signal == SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    log::info!("stop: {name} received");
                    let _ = shutdown.send(true);
                }
            }
        })?;
    Ok(())
}
