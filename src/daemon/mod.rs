//! Becoming a daemon: fork (with the `daemonize` crate) before any thread
//! or runtime exists, lock the pidfile, detach, and tell the waiting parent
//! through a pipe whether the child came up.
//!
//! The parent blocks on the pipe until the child writes `ready` or
//! `error CODE MESSAGE` (or dies, closing it), so `systemctl start` returns
//! only once the socket is bound and every model has answered a test
//! inference, and exits with the code the child would have exited with in
//! the foreground.

pub mod logging;
pub mod memory;
pub mod signals;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// The child started but failed before it was ready: its exit code
    /// and reason.
    #[error("{1}")]
    ChildFailed(u8, String),
}

/// The child's end of the readiness pipe. Clones share it: whoever speaks
/// first is heard, later words are dropped.
#[derive(Clone)]
pub struct Notifier(Arc<Mutex<Option<File>>>);

impl Notifier {
    /// Tells the parent the outcome: ready, or the exit code and reason it
    /// should exit with. Only the first call counts.
    pub fn notify(&self, outcome: Result<(), (u8, String)>) {
        let pipe = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut pipe) = pipe {
            let line = match outcome {
                Ok(()) => "ready\n".to_string(),
                Err((code, e)) => format!("error {code} {}\n", e.replace('\n', " ")),
            };
            let _ = pipe.write_all(line.as_bytes());
        }
    }
}

/// The pidfile `daemonize` wrote and locked: removed when dropped, once
/// the daemon stops.
#[derive(Debug)]
pub struct Pidfile(PathBuf);

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Forks. Returns in the daemon child only; the parent waits for the
/// child's word and exits the process with 0 or with `failure_code`.
/// With `keep_stderr` the daemon keeps the parent's stderr (to log there
/// when syslog is unreachable); otherwise its stdio is `/dev/null`.
pub fn daemonize(
    pidfile: &Path,
    keep_stderr: bool,
    failure_code: impl Fn(&DaemonError) -> i32,
) -> Result<(Notifier, Pidfile), DaemonError> {
    let (read_end, write_end): (OwnedFd, OwnedFd) =
        nix::unistd::pipe().map_err(|e| DaemonError::Pipe(e.to_string()))?;
    let mut builder = daemonize::Daemonize::new()
        .pid_file(pidfile)
        .chown_pid_file(false)
        .working_directory("/")
        .umask(0o027);
    if keep_stderr {
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| DaemonError::Pipe(e.to_string()))?;
        builder = builder.stderr(File::from(stderr));
    }
    let outcome = builder.execute();
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
            let err = match message
                .strip_prefix("error ")
                .and_then(|m| m.split_once(' '))
            {
                Some((code, m)) => match code.parse() {
                    Ok(code) => DaemonError::ChildFailed(code, m.to_string()),
                    Err(_) => DaemonError::ChildFailed(70, message.to_string()),
                },
                None => {
                    DaemonError::ChildFailed(70, "the daemon exited before it was ready".into())
                }
            };
            eprintln!("predictd: {err}");
            std::process::exit(failure_code(&err));
        }
        daemonize::Outcome::Child(result) => {
            drop(read_end);
            let notifier = Notifier(Arc::new(Mutex::new(Some(File::from(write_end)))));
            match result {
                Ok(_) => Ok((notifier, Pidfile(pidfile.to_owned()))),
                Err(e) => {
                    let text = e.to_string();
                    // The crate's error kind is private; its message names the lock.
                    let err = if text.contains("lock pid file") {
                        DaemonError::PidfileLocked(pidfile.display().to_string())
                    } else {
                        DaemonError::Daemonize(text)
                    };
                    let code = u8::try_from(failure_code(&err)).unwrap_or(70);
                    notifier.notify(Err((code, err.to_string())));
                    Err(err)
                }
            }
        }
    }
}
