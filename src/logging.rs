//! Where log lines go: stderr in the foreground, syslog (facility daemon)
//! once daemonized. Every component logs through the `log` facade.

use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The syslog socket could not be reached.
    #[error("Cannot open syslog socket {path}: {reason}")]
    Syslog { path: String, reason: String },
    #[error("A logger is already installed")]
    AlreadySet,
}

/// Writes `LEVEL target: message` lines with a UTC timestamp to stderr.
struct StderrLogger {
    level: log::LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) || !record.target().starts_with("predictd") {
            return;
        }
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let _ = writeln!(
            std::io::stderr().lock(),
            "{now} {:<5} {}",
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}

fn level_from_env() -> log::LevelFilter {
    std::env::var("PREDICTD_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
}

/// Logs to stderr; the level comes from `PREDICTD_LOG` (default `info`).
pub fn init_stderr() -> Result<(), LoggingError> {
    let level = level_from_env();
    log::set_boxed_logger(Box::new(StderrLogger { level }))
        .map_err(|_| LoggingError::AlreadySet)?;
    log::set_max_level(level);
    Ok(())
}

/// Whether syslog's datagram socket at `socket` takes a connection now;
/// the reason if not. Checked before `serve --daemon` forks, so that a
/// daemon without syslog keeps its stderr to log to.
pub fn syslog_reachable(socket: &Path) -> Result<(), String> {
    let probe = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
    probe.connect(socket).map_err(|e| e.to_string())
}

/// Logs to the syslog datagram socket at `socket` as `predictd[pid]`,
/// facility daemon.
pub fn init_syslog(socket: &Path) -> Result<(), LoggingError> {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_DAEMON,
        hostname: None,
        process: "predictd".into(),
        pid: std::process::id(),
    };
    let logger = syslog::unix_custom(formatter, socket).map_err(|e| LoggingError::Syslog {
        path: socket.display().to_string(),
        reason: e.to_string(),
    })?;
    let level = level_from_env();
    log::set_boxed_logger(Box::new(OwnTarget(syslog::BasicLogger::new(logger))))
        .map_err(|_| LoggingError::AlreadySet)?;
    log::set_max_level(level);
    Ok(())
}

/// Keeps the dependencies' own chatter (tract's optimizer, hyper) out of
/// syslog: only predictd's lines go there.
struct OwnTarget(syslog::BasicLogger);

impl log::Log for OwnTarget {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target().starts_with("predictd") && self.0.enabled(metadata)
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.0.log(record);
        }
    }
    fn flush(&self) {
        self.0.flush();
    }
}
