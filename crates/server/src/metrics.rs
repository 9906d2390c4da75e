//! Prometheus metrics: requests and latency by route, collections and records.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Mutex;

use crate::AppState;

#[derive(Default)]
struct RouteStats {
    count: u64,
    errors: u64,
    seconds: f64,
}

/// Counters, guarded by one mutex (updates are a few additions per request).
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<(String, String), RouteStats>>,
}

/// Middleware: counts each request and its latency under its route template.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let status = resp.status();
    tracing::debug!(%method, %route, status = status.as_u16(), ms = elapsed * 1e3, "request");
    if let Ok(mut m) = state.metrics.routes.lock() {
        let s = m.entry((method, route)).or_default();
        s.count += 1;
        s.seconds += elapsed;
        if status.is_client_error() || status.is_server_error() {
            s.errors += 1;
        }
    }
    resp
}

/// `GET /metrics` in Prometheus text format.
pub async fn render(State(state): State<AppState>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP ochre_http_requests_total HTTP requests by route."
    );
    let _ = writeln!(out, "# TYPE ochre_http_requests_total counter");
    type Row = ((String, String), (u64, u64, f64));
    let routes: Vec<Row> = state
        .metrics
        .routes
        .lock()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), (v.count, v.errors, v.seconds)))
                .collect()
        })
        .unwrap_or_default();
    for ((method, route), (count, _, _)) in &routes {
        let _ = writeln!(
            out,
            "ochre_http_requests_total{{method=\"{method}\",route=\"{route}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP ochre_http_request_errors_total HTTP 4xx/5xx responses by route."
    );
    let _ = writeln!(out, "# TYPE ochre_http_request_errors_total counter");
    for ((method, route), (_, errors, _)) in &routes {
        let _ = writeln!(
            out,
            "ochre_http_request_errors_total{{method=\"{method}\",route=\"{route}\"}} {errors}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP ochre_http_request_duration_seconds_sum Total request time by route."
    );
    let _ = writeln!(
        out,
        "# TYPE ochre_http_request_duration_seconds_sum counter"
    );
    for ((method, route), (_, _, secs)) in &routes {
        let _ = writeln!(out, "ochre_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\"}} {secs}");
    }
    let db = state.db.clone();
    let (collections, records) = tokio::task::spawn_blocking(move || db.stats())
        .await
        .unwrap_or((0, 0));
    let _ = writeln!(out, "# HELP ochre_collections Collections in the database.");
    let _ = writeln!(out, "# TYPE ochre_collections gauge");
    let _ = writeln!(out, "ochre_collections {collections}");
    let _ = writeln!(out, "# HELP ochre_records Records in all collections.");
    let _ = writeln!(out, "# TYPE ochre_records gauge");
    let _ = writeln!(out, "ochre_records {records}");
    out
}
