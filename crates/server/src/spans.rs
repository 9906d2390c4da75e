//! Tracing spans: one per request, inside which the handler's stages open theirs.
//!
//! The request span carries the route template, method and status (OpenTelemetry's HTTP server
//! conventions: `otel.name` is `METHOD /route/{template}`, `otel.kind` is `server`, a 5xx marks
//! it an error). Stages below it, each a `debug` span: `parse` (the JSON body, here),
//! `filter`, `plan`, `index_search`, `hydrate` (the engine's query, get and search), `commit`
//! and `index_insert` (its writes), `serialise` (the response, [`crate::wire::JsonBytes::of`]).
//! The engine work routes hand to the blocking pool ([`crate::routes::blocking`]) and the
//! parsing of large bodies run inside the span that handed them over, so a trace shows the
//! engine's stages under their request.
//!
//! Spans cost next to nothing when no subscriber takes them; `ochre run` exports them over OTLP
//! when `open_telemetry` is configured (docs/operations.md).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::field::Empty;
use tracing::Instrument;

/// Middleware: runs the request inside its span and records the status it ends with.
pub async fn request(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        url.path = req.uri().path(),
        http.response.status_code = Empty,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    resp
}
