//! Who is calling, and what they may do: the peer's identity (uid on the
//! socket, address on TCP, or the client a trusted proxy names), who may
//! use which route, and the per-caller limits (rate, connections).

use crate::http::error::ApiError;
use crate::service::ratelimit::{Caller, ConnectionSlot};
use crate::service::state::State;
use hyper::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Who is calling: the Unix socket gives the peer's credentials
/// (`SO_PEERCRED`), TCP only an address.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// Access is decided by uid alone (the group and process id the
    /// kernel also gives were never used, so they are not kept).
    Unix {
        uid: u32,
    },
    Tcp(SocketAddr),
}

impl Peer {
    pub fn uid(&self) -> Option<u32> {
        match self {
            Peer::Unix { uid, .. } => Some(*uid),
            Peer::Tcp(_) => None,
        }
    }

    /// Whom per-caller limits count: the uid on the socket, the address
    /// on TCP.
    pub fn caller(&self) -> Caller {
        match self {
            Peer::Unix { uid, .. } => Caller::Uid(*uid),
            Peer::Tcp(addr) => Caller::Addr(addr.ip()),
        }
    }

    /// The listener's name in metrics.
    pub fn listener(&self) -> &'static str {
        match self {
            Peer::Unix { .. } => "unix",
            Peer::Tcp(_) => "tcp",
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Unix { uid, .. } => write!(f, "uid={uid}"),
            Peer::Tcp(addr) => write!(f, "addr={addr}"),
        }
    }
}

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The page itself: it holds nothing secret and asks for the token.
    Page,
    /// Every service route.
    Service,
    /// `POST /v1/reload`: `admin-uids` on the socket, never over TCP.
    Admin,
}

/// Who may do what: `allowed-uids` on the socket, the bearer token on TCP,
/// `admin-uids` for reload (never over TCP).
pub fn authorize<B>(
    state: &State,
    peer: &Peer,
    req: &Request<B>,
    access: Access,
) -> Result<(), ApiError> {
    let config = state.config();
    let server = &config.server;
    match peer {
        Peer::Unix { uid, .. } => {
            if !server.allowed_uids.is_empty() && !server.allowed_uids.contains(uid) {
                return Err(ApiError::Forbidden(format!(
                    "uid {uid} is not in server.allowed-uids"
                )));
            }
            if access == Access::Admin && !server.admin_uids.contains(uid) {
                return Err(ApiError::Forbidden(format!(
                    "uid {uid} is not in server.admin-uids"
                )));
            }
        }
        Peer::Tcp(_) => {
            // The page itself holds nothing secret; it asks for the token.
            if !server.http_token.is_empty() && access != Access::Page {
                let expected = format!("Bearer {}", server.http_token);
                let sent = req
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .map(|v| v.as_bytes());
                if !sent.is_some_and(|s| constant_time_eq(s, expected.as_bytes())) {
                    return Err(ApiError::Unauthorized(
                        "Send Authorization: Bearer <server.http-token>".into(),
                    ));
                }
            }
            if access == Access::Admin {
                return Err(ApiError::Forbidden(
                    "/v1/reload is only served on the Unix socket".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Takes a token from the caller's bucket: the uid on the socket, the
/// address on TCP, or, for a proxy among `trusted-proxy-uids`, the client
/// address it names in `X-Forwarded-For`.
pub fn rate_limit(state: &State, peer: &Peer, headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    let server = &state.config().server;
    let caller =
        forwarded_caller(&server.trusted_proxy_uids, peer, headers).unwrap_or(peer.caller());
    state
        .limiter
        .check(caller, server.rate_per_uid, server.rate_burst)
        .map_err(|wait| {
            state.metrics.rate_limited(peer.listener());
            ApiError::RateLimited(wait)
        })
}

/// The client a trusted proxy (a Unix peer whose uid is in
/// `trusted-proxy-uids`) names: the last address of `X-Forwarded-For`, the
/// one the proxy itself added. Anyone else's header is ignored.
fn forwarded_caller(trusted: &[u32], peer: &Peer, headers: &hyper::HeaderMap) -> Option<Caller> {
    let uid = peer.uid()?;
    if !trusted.contains(&uid) {
        return None;
    }
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()?;
    last.trim().parse().ok().map(Caller::Addr)
}

/// Equal, in a time that does not depend on where the bytes differ (the
/// length of the token is not secret). `subtle` keeps the compiler from
/// turning the comparison back into an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// What a served connection holds until it ends: its place among
/// `max-connections` and among its caller's `max-connections-per-uid`.
pub type Held = (tokio::sync::OwnedSemaphorePermit, ConnectionSlot);

/// The connection limit a new connection found full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionLimit {
    /// `server.max-connections`, shared by every caller.
    Total,
    /// `server.max-connections-per-uid`, the caller's own.
    PerCaller,
}

impl ConnectionLimit {
    /// The config key, as logs and the `limit` label of
    /// `predictd_connections_refused_total` name it.
    pub fn key(self) -> &'static str {
        match self {
            ConnectionLimit::Total => "max-connections",
            ConnectionLimit::PerCaller => "max-connections-per-uid",
        }
    }

    /// What the refused caller reads.
    pub fn message(self) -> &'static str {
        match self {
            ConnectionLimit::Total => {
                "Too many open connections (server.max-connections); retry shortly"
            }
            ConnectionLimit::PerCaller => {
                "Too many open connections from this caller (server.max-connections-per-uid); retry shortly"
            }
        }
    }
}

/// Takes a place for a new connection, or names the limit that is full.
pub fn admit(
    state: &Arc<State>,
    slots: &Arc<Semaphore>,
    peer: Peer,
) -> Result<Held, ConnectionLimit> {
    let per_caller = state.config().server.max_connections_per_uid;
    // The caller's own limit first: a caller at its limit must not take a
    // place of the shared pool, even for a moment.
    let slot = state
        .connections
        .open(peer.caller(), per_caller)
        .ok_or(ConnectionLimit::PerCaller)?;
    let permit = slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ConnectionLimit::Total)?;
    Ok((permit, slot))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"s"));
        assert!(constant_time_eq(b"", b""));
    }
}
