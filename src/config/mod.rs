//! The configuration file: TOML, kebab-case keys, unknown keys rejected.
//!
//! Parsing happens once, at the edge: [`Config::load`] turns the file into
//! typed values (octal modes parsed, crops parsed, relative paths resolved
//! against the file's folder) and [`Config::validate`] refuses anything the
//! rest of the daemon would otherwise have to second-guess.

mod model;
mod server;

use model::{default_models, model_section_error};
pub use model::{ChannelOrder, Crop, Layout, ModelConfig};
use serde::{Deserialize, Serialize};
pub use server::{ServerConfig, SocketMode};
use std::collections::HashSet;
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
