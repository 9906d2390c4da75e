//! `ochre._ochre`: the native half of the `ochre` Python package.
//!
//! The package's clients speak Chroma's API v2 to the server's own router, called in this process
//! ([`Engine::request`]): an in-process Ochre has exactly the validation, semantics and error
//! messages of `ochre run`, with no socket and no HTTP parsing. The Python half (`ochre/*.py`)
//! shapes chromadb's calls into those requests and their answers into chromadb's results.
//! The GIL is released while the engine works, so Python threads run requests in parallel.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tower::ServiceExt;

/// The allocator `ochre run` uses (recovery builds many small maps; see docs/benchmarks.md);
/// only Rust's own allocations go through it, Python's objects are the interpreter's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(
    _ochre,
    OpenError,
    PyException,
    "The data directory could not be opened (locked by another process, damaged, or unreadable)."
);
create_exception!(
    _ochre,
    EmbeddingError,
    PyException,
    "The local embedding model is missing, malformed or failed."
);

/// One opened database (a data directory, or in memory) behind the server's router.
#[pyclass(frozen, module = "ochre._ochre")]
struct Engine {
    /// The router and the runtime its handlers run on; None once closed.
    open: Mutex<Option<(tokio::runtime::Runtime, axum::Router)>>,
    path: Option<PathBuf>,
}

#[pymethods]
impl Engine {
    /// Opens `path` (created if missing), or an in-memory database when `path` is None.
    /// `allow_reset` is Chroma's setting of that name.
    #[new]
    #[pyo3(signature = (path=None, allow_reset=false))]
    fn new(py: Python<'_>, path: Option<PathBuf>, allow_reset: bool) -> PyResult<Engine> {
        let opened = py.detach(|| match &path {
            Some(p) => ochre::Ochre::open(p),
            None => Ok(ochre::Ochre::ephemeral()),
        });
        let db = opened.map_err(|e| OpenError::new_err(describe(&e)))?;
        let config = ochre_server::ServerConfig {
            allow_reset,
            // In process there is no network to protect: the limits are the engine's own.
            max_payload_size_bytes: usize::MAX,
            ..ochre_server::ServerConfig::default()
        };
        let state = ochre_server::AppState::new(db, config)
            .map_err(|e| OpenError::new_err(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ochre-py")
            .enable_all()
            .build()
            .map_err(|e| OpenError::new_err(format!("starting the runtime: {e}")))?;
        Ok(Engine {
            open: Mutex::new(Some((runtime, ochre_server::app(state)))),
            path,
        })
    }

    /// Closes the database (index checkpoints written, the directory lock released) with the
    /// GIL released; later requests fail. Closing twice does nothing.
    fn close(&self, py: Python<'_>) {
        let taken = self.lock().take();
        py.detach(move || drop(taken));
    }

    /// The data directory, or None in memory.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    /// One API call: `method`, a path from `/api/v2`, a JSON body or None; returns the status
    /// and the answer's bytes (JSON).
    #[pyo3(signature = (method, path, body=None))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> PyResult<(u16, Bound<'py, PyBytes>)> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_vec()),
                None => Body::empty(),
            })
            .map_err(|e| PyValueError::new_err(format!("invalid request {method} {path}: {e}")))?;
        let (handle, app) = match self.lock().as_ref() {
            Some((runtime, app)) => (runtime.handle().clone(), app.clone()),
            None => return Err(PyException::new_err("the database is closed")),
        };
        let answer = py.detach(move || {
            handle.block_on(async move {
                let response = match app.oneshot(request).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                let status = response.status().as_u16();
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map(|bytes| (status, bytes))
            })
        });
        let (status, bytes) =
            answer.map_err(|e| PyException::new_err(format!("reading the answer: {e}")))?;
        Ok((status, PyBytes::new(py, &bytes)))
    }
}

impl Engine {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(tokio::runtime::Runtime, axum::Router)>> {
        // A panic while holding this lock cannot leave the pair half-changed: take what is there.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An error with its causes, as one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// all-MiniLM-L6-v2 run in Rust (`ochre_embed::MiniLm`).
#[pyclass(frozen, module = "ochre._ochre")]
struct Embedder {
    model: Arc<ochre_embed::MiniLm>,
    dir: PathBuf,
}

#[pymethods]
impl Embedder {
    /// Loads the model from `model_dir`, else `OCHRE_MODEL_DIR`, else the Hugging Face cache,
    /// else (online, unless `HF_HUB_OFFLINE` is set) one download into that cache.
    #[new]
    #[pyo3(signature = (model_dir=None))]
    fn new(py: Python<'_>, model_dir: Option<PathBuf>) -> PyResult<Embedder> {
        py.detach(|| {
            let (dir, _) = ochre_embed::resolve_model_dir(model_dir.as_deref(), true)?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let model = ochre_embed::MiniLm::load(&dir)?.with_threads(threads);
            // Forward passes reuse large activations: freed memory is kept from now on.
            ochre_server::allocator::keep_freed_memory();
            Ok::<_, ochre_embed::EmbedError>(Embedder {
                model: Arc::new(model),
                dir,
            })
        })
        .map_err(|e| EmbeddingError::new_err(describe(&e)))
    }

    /// The model directory in use.
    #[getter]
    fn model_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// The vectors' dimension (384).
    #[getter]
    fn dimension(&self) -> usize {
        self.model.dimension()
    }

    /// Embeds `texts`: little-endian f32 bytes, `len(texts) × dimension` of them, row by row.
    fn embed<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyBytes>> {
        let model = Arc::clone(&self.model);
        let vectors = py
            .detach(move || model.embed(&texts))
            .map_err(|e| EmbeddingError::new_err(describe(&e)))?;
        let mut bytes = Vec::with_capacity(vectors.len() * self.model.dimension() * 4);
        for v in &vectors {
            for x in v {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        Ok(PyBytes::new(py, &bytes))
    }
}

/// `rows` vectors of `dim` little-endian f32 (`data`) as a JSON array of arrays, each number
/// the shortest text that reads back as the same f32 (what `json.dumps` of Python floats does
/// more slowly and with up to 17 digits).
#[pyfunction]
fn f32_rows_json(data: &[u8], dim: usize) -> PyResult<String> {
    let Some(row_bytes) = dim.checked_mul(4).filter(|&b| b > 0) else {
        return Err(PyValueError::new_err(format!(
            "{dim} is not a vector dimension"
        )));
    };
    if !data.len().is_multiple_of(row_bytes) {
        return Err(PyValueError::new_err(format!(
            "{} bytes are not rows of {dim} f32 values",
            data.len()
        )));
    }
    let rows: Vec<Vec<f32>> = data
        .chunks_exact(row_bytes)
        .map(|row| {
            row.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    serde_json::to_string(&rows).map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pymodule]
fn _ochre(m: &Bound<'_, PyModule>) -> PyResult<()> {
    ochre_server::allocator::commit_heap_on_demand();
    // Until a model is loaded, freed memory goes back to the system at once, as in `ochre run`.
    ochre_server::allocator::return_freed_memory_at_once();
    m.add_class::<Engine>()?;
    m.add_class::<Embedder>()?;
    m.add_function(wrap_pyfunction!(f32_rows_json, m)?)?;
    m.add("OpenError", m.py().get_type::<OpenError>())?;
    m.add("EmbeddingError", m.py().get_type::<EmbeddingError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
