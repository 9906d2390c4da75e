//! Optional authentication: static tokens and basic auth against a bcrypt htpasswd file.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::error::{ApiError, ErrorName};
use crate::AppState;

/// A malformed htpasswd line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HtpasswdError {
    #[error("htpasswd line {line}: expected user:hash")]
    NotUserHash { line: usize },
    #[error("htpasswd line {line}: only bcrypt hashes are supported")]
    NotBcrypt { line: usize },
}

/// Loaded credentials.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    pub tokens: Vec<String>,
    /// user → bcrypt hash.
    pub users: HashMap<String, String>,
}

impl Credentials {
    /// True when any credential is configured (auth is on).
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }

    /// Parses htpasswd text (`user:$2y$...` lines; only bcrypt is accepted).
    ///
    /// # Errors
    /// [`HtpasswdError`] for a line that is not `user:bcrypt-hash`.
    pub fn parse_htpasswd(text: &str) -> Result<HashMap<String, String>, HtpasswdError> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or(HtpasswdError::NotUserHash { line: n + 1 })?;
            if !hash.starts_with("$2") {
                return Err(HtpasswdError::NotBcrypt { line: n + 1 });
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(users)
    }

    fn check(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let unauthenticated = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorName::Auth,
                "Unauthorized: missing credentials",
            )
        };
        let forbidden = || {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorName::Authorization,
                "Forbidden: invalid credentials",
            )
        };
        if let Some(token) = header("x-chroma-token") {
            return if self.tokens.iter().any(|t| t == token) {
                Ok(())
            } else {
                Err(forbidden())
            };
        }
        let Some(auth) = header("authorization") else {
            return Err(unauthenticated());
        };
        if let Some(token) = auth.strip_prefix("Bearer ") {
            return if self.tokens.iter().any(|t| t == token.trim()) {
                Ok(())
            } else {
                Err(forbidden())
            };
        }
        if let Some(b64) = auth.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(forbidden)?;
            let (user, pass) = decoded.split_once(':').ok_or_else(forbidden)?;
            let ok = self
                .users
                .get(user)
                .is_some_and(|hash| bcrypt::verify(pass, hash).unwrap_or(false));
            return if ok { Ok(()) } else { Err(forbidden()) };
        }
        Err(unauthenticated())
    }
}

/// Routes that stay open without credentials (liveness and capability probes).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/api/v2"
            | "/api/v2/heartbeat"
            | "/api/v2/version"
            | "/api/v2/healthcheck"
            | "/api/v2/pre-flight-checks"
    ) || path == "/openapi.json"
        || path.starts_with("/docs")
}

/// Middleware: rejects requests without valid credentials before any handler runs.
pub async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.credentials.enabled()
        || is_public(req.uri().path())
        || req.method() == axum::http::Method::OPTIONS
    {
        return next.run(req).await;
    }
    match state.credentials.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}
