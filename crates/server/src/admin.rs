//! Ochre's operator routes, beyond Chroma's API (docs/operations.md): listing tenants, the
//! server's status and streaming an online snapshot. They act on the whole server, so a
//! credential scoped to a tenant never reaches them (auth.rs).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::routes::{blocking, paging, ApiResult};
use crate::AppState;

/// `GET /api/v2/tenants[?limit=N&offset=M]`: the tenants, `[{"name", "resource_name"}]`, by
/// name, a page at a time when asked (as databases are listed).
pub async fn list_tenants(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let (limit, offset) = paging(&q)?;
    let tenants = blocking(&state, |db| Ok(db.list_tenants())).await?;
    Ok(Json(Value::Array(
        tenants
            .into_iter()
            .skip(offset as usize)
            .take(limit.map_or(usize::MAX, |l| l as usize))
            .map(|t| json!({"name": t.name, "resource_name": t.resource_name}))
            .collect(),
    )))
}

/// `GET /api/v2/admin/status`: what the dashboard's health view shows beside `/metrics` —
/// `{"version", "data_dir", "uptime_seconds", "embedding_model", "collections", "records"}`
/// (`data_dir` is null for an in-memory database; `embedding_model` tells whether text queries
/// are embedded on the server).
pub async fn status(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let uptime = state.started.elapsed().as_secs_f64();
    let embedding_model = state.embedder.is_some();
    let (data_dir, (collections, records)) = blocking(&state, |db| {
        let dir = db.path().map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_owned())
                .display()
                .to_string()
        });
        Ok((dir, db.stats()))
    })
    .await?;
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "data_dir": data_dir,
        "uptime_seconds": uptime,
        "embedding_model": embedding_model,
        "collections": collections,
        "records": records,
    })))
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
        let mut chunk = Ok(Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK),
        )));
        // Waits for room in the channel, but not forever: a client that stops reading must not
        // hold the copy (and a blocking thread) indefinitely.
        let deadline = std::time::Instant::now() + STALLED_CLIENT;
        loop {
            match self.tx.try_send(chunk) {
                Ok(()) => return Ok(()),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the client went away",
                    ))
                }
                Err(tokio::sync::mpsc::error::TrySendError::Full(c)) => {
                    if std::time::Instant::now() > deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        ));
                    }
                    chunk = c;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
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

/// One snapshot at a time in this process (one server per process): each is a full copy of
/// the data on disk.
static SNAPSHOTTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long the stream waits for a client that stopped reading before it gives up.
const STALLED_CLIENT: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the server's copy of a snapshot and lets the next one start, whatever happens to the
/// request (sent, failed, or dropped because the client went away).
struct Sending(std::path::PathBuf);

impl Drop for Sending {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.0.display(), error = %e, "cannot remove a sent snapshot");
            }
        }
        SNAPSHOTTING.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `POST /api/v2/admin/snapshot`: takes a point-in-time snapshot (every batch acknowledged
/// before the request, whole; writes go on meanwhile) and streams it as a tar archive of the
/// snapshot directory (docs/format/snapshot.md). Errors before the first byte are JSON errors;
/// one snapshot runs at a time (409 while another does); the server's copy is removed once
/// sent, when the client goes away, or when it stops reading for a minute.
pub async fn snapshot(State(state): State<AppState>) -> ApiResult<Response> {
    let db = state.db.clone();
    let Some(data) = db.path().map(std::path::Path::to_owned) else {
        return Err(ApiError::invalid(
            "an ephemeral server has nothing on disk to snapshot",
        ));
    };
    if SNAPSHOTTING.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::chroma(
            axum::http::StatusCode::CONFLICT,
            "a snapshot is being taken already; try again when it is done",
        ));
    }
    let dir = data
        .join(ochre::snapshot::SENDING_DIR)
        .join(uuid::Uuid::new_v4().to_string());
    let guard = Sending(dir.clone());
    let (taken_tx, taken_rx) = tokio::sync::oneshot::channel();
    let (tx, mut rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    // One blocking task takes the snapshot and streams it, owning the guard: whether the
    // request is answered, fails or is dropped, the copy is removed when the task ends.
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let taken = std::fs::create_dir_all(dir.parent().unwrap_or(&dir))
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))
            .and_then(|()| db.snapshot(&dir).map_err(ApiError::from));
        let manifest = match taken {
            Ok(m) => m,
            Err(e) => {
                let _ = taken_tx.send(Err(e));
                return;
            }
        };
        if taken_tx.send(Ok(manifest.clone())).is_err() {
            return; // The client went away while the copy was made.
        }
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = ochre::snapshot::write_snapshot_tar(&dir, &manifest, &mut out) {
            tracing::warn!(error = %e, "snapshot stream stopped");
            // The client sees a cut stream, which it refuses.
            let _ = tx.try_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let manifest = taken_rx
        .await
        .map_err(|e| ApiError::internal(format!("snapshot task failed: {e}")))??;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::HeaderName::from_static("x-ochre-snapshot-bytes"),
                manifest.bytes().to_string(),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
