//! The HTTP error edge: every failure becomes `{"error": NAME, "message": ...}` with Chroma's
//! status and name, plus a `chroma-trace-id` header. The names are one enum ([`ErrorName`]); the
//! engine's [`ErrorKind`] maps to a status and a name in one `match` ([`From<ochre::Error>`]).

#![deny(
    clippy::wildcard_enum_match_arm,
    reason = "a new error name must get its wire name"
)]

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ochre::ErrorKind;

/// The JSON body of every error response.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// Chroma's error name (`InvalidArgumentError`, `NotFoundError`, `ChromaError`, ...).
    pub error: String,
    /// A human-readable message.
    pub message: String,
}

/// The error names Chroma's server answers with (the `error` field), as its clients map them to
/// exception classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorName {
    InvalidArgument,
    NotFound,
    /// Chroma's generic name (conflicts, malformed bodies, refused operations).
    Chroma,
    Internal,
    /// Missing credentials (401).
    Auth,
    /// Wrong credentials (403).
    Authorization,
    Unimplemented,
}

impl ErrorName {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::InvalidArgument => "InvalidArgumentError",
            ErrorName::NotFound => "NotFoundError",
            ErrorName::Chroma => "ChromaError",
            ErrorName::Internal => "InternalError",
            ErrorName::Auth => "AuthError",
            ErrorName::Authorization => "AuthorizationError",
            ErrorName::Unimplemented => "Unimplemented",
        }
    }
}

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub name: ErrorName,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, name: ErrorName, message: impl Into<String>) -> Self {
        ApiError {
            status,
            name,
            message: message.into(),
        }
    }

    /// 400 `InvalidArgumentError`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorName::InvalidArgument, message)
    }

    /// A JSON body of the wrong shape (Chroma: 422 ChromaError).
    pub fn shape(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorName::Chroma,
            format!(
                "Failed to deserialize the JSON body into the target type: {}",
                message.into()
            ),
        )
    }

    /// `ChromaError` with `status`.
    pub fn chroma(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, ErrorName::Chroma, message)
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorName::Internal,
            message,
        )
    }
}

impl From<ochre::Error> for ApiError {
    fn from(e: ochre::Error) -> Self {
        let (status, name) = match e.kind() {
            ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, ErrorName::InvalidArgument),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, ErrorName::NotFound),
            ErrorKind::AlreadyExists => (StatusCode::CONFLICT, ErrorName::Chroma),
            ErrorKind::Internal
            | ErrorKind::Storage
            | ErrorKind::Corrupted
            | ErrorKind::Locked
            | ErrorKind::Poisoned => (StatusCode::INTERNAL_SERVER_ERROR, ErrorName::Internal),
            // `ErrorKind` is non-exhaustive: a kind added later is a server error until it is
            // mapped here.
            _ => (StatusCode::INTERNAL_SERVER_ERROR, ErrorName::Internal),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "request failed");
        }
        ApiError::new(status, name, e.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.name.as_str(), "message": self.message});
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            "chroma-trace-id",
            HeaderValue::from_static("00000000000000000000000000000000"),
        );
        resp
    }
}
