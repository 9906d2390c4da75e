//! Whole requests through the server's router, against an ephemeral database: the decoders, the
//! routes' checks and the engine behind them, answering what a client sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Method, Request};
use ochre::{CreateCollection, Metadata, MetadataValue, Ochre, RecordBatch};
use ochre_server::{AppState, ServerConfig};
use tower::ServiceExt as _;

const TENANT: &str = "default_tenant";
const DATABASE: &str = "default_database";

struct World {
    runtime: tokio::runtime::Runtime,
    db: Ochre,
    app: axum::Router,
    inputs: AtomicU64,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime: {e}"));
        let db = Ochre::ephemeral();
        let config = ServerConfig {
            // Small enough that inputs near the limits stay cheap.
            max_batch_size: 64,
            max_query_results: 1000,
            ..Default::default()
        };
        let state = AppState::new(db.clone(), config).unwrap_or_else(|e| panic!("state: {e}"));
        World {
            runtime,
            db,
            app: ochre_server::app(state),
            inputs: AtomicU64::new(0),
        }
    })
}

/// The records every input's collection starts with.
fn seed(db: &Ochre, name: &str) -> String {
    let info = db
        .create_collection(
            TENANT,
            DATABASE,
            CreateCollection {
                name: name.to_owned(),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let meta = |i: i64| -> Option<Metadata> {
        Some(
            [
                ("s".to_owned(), MetadataValue::Str(format!("v{i}"))),
                ("i".to_owned(), MetadataValue::Int(i)),
                ("f".to_owned(), MetadataValue::Float(i as f64 / 2.0)),
                ("b".to_owned(), MetadataValue::Bool(i % 2 == 0)),
                ("sa".to_owned(), MetadataValue::StrArray(vec!["a".into()])),
            ]
            .into_iter()
            .collect(),
        )
    };
    let batch = RecordBatch::new(
        vec!["a".into(), "b".into(), "c".into()],
        vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.5, 0.5, 1.0],
        ],
    )
    .documents(vec![
        Some("the quick brown fox".into()),
        None,
        Some("".into()),
    ])
    .metadatas(vec![meta(1), meta(2), None]);
    let collection = db
        .collection(info.id)
        .unwrap_or_else(|e| panic!("collection {name}: {e}"));
    collection
        .add(batch)
        .unwrap_or_else(|e| panic!("seed {name}: {e}"));
    info.id.to_string()
}

/// The first byte picks the route (create, modify, add, upsert, update, delete, get, query,
/// fork, create database, search); the rest is the JSON body, sent to a fresh collection of three
/// records. No answer may be a 5xx. Everything the input created is deleted afterwards.
pub fn routes(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let name = format!("fuzz{}", w.inputs.fetch_add(1, Ordering::Relaxed));
    let id = seed(&w.db, &name);
    let db_path = format!("/api/v2/tenants/{TENANT}/databases/{DATABASE}");
    let coll = format!("{db_path}/collections/{id}");
    let (method, path) = match route % 11 {
        0 => (Method::POST, format!("{db_path}/collections")),
        1 => (Method::PUT, coll),
        2 => (Method::POST, format!("{coll}/add")),
        3 => (Method::POST, format!("{coll}/upsert")),
        4 => (Method::POST, format!("{coll}/update")),
        5 => (Method::POST, format!("{coll}/delete")),
        6 => (Method::POST, format!("{coll}/get")),
        7 => (Method::POST, format!("{coll}/query")),
        8 => (Method::POST, format!("{coll}/fork")),
        10 => (Method::POST, format!("{coll}/search")),
        _ => (Method::POST, format!("/api/v2/tenants/{TENANT}/databases")),
    };
    let request = Request::builder()
        .method(method.clone())
        .uri(&path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap_or_else(|e| panic!("request: {e}"));
    let (status, answer) = w.runtime.block_on(async {
        let response = w
            .app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (status, bytes)
    });
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    for c in w.db.list_collections(TENANT, DATABASE, None, 0) {
        let _ = w.db.delete_collection(TENANT, DATABASE, &c.name);
    }
    for d in w.db.list_databases(TENANT, None, 0) {
        if d.name != DATABASE {
            let _ = w.db.delete_database(TENANT, &d.name);
        }
    }
}
