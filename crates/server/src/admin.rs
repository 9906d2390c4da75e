//! Ochre's operator routes, beyond Chroma's API (docs/operations.md): listing tenants and
//! streaming an online snapshot. Both act on the whole server, so a credential scoped to a
//! tenant never reaches them (auth.rs).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::AppState;

/// `GET /api/v2/tenants`: every tenant, `[{"name", "resource_name"}]`, by name.
pub async fn list_tenants(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let db = state.db.clone();
    let tenants = tokio::task::spawn_blocking(move || db.list_tenants())
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?;
    Ok(Json(Value::Array(
        tenants
            .into_iter()
            .map(|t| json!({"name": t.name, "resource_name": t.resource_name}))
            .collect(),
    )))
}

/// Chunks of the tar stream in flight between the writer thread and the connection.
const CHUNKS_IN_FLIGHT: usize = 8;

/// A `Write` that hands its bytes to the response body in chunks.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 1 << 20;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// `POST /api/v2/admin/snapshot`: takes a point-in-time snapshot (every batch acknowledged
/// before the request, whole; writes go on meanwhile) and streams it as a tar archive of the
/// snapshot directory (docs/format/snapshot.md). Errors before the first byte are JSON errors;
/// the snapshot's own copy is removed once sent (or when the client goes away).
pub async fn snapshot(State(state): State<AppState>) -> Result<Response, ApiError> {
    let db = state.db.clone();
    let Some(data) = db.path().map(std::path::Path::to_owned) else {
        return Err(ApiError::invalid(
            "an ephemeral server has nothing on disk to snapshot",
        ));
    };
    let dir = data
        .join(ochre::snapshot::SENDING_DIR)
        .join(uuid::Uuid::new_v4().to_string());
    let taken = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(dir.parent().unwrap_or(&dir))
                .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
            db.snapshot(&dir).map_err(ApiError::from)
        })
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))??
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = ochre::snapshot::write_snapshot_tar(&dir, &mut out) {
            tracing::warn!(error = %e, "snapshot stream stopped");
            // The client sees a cut stream, which it refuses.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a sent snapshot");
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::HeaderName::from_static("x-ochre-snapshot-bytes"),
                taken.bytes().to_string(),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
