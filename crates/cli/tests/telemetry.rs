//! Traces: `ochre run` with Chroma's `open_telemetry` settings exports a span for each request
//! and its stages over OTLP/gRPC, here to a receiver of the test's own on loopback.

#![allow(clippy::unwrap_used, reason = "test code")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;

/// An OTLP trace receiver that keeps every export it is sent.
#[derive(Clone, Default)]
struct Receiver {
    exports: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.exports.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(&span.attributes, key) {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// The spans received, and the `service.name` of each resource they came with.
fn received(r: &Receiver) -> (Vec<Span>, Vec<String>) {
    let exports = r.exports.lock().unwrap();
    let mut spans = Vec::new();
    let mut services = Vec::new();
    for e in exports.iter() {
        for rs in &e.resource_spans {
            if let Some(res) = &rs.resource {
                if let Some(Value::StringValue(s)) = attr(&res.attributes, "service.name") {
                    services.push(s.clone());
                }
            }
            for ss in &rs.scope_spans {
                spans.extend(ss.spans.iter().cloned());
            }
        }
    }
    (spans, services)
}

/// The names of the spans below `root` (its descendants, however deep).
fn stages_under(spans: &[Span], root: &Span) -> Vec<String> {
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let mut names = Vec::new();
    for s in spans {
        let mut at = s;
        while !at.parent_span_id.is_empty() {
            let Some(parent) = by_id.get(at.parent_span_id.as_slice()) else {
                break;
            };
            if parent.span_id == root.span_id {
                assert_eq!(
                    s.trace_id, root.trace_id,
                    "{} is in its request's trace",
                    s.name
                );
                names.push(s.name.clone());
                break;
            }
            at = parent;
        }
    }
    names.sort();
    names
}

#[test]
fn requests_and_their_stages_are_exported_over_otlp() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = Receiver::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let data = tempfile::tempdir().unwrap();
    let server = common::serve_with(
        data.path(),
        "sekret",
        &[
            ("CHROMA_OPEN_TELEMETRY__ENDPOINT", &endpoint),
            ("CHROMA_OPEN_TELEMETRY__SERVICE_NAME", "ochre-under-test"),
        ],
    );
    let agent = ureq::AgentBuilder::new().build();
    let base = format!(
        "{}/api/v2/tenants/default_tenant/databases/default_database/collections",
        server.url
    );
    // The answer, or the status of a refusal.
    let post = |url: &str, body: serde_json::Value| -> Result<ureq::Response, u16> {
        match agent
            .post(url)
            .set("Authorization", "Bearer sekret")
            .send_json(body)
        {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(code, _)) => Err(code),
            Err(e) => panic!("{url}: {e}"),
        }
    };
    let c: serde_json::Value = post(&base, json!({"name": "traced"}))
        .unwrap()
        .into_json()
        .unwrap();
    let coll = format!("{base}/{}", c["id"].as_str().unwrap());
    let n = 50;
    post(
        &format!("{coll}/add"),
        json!({
            "ids": (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>(),
            "embeddings": (0..n).map(|i| vec![i as f32, 1.0, 0.5]).collect::<Vec<_>>(),
            "documents": (0..n).map(|i| format!("document {i}")).collect::<Vec<_>>(),
            "metadatas": (0..n).map(|i| json!({"k": i})).collect::<Vec<_>>(),
        }),
    )
    .unwrap();
    post(
        &format!("{coll}/query"),
        json!({"query_embeddings": [[3.0, 1.0, 0.5]], "n_results": 3,
               "where": {"k": {"$gte": 2}}, "include": ["documents", "distances"]}),
    )
    .unwrap();
    post(&format!("{coll}/get"), json!({"where": {"k": 7}})).unwrap();
    let bad = post(
        &format!("{coll}/query"),
        json!({"query_embeddings": [[3.0, 1.0, 0.5]], "where": {"$bogus": 1}}),
    );
    assert_eq!(bad.err(), Some(400));
    // Stopping flushes the spans still queued.
    assert!(server.terminate().success());

    let deadline = Instant::now() + Duration::from_secs(10);
    let (spans, services) = loop {
        let (spans, services) = received(&receiver);
        let queries = spans.iter().filter(|s| s.name.ends_with("/query")).count();
        if queries >= 2 || Instant::now() > deadline {
            break (spans, services);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!services.is_empty(), "no spans arrived");
    assert!(
        services.iter().all(|s| s == "ochre-under-test"),
        "{services:?}"
    );

    let route = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}";
    let request = |method_route: &str, status: i64| -> &Span {
        spans
            .iter()
            .find(|s| s.name == method_route && int(s, "http.response.status_code") == Some(status))
            .unwrap_or_else(|| {
                let names: Vec<_> = spans
                    .iter()
                    .map(|s| (s.name.as_str(), &s.attributes))
                    .collect();
                panic!("no span {method_route} with status {status} among {names:?}")
            })
    };

    let query = request(&format!("POST {route}/query"), 200);
    assert_eq!(query.kind, SpanKind::Server as i32);
    assert!(
        query.parent_span_id.is_empty(),
        "a request starts its trace"
    );
    assert!(
        matches!(attr(&query.attributes, "http.route"), Some(Value::StringValue(r)) if r == &format!("{route}/query"))
    );
    let stages = stages_under(&spans, query);
    for stage in [
        "parse",
        "filter",
        "plan",
        "index_search",
        "hydrate",
        "serialise",
    ] {
        assert!(
            stages.iter().any(|s| s == stage),
            "query: no {stage} in {stages:?}"
        );
    }
    let plan = spans
        .iter()
        .find(|s| s.name == "plan" && s.trace_id == query.trace_id)
        .unwrap();
    assert!(
        matches!(attr(&plan.attributes, "strategy"), Some(Value::StringValue(s)) if s == "exact_scan"),
        "48 candidates of 50 are scanned exactly: {:?}",
        plan.attributes
    );

    let add = request(&format!("POST {route}/add"), 201);
    let stages = stages_under(&spans, add);
    for stage in ["parse", "commit", "index_insert"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "add: no {stage} in {stages:?}"
        );
    }
    let get = request(&format!("POST {route}/get"), 200);
    let stages = stages_under(&spans, get);
    for stage in ["parse", "filter", "hydrate", "serialise"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "get: no {stage} in {stages:?}"
        );
    }
    // A refused request is traced with its status; a client's mistake is not a server error.
    let refused = request(&format!("POST {route}/query"), 400);
    let code = refused.status.as_ref().map_or(0, |s| s.code);
    assert_ne!(code, StatusCode::Error as i32);
    assert!(stages_under(&spans, refused)
        .iter()
        .all(|s| s != "index_search"));
}
