//! The `[server]` section: the socket, limits, access, logs.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServerConfig {
    /// Where the Unix socket is bound.
    pub socket: PathBuf,
    /// Octal permission bits set on the socket right after bind; whoever can
    /// open the socket can talk to the daemon unless `allowed-uids` says no.
    pub socket_mode: SocketMode,
    /// Group given to the socket (name or numeric gid); empty leaves the
    /// daemon's own group.
    pub socket_group: String,
    /// Written and locked by `serve --daemon`.
    pub pidfile: PathBuf,
    /// Larger request bodies get 413 before they are read in full.
    pub max_body_bytes: u64,
    /// Images whose header claims more pixels get 413 before any decoding,
    /// so decompression bombs never allocate.
    pub max_pixels: u64,
    /// Pixels of images being decoded or held for their models at once,
    /// summed over all requests: a request whose image would pass it waits
    /// (within `request-timeout-ms`) until others are done. Bounds the
    /// memory that concurrent large uploads take; an image larger than the
    /// whole budget runs alone.
    pub max_decoding_pixels: u64,
    /// Bytes of decoded images kept for the next click on the same photo
    /// (keyed by the upload's SHA-256); 0 keeps none.
    pub image_cache_bytes: u64,
    /// A request not answered in this time gets 504.
    pub request_timeout_ms: u64,
    /// Connections served at once; more are answered 503 at once.
    pub max_connections: usize,
    /// Connections one caller (uid, or address on `--http`) may hold at
    /// once, so one caller cannot take every slot of `max_connections`.
    pub max_connections_per_uid: usize,
    /// On SIGTERM, how long requests in flight may take to finish.
    pub shutdown_timeout_ms: u64,
    /// Folders that JSON `path` requests may read; empty turns them off.
    pub image_roots: Vec<PathBuf>,
    /// Peer uids allowed to talk to the daemon; empty allows any.
    pub allowed_uids: Vec<u32>,
    /// Peer uids allowed to `POST /v1/reload`.
    pub admin_uids: Vec<u32>,
    /// Peer uids of a reverse proxy (nginx, say) whose requests are rate
    /// limited per client address, read from the last `X-Forwarded-For`
    /// value the proxy sets, instead of all together under its uid.
    pub trusted_proxy_uids: Vec<u32>,
    /// Requests per second per peer uid (token bucket); 0 turns it off.
    pub rate_per_uid: u32,
    /// Bucket size: how many requests a uid may send at once.
    pub rate_burst: u32,
    /// JSON-lines file where feedback is appended; empty keeps it in memory.
    pub feedback_log: PathBuf,
    /// Recent predictions remembered so feedback can refer to them.
    pub recent_predictions: usize,
    /// Bearer token required on `--http`; empty requires none.
    pub http_token: String,
    /// Allows `--http` on an address other than loopback without an
    /// `http-token`: every prediction route is then open to the network.
    /// A risk; without it such a start is refused.
    pub http_allow_unauthenticated: bool,
    /// Datagram socket of the syslog daemon used by `serve --daemon`.
    pub syslog_socket: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            socket: PathBuf::from("predictd.sock"),
            socket_mode: SocketMode(0o660),
            socket_group: String::new(),
            pidfile: PathBuf::from("predictd.pid"),
            max_body_bytes: 20 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_decoding_pixels: 36_000_000,
            image_cache_bytes: 64 * 1024 * 1024,
            request_timeout_ms: 5000,
            max_connections: 256,
            max_connections_per_uid: 64,
            shutdown_timeout_ms: 10_000,
            image_roots: Vec::new(),
            allowed_uids: Vec::new(),
            admin_uids: vec![0],
            trusted_proxy_uids: Vec::new(),
            rate_per_uid: 200,
            rate_burst: 400,
            feedback_log: PathBuf::new(),
            recent_predictions: 100_000,
            http_token: String::new(),
            http_allow_unauthenticated: false,
            syslog_socket: PathBuf::from("/dev/log"),
        }
    }
}

/// `socket-mode`: permission bits, written as an octal string ("0660") and
/// parsed once, when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketMode(pub u32);

impl std::str::FromStr for SocketMode {
    type Err = String;
    fn from_str(text: &str) -> Result<SocketMode, String> {
        let t = text.trim();
        match u32::from_str_radix(t.trim_start_matches("0o"), 8) {
            Ok(mode) if mode <= 0o777 && !t.is_empty() => Ok(SocketMode(mode)),
            _ => Err(format!(
                "socket-mode {text:?} is not an octal mode such as \"0660\""
            )),
        }
    }
}

impl Serialize for SocketMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for SocketMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SocketMode, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
