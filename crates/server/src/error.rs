//! The HTTP error edge: every failure becomes `{"error": NAME, "message": ...}` with Chroma's
//! status and name, plus a `chroma-trace-id` header.

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

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub name: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            name: "InvalidArgumentError",
            message: message.into(),
        }
    }

    /// A JSON body of the wrong shape (Chroma: 422 ChromaError).
    pub fn shape(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            name: "ChromaError",
            message: format!(
                "Failed to deserialize the JSON body into the target type: {}",
                message.into()
            ),
        }
    }

    pub fn chroma(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            name: "ChromaError",
            message: message.into(),
        }
    }
}

impl From<ochre::Error> for ApiError {
    fn from(e: ochre::Error) -> Self {
        let (status, name) = match e.kind() {
            ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "InvalidArgumentError"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NotFoundError"),
            ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "ChromaError"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            ErrorKind::Storage | ErrorKind::Corrupted | ErrorKind::Locked | ErrorKind::Poisoned => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        ApiError {
            status,
            name,
            message: e.message().to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.name, "message": self.message});
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            "chroma-trace-id",
            HeaderValue::from_static("00000000000000000000000000000000"),
        );
        resp
    }
}
