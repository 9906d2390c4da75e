//! Logging and, for `ochre run` when `open_telemetry` is configured, trace export.
//!
//! Logs go to stderr, filtered by `OCHRE_LOG` (default `warn,ochre=info`, without the request
//! spans, which would prefix every log line). Traces: the spans of
//! Ochre's crates down to `debug` (a request and its stages, see `ochre_server`'s spans module)
//! are batched and sent over OTLP/gRPC to the configured endpoint by a background thread;
//! exporting never blocks a request, and spans that cannot be sent are dropped (the batch queue
//! is bounded). [`Telemetry::shutdown`] sends what is left when the server stops.

use std::time::Duration;

use anyhow::{bail, Context};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use ochre_server::OpenTelemetryConfig;

/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The installed trace pipeline, if any.
#[must_use = "call shutdown() so the last spans are sent"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still queued and stops the exporter (the SDK waits at most 5 s).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                tracing::warn!("sending the last traces failed: {e}");
            }
        }
    }
}

fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("OCHRE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,ochre=info,ochre_server::spans=warn")
    })
}

/// Installs the global subscriber with stderr logs only (every command but `ochre run`).
pub fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .init();
}

/// Installs the global subscriber: stderr logs, plus OTLP export when `otel` is given. Must be
/// called inside a Tokio runtime when `otel` is given (the gRPC channel runs on it) and at
/// most once per process.
///
/// # Errors
/// An endpoint that is not `http://HOST:PORT`, or an exporter that cannot be built.
pub fn init(otel: Option<&OpenTelemetryConfig>) -> anyhow::Result<Telemetry> {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(log_filter());
    let Some(otel) = otel else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(Telemetry { provider: None });
    };
    let endpoint = otel.endpoint.trim();
    if endpoint.is_empty() {
        bail!(
            "open_telemetry has no endpoint: set open_telemetry.endpoint or \
             CHROMA_OPEN_TELEMETRY__ENDPOINT to an OTLP/gRPC address, http://HOST:PORT"
        );
    }
    if endpoint.starts_with("https://") {
        bail!(
            "open_telemetry.endpoint {endpoint}: Ochre sends traces over plain gRPC only; run an \
             OpenTelemetry Collector beside it (http://localhost:4317) and let it forward them"
        );
    }
    if !endpoint.starts_with("http://") {
        bail!(
            "open_telemetry.endpoint {endpoint:?} must be an OTLP/gRPC address, http://HOST:PORT"
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("setting up trace export to {endpoint}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(otel.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    // Ochre's own spans only: not those of the HTTP and gRPC libraries (the exporter's own
    // requests would trace themselves).
    let spans =
        tracing_subscriber::filter::Targets::new().with_target("ochre", tracing::Level::DEBUG);
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("ochre"))
        .with_filter(spans);
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    tracing::info!(
        endpoint,
        service_name = %otel.service_name,
        "exporting traces over OTLP/gRPC"
    );
    Ok(Telemetry {
        provider: Some(provider),
    })
}
