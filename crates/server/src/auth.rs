//! Optional authentication and scoping: static tokens (plain or scoped to a tenant and its
//! databases) and basic auth against a bcrypt htpasswd file.
//!
//! Secrets are compared in constant time (SHA-256 digests compared with `subtle`), so response
//! times do not tell how much of a token was right. bcrypt runs on the blocking pool, never on the
//! async workers; a user name that is not in the file is verified against a real hash all the
//! same, so known and unknown names take equally long; and a verified `user:password` pair is
//! remembered (as a digest) for [`VERIFIED_FOR`], so a client sending Basic auth on every request
//! pays bcrypt once, not per request; such requests need no bcrypt slot, and one that does waits
//! for a slot at most [`BCRYPT_WAIT`] before a 429.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::TokenConfig;
use crate::error::{ApiError, ErrorName};
use crate::wire::closing;
use crate::AppState;

/// How long a verified basic-auth pair is accepted without running bcrypt again.
pub const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Verified pairs remembered at most (the oldest are forgotten first).
const VERIFIED_MAX: usize = 1024;
/// How long a request waits for one of the bcrypt slots before it is refused with 429: a burst
/// of requests from one client (a page loading its parts at once) queues briefly, a flood of
/// guesses does not pile up.
const BCRYPT_WAIT: Duration = Duration::from_secs(2);

/// A malformed htpasswd line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HtpasswdError {
    #[error("htpasswd line {line}: expected user:hash")]
    NotUserHash { line: usize },
    #[error("htpasswd line {line}: only bcrypt hashes are supported")]
    NotBcrypt { line: usize },
}

/// Who a request is, and what it may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    /// A tenant name, or `*` for any.
    pub tenant: String,
    /// Database names, or `*` for any.
    pub databases: Vec<String>,
    /// False for an unscoped credential: it reaches everything, and reports the default tenant
    /// and database as its identity (what clients that adopt it expect).
    scoped: bool,
}

impl Identity {
    fn unscoped(user_id: &str) -> Identity {
        Identity {
            user_id: user_id.to_owned(),
            tenant: ochre::DEFAULT_TENANT.to_owned(),
            databases: vec![ochre::DEFAULT_DATABASE.to_owned()],
            scoped: false,
        }
    }

    /// The identity of a request when auth is off.
    pub fn anonymous() -> Identity {
        Identity::unscoped("")
    }

    fn tenant_allowed(&self, tenant: &str) -> bool {
        !self.scoped || self.tenant == "*" || self.tenant == tenant
    }

    fn database_allowed(&self, database: &str) -> bool {
        !self.scoped || self.databases.iter().any(|d| d == "*" || d == database)
    }

    /// Whether this identity may make a request to `path`: a scoped one reaches only its tenant
    /// and databases, and none of the routes that act on the whole server.
    fn may_reach(&self, path: &str) -> bool {
        if !self.scoped {
            return true;
        }
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match parts.as_slice() {
            // /api/v2/tenants/{t}/databases/{d}/...
            ["", "api", "v2", "tenants", t, "databases", d, ..] => {
                self.tenant_allowed(t) && self.database_allowed(d)
            }
            // /api/v2/tenants/{t}
            ["", "api", "v2", "tenants", t] => self.tenant_allowed(t),
            // Listing or creating a tenant's databases reaches all of them.
            ["", "api", "v2", "tenants", t, "databases"] => {
                self.tenant_allowed(t) && self.database_allowed("*")
            }
            // /api/v2/collections/{tenant:database:collection}
            ["", "api", "v2", "collections", crn] => {
                let mut it = crn.split(':');
                match (it.next(), it.next()) {
                    (Some(t), Some(d)) => self.tenant_allowed(t) && self.database_allowed(d),
                    _ => false,
                }
            }
            ["", "api", "v2", "auth", "identity"]
            | ["", "api", "v2", "heartbeat"]
            | ["", "api", "v2", "version"]
            | ["", "api", "v2", "healthcheck"]
            | ["", "api", "v2", "pre-flight-checks"]
            | ["", "api", "v2"] => true,
            // Creating tenants, reset and anything else that is not inside one tenant.
            _ => false,
        }
    }
}

/// Loaded credentials.
#[derive(Debug)]
pub struct Credentials {
    tokens: Vec<(Digest32, Identity)>,
    /// user → bcrypt hash.
    users: HashMap<String, String>,
    /// Digests (salted per process) of recently verified `user:password` pairs, with when they
    /// were verified.
    verified: Mutex<HashMap<Digest32, Instant>>,
    salt: [u8; 16],
    /// bcrypt verifications allowed at once (one per core): a flood of wrong passwords is
    /// refused with 429 instead of filling the blocking pool that database requests share.
    bcrypt_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

type Digest32 = [u8; 32];

fn digest(parts: &[&[u8]]) -> Digest32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Why a request was refused.
enum Refusal {
    Missing,
    Invalid,
}

impl Credentials {
    /// Credentials from the configured tokens and htpasswd users (user → bcrypt hash).
    pub fn new(tokens: &[TokenConfig], users: HashMap<String, String>) -> Self {
        let tokens = tokens
            .iter()
            .map(|t| {
                let identity = match t {
                    TokenConfig::Plain(_) => Identity::unscoped(""),
                    TokenConfig::Scoped(s) => Identity {
                        user_id: s.user_id.clone(),
                        tenant: s.tenant.clone(),
                        databases: s.databases.clone(),
                        scoped: true,
                    },
                };
                (digest(&[t.token().trim().as_bytes()]), identity)
            })
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Credentials {
            tokens,
            users,
            verified: Mutex::default(),
            salt: uuid::Uuid::new_v4().into_bytes(),
            bcrypt_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

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

    /// The identity of a token, comparing against every configured one in constant time.
    fn token(&self, token: &str) -> Option<Identity> {
        let given = digest(&[token.trim().as_bytes()]);
        let mut found = None;
        for (d, identity) in &self.tokens {
            if bool::from(d.ct_eq(&given)) && found.is_none() {
                found = Some(identity.clone());
            }
        }
        found
    }

    /// Whether `user:password` was verified less than [`VERIFIED_FOR`] ago (a digest and a map
    /// lookup: no bcrypt).
    fn recently_verified(&self, user: &str, password: &str) -> bool {
        let key = digest(&[&self.salt, user.as_bytes(), password.as_bytes()]);
        let now = Instant::now();
        self.verified.lock().is_ok_and(|verified| {
            verified
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < VERIFIED_FOR)
        })
    }

    /// The identity of `Authorization: Basic <encoded>` when its pair was verified recently;
    /// `None` when bcrypt must decide.
    fn cached_basic(&self, encoded: &str) -> Option<Identity> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let (user, pass) = decoded.split_once(':')?;
        self.recently_verified(user, pass)
            .then(|| Identity::unscoped(user))
    }

    /// Verifies `user:password` (bcrypt, or a recent verification of the same pair).
    fn basic(&self, user: &str, password: &str) -> bool {
        let key = digest(&[&self.salt, user.as_bytes(), password.as_bytes()]);
        let now = Instant::now();
        if self.recently_verified(user, password) {
            return true;
        }
        // An unknown user is checked against a real hash too, so it takes as long as a known one.
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => match self.users.values().next() {
                Some(h) => (h.as_str(), false),
                None => return false,
            },
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok {
            if let Ok(mut verified) = self.verified.lock() {
                if verified.len() >= VERIFIED_MAX {
                    verified.retain(|_, at| now.duration_since(*at) < VERIFIED_FOR);
                    if verified.len() >= VERIFIED_MAX {
                        if let Some(oldest) =
                            verified.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
                        {
                            verified.remove(&oldest);
                        }
                    }
                }
                verified.insert(key, now);
            }
        }
        ok
    }

    /// The identity of `Authorization: Basic <encoded>`. Blocking: it may run bcrypt.
    fn identify_basic(&self, encoded: &str) -> Result<Identity, Refusal> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(Refusal::Invalid)?;
        let (user, pass) = decoded.split_once(':').ok_or(Refusal::Invalid)?;
        if self.basic(user, pass) {
            Ok(Identity::unscoped(user))
        } else {
            Err(Refusal::Invalid)
        }
    }
}

/// The credentials a request presents.
enum Presented<'a> {
    /// `X-Chroma-Token: <t>` or `Authorization: Bearer <t>` (any case of the scheme).
    Token(&'a str),
    /// `Authorization: Basic <base64>`.
    Basic(&'a str),
    Missing,
}

fn presented(headers: &axum::http::HeaderMap) -> Presented<'_> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header("x-chroma-token") {
        return Presented::Token(token);
    }
    let Some(auth) = header("authorization") else {
        return Presented::Missing;
    };
    let (scheme, rest) = auth.trim().split_once(' ').unwrap_or((auth.trim(), ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        Presented::Token(rest)
    } else if scheme.eq_ignore_ascii_case("basic") {
        Presented::Basic(rest)
    } else {
        Presented::Missing
    }
}

/// Routes that stay open without credentials: liveness and capability probes, and static pages
/// that hold no data (the API docs, the dashboard's files).
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
        || crate::dashboard::is_dashboard(path)
}

/// Middleware: rejects requests without valid credentials (401), with wrong ones or outside
/// their scope (403), before any handler runs; hands the caller's [`Identity`] to the handlers.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !state.credentials.enabled() {
        req.extensions_mut().insert(Identity::anonymous());
        return next.run(req).await;
    }
    if is_public(req.uri().path()) || req.method() == axum::http::Method::OPTIONS {
        return next.run(req).await;
    }
    let identity = match presented(req.headers()) {
        // Tokens: a few digests, no need to leave the async worker.
        Presented::Token(t) => state.credentials.token(t).ok_or(Refusal::Invalid),
        Presented::Missing => Err(Refusal::Missing),
        // A pair verified recently needs no bcrypt, so no slot: a page sending many requests
        // at once with the same credentials is not refused.
        Presented::Basic(encoded) => match state.credentials.cached_basic(encoded) {
            Some(identity) => Ok(identity),
            None => {
                let slots = state.credentials.bcrypt_slots.clone();
                let Ok(Ok(permit)) = tokio::time::timeout(BCRYPT_WAIT, slots.acquire_owned()).await
                else {
                    return closing(
                        ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            ErrorName::Auth,
                            "Too many password checks in progress; try again",
                        )
                        .into_response(),
                    );
                };
                let credentials = state.credentials.clone();
                let encoded = encoded.to_owned();
                let checked = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    credentials.identify_basic(&encoded)
                })
                .await;
                match checked {
                    Ok(identity) => identity,
                    Err(e) => {
                        return ApiError::internal(format!("auth task failed: {e}")).into_response()
                    }
                }
            }
        },
    };
    let identity = match identity {
        Ok(i) => i,
        Err(Refusal::Missing) => {
            return closing(
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorName::Auth,
                    "Unauthorized: missing credentials",
                )
                .into_response(),
            )
        }
        Err(Refusal::Invalid) => {
            return closing(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorName::Authorization,
                    "Forbidden: invalid credentials",
                )
                .into_response(),
            )
        }
    };
    if !identity.may_reach(req.uri().path()) {
        return closing(
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorName::Authorization,
                "Forbidden: this credential is not allowed to reach this tenant or database",
            )
            .into_response(),
        );
    }
    req.extensions_mut().insert(identity);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScopedToken;

    fn scoped() -> Identity {
        Identity {
            user_id: "u".into(),
            tenant: "acme".into(),
            databases: vec!["prod".into()],
            scoped: true,
        }
    }

    #[test]
    fn a_scoped_identity_reaches_only_its_tenant_and_databases() {
        let i = scoped();
        let base = "/api/v2/tenants/acme/databases/prod";
        assert!(i.may_reach(&format!("{base}/collections")));
        assert!(i.may_reach(&format!("{base}/collections/x/query")));
        assert!(i.may_reach("/api/v2/tenants/acme"));
        assert!(
            !i.may_reach("/api/v2/tenants/acme/databases"),
            "all of the tenant's databases"
        );
        let tenant_wide = Identity {
            databases: vec!["*".into()],
            ..scoped()
        };
        assert!(tenant_wide.may_reach("/api/v2/tenants/acme/databases"));
        assert!(i.may_reach("/api/v2/collections/acme:prod:docs"));
        assert!(i.may_reach("/api/v2/auth/identity"));
        assert!(!i.may_reach("/api/v2/tenants/other/databases/prod/collections"));
        assert!(!i.may_reach("/api/v2/tenants/acme/databases/dev/collections"));
        assert!(!i.may_reach("/api/v2/collections/acme:dev:docs"));
        assert!(!i.may_reach("/api/v2/tenants"));
        assert!(!i.may_reach("/api/v2/reset"));
        assert!(Identity::anonymous().may_reach("/api/v2/reset"));
    }

    #[test]
    fn tokens_match_whole_and_only_whole() {
        let c = Credentials::new(
            &[
                TokenConfig::from("secret"),
                TokenConfig::Scoped(ScopedToken {
                    token: "scoped".into(),
                    user_id: "u".into(),
                    tenant: "acme".into(),
                    databases: vec!["prod".into()],
                }),
            ],
            HashMap::new(),
        );
        assert_eq!(c.token("secret"), Some(Identity::anonymous()));
        assert_eq!(c.token("scoped"), Some(scoped()));
        for wrong in ["secre", "secret!", "", "SECRET"] {
            assert_eq!(c.token(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn basic_auth_verifies_once_then_remembers() {
        let hash = bcrypt::hash("pw", 4).expect("hash");
        let c = Credentials::new(&[], [("admin".to_owned(), hash)].into());
        assert!(!c.basic("admin", "wrong"));
        assert!(!c.basic("nobody", "pw"), "unknown users are refused");
        assert!(c.basic("admin", "pw"));
        assert_eq!(c.verified.lock().map(|v| v.len()).unwrap_or(0), 1);
        assert!(c.basic("admin", "pw"), "remembered");
        assert!(!c.basic("admin", "pw2"));
    }
}
