//! In-process HTTP tests: requests through the router, responses checked against Chroma's shapes.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;

fn state(config: ServerConfig) -> AppState {
    AppState::new(Ochre::ephemeral(), config).expect("state")
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value, bool) {
    let mut req = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = app
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let trace = resp.headers().contains_key("chroma-trace-id");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value, trace)
}

const BASE: &str = "/api/v2/tenants/default_tenant/databases/default_database";

#[tokio::test]
async fn rag_flow_over_http() {
    let app = app(state(ServerConfig::default()));
    let (s, v, _) = call(&app, "GET", "/api/v2/pre-flight-checks", None).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"max_batch_size": 5461, "supports_base64_encoding": true})
        )
    );
    let (s, c, _) = call(&app, "POST", &format!("{BASE}/collections"), Some(json!({"name": "docs", "metadata": {"k": "v"}, "configuration": {"hnsw": {"space": "cosine"}}}))).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["configuration_json"]["hnsw"]["space"], "cosine");
    assert_eq!(
        c["schema"]["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["space"],
        "cosine"
    );
    assert_eq!(c["dimension"], Value::Null);
    let id = c["id"].as_str().expect("id").to_owned();
    // base64 little-endian f32 of [1.0, 0.0] and JSON arrays.
    let (s, v, _) = call(&app, "POST", &format!("{BASE}/collections/{id}/add"), Some(json!({
        "ids": ["a", "b"], "embeddings": ["AACAPwAAAAA=", "AAAAAAAAgD8="],
        "documents": ["hello", null], "metadatas": [{"n": 1, "f": 1.0, "t": ["x"]}, null], "uris": null
    }))).await;
    assert_eq!((s, v), (StatusCode::CREATED, json!({})));
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/get"),
        Some(json!({"ids": ["b", "a"], "include": ["embeddings", "metadatas", "documents"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ids"], json!(["a", "b"]));
    assert_eq!(v["embeddings"], json!([[1.0, 0.0], [0.0, 1.0]]));
    assert_eq!(
        v["metadatas"],
        json!([{"n": 1, "f": 1.0, "t": ["x"]}, null])
    );
    assert_eq!(v["uris"], Value::Null);
    assert_eq!(
        v["include"],
        json!(["embeddings", "metadatas", "documents"])
    );
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/query"),
        Some(
            json!({"query_embeddings": [[1.0, 1.0]], "n_results": 5, "where": {"n": {"$gte": 1}}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ids"], json!([["a"]]));
    assert_eq!(v["distances"], json!([[0.29289323]]), "f32 shortest form");
    let (s, v, _) = call(&app, "GET", &format!("{BASE}/collections/{id}/count"), None).await;
    assert_eq!((s, v), (StatusCode::OK, json!(2)));
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/delete"),
        Some(json!({"ids": ["a", "zz"]})),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"deleted": 2})));
    let (s, c, _) = call(&app, "GET", &format!("{BASE}/collections/docs"), None).await;
    assert_eq!((s, c["dimension"].clone()), (StatusCode::OK, json!(2)));
}

#[tokio::test]
async fn errors_carry_chroma_names_statuses_and_trace_id() {
    let app = app(state(ServerConfig::default()));
    type Case = (
        &'static str,
        String,
        Option<Value>,
        StatusCode,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "GET",
            format!("{BASE}/collections/nope"),
            None,
            StatusCode::NOT_FOUND,
            "NotFoundError",
            "Collection [nope] does not exist",
        ),
        (
            "POST",
            format!("{BASE}/collections"),
            Some(json!({"name": "ab"})),
            StatusCode::BAD_REQUEST,
            "InvalidArgumentError",
            "Validation error: name: Expected a name",
        ),
        (
            "POST",
            format!("{BASE}/collections"),
            Some(json!({"nom": "abc"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ChromaError",
            "missing field `name`",
        ),
        (
            "POST",
            format!("{BASE}/collections/not-a-uuid/add"),
            Some(json!({"ids": [], "embeddings": []})),
            StatusCode::BAD_REQUEST,
            "InvalidArgumentError",
            "Collection ID is not a valid UUIDv4",
        ),
        (
            "POST",
            format!("{BASE}/collections/00000000-0000-0000-0000-000000000001/get"),
            Some(json!({})),
            StatusCode::NOT_FOUND,
            "NotFoundError",
            "does not exist.",
        ),
        (
            "POST",
            "/api/v2/reset".into(),
            None,
            StatusCode::FORBIDDEN,
            "ChromaError",
            "Reset is disabled by config",
        ),
        (
            "GET",
            "/api/v1/heartbeat".into(),
            None,
            StatusCode::GONE,
            "Unimplemented",
            "deprecated",
        ),
        (
            "GET",
            "/api/v2/tenants/default_tenant/databases/ab".into(),
            None,
            StatusCode::BAD_REQUEST,
            "InvalidArgumentError",
            "at least 3 characters",
        ),
        (
            "POST",
            "/api/v2/tenants".into(),
            Some(json!({"name": "default_tenant"})),
            StatusCode::CONFLICT,
            "ChromaError",
            "already exists",
        ),
    ];
    for (method, uri, body, status, name, fragment) in cases {
        let (s, v, trace) = call(&app, method, &uri, body).await;
        assert_eq!(s, status, "{method} {uri}: {v}");
        assert_eq!(v["error"], name, "{method} {uri}: {v}");
        assert!(
            v["message"].as_str().expect("message").contains(fragment),
            "{method} {uri}: {v}"
        );
        assert!(trace, "{method} {uri}: chroma-trace-id header");
    }
    // Invalid JSON is a 400, a foreign content type a 415.
    let req = Request::builder()
        .method("POST")
        .uri(format!("{BASE}/collections"))
        .header("content-type", "application/json")
        .body(Body::from("{"))
        .expect("request");
    assert_eq!(
        app.clone().oneshot(req).await.expect("response").status(),
        StatusCode::BAD_REQUEST
    );
    let req = Request::builder()
        .method("POST")
        .uri(format!("{BASE}/collections"))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .expect("request");
    assert_eq!(
        app.clone().oneshot(req).await.expect("response").status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test]
async fn body_limit_gives_413() {
    let config = ServerConfig {
        max_payload_size_bytes: 64,
        ..Default::default()
    };
    let app = app(state(config));
    let (s, _, _) = call(
        &app,
        "POST",
        "/api/v2/tenants",
        Some(json!({"name": "x".repeat(200)})),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn auth_rejects_before_touching_data() {
    let mut config = ServerConfig::default();
    config.auth.tokens = vec!["secret".into()];
    config.allow_reset = true;
    let app = app(state(config));
    let (s, _, _) = call(&app, "GET", "/api/v2/heartbeat", None).await;
    assert_eq!(s, StatusCode::OK, "heartbeat stays open");
    let (s, v, _) = call(
        &app,
        "POST",
        "/api/v2/tenants",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("AuthError"))
    );
    let req = Request::builder()
        .method("GET")
        .uri("/api/v2/tenants/acme")
        .header("x-chroma-token", "secret")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        app.clone().oneshot(req).await.expect("response").status(),
        StatusCode::NOT_FOUND,
        "the rejected create wrote nothing"
    );
    let req = Request::builder()
        .method("GET")
        .uri("/api/v2/tenants/default_tenant")
        .header("authorization", "Bearer wrong")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        app.clone().oneshot(req).await.expect("response").status(),
        StatusCode::FORBIDDEN
    );
    let req = Request::builder()
        .method("GET")
        .uri("/api/v2/tenants/default_tenant")
        .header("authorization", "Bearer secret")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        app.clone().oneshot(req).await.expect("response").status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn basic_auth_with_bcrypt_htpasswd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = bcrypt::hash("pw", 4).expect("hash");
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, format!("admin:{hash}\n")).expect("write");
    let mut config = ServerConfig::default();
    config.auth.htpasswd_file = Some(file);
    let app = app(state(config));
    let basic = |cred: &str| {
        format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cred)
        )
    };
    for (cred, status) in [
        ("admin:pw", StatusCode::OK),
        ("admin:bad", StatusCode::FORBIDDEN),
    ] {
        let req = Request::builder()
            .uri("/api/v2/tenants/default_tenant")
            .header("authorization", basic(cred))
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            app.clone().oneshot(req).await.expect("response").status(),
            status,
            "{cred}"
        );
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = app(state(ServerConfig::default()));
    call(&app, "GET", "/api/v2/heartbeat", None).await;
    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec(),
    )
    .expect("utf8");
    assert!(
        text.contains("ochre_http_requests_total{method=\"GET\",route=\"/api/v2/heartbeat\"} 1"),
        "{text}"
    );
    assert!(text.contains("ochre_collections 0"), "{text}");
}

#[tokio::test]
async fn batch_size_is_reported_and_enforced() {
    let config = ServerConfig {
        max_batch_size: 2,
        ..Default::default()
    };
    let app = app(state(config));
    let (_, v, _) = call(&app, "GET", "/api/v2/pre-flight-checks", None).await;
    assert_eq!(v["max_batch_size"], 2);
    let (_, c, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "small"})),
    )
    .await;
    let id = c["id"].as_str().expect("id").to_owned();
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(json!({"ids": ["a", "b", "c"], "embeddings": [[1.0], [2.0], [3.0]]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "Batch size 3 exceeds maximum batch size 2");
    let (_, v, _) = call(&app, "GET", &format!("{BASE}/collections/{id}/count"), None).await;
    assert_eq!(v, json!(0));
}

#[tokio::test]
async fn openapi_and_offline_docs_are_served() {
    let app = app(state(ServerConfig::default()));
    let (s, v, _) = call(&app, "GET", "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = v["paths"].as_object().expect("paths");
    for p in [
        "/api/v2/heartbeat",
        "/api/v2/tenants/{tenant}/databases/{database}/collections",
        "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/query",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(v["components"]["schemas"]["QueryBody"].is_object());
    let req = Request::builder()
        .uri("/docs/")
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    assert!(
        String::from_utf8_lossy(&html).contains("swagger"),
        "Swagger UI page"
    );
}

#[tokio::test]
async fn schema_disables_filters_and_tracks_keys() {
    let app = app(state(ServerConfig::default()));
    let schema = json!({"keys": {"tag": {"string": {"string_inverted_index": {"enabled": false, "config": {}}}},
                                 "#document": {"string": {"fts_index": {"enabled": false, "config": {}}}}}});
    let (s, c, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "sch1", "schema": schema})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    // The partial schema was merged onto the default one.
    assert_eq!(
        c["schema"]["defaults"]["int"]["int_inverted_index"]["enabled"],
        true
    );
    assert_eq!(
        c["schema"]["keys"]["#embedding"]["float_list"]["vector_index"]["enabled"],
        true
    );
    let id = c["id"].as_str().expect("id").to_owned();
    let add = json!({"ids": ["a"], "embeddings": [[1.0, 0.0]], "documents": ["doc"],
                     "metadatas": [{"tag": "x", "n": 1, "l": [true]}]});
    let (s, _, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(add),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, c, _) = call(&app, "GET", &format!("{BASE}/collections/sch1"), None).await;
    let keys = &c["schema"]["keys"];
    assert_eq!(keys["n"]["int"]["int_inverted_index"]["enabled"], true);
    assert_eq!(keys["l"]["bool"]["bool_inverted_index"]["enabled"], true);
    assert_eq!(
        keys["tag"]["string"]["string_inverted_index"]["enabled"],
        false
    );
    for (route, body) in [
        ("get", json!({"where": {"tag": "x"}})),
        (
            "delete",
            json!({"where": {"$and": [{"n": 1}, {"tag": {"$in": ["x"]}}]}}),
        ),
        (
            "query",
            json!({"query_embeddings": [[1.0, 0.0]], "where": {"tag": {"$ne": "y"}}}),
        ),
    ] {
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections/{id}/{route}"),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{route}: {v}");
        assert_eq!(
            v["message"],
            "Cannot filter using metadata key 'tag' with type 'Str' because indexing is disabled"
        );
    }
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/get"),
        Some(json!({"where_document": {"$contains": "d"}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        v["message"],
        "Cannot filter using full-text search because FTS indexing is disabled"
    );
    // Other keys, and other types of the same key, still filter; nothing was deleted.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/get"),
        Some(json!({"where": {"$and": [{"n": 1}, {"tag": 5}]}})),
    )
    .await;
    assert_eq!((s, v["ids"].clone()), (StatusCode::OK, json!([])));
    let (_, n, _) = call(&app, "GET", &format!("{BASE}/collections/{id}/count"), None).await;
    assert_eq!(n, json!(1));
    // A non-default configuration next to a non-default schema is refused, and creates nothing.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "sch2",
        "configuration": {"hnsw": {"space": "ip"}}, "schema": {"keys": {"x": {}}}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        v["message"],
        "Failed to reconcile schema: Cannot set both collection config and schema simultaneously"
    );
    let (s, _, _) = call(&app, "GET", &format!("{BASE}/collections/sch2"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fork_count_and_indexing_status_count_operations() {
    let app = app(state(ServerConfig::default()));
    let (_, c, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "ops"})),
    )
    .await;
    let id = c["id"].as_str().expect("id").to_owned();
    let status = |v: &Value| {
        (
            v["total_ops"].clone(),
            v["num_indexed_ops"].clone(),
            v["num_unindexed_ops"].clone(),
            v["op_indexing_progress"].clone(),
        )
    };
    let (s, v, _) = call(
        &app,
        "GET",
        &format!("{BASE}/collections/{id}/indexing_status"),
        None,
    )
    .await;
    assert_eq!(
        (s, status(&v)),
        (StatusCode::OK, (json!(0), json!(0), json!(0), json!(1.0)))
    );
    let add = json!({"ids": ["a", "b", "c"], "embeddings": [[1.0], [2.0], [3.0]]});
    call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(add),
    )
    .await;
    call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/delete"),
        Some(json!({"ids": ["a", "b"]})),
    )
    .await;
    let (_, v, _) = call(
        &app,
        "GET",
        &format!("{BASE}/collections/{id}/indexing_status"),
        None,
    )
    .await;
    assert_eq!(status(&v), (json!(5), json!(5), json!(0), json!(1.0)));
    for (i, name) in ["ops-fork1", "ops-fork2"].iter().enumerate() {
        let (s, _, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections/{id}/fork"),
            Some(json!({"new_name": name})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v, _) = call(
            &app,
            "GET",
            &format!("{BASE}/collections/{id}/fork_count"),
            None,
        )
        .await;
        assert_eq!((s, v), (StatusCode::OK, json!({"count": i + 1})));
    }
    let (_, f, _) = call(&app, "GET", &format!("{BASE}/collections/ops-fork1"), None).await;
    let fid = f["id"].as_str().expect("id").to_owned();
    let (_, v, _) = call(
        &app,
        "GET",
        &format!("{BASE}/collections/{fid}/fork_count"),
        None,
    )
    .await;
    assert_eq!(v, json!({"count": 0}));
}

#[tokio::test]
async fn malformed_bodies_are_400_and_wrong_shapes_422() {
    let app = app(state(ServerConfig::default()));
    let send = |body: &str| {
        let app = app.clone();
        let body = body.to_owned();
        async move {
            let req = Request::builder()
                .method("POST")
                .uri(format!("{BASE}/collections"))
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request");
            let resp = app.oneshot(req).await.expect("response");
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            (
                status,
                serde_json::from_slice::<Value>(&bytes).expect("json"),
            )
        }
    };
    let (s, v) = send("{\"name\": ").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"]
        .as_str()
        .expect("message")
        .starts_with("Failed to parse the request body as JSON"));
    // A shape error before a syntax error is still reported as the syntax error.
    let (s, _) = send("{\"name\": 5, \"metadata\": }").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = send("{\"name\": 5}").await;
    assert_eq!(
        (s, v["message"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("Failed to deserialize the JSON body into the target type: invalid type: integer `5`, expected a string")
        )
    );
    // Bodies of 64 KiB and more are parsed on the blocking pool, with the same answers.
    let padding = " ".repeat(70 * 1024);
    let (s, v) = send(&format!("{{\"name\": {padding}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = send(&format!("{{\"name\": 5{padding}}}")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = send(&format!("{{\"name\": \"padded\"{padding}}}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "padded");
}

#[tokio::test]
async fn hnsw_knobs_are_range_checked_and_fixed_ones_refused_on_modify() {
    let app = app(state(ServerConfig::default()));
    let create = |hnsw: Value| json!({"name": "knobs", "configuration": {"hnsw": hnsw}});
    // One request cannot make every record cost megabytes (issue 11's 2^64-1 max_neighbors).
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(create(json!({"max_neighbors": 65536}))),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "InvalidArgumentError");
    assert_eq!(
        v["message"],
        "Invalid HNSW configuration: max_neighbors must be between 1 and 2048, got 65536"
    );
    // The same check covers `hnsw:*` metadata.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "knobs", "metadata": {"hnsw:search_ef": 0}})),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidArgumentError")),
        "{v}"
    );
    // Chroma's own test values are inside the ranges.
    let (s, c, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(create(
            json!({"max_neighbors": 1000, "ef_construction": 1000, "ef_search": 1, "space": "ip"}),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let id = c["id"].as_str().expect("id").to_owned();
    let modify = |hnsw: Value| json!({"new_configuration": {"hnsw": hnsw}});
    for fixed in ["space", "ef_construction"] {
        let value = if fixed == "space" {
            json!("l2")
        } else {
            json!(5)
        };
        let (s, v, _) = call(
            &app,
            "PUT",
            &format!("{BASE}/collections/{id}"),
            Some(modify(json!({fixed: value}))),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{fixed}: {v}");
        assert_eq!(v["error"], "ChromaError");
        let message = v["message"].as_str().expect("message");
        assert!(
            message.contains(&format!(
                "unknown field `{fixed}`, expected one of `ef_search`, `max_neighbors`, \
                 `num_threads`, `resize_factor`, `sync_threshold`, `batch_size`"
            )),
            "{message}"
        );
    }
    // An unknown field of the create block lists Chroma's create fields, in their order.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(create(json!({"ef_serch": 5}))),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains(
            "unknown field `ef_serch`, expected one of `space`, `ef_construction`, `ef_search`, \
             `max_neighbors`, `num_threads`, `resize_factor`, `sync_threshold`, `batch_size`"
        )),
        "{v}"
    );
    let (s, v, _) = call(
        &app,
        "PUT",
        &format!("{BASE}/collections/{id}"),
        Some(modify(json!({"ef_search": 10001}))),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v, _) = call(
        &app,
        "PUT",
        &format!("{BASE}/collections/{id}"),
        Some(modify(json!({"ef_search": 50, "num_threads": 1}))),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, c, _) = call(&app, "GET", &format!("{BASE}/collections/knobs"), None).await;
    assert_eq!(c["configuration_json"]["hnsw"]["ef_search"], 50);
    assert_eq!(c["configuration_json"]["hnsw"]["space"], "ip");
    assert_eq!(c["configuration_json"]["hnsw"]["max_neighbors"], 1000);
    // A schema's hnsw block has no space (the vector index config holds it).
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "schema-space", "schema": {"keys": {"#embedding": {"float_list": {"vector_index": {"enabled": true, "config": {"hnsw": {"space": "ip"}}}}}}}})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown field `space`")),
        "{v}"
    );
}

#[tokio::test]
async fn a_query_request_has_a_bounded_cost() {
    // See issue 11: 1,000 query vectors x n_results 1,000 grew the server by ~1 GiB.
    let config = ServerConfig {
        max_batch_size: 4,
        max_query_results: 10,
        ..Default::default()
    };
    let app = app(state(config));
    let (_, c, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "bounded"})),
    )
    .await;
    let id = c["id"].as_str().expect("id").to_owned();
    let ids: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..8).map(|i| vec![i as f32, 1.0]).collect();
    for (ids, embeddings) in ids.chunks(4).zip(embeddings.chunks(4)) {
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections/{id}/add"),
            Some(json!({"ids": ids, "embeddings": embeddings})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let query = |n: usize, k: usize| json!({"query_embeddings": vec![vec![0.5, 1.0]; n], "n_results": k, "include": []});
    let url = format!("{BASE}/collections/{id}/query");
    let (s, v, _) = call(&app, "POST", &url, Some(query(5, 1))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["message"], "Batch size 5 exceeds maximum batch size 4");
    // 2 x min(1000, 8 records) = 16 hits > 10.
    let (s, v, _) = call(&app, "POST", &url, Some(query(2, 1000))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "InvalidArgumentError");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("Query would return 16 results")),
        "{v}"
    );
    // A large n_results on a small collection counts what it can return: 1 x 8 <= 10.
    let (s, v, _) = call(&app, "POST", &url, Some(query(1, 1_000_000))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ids"][0].as_array().map(Vec::len), Some(8));
    // One record cannot carry a vector of any size.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "wide"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let wide = v["id"].as_str().expect("id").to_owned();
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{wide}/add"),
        Some(json!({"ids": ["x"], "embeddings": [vec![0.0; ochre::MAX_DIMENSION + 1]]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("the maximum is 65536")),
        "{v}"
    );
}

/// A request with one header, its status and JSON body.
async fn call_with(
    app: &Router,
    method: &str,
    uri: &str,
    header: (&str, &str),
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header.0, header.1)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn scoped_tokens_reach_only_their_tenant_and_identity_names_the_caller() {
    let mut config = ServerConfig::default();
    let yaml = "auth:\n  tokens:\n    - open\n    - {token: team, user_id: alice, tenant: acme, databases: [prod]}\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).expect("write");
    config.auth = ServerConfig::from_file(&path).expect("parses").auth;
    let app = app(state(config));
    // The scheme is case-insensitive.
    let (s, v) = call_with(
        &app,
        "GET",
        "/api/v2/auth/identity",
        ("authorization", "bearer team"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"user_id": "alice", "tenant": "acme", "databases": ["prod"]})
    );
    let (s, v) = call_with(
        &app,
        "GET",
        "/api/v2/auth/identity",
        ("x-chroma-token", "open"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"user_id": "", "tenant": "default_tenant", "databases": ["default_database"]}),
        "an unscoped token reports the defaults clients adopt"
    );
    let team = ("x-chroma-token", "team");
    let (s, v) = call_with(&app, "GET", &format!("{BASE}/collections"), team).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "AuthorizationError");
    let (s, _) = call_with(&app, "POST", "/api/v2/reset", team).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The operator routes act on the whole server: never for a scoped credential.
    let (s, _) = call_with(&app, "POST", "/api/v2/admin/snapshot", team).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call_with(&app, "GET", "/api/v2/tenants", team).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Inside its scope the request reaches the handler (which finds no such tenant).
    let (s, v) = call_with(&app, "GET", "/api/v2/tenants/acme", team).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _) = call_with(
        &app,
        "GET",
        &format!("{BASE}/collections"),
        ("x-chroma-token", "open"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_method_gets_the_json_error_body() {
    let app = app(state(ServerConfig::default()));
    let (s, v, trace) = call(&app, "DELETE", "/api/v2/heartbeat", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["error"], "ChromaError", "{v}");
    assert!(trace, "the trace header too");
}

/// Starts `serve` on a loopback port; returns its address and the shutdown trigger.
async fn serving(config: ServerConfig) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state(config), async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Reads until the peer closes the connection (true) or `within` passes (false).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // See issue 11: connections sending one header byte at a time were never closed.
    let config = ServerConfig {
        http_header_timeout_seconds: 1,
        ..Default::default()
    };
    let (addr, stop) = serving(config).await;
    let wait = std::time::Duration::from_secs(5);
    // A client that connects and sends nothing.
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(
        closed_within(&mut silent, wait).await,
        "a silent client is cut off"
    );
    // Headers that never finish.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /api/v2/heartbeat HTTP/1.1\r\nHo")
        .await
        .expect("write");
    assert!(
        closed_within(&mut slow, wait).await,
        "a trickling client is cut off"
    );
    // A keep-alive connection left idle after a request.
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /api/v2/heartbeat HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut idle, wait).await,
        "an idle keep-alive connection is closed"
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn a_request_refused_before_its_body_closes_the_connection() {
    let mut config = ServerConfig::default();
    config.auth.tokens = vec!["secret".into()];
    let app = app(state(config));
    let req = Request::builder()
        .method("POST")
        .uri("/api/v2/tenants")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name": "acme"}"#))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the unread body would be in the way of the next request"
    );
    let req = Request::builder()
        .method("POST")
        .uri("/api/v2/tenants")
        .header("x-chroma-token", "secret")
        .header("content-type", "text/plain")
        .body(Body::from("acme"))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(resp.headers().contains_key("connection"));
}

#[tokio::test]
async fn an_oversized_content_length_is_refused_before_the_body() {
    let config = ServerConfig {
        max_payload_size_bytes: 1000,
        ..Default::default()
    };
    let app = app(state(config));
    // The declared length alone decides: the body here is tiny.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v2/tenants")
        .header("content-type", "application/json")
        .header("content-length", "5000000")
        .body(Body::from(r#"{"name": "acme"}"#))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        resp.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let (s, _, _) = call(&app, "GET", "/api/v2/tenants/acme", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing was created");
}

#[tokio::test]
async fn a_trickled_body_gets_408_after_the_body_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ServerConfig {
        http_body_timeout_seconds: 1,
        ..Default::default()
    };
    let (addr, stop) = serving(config).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"POST /api/v2/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .expect("write");
    // One byte every 200 ms keeps every gap short; the whole body still takes too long.
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 4096];
    for _ in 0..40 {
        let _ = s.write_all(b" ").await;
        if let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), s.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 1 s"), "{text}");
    let _ = stop.send(());
}

/// Writes `bytes` on a new connection and reads until the server closes it.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await;
    assert!(read.is_ok(), "the server closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// See issue 11: hyper answered malformed requests and oversized header sections itself, with
/// an empty body, unlike every other error.
#[tokio::test]
async fn malformed_http_and_huge_headers_get_the_json_error_body() {
    let (addr, _stop) = serving(ServerConfig::default()).await;
    let mut huge = b"GET /api/v2/heartbeat HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let cases: Vec<(&[u8], &str)> = vec![
        (b"GARBAGE\r\n\r\n", "400"),
        (
            b"POST /api/v2/tenants HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n",
            "400",
        ),
        (&huge, "431"),
    ];
    for (request, status) in cases {
        let response = exchange(addr, request).await;
        let (head, body) = response.split_once("\r\n\r\n").expect("a response");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let v: Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(v["error"], "InvalidArgumentError", "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A good request after a pipelined one still works, and the bad one after it gets JSON.
    let response = exchange(
        addr,
        b"GET /api/v2/heartbeat HTTP/1.1\r\nhost: x\r\n\r\nGARBAGE\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.contains("HTTP/1.1 400 "), "{response}");
    assert!(response.ends_with("}"), "{response}");
}

#[tokio::test]
async fn schemathesis_query_with_an_unknown_id_is_400_not_500() {
    // schemathesis found: `query` with `ids` naming a record that is not there (and no filter)
    // answered 500 InternalError, as Chroma does. It is the client's mistake: 400
    // InvalidArgumentError, with Chroma's message (its clients and tests match "Error finding id").
    let app = app(state(ServerConfig::default()));
    let (_, c, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "unknown-ids"})),
    )
    .await;
    let id = c["id"].as_str().expect("id").to_owned();
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(json!({"ids": ["a"], "embeddings": [[1.0, 0.0]], "metadatas": [{"k": 1}]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let url = format!("{BASE}/collections/{id}/query");
    for embeddings in [json!([[1.0, 0.0]]), json!([])] {
        let (s, v, trace) = call(
            &app,
            "POST",
            &url,
            Some(json!({"query_embeddings": embeddings, "ids": ["a", "gone"]})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"], "InvalidArgumentError", "{v}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("Error finding id")),
            "{v}"
        );
        assert!(trace);
    }
    // With a filter, unknown ids are ignored; and the collection is unchanged.
    let (s, v, _) = call(
        &app,
        "POST",
        &url,
        Some(json!({"query_embeddings": [[1.0, 0.0]], "ids": ["a", "gone"], "where": {"k": 1}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ids"], json!([["a"]]));
    let (s, v, _) = call(&app, "GET", &format!("{BASE}/collections/{id}/count"), None).await;
    assert_eq!((s, v), (StatusCode::OK, json!(1)));
}

#[tokio::test]
async fn schemathesis_openapi_documents_json_counts_error_statuses_and_embeddings() {
    // schemathesis found the OpenAPI document at odds with the server: counts and the version
    // documented as text/plain (they are JSON), the statuses every route can answer (401/403/500,
    // and 408/413/415/422 for a body) and 409/501/reset's 403 undocumented, and write embeddings
    // documented as a list of objects, so that no generated add could succeed.
    let app = app(state(ServerConfig::default()));
    let (s, doc, _) = call(&app, "GET", "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let coll = "/api/v2/tenants/{tenant}/databases/{database}/collections";
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    for (path, method) in [
        (format!("{coll}/{{collection_id}}/count"), "get"),
        (
            "/api/v2/tenants/{tenant}/databases/{database}/collections_count".to_owned(),
            "get",
        ),
        ("/api/v2/version".to_owned(), "get"),
        ("/api/v2/reset".to_owned(), "post"),
    ] {
        let ok = &op(&path, method)["responses"]["200"]["content"];
        assert!(ok["application/json"].is_object(), "{path}: {ok}");
        assert!(ok.get("text/plain").is_none(), "{path}: {ok}");
    }
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            let mut expected = vec!["400", "401", "403", "404", "500"];
            if op.get("requestBody").is_some() {
                expected.extend(["408", "413", "415", "422"]);
            }
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
    for (path, method, status) in [
        ("/api/v2/tenants".to_owned(), "post", "409"),
        (coll.to_owned(), "post", "409"),
        (format!("{coll}/{{collection_id}}"), "put", "409"),
        (format!("{coll}/{{collection_id}}/fork"), "post", "409"),
        (format!("{coll}/{{collection_id}}/search"), "post", "422"),
    ] {
        assert!(
            op(&path, method)["responses"][status].is_object(),
            "{method} {path} does not document {status}"
        );
    }
    assert!(
        op("/api/v2/reset", "post")["responses"]["403"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("allow_reset"))
    );
    let schemas = &doc["components"]["schemas"];
    let numbers = json!({"type": "array", "items": {"type": "array", "items": {"type": "number", "format": "float"}}});
    assert!(
        schemas["EmbeddingsForm"]["oneOf"]
            .as_array()
            .is_some_and(|forms| forms.contains(&numbers)),
        "{}",
        schemas["EmbeddingsForm"]
    );
    assert_eq!(
        op(&format!("{coll}/{{collection_id}}/add"), "post")["requestBody"]["content"]
            ["application/json"]["schema"]["$ref"],
        "#/components/schemas/AddBody"
    );
    assert_eq!(schemas["AddBody"]["required"], json!(["ids", "embeddings"]));
    // A modify's hnsw block documents only what a modify accepts.
    let update = schemas["HnswUpdate"]["properties"]
        .as_object()
        .expect("HnswUpdate");
    assert!(update.contains_key("ef_search") && !update.contains_key("ef_construction"));
}

#[tokio::test]
async fn search_answers_hybrid_plans_and_refuses_bad_ones_with_chromas_messages() {
    let app = app(state(ServerConfig::default()));
    let (s, c, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "hybrid", "schema": {"keys": {"sp": {"sparse_vector": {
            "sparse_vector_index": {"enabled": true, "config": {"bm25": true,
                "embedding_function": {"type": "known", "name": "chroma_bm25", "config": {}}}}}}}}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let id = c["id"].as_str().expect("id").to_owned();
    let sv = |i: Vec<u32>| json!({"#type": "sparse_vector", "indices": i, "values": [1.0]});
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(json!({"ids": ["a", "b", "c"], "embeddings": [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]],
            "documents": ["apple pie", "banana split", "apple banana"],
            "metadatas": [{"sp": sv(vec![1]), "kind": "x"}, {"sp": sv(vec![2]), "kind": "y"}, {"kind": "x"}]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let search = |body: Value| {
        call(
            &app,
            "POST",
            format!("{BASE}/collections/{id}/search").leak(),
            Some(body),
        )
    };
    // Sparse vectors come back as Chroma writes them.
    let (s, v, _) = search(json!({"searches": [{"filter": {"#id": {"$in": ["a"]}}, "select": {"keys": ["sp", "#document"]}}]})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["metadatas"],
        json!([[{"sp": {"#type": "sparse_vector", "indices": [1], "values": [1.0]}}]])
    );
    assert_eq!(v["documents"], json!([["apple pie"]]));
    assert_eq!(v["select"], json!([["#document", "sp"]]));
    assert_eq!(v["scores"], json!([null]));
    // RRF of a dense and a BM25 ranking, as the Python client sends it, plus a text filter.
    let rrf = json!({"$mul": [{"$val": -1}, {"$sum": [
        {"$div": {"left": {"$val": 1}, "right": {"$sum": [{"$val": 60}, {"$knn": {"query": [1.0, 0.1], "limit": 3, "return_rank": true, "default": 100}}]}}},
        {"$div": {"left": {"$val": 1}, "right": {"$sum": [{"$val": 60}, {"$knn": {"query": sv(vec![1]), "key": "sp", "limit": 3, "return_rank": true, "default": 100}}]}}}
    ]}]});
    let (s, v, _) = search(json!({"searches": [
        {"rank": rrf, "limit": {"offset": 0, "limit": 2}, "select": {"keys": ["#score", "kind"]}},
        {"filter": {"#document": {"$contains": "banana"}}, "rank": {"$knn": {"query": [1.0, 0.0]}}, "select": {"keys": ["#score"]}},
        {"rank": {"$knn": {"query": [1.0, 0.0]}}, "group_by": {"keys": ["kind"], "aggregate": {"$min_k": {"keys": ["#score"], "k": 1}}}}
    ], "read_level": "index_only"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ids"][0][0], "a", "{v}");
    assert_eq!(v["metadatas"][0][0], json!({"kind": "x"}));
    assert_eq!(v["ids"][1], json!(["c", "b"]));
    assert_eq!(v["ids"][2], json!(["a", "b"]));
    assert_eq!(v["select"], json!([["#score", "kind"], ["#score"], []]));
    // Validation, with Chroma's statuses and messages.
    let cases = [
        (json!({"searches": [{"rank": {"$bogus": 1}}]}), StatusCode::UNPROCESSABLE_ENTITY, "unknown variant `$bogus`, expected one of `$abs`, `$div`"),
        (json!({"searches": [{"group_by": {"keys": ["kind"]}, "rank": {"$val": 1}}]}), StatusCode::BAD_REQUEST, "Validation error: searches[0].group_by: group_by keys and aggregate must both be specified or both be omitted"),
        (json!({"searches": [{"group_by": {"keys": ["kind"], "aggregate": {"$max_k": {"keys": ["#score"], "k": 1}}}}]}), StatusCode::BAD_REQUEST, "Validation error: searches[0].__all__: group_by requires rank expression to be specified"),
        (json!({"searches": [{"group_by": {"keys": ["kind"], "aggregate": {"$max_k": {"keys": ["#score"], "k": 0}}}, "rank": {"$val": 1}}]}), StatusCode::BAD_REQUEST, "aggregate k must be greater than 0"),
        (json!({"searches": [{"rank": {"$knn": {"query": {"indices": [2, 1], "values": [1, 1]}, "key": "sp"}}}]}), StatusCode::BAD_REQUEST, "Invalid sparse vector in KNN query: Sparse vector indices must be sorted in strictly ascending order (no duplicates)"),
        (json!({"searches": [{"rank": {"$knn": {"query": {"indices": [1], "values": [1]}, "key": "kind"}}}]}), StatusCode::BAD_REQUEST, "Cannot filter using metadata key 'kind' with type 'SparseVector' because indexing is disabled"),
        (json!({"searches": [{"rank": {"$knn": {"query": [1.0, 0.0, 0.0]}}}]}), StatusCode::BAD_REQUEST, "Collection expecting embedding with dimension of 2, got 3"),
        (json!({"searches": [], "read_level": "everything"}), StatusCode::UNPROCESSABLE_ENTITY, "unknown variant `everything`"),
        (json!({"searches": [{"filter": {"kind": {"$bogus": 1}}}]}), StatusCode::UNPROCESSABLE_ENTITY, "searches[0].filter"),
        // Shape before validation, across payloads, as Chroma's deserialisation comes first.
        (json!({"searches": [{"group_by": {"keys": ["kind"]}, "rank": {"$val": 1}}, {"rank": {"$bogus": 1}}]}), StatusCode::UNPROCESSABLE_ENTITY, "searches[1].rank: unknown variant"),
        (json!({"searches": [{"rank": {"$knn": {"query": [1e39, 0.0]}}}]}), StatusCode::BAD_REQUEST, "Validation error: searches[0].rank: Invalid KNN query"),
        // Bounded work: the $knn candidates of a request are capped whatever its limits.
        (json!({"searches": [{"rank": {"$sum": vec![json!({"$knn": {"query": [1.0, 0.0], "limit": 5}}); 40_000]}, "limit": {"limit": 1}}]}), StatusCode::BAD_REQUEST, "nearest-neighbour candidates"),
        (json!({"searches": vec![json!({"filter": {"#document": {"$regex": "."}}}); 65]}), StatusCode::BAD_REQUEST, "at most 64 per request"),
    ];
    for (body, status, message) in cases {
        let (s, v, _) = search(body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(message)),
            "{body}: {v}"
        );
    }
}

// ----- server-side embedding (an Ochre extension) -----

/// The MiniLM model from `OCHRE_TEST_MODEL_DIR`, loaded once; `None` (the test says so and
/// passes) when it is not set, unless `OCHRE_REQUIRE_MODEL_TESTS=1`.
fn test_model() -> Option<std::sync::Arc<ochre_embed::MiniLm>> {
    static MODEL: std::sync::OnceLock<Option<std::sync::Arc<ochre_embed::MiniLm>>> =
        std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            ochre_embed::test_model_dir().map(|d| {
                std::sync::Arc::new(ochre_embed::MiniLm::load(&d).expect("the test model"))
            })
        })
        .clone()
}

/// Creates a collection from `body` and returns its id.
async fn collection_with(app: &Router, body: Value) -> String {
    let (s, c, _) = call(app, "POST", &format!("{BASE}/collections"), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    c["id"].as_str().expect("id").to_owned()
}

/// The configuration chromadb's client sends for its default embedding function.
fn minilm_configuration() -> Value {
    json!({"embedding_function": {"type": "known", "name": "default", "config": {}}})
}

async fn stored(app: &Router, id: &str, ids: Value, field: &str) -> Value {
    let (s, v, _) = call(
        app,
        "POST",
        &format!("{BASE}/collections/{id}/get"),
        Some(json!({"ids": ids, "include": [field]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v[field].clone()
}

fn vector_json(v: &[f32]) -> Value {
    json!(v
        .iter()
        .map(|x| ochre_types::f32_as_f64(*x))
        .collect::<Vec<_>>())
}

#[tokio::test]
async fn with_a_model_documents_are_embedded_on_writes_and_text_queries() {
    let Some(model) = test_model() else { return };
    let app = app(state(ServerConfig::default()).with_embedder(model.clone()));
    let id = collection_with(
        &app,
        json!({"name": "embedded", "configuration": minilm_configuration()}),
    )
    .await;
    let coll = format!("{BASE}/collections/{id}");
    let docs = [
        "The cat sat on the mat.",
        "Stock markets fell sharply on Tuesday.",
        "A recipe for chocolate cake.",
    ];
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/add"),
        Some(json!({"ids": ["a", "b", "c"], "documents": docs, "embeddings": null})),
    )
    .await;
    assert_eq!((s, v), (StatusCode::CREATED, json!({})));
    let want = model.embed(&docs).expect("embed");
    let got = stored(&app, &id, json!(["a", "b", "c"]), "embeddings").await;
    assert_eq!(
        got,
        json!(want.iter().map(|v| vector_json(v)).collect::<Vec<_>>())
    );
    // add/upsert: every record needs a document; nothing is written otherwise.
    for route in ["add", "upsert"] {
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{coll}/{route}"),
            Some(json!({"ids": ["x", "y"], "documents": ["fine", null]})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{route}: {v}");
        assert_eq!(v["error"], "InvalidArgumentError");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains("'y'")),
            "{v}"
        );
    }
    let (_, n, _) = call(&app, "GET", &format!("{coll}/count"), None).await;
    assert_eq!(n, json!(3));
    // upsert: a new record and a changed one, both embedded.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/upsert"),
        Some(json!({"ids": ["a", "d"], "documents": ["A dog barks at the mailman.", "Bonds rallied."]})),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let want = model
        .embed(&["A dog barks at the mailman.", "Bonds rallied."])
        .expect("embed");
    let got = stored(&app, &id, json!(["a", "d"]), "embeddings").await;
    assert_eq!(got, json!([vector_json(&want[0]), vector_json(&want[1])]));
    // update: only records with a document get a new vector.
    let before = stored(&app, &id, json!(["c"]), "embeddings").await;
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/update"),
        Some(
            json!({"ids": ["b", "c"], "documents": ["Interest rates rose again.", null],
            "metadatas": [null, {"k": 1}]}),
        ),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let want = model.embed(&["Interest rates rose again."]).expect("embed");
    assert_eq!(
        stored(&app, &id, json!(["b"]), "embeddings").await,
        json!([vector_json(&want[0])])
    );
    assert_eq!(stored(&app, &id, json!(["c"]), "embeddings").await, before);
    assert_eq!(
        stored(&app, &id, json!(["b", "c"]), "documents").await,
        json!(["Interest rates rose again.", "A recipe for chocolate cake."])
    );
    // Sent embeddings win: the server embeds nothing.
    let (s, _, _) = call(
        &app,
        "POST",
        &format!("{coll}/add"),
        Some(json!({"ids": ["e"], "documents": ["ignored"], "embeddings": [vec![0.5; 384]]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        stored(&app, &id, json!(["e"]), "embeddings").await,
        json!([vec![0.5; 384]])
    );
    // A text query ranks like its embedding sent by the client.
    let q = "a kitten resting on a rug";
    let search = |query: Value| {
        call(
            &app,
            "POST",
            format!("{coll}/search").leak(),
            Some(
                json!({"searches": [{"rank": {"$knn": {"query": query, "limit": 3}},
                "select": {"keys": ["#score", "#document"]}}]}),
            ),
        )
    };
    let (s, by_text, _) = search(json!(q)).await;
    assert_eq!(s, StatusCode::OK, "{by_text}");
    let qv = model.embed(&[q]).expect("embed");
    let (s, by_vector, _) = search(vector_json(&qv[0])).await;
    assert_eq!(s, StatusCode::OK, "{by_vector}");
    assert_eq!(by_text, by_vector);
    assert_eq!(by_text["ids"][0][0], "a", "{by_text}");
    // An explicit `#embedding` key, and a text query inside a rank expression.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/search"),
        Some(json!({"searches": [{"rank": {"$sum": [{"$val": 1}, {"$knn": {"query": vec![0.5; 384], "limit": 2}},
            {"$knn": {"query": "money and finance", "key": "#embedding", "limit": 2}}]}}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Another embedding function, or none configured: nothing is embedded, errors as before.
    for configuration in [
        json!({"embedding_function": {"type": "known", "name": "openai", "config": {}}}),
        json!(null),
    ] {
        let other = collection_with(
            &app,
            json!({"name": "other", "configuration": configuration, "get_or_create": false}),
        )
        .await;
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections/{other}/add"),
            Some(json!({"ids": ["a"], "documents": ["hello"]})),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("missing field `embeddings`")),
            "{v}"
        );
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections/{other}/add"),
            Some(json!({"ids": ["a"], "documents": ["hello"], "embeddings": [[1.0, 0.0]]})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections/{other}/update"),
            Some(json!({"ids": ["a"], "documents": ["changed"]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            stored(&app, &other, json!(["a"]), "embeddings").await,
            json!([[1.0, 0.0]])
        );
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections/{other}/search"),
            Some(json!({"searches": [{"rank": {"$knn": {"query": "hello"}}}]})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("embedding function is Chroma's default")),
            "{v}"
        );
        let (s, _, _) = call(&app, "DELETE", &format!("{BASE}/collections/other"), None).await;
        assert_eq!(s, StatusCode::OK);
    }
}

#[tokio::test]
async fn with_a_model_the_batch_size_still_bounds_the_documents_embedded() {
    let Some(model) = test_model() else { return };
    let config = ServerConfig {
        max_batch_size: 2,
        ..Default::default()
    };
    let app = app(state(config).with_embedder(model));
    let id = collection_with(
        &app,
        json!({"name": "small", "configuration": minilm_configuration()}),
    )
    .await;
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(json!({"ids": ["a", "b", "c"], "documents": ["x", "y", "z"]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "Batch size 3 exceeds maximum batch size 2");
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(json!({"ids": ["a"], "documents": ["x", "y", "z"]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["message"],
        "Inconsistent number of IDs, embeddings, documents, URIs and metadatas"
    );
    let knn = json!({"$knn": {"query": "text", "limit": 1}});
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/search"),
        Some(json!({"searches": [{"rank": {"$sum": [knn, knn, knn]}}]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["message"],
        "3 text $knn queries exceed the maximum batch size 2"
    );
}

#[tokio::test]
async fn without_a_model_documents_only_writes_and_text_queries_are_refused_as_before() {
    let app = app(state(ServerConfig::default()));
    let id = collection_with(
        &app,
        json!({"name": "plain", "configuration": minilm_configuration()}),
    )
    .await;
    let coll = format!("{BASE}/collections/{id}");
    for route in ["add", "upsert"] {
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{coll}/{route}"),
            Some(json!({"ids": ["a"], "documents": ["hello"]})),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{route}: {v}");
        assert_eq!(v["error"], "ChromaError");
        assert_eq!(
            v["message"],
            "Failed to deserialize the JSON body into the target type: missing field `embeddings`"
        );
    }
    // Without a model the refusal comes first, as before: even for an unknown collection.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/00000000-0000-0000-0000-000000000001/add"),
        Some(json!({"ids": ["a"], "documents": ["hello"]})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Update without embeddings changes the document and keeps the vector, as ever.
    let (s, _, _) = call(
        &app,
        "POST",
        &format!("{coll}/add"),
        Some(json!({"ids": ["a"], "documents": ["hello"], "embeddings": [[1.0, 0.0]]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/update"),
        Some(json!({"ids": ["a"], "documents": ["bye"]})),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    assert_eq!(
        stored(&app, &id, json!(["a"]), "embeddings").await,
        json!([[1.0, 0.0]])
    );
    assert_eq!(
        stored(&app, &id, json!(["a"]), "documents").await,
        json!(["bye"])
    );
    // A text query needs the model; the message says how to give the server one.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/search"),
        Some(json!({"searches": [{"rank": {"$knn": {"query": "hello"}}}]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "InvalidArgumentError");
    assert!(
        v["message"].as_str().is_some_and(|m| m
            .starts_with("Validation error: searches[0].rank: this server has no embedding model")
            && m.contains("OCHRE_MODEL_DIR")),
        "{v}"
    );
    // A text query on a key without a chroma_bm25 index cannot be embedded either.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/search"),
        Some(json!({"searches": [{"rank": {"$knn": {"query": "hello", "key": "sp"}}}]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("Cannot embed string query for key 'sp'")),
        "{v}"
    );
}

#[tokio::test]
async fn bm25_vectors_are_filled_in_from_documents_without_a_model() {
    let app = app(state(ServerConfig::default()));
    let sparse_index = |config: Value| {
        json!({"keys": {"sp": {"sparse_vector": {"sparse_vector_index": {"enabled": true,
            "config": {"bm25": true, "source_key": "#document",
                "embedding_function": {"type": "known", "name": "chroma_bm25", "config": config}}}}}}})
    };
    let id = collection_with(
        &app,
        json!({"name": "bm25", "schema": sparse_index(json!({}))}),
    )
    .await;
    let coll = format!("{BASE}/collections/{id}");
    let bm25 = ochre_embed::bm25::Bm25::default();
    let sv = |doc: &str| {
        let e = bm25.embed(doc);
        ochre_types::SparseVector {
            indices: e.indices,
            values: e.values,
            tokens: e.labels,
        }
        .to_json()
    };
    let docs = [
        "Apple pie with cinnamon",
        "Banana bread and banana splits",
        "the of and",
    ];
    let mine = json!({"#type": "sparse_vector", "indices": [7], "values": [1.0]});
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/add"),
        Some(json!({"ids": ["a", "b", "c", "d", "e"],
            "embeddings": [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8], [0.9, 0.1]],
            "documents": [docs[0], docs[1], docs[2], null, "apple banana"],
            "metadatas": [null, {"kind": "x"}, null, {"kind": "y"}, {"sp": mine}]})),
    )
    .await;
    assert_eq!((s, v), (StatusCode::CREATED, json!({})));
    let got = stored(&app, &id, json!(["a", "b", "c", "d", "e"]), "metadatas").await;
    assert_eq!(
        got,
        json!([
            {"sp": sv(docs[0])},
            {"kind": "x", "sp": sv(docs[1])},
            // Only stopwords: the empty vector, stored as chromadb's client stores it.
            {"sp": {"#type": "sparse_vector", "indices": [], "values": []}},
            {"kind": "y"},
            {"sp": mine},
        ])
    );
    assert_ne!(sv(docs[0])["indices"], json!([]));
    // update and upsert fill in the same way; a `null` for the key is left to delete it.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/update"),
        Some(
            json!({"ids": ["a", "b"], "documents": ["Cherry tart", "Banana bread"],
            "metadatas": [null, {"sp": null}]}),
        ),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/upsert"),
        Some(
            json!({"ids": ["d", "f"], "embeddings": [[0.2, 0.8], [0.3, 0.7]],
            "documents": ["Plum jam", "Fig cake"]}),
        ),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let got = stored(&app, &id, json!(["a", "b", "d", "f"]), "metadatas").await;
    assert_eq!(
        got,
        json!([
            {"sp": sv("Cherry tart")},
            {"kind": "x"},
            {"kind": "y", "sp": sv("Plum jam")},
            {"sp": sv("Fig cake")},
        ])
    );
    // A text query on the sparse key is embedded with the index's BM25 function and ranks like
    // the vector a client would send.
    let search = |query: Value| {
        call(
            &app,
            "POST",
            format!("{coll}/search").leak(),
            Some(
                json!({"searches": [{"rank": {"$knn": {"query": query, "key": "sp", "limit": 3}},
                "select": {"keys": ["#score"]}}]}),
            ),
        )
    };
    let (s, by_text, _) = search(json!("cherry tarts")).await;
    assert_eq!(s, StatusCode::OK, "{by_text}");
    assert_eq!(by_text["ids"][0][0], "a", "{by_text}");
    let (s, by_vector, _) = search(sv("cherry tarts")).await;
    assert_eq!(s, StatusCode::OK, "{by_vector}");
    assert_eq!(by_text, by_vector);
    // The dense key still needs a model.
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{coll}/search"),
        Some(json!({"searches": [{"rank": {"$knn": {"query": "cherry"}}}]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // The function's configuration is honoured (labels when `include_tokens`).
    let id = collection_with(
        &app,
        json!({"name": "bm25-tokens", "schema": sparse_index(json!({"include_tokens": true, "k": 1.5}))}),
    )
    .await;
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(json!({"ids": ["a"], "embeddings": [[1.0]], "documents": ["Running runners ran"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let configured =
        ochre_embed::bm25::Bm25::from_config(&json!({"include_tokens": true, "k": 1.5}))
            .expect("config");
    let e = configured.embed("Running runners ran");
    assert!(e.labels.is_some());
    let want = ochre_types::SparseVector {
        indices: e.indices,
        values: e.values,
        tokens: e.labels,
    }
    .to_json();
    assert_eq!(
        stored(&app, &id, json!(["a"]), "metadatas").await,
        json!([{"sp": want}])
    );

    // A sparse index fed by another function, or by a metadata key, is left to the client.
    for config in [
        json!({"source_key": "#document", "embedding_function": {"type": "known", "name": "splade", "config": {}}}),
        json!({"source_key": "text", "embedding_function": {"type": "known", "name": "chroma_bm25", "config": {}}}),
    ] {
        let (s, c, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections"),
            Some(
                json!({"name": "other-sparse", "schema": {"keys": {"sp": {"sparse_vector": {
                "sparse_vector_index": {"enabled": true, "config": config}}}}}}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{c}");
        let other = c["id"].as_str().expect("id").to_owned();
        let (s, _, _) = call(
            &app,
            "POST",
            &format!("{BASE}/collections/{other}/add"),
            Some(
                json!({"ids": ["a"], "embeddings": [[1.0]], "documents": ["Apple pie"],
                "metadatas": [{"text": "Apple pie"}]}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(
            stored(&app, &other, json!(["a"]), "metadatas").await,
            json!([{"text": "Apple pie"}])
        );
        let (s, _, _) = call(
            &app,
            "DELETE",
            &format!("{BASE}/collections/other-sparse"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
}

#[tokio::test]
async fn tenants_are_listed_and_a_snapshot_streams_as_tar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Ochre::open(dir.path().join("data")).expect("open");
    let app = app(AppState::new(db, ServerConfig::default()).expect("state"));
    let (s, _, _) = call(
        &app,
        "POST",
        "/api/v2/tenants",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v, _) = call(&app, "GET", "/api/v2/tenants", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!([{"name": "acme", "resource_name": null}, {"name": "default_tenant", "resource_name": null}])
    );
    let (s, v, _) = call(&app, "GET", "/api/v2/tenants?limit=1&offset=1", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!([{"name": "default_tenant", "resource_name": null}])
    );
    let (s, v, _) = call(&app, "GET", "/api/v2/tenants?offset=2", None).await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));
    let (s, _, _) = call(&app, "GET", "/api/v2/tenants?limit=-1", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, c, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections"),
        Some(json!({"name": "docs"})),
    )
    .await;
    let id = c["id"].as_str().expect("id").to_owned();
    let (s, _, _) = call(
        &app,
        "POST",
        &format!("{BASE}/collections/{id}/add"),
        Some(json!({
            "ids": ["a", "b"], "embeddings": [[1.0, 0.0], [0.0, 1.0]], "documents": ["x", "y"]
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .method("POST")
                .uri("/api/v2/admin/snapshot")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let snap = dir.path().join("snap");
    let manifest = ochre::snapshot::receive_snapshot(&bytes[..], &snap).expect("a whole snapshot");
    assert!(manifest.files.iter().any(|f| f.path == "ochre.sqlite3"));
    let restored = dir.path().join("restored");
    ochre::snapshot::restore(&snap, &restored).expect("restores");
    let db = Ochre::open(&restored).expect("opens");
    let info = db
        .get_collection("default_tenant", "default_database", "docs")
        .expect("collection");
    assert_eq!(
        db.collection(info.id)
            .expect("handle")
            .count()
            .expect("count"),
        2
    );
    assert!(db.get_tenant("acme").is_ok());
    // The server's own copy is gone once sent.
    let sending = dir.path().join("data").join(ochre::snapshot::SENDING_DIR);
    let left = std::fs::read_dir(&sending).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);

    // An ephemeral server has nothing to snapshot: a JSON error.
    let app = app_ephemeral();
    let (s, v, _) = call(&app, "POST", "/api/v2/admin/snapshot", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "InvalidArgumentError");
}

fn app_ephemeral() -> Router {
    app(state(ServerConfig::default()))
}

#[tokio::test]
async fn the_dashboard_is_served_without_credentials_and_its_data_only_with_them() {
    let mut config = ServerConfig::default();
    config.auth.tokens = vec!["secret".into()];
    let app = app(state(config));
    let get = |uri: &'static str| {
        let app = app.clone();
        async move {
            app.oneshot(Request::get(uri).body(Body::empty()).expect("request"))
                .await
                .expect("response")
        }
    };
    let resp = get("/dashboard").await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(resp.headers()["location"], "dashboard/");
    for (uri, kind) in [
        ("/dashboard/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let resp = get(uri).await;
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        let h = resp.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{uri}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    // Only the dashboard's own files are public.
    let resp = get("/dashboard/secrets.txt").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (s, v) = call_with(
        &app,
        "GET",
        "/dashboard/secrets.txt",
        ("x-chroma-token", "secret"),
    )
    .await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::NOT_FOUND, json!("NotFoundError"))
    );
    // What the page shows comes from the API, which still wants the token.
    let (s, _) = call_with(&app, "GET", "/api/v2/admin/status", ("x", "y")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call_with(&app, "GET", "/metrics", ("x", "y")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_status_reports_version_uptime_and_counts_to_unscoped_callers() {
    let mut config = ServerConfig::default();
    let yaml = "auth:\n  tokens:\n    - open\n    - {token: team, user_id: alice, tenant: acme}\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).expect("write");
    config.auth = ServerConfig::from_file(&path).expect("parses").auth;
    let app = app(
        AppState::new(Ochre::open(dir.path().join("data")).expect("open"), config).expect("state"),
    );
    let token = ("x-chroma-token", "open");
    let req = Request::post(format!("{BASE}/collections"))
        .header(token.0, token.1)
        .header("content-type", "application/json")
        .body(Body::from(json!({"name": "docs"}).to_string()))
        .expect("request");
    let c = app.clone().oneshot(req).await.expect("response");
    assert_eq!(c.status(), StatusCode::OK);
    let (s, v) = call_with(&app, "GET", "/api/v2/admin/status", token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (v["collections"].clone(), v["records"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(v["embedding_model"], false);
    assert!(
        v["uptime_seconds"].as_f64().is_some_and(|u| u >= 0.0),
        "{v}"
    );
    let data = std::fs::canonicalize(dir.path().join("data")).expect("canonical");
    assert_eq!(v["data_dir"], json!(data.display().to_string()));
    // A token scoped to a tenant does not learn about the whole server.
    let (s, _) = call_with(
        &app,
        "GET",
        "/api/v2/admin/status",
        ("x-chroma-token", "team"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // In memory: no data directory.
    let app = super::app(state(ServerConfig::default()));
    let (s, v) = call_with(&app, "GET", "/api/v2/admin/status", ("x", "y")).await;
    assert_eq!((s, v["data_dir"].clone()), (StatusCode::OK, Value::Null));
}
