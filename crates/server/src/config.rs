//! Server configuration: Chroma's YAML keys where they exist, Ochre's own for auth, environment
//! overrides on top.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `ochre run` needs to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Chroma: `port`. Default 8000.
    pub port: u16,
    /// Chroma: `listen_address`. Default `localhost`.
    pub listen_address: String,
    /// Chroma: `persist_path`. Default `./chroma` (Chroma's default).
    pub persist_path: PathBuf,
    /// Chroma: `allow_reset`. Default false.
    pub allow_reset: bool,
    /// Chroma: `cors_allow_origins`. Default none (no CORS headers).
    pub cors_allow_origins: Vec<String>,
    /// Chroma: `max_payload_size_bytes`. Default 40 MiB.
    pub max_payload_size_bytes: usize,
    /// Largest write batch (records per add/upsert/update), reported by pre-flight-checks.
    /// Default 5461, Chroma's figure. Also the most query embeddings one query request may carry.
    pub max_batch_size: usize,
    /// Ochre: the most hits one query response may hold (query embeddings × results per query,
    /// counting at most the collection's size per query). Default 100,000: a response of that
    /// many hits with documents is tens of MiB.
    pub max_query_results: usize,
    /// Ochre: seconds a client may take to send a request's headers; a connection that takes
    /// longer (or sits idle between requests longer) is closed. Default 30.
    pub http_header_timeout_seconds: u64,
    /// Ochre: seconds a client may take to send a request's body (then 408). Default 60.
    pub http_body_timeout_seconds: u64,
    /// Ochre: authentication. Default off.
    pub auth: AuthConfig,
    /// Ochre: `embedding_model` (env `OCHRE_MODEL_DIR`), a sentence-transformers directory
    /// holding all-MiniLM-L6-v2 (`config.json`, `tokenizer.json`, `model.safetensors`). With it
    /// the server embeds the documents of writes that come without embeddings, and text `$knn`
    /// queries, for collections whose embedding function is Chroma's default MiniLM one. Default
    /// none: such writes and queries are refused as before. (`ochre run` loads it and hands it to
    /// [`crate::AppState::with_embedder`].)
    pub embedding_model: Option<PathBuf>,
    /// Chroma: `open_telemetry` (env `CHROMA_OPEN_TELEMETRY__ENDPOINT`,
    /// `CHROMA_OPEN_TELEMETRY__SERVICE_NAME`). With it, `ochre run` exports a span for each
    /// request and its stages over OTLP/gRPC. Default none: no traces leave the process.
    pub open_telemetry: Option<OpenTelemetryConfig>,
}

/// Where traces go (Chroma's `open_telemetry` keys).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpenTelemetryConfig {
    /// An OTLP/gRPC endpoint, `http://HOST:PORT` (a collector's is usually port 4317). It may
    /// come from the environment instead; `ochre run` refuses to start with none.
    #[serde(default)]
    pub endpoint: String,
    /// The `service.name` of the exported spans. Default `ochre`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn default_service_name() -> String {
    "ochre".to_owned()
}

/// Optional authentication (Ochre's keys; Chroma 1.x has none).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Accepted static tokens (`X-Chroma-Token: <t>` or `Authorization: Bearer <t>`): a plain
    /// string may do anything; a [`ScopedToken`] only what its tenant and databases allow.
    pub tokens: Vec<TokenConfig>,
    /// An htpasswd file with bcrypt hashes, for `Authorization: Basic`.
    pub htpasswd_file: Option<PathBuf>,
}

/// One accepted token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TokenConfig {
    /// A token with access to everything.
    Plain(String),
    /// A token limited to one tenant (or `*`) and some of its databases (or `*`).
    Scoped(ScopedToken),
}

/// A token scoped to a tenant and databases; requests elsewhere get 403.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedToken {
    pub token: String,
    /// Reported by `/auth/identity`. Default empty.
    #[serde(default)]
    pub user_id: String,
    /// The tenant, or `*` for any.
    pub tenant: String,
    /// The databases, or `["*"]` for any. Default any.
    #[serde(default = "any_database")]
    pub databases: Vec<String>,
}

fn any_database() -> Vec<String> {
    vec!["*".to_owned()]
}

impl TokenConfig {
    /// The secret itself.
    pub fn token(&self) -> &str {
        match self {
            TokenConfig::Plain(t) => t,
            TokenConfig::Scoped(s) => &s.token,
        }
    }
}

impl From<&str> for TokenConfig {
    fn from(t: &str) -> Self {
        TokenConfig::Plain(t.to_owned())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 8000,
            listen_address: "localhost".into(),
            persist_path: PathBuf::from("./chroma"),
            allow_reset: false,
            cors_allow_origins: Vec::new(),
            max_payload_size_bytes: 40 * 1024 * 1024,
            max_batch_size: 5461,
            max_query_results: 100_000,
            http_header_timeout_seconds: 30,
            http_body_timeout_seconds: 60,
            auth: AuthConfig::default(),
            embedding_model: None,
            open_telemetry: None,
        }
    }
}

/// Why the server configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{var}: {source}")]
    Env {
        var: &'static str,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("cannot read htpasswd file {path}: {source}")]
    ReadHtpasswd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Htpasswd(#[from] crate::auth::HtpasswdError),
    #[error("auth.tokens holds an empty token (it would let an empty header in)")]
    EmptyToken,
    #[error("{0} must be at least 1 second")]
    ZeroTimeout(&'static str),
}

impl ServerConfig {
    /// Reads a YAML file (unknown keys are ignored, as Chroma's other keys are not ours).
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Yaml`], naming the path.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_yaml::from_str(&text).map_err(|source| ConfigError::Yaml {
            path: path.to_owned(),
            source,
        })
    }

    /// Applies `CHROMA_*` / `OCHRE_*` environment overrides.
    ///
    /// # Errors
    /// [`ConfigError::Env`] for a variable that does not parse.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let truthy =
            |v: &str| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on");
        for key in ["CHROMA_ALLOW_RESET", "ALLOW_RESET", "OCHRE_ALLOW_RESET"] {
            if let Some(v) = get(key) {
                self.allow_reset = truthy(&v);
            }
        }
        for key in [
            "CHROMA_SERVER_CORS_ALLOW_ORIGINS",
            "CHROMA_CORS_ALLOW_ORIGINS",
        ] {
            if let Some(v) = get(key) {
                self.cors_allow_origins =
                    serde_json::from_str::<Vec<String>>(&v).unwrap_or_else(|_| {
                        v.split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect()
                    });
            }
        }
        if let Some(v) = get("OCHRE_AUTH_TOKENS") {
            self.auth.tokens = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(TokenConfig::from)
                .collect();
        }
        if let Some(v) = get("OCHRE_AUTH_HTPASSWD") {
            self.auth.htpasswd_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get(ochre_embed::MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
            self.embedding_model = Some(PathBuf::from(v));
        }
        if let Some(endpoint) = get("CHROMA_OPEN_TELEMETRY__ENDPOINT").filter(|v| !v.is_empty()) {
            let service_name = self
                .open_telemetry
                .take()
                .map_or_else(default_service_name, |o| o.service_name);
            self.open_telemetry = Some(OpenTelemetryConfig {
                endpoint,
                service_name,
            });
        }
        if let Some(name) = get("CHROMA_OPEN_TELEMETRY__SERVICE_NAME").filter(|v| !v.is_empty()) {
            if let Some(o) = self.open_telemetry.as_mut() {
                o.service_name = name;
            }
        }
        if let Some(v) = get("OCHRE_MAX_PAYLOAD_SIZE_BYTES") {
            self.max_payload_size_bytes = v.parse().map_err(|source| ConfigError::Env {
                var: "OCHRE_MAX_PAYLOAD_SIZE_BYTES",
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keys_and_env_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "port: 9000\nallow_reset: true\ncors_allow_origins: ['*']\nauth:\n  tokens: [abc]\nembedding_model: /models/minilm\nother_chroma_key: 1\n").expect("write");
        let mut c = ServerConfig::from_file(&p).expect("parses");
        assert_eq!(c.port, 9000);
        assert!(c.allow_reset);
        assert_eq!(c.cors_allow_origins, vec!["*"]);
        assert_eq!(c.auth.tokens, vec![TokenConfig::from("abc")]);
        assert_eq!(c.embedding_model, Some(PathBuf::from("/models/minilm")));
        c.apply_env(|k| (k == "OCHRE_ALLOW_RESET").then(|| "false".to_owned()))
            .expect("env");
        assert!(!c.allow_reset);
        assert_eq!(c.embedding_model, Some(PathBuf::from("/models/minilm")));
        c.apply_env(|k| (k == "OCHRE_MODEL_DIR").then(|| "/elsewhere".to_owned()))
            .expect("env");
        assert_eq!(c.embedding_model, Some(PathBuf::from("/elsewhere")));
        c.apply_env(|k| (k == "OCHRE_MODEL_DIR").then(String::new))
            .expect("env");
        assert_eq!(
            c.embedding_model,
            Some(PathBuf::from("/elsewhere")),
            "empty is unset"
        );
    }

    #[test]
    fn open_telemetry_is_off_unless_configured() {
        let mut c = ServerConfig::default();
        c.apply_env(|_| None).expect("env");
        assert_eq!(c.open_telemetry, None);
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "open_telemetry:\n  endpoint: http://collector:4317\n").expect("write");
        let mut c = ServerConfig::from_file(&p).expect("parses");
        let otel = |c: &ServerConfig| c.open_telemetry.clone().expect("configured");
        assert_eq!(otel(&c).endpoint, "http://collector:4317");
        assert_eq!(otel(&c).service_name, "ochre");
        c.apply_env(|k| (k == "CHROMA_OPEN_TELEMETRY__SERVICE_NAME").then(|| "rag".to_owned()))
            .expect("env");
        assert_eq!(otel(&c).service_name, "rag");
        c.apply_env(|k| {
            (k == "CHROMA_OPEN_TELEMETRY__ENDPOINT").then(|| "http://127.0.0.1:4317".to_owned())
        })
        .expect("env");
        assert_eq!(otel(&c).endpoint, "http://127.0.0.1:4317");
        assert_eq!(otel(&c).service_name, "rag", "kept from the file");
        let mut c = ServerConfig::default();
        c.apply_env(|k| match k {
            "CHROMA_OPEN_TELEMETRY__ENDPOINT" => Some("http://127.0.0.1:4317".to_owned()),
            "CHROMA_OPEN_TELEMETRY__SERVICE_NAME" => Some("chromadb".to_owned()),
            _ => None,
        })
        .expect("env");
        assert_eq!(otel(&c).service_name, "chromadb");
    }
}
