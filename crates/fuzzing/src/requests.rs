//! The request decoders and the checks the routes run before the engine (`ochre_server::fuzzing`).

use ochre::{CollectionConfiguration, WriteKind};
use ochre_server::fuzzing::*;
use ochre_server::{ApiError, ServerConfig};
use ochre_storage::{decode_configuration, encode_configuration};
use serde_json::Value;

/// A request error must be the client's (4xx): a 5xx for a bad body is a bug.
fn client_error<T>(r: Result<T, ApiError>) -> Option<T> {
    match r {
        Ok(t) => Some(t),
        Err(e) => {
            assert!(
                e.status.is_client_error(),
                "a request body got {}: {}",
                e.status,
                e.message
            );
            None
        }
    }
}

/// What a collection with this configuration answers for its schema must read back as itself
/// (the server reads a stored schema with [`Schema::of_collection`], which falls back to the
/// default on a schema it cannot read).
fn schema_round_trip(s: &Schema) {
    let json = s.to_json();
    let back = Schema::parse(&json);
    assert!(back.is_ok(), "schema {json} does not read back");
    if let Ok(back) = back {
        assert_eq!(back.to_json(), json, "schema changes on a round trip");
    }
}

/// Filters and the schema they are checked against, as the record routes do.
fn check_filters(
    config: &CollectionConfiguration,
    where_: Option<&ochre::Where>,
    where_document: bool,
) {
    if let Some(w) = where_ {
        crate::filter::evaluate(w);
    }
    let _ = client_error(Schema::of_collection(config).check_filters(where_, where_document));
}

/// A create request, then what the engine stores of it.
fn create(data: &[u8]) -> Option<CollectionConfiguration> {
    let body = client_error(decode_body::<CreateCollectionBody>(data))?;
    let req = client_error(create_request("default_database", body))?;
    let config = req.configuration;
    let schema = Schema::of_collection(&config);
    schema_round_trip(&schema);
    // The engine refuses knobs out of range; what it accepts is stored and read back.
    if config.hnsw.check().is_ok() {
        let stored = encode_configuration(&config);
        match decode_configuration(&stored) {
            Ok(back) => assert_eq!(back, config, "configuration changes in the store"),
            Err(e) => panic!("stored configuration {stored} does not read back: {e}"),
        }
    }
    Some(config)
}

/// Arbitrary bytes as the body of every route that has one, with the route's own decoding and
/// checks; then, when they are JSON, as each value the wire decoders take.
pub fn requests(data: &[u8]) {
    let config = create(data).unwrap_or_default();
    let max_batch = ServerConfig::default().max_batch_size;

    if let Some(body) = client_error(decode_body::<ModifyCollectionBody>(data)) {
        if let Some(req) = client_error(modify_request(body)) {
            if let Some(patch) = req.hnsw {
                let _ = patch.check();
            }
        }
    }
    for kind in [WriteKind::Add, WriteKind::Upsert, WriteKind::Update] {
        let Some(body) = client_error(decode_body::<WriteBody>(data)) else {
            break;
        };
        if let Some((_batch, keys)) = client_error(write_batch(body, kind, max_batch, false)) {
            let mut schema = Schema::of_collection(&config);
            schema.ensure_keys(&keys);
            schema_round_trip(&schema);
        }
    }
    if let Some(body) = client_error(decode_body::<GetBody>(data)) {
        if let Some((req, _)) = client_error(get_request(body)) {
            check_filters(&config, req.where_.as_ref(), req.where_document.is_some());
        }
    }
    if let Some(body) = client_error(decode_body::<DeleteBody>(data)) {
        if let Some(req) = client_error(delete_request(body)) {
            check_filters(&config, req.where_.as_ref(), req.where_document.is_some());
        }
    }
    if let Some(body) = client_error(decode_body::<QueryBody>(data)) {
        if let Some((req, _)) = client_error(query_request(body, max_batch)) {
            assert!(req.embeddings.len() <= max_batch);
            check_filters(&config, req.where_.as_ref(), req.where_document.is_some());
        }
    }
    let _ = client_error(decode_body::<NameBody>(data));
    let _ = client_error(decode_body::<UpdateTenantBody>(data));
    let _ = client_error(decode_body::<ForkBody>(data));

    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(s) = client_error(Schema::parse(&v)) {
        if s.validate().is_ok() {
            let merged = s.merged_onto(&Schema::of_collection(&config));
            schema_round_trip(&merged);
        }
    }
    let _ = client_error(reconcile(CollectionConfiguration::default(), Some(&v)));
    if let Value::Object(m) = &v {
        let _ = client_error(parse_metadata("metadata", m));
        let _ = client_error(create_metadata(Some(m)));
        let _ = client_error(resolve_configuration(None, Some(m), None));
    }
    for allow_null in [false, true] {
        let _ = client_error(decode_embeddings(&v, allow_null));
    }
    if let Ok(ms) = serde_json::from_value::<Vec<Option<serde_json::Map<String, Value>>>>(v.clone())
    {
        if let Some(ms) = client_error(decode_metadatas(&ms)) {
            let _ = key_types(&ms);
        }
    }
    if let Some(Some(w)) = client_error(parse_where(Some(&v))) {
        check_filters(&config, Some(&w), false);
    }
    let _ = client_error(parse_where_document(Some(&v)));
    if let Some(req) = client_error(parse_search(&v, max_batch)) {
        assert_eq!(req.plans.len(), req.selects.len());
        for p in &req.plans {
            check_filters(&config, p.filter.as_ref(), false);
            let _ = result_bound(p, 1000);
            assert!(
                p.group_by.is_none() || p.rank.is_some(),
                "group_by without rank accepted"
            );
        }
    }
}
