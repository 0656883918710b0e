//! Where log lines go: stderr in the foreground, syslog (facility daemon)
//! once daemonized. Every component logs through the `log` facade.
//!
//! Logging never blocks the caller. A syslog daemon that stops reading
//! fills its socket's queue, and then every `send` waits; a stderr that is
//! a pipe nobody drains does the same. So a line is formatted by the thread
//! that logs it, put on a bounded queue ([`QUEUE_LINES`]) and written by one
//! `predictd-log` thread; when the queue is full the line is dropped and
//! counted ([`dropped_lines`], `predictd_log_lines_dropped_total` in
//! `/metrics`). Only the log thread ever waits on the sink.

use std::io::Write;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use prometheus_client::metrics::counter::Counter;

/// Lines waiting for the log thread at most: a few seconds of a busy
/// daemon's request lines (about 200 bytes each, well under 1 MB).
pub const QUEUE_LINES: usize = 4096;

/// How long [`flush`] waits for the log thread before giving up.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The syslog socket could not be reached.
    #[error("Cannot open syslog socket {path}: {reason}")]
    Syslog { path: String, reason: String },
    #[error("A logger is already installed")]
    AlreadySet,
    #[error("Cannot start the log thread: {0}")]
    Thread(String),
}

/// Lines dropped because the log thread was behind (its sink stalled).
/// The same counter is registered in `/metrics`.
pub fn dropped_lines() -> &'static Counter {
    static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);
    &DROPPED
}

enum Entry {
    Line(log::Level, String),
    /// Answered once every line queued before it is written.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Where the log thread writes.
enum Sink {
    Stderr,
    Syslog(syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>),
}

impl Sink {
    fn write(&mut self, level: log::Level, line: &str) {
        // A line that cannot be written is lost, like one dropped from the
        // queue; nothing else is affected.
        match self {
            Sink::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Sink::Syslog(logger) => {
                let _ = match level {
                    log::Level::Error => logger.err(line),
                    log::Level::Warn => logger.warning(line),
                    log::Level::Info => logger.info(line),
                    log::Level::Debug | log::Level::Trace => logger.debug(line),
                };
            }
        }
    }
}

/// The installed logger: filters, formats, and queues.
struct QueueLogger {
    level: log::LevelFilter,
    /// Stderr lines carry their own timestamp; syslog stamps its own.
    timestamps: bool,
    queue: Sender<Entry>,
}

impl log::Log for QueueLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        // Only predictd's lines: the dependencies' chatter (tract's
        // optimizer, hyper) stays out.
        metadata.level() <= self.level && metadata.target().starts_with("predictd")
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = if self.timestamps {
            let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
            format!("{now} {:<5} {}", record.level(), record.args())
        } else {
            record.args().to_string()
        };
        match self.queue.try_send(Entry::Line(record.level(), line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                dropped_lines().inc();
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits (at most [`FLUSH_WAIT`]) until every line logged so far is
    /// written: before the process exits, so that the last lines ("stop:
    /// done", the error that ended it) are not lost in the queue.
    fn flush(&self) {
        let (done, written) = std::sync::mpsc::sync_channel(1);
        if self
            .queue
            .send_timeout(Entry::Flush(done), FLUSH_WAIT)
            .is_ok()
        {
            let _ = written.recv_timeout(FLUSH_WAIT);
        }
    }
}

fn drain(mut sink: Sink, queue: Receiver<Entry>) {
    while let Ok(entry) = queue.recv() {
        match entry {
            Entry::Line(level, line) => sink.write(level, &line),
            Entry::Flush(done) => {
                let _ = done.try_send(());
            }
        }
    }
}

fn install(sink: Sink, timestamps: bool) -> Result<(), LoggingError> {
    let level = level_from_env();
    let (queue, inbox) = crossbeam_channel::bounded(QUEUE_LINES);
    let logger = QueueLogger {
        level,
        timestamps,
        queue,
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|_| LoggingError::AlreadySet)?;
    std::thread::Builder::new()
        .name("predictd-log".into())
        .spawn(move || drain(sink, inbox))
        .map_err(|e| LoggingError::Thread(e.to_string()))?;
    log::set_max_level(level);
    Ok(())
}

/// Writes what is queued before the process exits (see `QueueLogger`'s
/// `flush`); waits at most two seconds.
pub fn flush() {
    log::logger().flush();
}

fn level_from_env() -> log::LevelFilter {
    std::env::var("PREDICTD_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
}

/// Logs `TIMESTAMP LEVEL message` lines to stderr; the level comes from
/// `PREDICTD_LOG` (default `info`).
pub fn init_stderr() -> Result<(), LoggingError> {
    install(Sink::Stderr, true)
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
    install(Sink::Syslog(logger), false)
}
