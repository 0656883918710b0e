//! Becoming a daemon: fork (with the `daemonize` crate) before any thread
//! or runtime exists, lock the pidfile, detach, and tell the waiting parent
//! through a pipe whether the child came up.
//!
//! The parent blocks on the pipe until the child writes `ready` or an error
//! line (or dies, closing it), so `systemctl start` returns only once the
//! socket is bound and every model has answered a test inference.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Creating the readiness pipe failed.
    #[error("Cannot create the readiness pipe: {0}")]
    Pipe(String),
    /// `daemonize` failed in the parent (fork) or in the child (pidfile,
    /// chdir, setsid...).
    #[error("Cannot daemonize: {0}")]
    Daemonize(String),
    /// The pidfile is locked by another running instance.
    #[error("Another predictd holds the pidfile {0}")]
    PidfileLocked(String),
    /// The child started but failed before it was ready.
    #[error("{0}")]
    ChildFailed(String),
}

/// The child's end of the readiness pipe.
pub struct Notifier(Option<File>);

impl Notifier {
    /// Tells the parent the outcome; only the first call counts.
    pub fn notify(&mut self, outcome: Result<(), String>) {
        if let Some(mut pipe) = self.0.take() {
            let line = match outcome {
                Ok(()) => "ready\n".to_string(),
                Err(e) => format!("error {}\n", e.replace('\n', " ")),
            };
            let _ = pipe.write_all(line.as_bytes());
        }
    }
}

/// Forks. Returns in the daemon child only; the parent waits for the
/// child's word and exits the process with 0 or with `failure_code`.
pub fn daemonize(
    pidfile: &Path,
    failure_code: impl Fn(&DaemonError) -> i32,
) -> Result<Notifier, DaemonError> {
    let (read_end, write_end): (OwnedFd, OwnedFd) =
        nix::unistd::pipe().map_err(|e| DaemonError::Pipe(e.to_string()))?;
    let outcome = daemonize::Daemonize::new()
        .pid_file(pidfile)
        .chown_pid_file(false)
        .working_directory("/")
        .umask(0o027)
        .execute();
    match outcome {
        daemonize::Outcome::Parent(result) => {
            drop(write_end);
            if let Err(e) = result {
                let err = DaemonError::Daemonize(e.to_string());
                eprintln!("predictd: {err}");
                std::process::exit(failure_code(&err));
            }
            let mut message = String::new();
            let _ = File::from(read_end).read_to_string(&mut message);
            let message = message.trim();
            if message == "ready" {
                std::process::exit(0);
            }
            let err = match message.strip_prefix("error ") {
                Some(m) if m.starts_with("pidfile:") => {
                    DaemonError::PidfileLocked(pidfile.display().to_string())
                }
                Some(m) => DaemonError::ChildFailed(m.to_string()),
                None => DaemonError::ChildFailed("the daemon exited before it was ready".into()),
            };
            eprintln!("predictd: {err}");
            std::process::exit(failure_code(&err));
        }
        daemonize::Outcome::Child(result) => {
            drop(read_end);
            let mut notifier = Notifier(Some(File::from(write_end)));
            match result {
                Ok(_) => Ok(notifier),
                Err(e) => {
                    let text = e.to_string();
                    // The crate's error kind is private; its message names the lock.
                    let locked = text.contains("lock pid file");
                    notifier.notify(Err(if locked {
                        format!("pidfile: {text}")
                    } else {
                        text.clone()
                    }));
                    if locked {
                        Err(DaemonError::PidfileLocked(pidfile.display().to_string()))
                    } else {
                        Err(DaemonError::Daemonize(text))
                    }
                }
            }
        }
    }
}
