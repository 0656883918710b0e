//! Listeners and the serving loop: bind the Unix socket (and `--http`),
//! accept connections with the peer's credentials, serve HTTP/1.1 with
//! hyper, load models, reload on demand, drain on shutdown.

use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::peer::{admit, ConnectionLimit, Held, Peer};
use crate::http::router;
use crate::inference::ModelError;
use crate::service::state::State;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another live daemon answers on the socket.
    #[error("Socket {0} is in use by a running process")]
    SocketInUse(PathBuf),
    /// Something that is not a socket sits at the socket's path.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("Cannot bind {what}")]
    Bind {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot set owner or mode of socket {path}: {reason}")]
    SocketPermissions { path: PathBuf, reason: String },
    #[error(transparent)]
    Models(#[from] ModelError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The socket's file: removed when this is dropped (if it is still a
/// socket), however the server stops. The one place it is removed.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        remove_socket(&self.0);
    }
}

/// Binds the Unix socket: a stale socket file left by a dead daemon is
/// replaced, a live one or any other file is left alone. Mode and group are
/// set right after bind, before the first connection is accepted.
pub fn bind_unix(
    config: &Config,
) -> Result<(std::os::unix::net::UnixListener, SocketFile), ServerError> {
    let path = &config.server.socket;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServerError::NotASocket(path.clone()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::SocketInUse(path.clone()));
        }
        let _ = std::fs::remove_file(path);
    }
    let what = || format!("socket {}", path.display());
    let listener =
        std::os::unix::net::UnixListener::bind(path).map_err(|source| ServerError::Bind {
            what: what(),
            source,
        })?;
    let file = SocketFile(path.clone());
    listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Bind {
            what: what(),
            source,
        })?;
    let perm_err = |reason: String| ServerError::SocketPermissions {
        path: path.clone(),
        reason,
    };
    let mode = config.server.socket_mode.0;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| perm_err(e.to_string()))?;
    let group = config.server.socket_group.trim();
    if !group.is_empty() {
        let gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match nix::unistd::Group::from_name(group) {
                Ok(Some(g)) => g.gid.as_raw(),
                _ => return Err(perm_err(format!("no group {group:?}"))),
            },
        };
        // The socket is born with the daemon's group: the packaged config
        // names that group, and a no-op chown is a call the unit need not
        // allow.
        let born = std::fs::metadata(path).map_err(|e| perm_err(e.to_string()))?;
        if std::os::unix::fs::MetadataExt::gid(&born) != gid {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| perm_err(e.to_string()))?;
        }
    }
    Ok((listener, file))
}

/// Serves until `shutdown` turns true, then drains. `on_ready` hears `Ok`
/// when every model has passed its test inference, and `Err` when the
/// server stops (only the first word counts for the daemon's parent, see
/// [`crate::daemon::Notifier`]). An error that stops the start is returned,
/// after the socket file is gone.
pub async fn run(
    state: Arc<State>,
    unix: std::os::unix::net::UnixListener,
    shutdown: watch::Receiver<bool>,
    socket_file: SocketFile,
    on_ready: Arc<dyn Fn(Result<(), String>) + Send + Sync>,
) -> Result<(), ServerError> {
    let listeners = Listeners::open(&state, unix).await?;
    // Load the models on their own threads while the socket already answers
    // /healthz (and /readyz with 503).
    let load_failed = start_load(&state, on_ready.clone());
    log::info!(
        "start: pid={} socket={} kernels: {}",
        std::process::id(),
        state.config().server.socket.display(),
        crate::inference::kernels::describe()
    );
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    listeners
        .accept_until(&state, &graceful, shutdown, load_failed)
        .await?;
    // Stop accepting: the socket file goes first so clients fail fast.
    drop(socket_file);
    drain(&state, graceful).await;
    on_ready(Err("stopped before the models were loaded".into()));
    log::info!("stop: done");
    Ok(())
}

/// The Unix socket, and the TCP listener of `--http` if asked for.
struct Listeners {
    unix: UnixListener,
    tcp: Option<TcpListener>,
}

impl Listeners {
    async fn open(
        state: &State,
        unix: std::os::unix::net::UnixListener,
    ) -> Result<Listeners, ServerError> {
        let unix = UnixListener::from_std(unix).map_err(|source| ServerError::Bind {
            what: format!("socket {}", state.config().server.socket.display()),
            source,
        })?;
        let tcp = match state.options.http {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| ServerError::Bind {
                            what: format!("--http {addr}"),
                            source,
                        })?,
                )
            }
            None => None,
        };
        Ok(Listeners { unix, tcp })
    }

    /// Accepts connections within `max-connections` (refusing the rest at
    /// once) until `shutdown` turns true, or returns the start-up load's
    /// error. The listeners close when this returns.
    async fn accept_until(
        self,
        state: &Arc<State>,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
        mut shutdown: watch::Receiver<bool>,
        load_failed: tokio::sync::oneshot::Receiver<ModelError>,
    ) -> Result<(), ServerError> {
        let Listeners { unix, tcp } = self;
        let slots = Arc::new(Semaphore::new(state.config().server.max_connections));
        let refusals = Arc::new(Refusals::new());
        let mut fail_rx = Some(load_failed);
        let door = Door {
            state,
            graceful,
            slots,
            refusals,
        };
        loop {
            tokio::select! {
                accepted = unix.accept() => match accepted {
                    Ok((stream, _)) => match stream.peer_cred() {
                        Ok(c) => door.enter(Peer::Unix { uid: c.uid() }, stream),
                        Err(e) => log::warn!("cannot read peer credentials: {e}"),
                    },
                    Err(e) => { log::warn!("accept failed: {e}"); tokio::time::sleep(Duration::from_millis(50)).await; }
                },
                accepted = async { tcp.as_ref().unwrap().accept().await }, if tcp.is_some() => match accepted {
                    Ok((stream, addr)) => door.enter(Peer::Tcp(addr), stream),
                    Err(e) => { log::warn!("accept failed: {e}"); tokio::time::sleep(Duration::from_millis(50)).await; }
                },
                _ = shutdown.changed() => {}
                e = load_failure(&mut fail_rx) => return Err(e.into()),
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        }
    }
}

/// What a new connection passes: a place within the connection limits, or
/// a 503 at once.
struct Door<'a> {
    state: &'a Arc<State>,
    graceful: &'a hyper_util::server::graceful::GracefulShutdown,
    slots: Arc<Semaphore>,
    refusals: Arc<Refusals>,
}

impl Door<'_> {
    fn enter<S>(&self, peer: Peer, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        match admit(self.state, &self.slots, peer) {
            Ok(held) => {
                serve_connection(self.state, self.graceful, TokioIo::new(stream), peer, held)
            }
            Err(limit) => refuse_connection(self.state, &self.refusals, stream, peer, limit),
        }
    }
}

/// Starts the models' load. The loader reports readiness to `on_ready`
/// itself (the accept loop may be waiting for a connection when it ends);
/// the returned channel yields the load's error if it fails.
fn start_load(
    state: &State,
    on_ready: Arc<dyn Fn(Result<(), String>) + Send + Sync>,
) -> tokio::sync::oneshot::Receiver<ModelError> {
    let loaded = state.start_load();
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<ModelError>();
    tokio::spawn(async move {
        let outcome = loaded
            .await
            .unwrap_or_else(|_| Err(ModelError::Gone("the loader thread is gone".into())));
        match outcome {
            Ok(()) => on_ready(Ok(())),
            Err(e) => {
                log::error!("start failed: {e}");
                // The serving loop returns the error (the socket file goes
                // with it); `serve` tells the waiting parent its exit code.
                let _ = fail_tx.send(e);
            }
        }
    });
    fail_rx
}

/// Lets the requests in flight finish, within `shutdown-timeout-ms`.
async fn drain(state: &State, graceful: hyper_util::server::graceful::GracefulShutdown) {
    let timeout = Duration::from_millis(state.config().server.shutdown_timeout_ms);
    let in_flight = state.metrics.in_flight.get();
    log::info!(
        "stop: draining {in_flight} requests (at most {} ms)",
        timeout.as_millis()
    );
    if tokio::time::timeout(timeout, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!(
            "stop: requests still running after {} ms were cut off",
            timeout.as_millis()
        );
    }
}

/// Resolves with the start-up load's error if it fails; otherwise never.
async fn load_failure(rx: &mut Option<tokio::sync::oneshot::Receiver<ModelError>>) -> ModelError {
    if let Some(r) = rx.as_mut() {
        if let Ok(e) = r.await {
            return e;
        }
        *rx = None; // loaded fine: nothing more to wait for
    }
    std::future::pending().await
}

fn serve_connection<I>(
    state: &Arc<State>,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
    io: I,
    peer: Peer,
    held: Held,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let state = state.clone();
    let header_timeout = Duration::from_millis(state.config().server.request_timeout_ms);
    let service = service_fn(move |req| router::handle(state.clone(), peer, req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, service);
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            log::debug!("connection from {peer} ended: {e}");
        }
        drop(held);
    });
}

/// Refused connections answered at once (each held for at most 1.5 s);
/// past them, a refused connection is closed without an answer, so a
/// connect flood holds no more than this many descriptors on top of
/// `max-connections`.
const MAX_REFUSALS: usize = 32;

/// Refused connections: the answers being written, and their log lines.
struct Refusals {
    answering: Arc<Semaphore>,
    /// Per limit: when its last line was logged, and how many refusals
    /// since were not.
    logged: std::sync::Mutex<std::collections::HashMap<ConnectionLimit, (Instant, u64)>>,
}

/// At most one log line a second for each limit's refusals.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

impl Refusals {
    fn new() -> Refusals {
        Refusals {
            answering: Arc::new(Semaphore::new(MAX_REFUSALS)),
            logged: Default::default(),
        }
    }

    /// Logs a refusal: the first of a limit at once, then at most one line
    /// a second, which says how many were refused since the last line (a
    /// connect flood must not flood the log; the exact count is in
    /// `predictd_connections_refused_total`).
    fn log(&self, peer: Peer, limit: ConnectionLimit) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let since = match logged.get_mut(&limit) {
            Some((at, skipped)) if now.duration_since(*at) < REFUSAL_LOG_EVERY => {
                *skipped += 1;
                return;
            }
            Some((at, skipped)) => {
                let since = *skipped;
                (*at, *skipped) = (now, 0);
                since
            }
            None => {
                logged.insert(limit, (now, 0));
                0
            }
        };
        drop(logged);
        let limit = limit.key();
        if since == 0 {
            log::warn!("connection from {peer} refused: server.{limit} reached");
        } else {
            log::warn!(
                "connection from {peer} refused: server.{limit} reached \
                 ({since} more refused since the last such line)"
            );
        }
    }
}

/// Past `max-connections`, or past the caller's `max-connections-per-uid`,
/// a new connection gets a 503 at once and is closed, instead of waiting
/// unseen in the kernel's backlog (or, past `MAX_REFUSALS` being answered,
/// is closed at once).
fn refuse_connection<S>(
    state: &Arc<State>,
    refusals: &Arc<Refusals>,
    mut stream: S,
    peer: Peer,
    limit: ConnectionLimit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    state.metrics.connection_refused(limit.key());
    refusals.log(peer, limit);
    let Ok(refusal) = refusals.answering.clone().try_acquire_owned() else {
        return; // closed without an answer: enough are being answered
    };
    let response = ApiError::ConnectionsFull(limit).into_http1();
    tokio::spawn(async move {
        let _refusal = refusal;
        // Read what the client sends for a moment before closing: closing
        // a socket with unread data resets it, and the client would see
        // the reset instead of the 503.
        let mut buf = [0u8; 8192];
        let mut head = Vec::new();
        let read_head = async {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), read_head).await;
        let answer = async {
            stream.write_all(&response).await?;
            stream.shutdown().await?;
            while stream.read(&mut buf).await? > 0 {}
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
    });
}

/// Removes the socket file if it is still ours (a socket).
fn remove_socket(path: &Path) {
    if std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
    {
        let _ = std::fs::remove_file(path);
    }
}
