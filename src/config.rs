//! The configuration file: TOML, kebab-case keys, unknown keys rejected.
//!
//! Parsing happens once, at the edge: [`Config::load`] turns the file into
//! typed values (octal modes parsed, crops parsed, relative paths resolved
//! against the file's folder) and [`Config::validate`] refuses anything the
//! rest of the daemon would otherwise have to second-guess.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("Cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or holds an unknown key; the message names the
    /// key and its line.
    #[error("Invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The values parse but make no sense together.
    #[error("Invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration. `[[model]]` sections become `models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default = "default_models", rename = "model")]
    pub models: Vec<ModelConfig>,
}

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

/// One classifier. Nothing about the shipped models is special: a third
/// graph, or one from TensorFlow's `retrain.py` (input `Mul`, output
/// `final_result`), is served by adding a section like this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelConfig {
    /// Name used in requests (`models=theme`) and responses.
    pub name: String,
    /// Frozen GraphDef (`.pb`).
    pub graph: PathBuf,
    /// One label a line; line i names output index i.
    pub labels: PathBuf,
    /// Name of the graph's input node (a float `[1, height, width, 3]`).
    pub input: String,
    /// Name of the node whose output holds the class scores.
    pub output: String,
    /// Which part of the image the model sees around the point; by
    /// default the whole image (`fraction:1.0`), as most classifiers are
    /// trained on whole images.
    #[serde(default = "default_crop")]
    pub crop: Crop,
    /// Input width in pixels; the crop is resized to it.
    pub input_width: u32,
    /// Input height in pixels.
    pub input_height: u32,
    /// Each channel value v in 0..=255 is fed as (v - input-mean) / input-std.
    pub input_mean: f32,
    pub input_std: f32,
    /// Channel order the graph expects.
    #[serde(default)]
    pub channels: ChannelOrder,
    /// Axis order of the graph's input: `nhwc` (TensorFlow's) or `nchw`
    /// (PyTorch's, in ONNX exports).
    #[serde(default)]
    pub layout: Layout,
    /// Apply a softmax to the output (for graphs that end in logits).
    #[serde(default)]
    pub softmax: bool,
    /// Threads that run this model; each runs one inference at a time.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Requests that may wait for a worker; past that, 503 `overloaded`.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Threads one inference of this model may use when it is the model's
    /// only work (its matrix products and depthwise convolutions are split
    /// across them). When other inferences of the model run or wait, each
    /// runs on its worker's thread alone, so a loaded model never runs more
    /// threads than it has workers.
    #[serde(default = "default_threads")]
    pub threads: usize,
}

fn default_crop() -> Crop {
    Crop::Fraction(1.0)
}

fn default_threads() -> usize {
    1
}

fn default_workers() -> usize {
    1
}

fn default_queue() -> usize {
    16
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nhwc,
    Nchw,
}

/// The window a model sees, written `fraction:0.8` (that share of the image's
/// width and height, centred on the point and shifted to stay inside) or
/// `pixels:9` (a 9x9 square around the point, clamped at the borders).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crop {
    Fraction(f32),
    Pixels(u32),
}

impl fmt::Display for Crop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crop::Fraction(v) => write!(f, "fraction:{v}"),
            Crop::Pixels(n) => write!(f, "pixels:{n}"),
        }
    }
}

impl std::str::FromStr for Crop {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("crop {s:?} is not \"fraction:F\" (0 < F <= 1) or \"pixels:N\" (N >= 1)");
        match s.split_once(':') {
            Some(("fraction", v)) => match v.trim().parse::<f32>() {
                Ok(f) if f > 0.0 && f <= 1.0 => Ok(Crop::Fraction(f)),
                _ => Err(bad()),
            },
            Some(("pixels", v)) => match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Crop::Pixels(n)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl Serialize for Crop {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Crop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The first `[[model]]` section of `text` that does not make a model, as
/// `line L: [[model]] #N "name": what is wrong` (the line of the key at
/// fault, or of the section's header for a missing key). `None` when the
/// sections are fine or the TOML itself is malformed.
fn model_section_error(text: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let sections = doc.get("model")?.as_array()?;
    let lines: Vec<&str> = text.lines().collect();
    let headers: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[model]]"))
        .map(|(i, _)| i)
        .collect();
    for (n, section) in sections.iter().enumerate() {
        let Err(e) = section.clone().try_into::<ModelConfig>() else {
            continue;
        };
        let message = e.message().trim_end().to_string();
        let key_named = |m: &str| -> Option<String> {
            let start = m.find('`')? + 1;
            let len = m[start..].find('`')?;
            Some(m[start..start + len].to_string())
        };
        let (what, key) = match message.strip_prefix("missing field ") {
            Some(rest) => {
                let key = rest.trim_matches('`').to_string();
                (format!("missing key {key}"), None)
            }
            None => (message.clone(), key_named(&message)),
        };
        let header = headers.get(n).copied();
        let end = headers.get(n + 1).copied().unwrap_or(lines.len());
        // A key that is in the section but wrong: its own line (for a
        // wrong value, the key whose value the message quotes); a missing
        // key: the section's header.
        let quoted = |k: &str| {
            section
                .get(k)
                .is_some_and(|v| message.contains(&v.to_string()))
        };
        let suspect = key.or_else(|| {
            section
                .as_table()?
                .keys()
                .find(|k| quoted(k) && !what.starts_with("missing"))
                .cloned()
        });
        let key_line = header.zip(suspect).and_then(|(h, k)| {
            (h + 1..end).find(|&i| {
                let l = lines[i].trim_start();
                l.strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        });
        let line = key_line.or(header).map(|i| i + 1);
        let name = section
            .get("name")
            .and_then(|v| v.as_str())
            .map(|v| format!(" {v:?}"))
            .unwrap_or_default();
        let place = line.map(|l| format!("line {l}: ")).unwrap_or_default();
        return Some(format!("{place}[[model]] #{}{name}: {what}", n + 1));
    }
    None
}

/// The two shipped classifiers, relative to the current folder so that
/// `cargo run -- serve` works from a checkout.
fn default_models() -> Vec<ModelConfig> {
    vec![
        ModelConfig {
            name: "color".into(),
            graph: "models/colorClassifier.pb".into(),
            labels: "labels/colors.txt".into(),
            input: "input".into(),
            output: "colors".into(),
            crop: Crop::Pixels(9),
            input_width: 9,
            input_height: 9,
            input_mean: 0.0,
            input_std: 255.0,
            channels: ChannelOrder::Rgb,
            layout: Layout::Nhwc,
            softmax: false,
            workers: 1,
            queue: 64,
            threads: 1,
        },
        ModelConfig {
            name: "theme".into(),
            graph: "models/themeClassifier.pb".into(),
            labels: "labels/themes.txt".into(),
            input: "input".into(),
            output: "themes".into(),
            crop: Crop::Fraction(0.8),
            input_width: 224,
            input_height: 224,
            input_mean: 127.0,
            input_std: 128.0,
            channels: ChannelOrder::Rgb,
            layout: Layout::Nhwc,
            softmax: false,
            workers: 2,
            queue: 16,
            threads: 2,
        },
    ]
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            models: default_models(),
        }
    }
}

impl Config {
    /// Reads `path`, or the built-in defaults when `None`; resolves relative
    /// paths (against the file's folder, or the current folder for the
    /// defaults) and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_in(path, &std::env::current_dir().unwrap_or_default())
    }

    /// As [`Config::load`], with relative paths (of the built-in defaults,
    /// or of a relative config path) taken against `cwd` instead of the
    /// current folder: a daemon resolves them against the folder it was
    /// started in, though it runs in `/` after the fork.
    pub fn load_in(path: Option<&Path>, cwd: &Path) -> Result<Config, ConfigError> {
        let owned;
        let path = match path {
            Some(p) if p.is_relative() => {
                owned = cwd.join(p);
                Some(owned.as_path())
            }
            other => other,
        };
        let (mut config, base) = match path {
            None => (Config::default(), cwd.to_owned()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let config = Config::parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                })?;
                let dir = path.parent().map(Path::to_owned).unwrap_or_default();
                (config, dir)
            }
        };
        config.resolve_paths(&base);
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; the error message names the offending key and
    /// line, and for a key of a `[[model]]` section, the section (its
    /// number and name).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| {
            model_section_error(text).unwrap_or_else(|| e.to_string().trim_end().to_string())
        })
    }

    /// Makes every relative path absolute against `base`.
    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let s = &mut self.server;
        abs(&mut s.socket);
        abs(&mut s.pidfile);
        abs(&mut s.feedback_log);
        abs(&mut s.syslog_socket);
        s.image_roots.iter_mut().for_each(abs);
        for m in &mut self.models {
            abs(&mut m.graph);
            abs(&mut m.labels);
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let s = &self.server;
        if s.max_body_bytes == 0 {
            return bad("server.max-body-bytes must be at least 1".into());
        }
        if s.max_decoding_pixels == 0 {
            return bad("server.max-decoding-pixels must be at least 1".into());
        }
        if s.max_pixels == 0 {
            return bad("server.max-pixels must be at least 1".into());
        }
        if s.request_timeout_ms == 0 {
            return bad("server.request-timeout-ms must be at least 1".into());
        }
        if s.max_connections == 0 {
            return bad("server.max-connections must be at least 1".into());
        }
        if s.max_connections_per_uid == 0 {
            return bad("server.max-connections-per-uid must be at least 1".into());
        }
        if s.rate_per_uid > 0 && s.rate_burst == 0 {
            return bad("server.rate-burst must be at least 1 when rate-per-uid is set".into());
        }
        if self.models.is_empty() {
            return bad("at least one [[model]] is needed".into());
        }
        let mut names = HashSet::new();
        for m in &self.models {
            let valid_name = !m.name.is_empty()
                && m.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                return bad(format!(
                    "model name {:?} must be letters, digits, '-' or '_'",
                    m.name
                ));
            }
            if !names.insert(m.name.as_str()) {
                return bad(format!("two models are named {:?}", m.name));
            }
            if m.input_width == 0 || m.input_height == 0 {
                return bad(format!(
                    "model {:?}: input-width and input-height must be at least 1",
                    m.name
                ));
            }
            if m.input_width > 4096 || m.input_height > 4096 {
                return bad(format!("model {:?}: input size above 4096 pixels", m.name));
            }
            if m.input_std == 0.0 || !m.input_std.is_finite() || !m.input_mean.is_finite() {
                return bad(format!(
                    "model {:?}: input-std must be a non-zero number",
                    m.name
                ));
            }
            if m.threads > 256 {
                return bad(format!("model {:?}: threads above 256", m.name));
            }
            if m.workers == 0 || m.queue == 0 || m.threads == 0 {
                return bad(format!(
                    "model {:?}: workers, queue and threads must be at least 1",
                    m.name
                ));
            }
            if m.input.is_empty() || m.output.is_empty() {
                return bad(format!(
                    "model {:?}: input and output node names are required",
                    m.name
                ));
            }
        }
        Ok(())
    }

    /// `server.socket-mode` as permission bits.
    /// Refuses to serve `--http` on a non-loopback address without a token,
    /// unless `http-allow-unauthenticated` says so.
    pub fn check_http(&self, http: Option<std::net::SocketAddr>) -> Result<(), ConfigError> {
        let s = &self.server;
        match http {
            Some(addr)
                if !addr.ip().is_loopback()
                    && s.http_token.is_empty()
                    && !s.http_allow_unauthenticated =>
            {
                Err(ConfigError::Invalid(format!(
                    "--http {addr} is reachable from other machines and server.http-token is empty: \
                     set http-token, listen on 127.0.0.1, or set http-allow-unauthenticated = true \
                     to serve every route to the network without authentication"
                )))
            }
            _ => Ok(()),
        }
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The effective configuration as a complete TOML file that `serve
    /// --config` accepts as it is.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("config always serializes");
        format!("# predictd configuration: every key with its effective value.\n\n{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse("[server]\nsocket = \"a\"\nmax-bodybytes = 3\n").unwrap_err();
        assert!(err.contains("max-bodybytes"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_bad_model_section_is_named_with_its_line() {
        let section = |name: &str, extra: &str| {
            format!(
                "[[model]]\nname = \"{name}\"\ngraph = \"g.pb\"\nlabels = \"l.txt\"\n\
                 input = \"input\"\noutput = \"out\"\ninput-width = 8\ninput-height = 8\n{extra}"
            )
        };
        let good = section("a", "input-mean = 0.0\ninput-std = 1.0\n");
        // Line 11 is the second section's header.
        let text = format!("{good}{}", section("zoo", "input-std = 1.0\n"));
        let err = Config::parse(&text).unwrap_err();
        assert_eq!(err, "line 11: [[model]] #2 \"zoo\": missing key input-mean");
        let text = format!(
            "{good}{}",
            section("zoo", "input-mean = 0.0\ninput-std = 1.0\nthreds = 2\n")
        );
        let err = Config::parse(&text).unwrap_err();
        assert!(
            err.starts_with("line 21: [[model]] #2 \"zoo\": unknown field `threds`"),
            "{err}"
        );
        let text = format!(
            "{good}{}",
            section("zoo", "input-mean = \"x\"\ninput-std = 1.0\n")
        );
        let err = Config::parse(&text).unwrap_err();
        assert!(err.starts_with("line 19: [[model]] #2 \"zoo\": "), "{err}");
        // crop and layout have defaults.
        let c = Config::parse(&good).unwrap();
        assert_eq!(c.models[0].crop, Crop::Fraction(1.0));
        assert_eq!(c.models[0].layout, Layout::Nhwc);
    }

    #[test]
    fn printed_config_parses_back_to_itself() {
        let mut c = Config::default();
        c.resolve_paths(Path::new("/srv/predictd"));
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(c, again);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            "[server]\nsocket = \"run/p.sock\"\n[[model]]\nname = \"m\"\ngraph = \"../g.pb\"\n\
             labels = \"l.txt\"\ninput = \"Mul\"\noutput = \"final_result\"\ncrop = \"fraction:1\"\n\
             input-width = 299\ninput-height = 299\ninput-mean = 128\ninput-std = 128\n",
        )
        .unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.server.socket, dir.path().join("run/p.sock"));
        assert_eq!(c.models[0].graph, dir.path().join("../g.pb"));
        assert_eq!(c.models[0].workers, 1);
        assert_eq!(c.models.len(), 1);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!("fraction:0".parse::<Crop>().is_err());
        assert!("pixels:0".parse::<Crop>().is_err());
        assert!("middle".parse::<Crop>().is_err());
        assert_eq!("pixels:9".parse::<Crop>().unwrap(), Crop::Pixels(9));
        assert!("rw".parse::<SocketMode>().is_err());
        assert!("0999".parse::<SocketMode>().is_err());
        assert_eq!("0o640".parse::<SocketMode>(), Ok(SocketMode(0o640)));
        let err = Config::parse("[server]\nsocket-mode = \"rw\"\n").unwrap_err();
        assert!(err.contains("socket-mode"), "{err}");
        let mut c = Config::default();
        c.models[1].name = "color".into();
        assert!(c.validate().is_err());
    }
}
