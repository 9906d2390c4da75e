//! Ochre's HTTP server: Chroma's API v2 over the embedded engine.
//!
//! [`app`] builds the axum router (routes, auth, CORS, body limit, metrics); [`serve`] runs it with
//! graceful shutdown. Handlers parse Chroma's wire format (`wire`), run engine calls on the
//! blocking pool, and map engine errors to Chroma's status codes and error names in one place
//! (`error`).
//!
//! Invariants: no engine call runs on an async worker thread; every error response carries a JSON
//! body `{"error", "message"}` and a `chroma-trace-id` header; a request rejected by auth touches
//! no data.

mod admin;
pub mod allocator;
mod auth;
mod config;
mod dashboard;
mod embed;
mod error;
mod framing;
mod metrics;
mod openapi;
mod routes;
mod schema;
mod search;
mod spans;
mod wire;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::routing::{any, get, post};
use axum::Router;
use ochre::Ochre;

use tower_http::cors::{AllowOrigin, Any, CorsLayer};

pub use auth::{Credentials, HtpasswdError, Identity};
pub use config::{
    AuthConfig, ConfigError, OpenTelemetryConfig, ScopedToken, ServerConfig, TokenConfig,
};
pub use error::{ApiError, ErrorName};
pub use openapi::document as openapi_document;
pub use routes::write_records;

/// The request decoders and the checks the routes run before the engine, for the fuzz targets
/// (`fuzz/`) and their corpus replay; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::routes::{
        create_request, delete_request, get_request, modify_request, query_request, write_batch,
        ForkBody, NameBody, UpdateTenantBody,
    };
    pub use crate::schema::{key_types, reconcile, Schema, ValueType};
    pub use crate::search::{parse as parse_search, result_bound};
    pub use crate::wire::{
        create_metadata, decode_body, decode_embeddings, decode_metadatas, parse_metadata,
        parse_where, parse_where_document, resolve_configuration, CreateCollectionBody, DeleteBody,
        GetBody, ModifyCollectionBody, QueryBody, WriteBody,
    };
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub db: Ochre,
    pub config: Arc<ServerConfig>,
    pub credentials: Arc<Credentials>,
    pub metrics: Arc<metrics::Metrics>,
    /// The dense embedding model, when the server has one ([`AppState::with_embedder`]): it
    /// embeds the documents of writes sent without embeddings, and text `$knn` queries, for
    /// collections whose embedding function is Chroma's default MiniLM one.
    pub embedder: Option<Arc<ochre_embed::MiniLm>>,
    /// When this state was made (the server's start), for the uptime `/api/v2/admin/status`
    /// reports.
    pub started: std::time::Instant,
}

impl AppState {
    /// State for a database and configuration; reads the htpasswd file if one is configured.
    ///
    /// # Errors
    /// [`ConfigError::ReadHtpasswd`] or [`ConfigError::Htpasswd`] for an unreadable or malformed
    /// htpasswd file; [`ConfigError::EmptyToken`]; [`ConfigError::ZeroTimeout`].
    pub fn new(db: Ochre, config: ServerConfig) -> Result<Self, ConfigError> {
        if config
            .auth
            .tokens
            .iter()
            .any(|t| t.token().trim().is_empty())
        {
            return Err(ConfigError::EmptyToken);
        }
        for (name, v) in [
            (
                "http_header_timeout_seconds",
                config.http_header_timeout_seconds,
            ),
            (
                "http_body_timeout_seconds",
                config.http_body_timeout_seconds,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        let mut users = std::collections::HashMap::new();
        if let Some(path) = &config.auth.htpasswd_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::ReadHtpasswd {
                    path: path.clone(),
                    source,
                })?;
            users = Credentials::parse_htpasswd(&text)?;
        }
        let credentials = Credentials::new(&config.auth.tokens, users);
        Ok(AppState {
            db,
            config: Arc::new(config),
            credentials: Arc::new(credentials),
            metrics: Arc::new(metrics::Metrics::default()),
            embedder: None,
            started: std::time::Instant::now(),
        })
    }

    /// This state with a dense embedding model (normally all-MiniLM-L6-v2 loaded from
    /// [`ServerConfig::embedding_model`]): writes without embeddings and text `$knn` queries are
    /// then embedded on the server for collections whose configured embedding function is
    /// Chroma's default MiniLM one (`ochre_embed::is_minilm_function`).
    pub fn with_embedder(self, model: Arc<ochre_embed::MiniLm>) -> Self {
        AppState {
            embedder: Some(model),
            ..self
        }
    }
}

/// The router with every route and layer.
pub fn app(state: AppState) -> Router {
    use routes::*;
    let db = "/api/v2/tenants/{tenant}/databases/{database}";
    let coll = format!("{db}/collections/{{collection_id}}");
    let mut router = Router::new()
        .route("/api/v2", get(heartbeat))
        .route("/api/v2/heartbeat", get(heartbeat))
        .route("/api/v2/version", get(version))
        .route("/api/v2/healthcheck", get(healthcheck))
        .route("/api/v2/pre-flight-checks", get(preflight))
        .route("/api/v2/auth/identity", get(identity))
        .route("/api/v2/reset", post(reset))
        .route(
            "/api/v2/tenants",
            post(create_tenant).get(admin::list_tenants),
        )
        .route("/api/v2/admin/snapshot", post(admin::snapshot))
        .route("/api/v2/admin/status", get(admin::status))
        .route(
            "/api/v2/tenants/{tenant}",
            get(get_tenant).patch(update_tenant),
        )
        .route(
            "/api/v2/tenants/{tenant}/databases",
            post(create_database).get(list_databases),
        )
        .route(db, get(get_database).delete(delete_database))
        .route(
            &format!("{db}/collections"),
            get(list_collections).post(create_collection),
        )
        .route(&format!("{db}/collections_count"), get(count_collections))
        .route(
            &coll,
            get(get_collection)
                .delete(delete_collection)
                .put(modify_collection),
        )
        .route(
            &format!("{db}/collections/by-id/{{collection_id}}"),
            get(get_collection_by_id),
        )
        .route(&format!("{coll}/add"), post(add))
        .route(&format!("{coll}/upsert"), post(upsert))
        .route(&format!("{coll}/update"), post(update))
        .route(&format!("{coll}/delete"), post(delete))
        .route(&format!("{coll}/get"), post(get_records))
        .route(&format!("{coll}/query"), post(query))
        .route(&format!("{coll}/count"), get(count))
        .route(&format!("{coll}/fork"), post(fork_collection))
        .route(&format!("{coll}/fork_count"), get(fork_count))
        .route(&format!("{coll}/indexing_status"), get(indexing_status))
        .route(&format!("{coll}/search"), post(search))
        .route("/api/v2/collections/{crn}", get(get_collection_by_crn))
        .route("/api/v1", any(v1_gone))
        .route("/api/v1/{*rest}", any(v1_gone))
        .route("/metrics", get(metrics::render))
        .merge(dashboard::routes())
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::document()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wire::body_limits,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_payload_size_bytes));
    let origins = &state.config.cors_allow_origins;
    if !origins.is_empty() {
        let allow = if origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok())
                    .collect::<Vec<_>>(),
            )
        };
        router = router.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods(Any)
                .allow_headers(Any),
        );
    }
    // Outermost: a request's span covers everything, authentication and CORS included.
    router = router.layer(axum::middleware::from_fn(spans::request));
    router.with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting, finishes in-flight requests and returns.
///
/// Each connection has a header timeout (`http_header_timeout_seconds`: a client that trickles
/// its headers, or leaves a keep-alive connection idle, is disconnected) and each request a body
/// timeout (`http_body_timeout_seconds`), so slow clients cannot hold connections open forever.
///
/// # Errors
/// Serving failures (a failed `accept` is logged and retried, not returned).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let header_timeout = std::time::Duration::from_secs(state.config.http_header_timeout_seconds);
    let app = app(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // HTTP/1.1 only (what Chroma's clients speak): its header timer runs from the first byte
        // the connection is waited on, so a client that connects and sends nothing is cut off
        // too (protocol detection for HTTP/2 would wait without a timer).
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let service = TowerToHyperService::new(app.clone());
        let conn =
            builder.serve_connection(TokioIo::new(framing::ErrorBodies::new(stream)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests;
