//! Route handlers: parse the wire form, call the engine on the blocking pool, shape the answer.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ochre::{
    Collection, CollectionId, CreateCollection, DeleteRequest, GetRequest, ModifyCollection, Ochre,
    QueryRequest, RecordBatch, WriteKind,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody, ErrorName};
use crate::schema::{self, Schema};
use crate::wire::*;
use crate::AppState;

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Runs engine work off the async runtime.
pub(crate) async fn blocking<T, F>(state: &AppState, f: F) -> ApiResult<T>
where
    F: FnOnce(&Ochre) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    let db = state.db.clone();
    // The engine's stage spans open under the request's.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| f(&db)))
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
}

/// Runs `f` on the blocking pool with collection `id` of database `t`/`d` (404 when it is not
/// there).
async fn in_collection<T, F>(
    state: &AppState,
    (t, d): (String, String),
    id: CollectionId,
    f: F,
) -> ApiResult<T>
where
    F: FnOnce(Collection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    blocking(state, move |db| f(db.collection_in(&t, &d, id)?)).await
}

/// The collection id of a record route, after the database name check.
fn collection_path(d: &str, id: &str) -> ApiResult<CollectionId> {
    check_db_name(d)?;
    collection_id(id)
}

fn check_db_name(d: &str) -> ApiResult<()> {
    if d.chars().count() < 3 {
        return Err(ApiError::invalid(
            "database name must be at least 3 characters",
        ));
    }
    Ok(())
}

fn collection_id(s: &str) -> ApiResult<CollectionId> {
    Uuid::parse_str(s)
        .map(CollectionId)
        .map_err(|_| ApiError::invalid("Collection ID is not a valid UUIDv4"))
}

pub(crate) fn paging(q: &HashMap<String, String>) -> ApiResult<(Option<u32>, u32)> {
    let parse = |k: &str| -> ApiResult<Option<u32>> {
        q.get(k)
            .map(|v| {
                v.parse::<u32>().map_err(|e| {
                    ApiError::invalid(format!("Failed to deserialize query string: {k}: {e}"))
                })
            })
            .transpose()
    };
    Ok((parse("limit")?, parse("offset")?.unwrap_or(0)))
}

// ----- system -----

#[utoipa::path(get, path = "/api/v2/heartbeat", responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn heartbeat() -> Json<Value> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Json(json!({ "nanosecond heartbeat": nanos }))
}

#[utoipa::path(get, path = "/api/v2/version", responses((status = 200, description = "see the Chroma API v2 specification", body = String, content_type = "application/json"), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn version() -> Json<Value> {
    Json(json!("1.0.0"))
}

#[utoipa::path(get, path = "/api/v2/healthcheck", responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn healthcheck() -> Json<Value> {
    Json(json!({"is_executor_ready": true, "is_log_client_ready": true}))
}

#[utoipa::path(get, path = "/api/v2/pre-flight-checks", responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn preflight(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"max_batch_size": state.config.max_batch_size, "supports_base64_encoding": true}))
}

#[utoipa::path(get, path = "/api/v2/auth/identity", responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn identity(identity: Option<axum::Extension<crate::auth::Identity>>) -> Json<Value> {
    let i = identity.map_or_else(crate::auth::Identity::anonymous, |e| e.0);
    Json(json!({"user_id": i.user_id, "tenant": i.tenant, "databases": i.databases}))
}

#[utoipa::path(post, path = "/api/v2/reset", responses((status = 200, description = "see the Chroma API v2 specification", body = bool, content_type = "application/json"), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 403, description = "reset is disabled (`allow_reset` is off)", body = ErrorBody)))]
pub async fn reset(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    if !state.config.allow_reset {
        return Err(ApiError::chroma(
            StatusCode::FORBIDDEN,
            "Reset is disabled by config",
        ));
    }
    blocking(&state, |db| db.reset().map_err(ApiError::from)).await?;
    Ok(Json(json!(true)))
}

pub async fn v1_gone() -> Response {
    ApiError::new(
        StatusCode::GONE,
        ErrorName::Unimplemented,
        "The v1 API is deprecated. Please use /v2 apis",
    )
    .into_response()
}

/// A known route with a method it does not have: 405 with the JSON error body every other error
/// has.
pub async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorName::Chroma,
        "method not allowed on this route",
    )
    .into_response()
}

pub async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, ErrorName::NotFound, "no such route").into_response()
}

// ----- tenants and databases -----

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct NameBody {
    /// At least 3 characters; a database name also follows the collection name rules.
    #[schema(min_length = 3)]
    name: String,
}

#[utoipa::path(post, path = "/api/v2/tenants", request_body = NameBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 409, description = "the name is taken", body = ErrorBody)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    ChromaJson(body): ChromaJson<NameBody>,
) -> ApiResult<Json<Value>> {
    blocking(&state, move |db| {
        db.create_tenant(&body.name).map_err(Into::into)
    })
    .await?;
    Ok(Json(json!({})))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}", params(("tenant" = String, Path, description = "tenant name")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    Path(t): Path<String>,
) -> ApiResult<Json<Value>> {
    let info = blocking(&state, move |db| db.get_tenant(&t).map_err(Into::into)).await?;
    Ok(Json(
        json!({"name": info.name, "resource_name": info.resource_name}),
    ))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct UpdateTenantBody {
    resource_name: String,
}

#[utoipa::path(patch, path = "/api/v2/tenants/{tenant}", params(("tenant" = String, Path, description = "tenant name")), request_body = UpdateTenantBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn update_tenant(
    State(state): State<AppState>,
    Path(t): Path<String>,
    ChromaJson(body): ChromaJson<UpdateTenantBody>,
) -> ApiResult<Json<Value>> {
    blocking(&state, move |db| {
        db.update_tenant(&t, Some(body.resource_name))
            .map_err(Into::into)
    })
    .await?;
    Ok(Json(json!({})))
}

fn database_json(d: &ochre::DatabaseInfo) -> Value {
    json!({"id": d.id.to_string(), "name": d.name, "tenant": d.tenant})
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases", params(("tenant" = String, Path, description = "tenant name")), request_body = NameBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 409, description = "the name is taken", body = ErrorBody)))]
pub async fn create_database(
    State(state): State<AppState>,
    Path(t): Path<String>,
    ChromaJson(body): ChromaJson<NameBody>,
) -> ApiResult<Json<Value>> {
    blocking(&state, move |db| {
        db.create_database(&t, &body.name)
            .map(|_| ())
            .map_err(Into::into)
    })
    .await?;
    Ok(Json(json!({})))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases", params(("tenant" = String, Path, description = "tenant name")), responses((status = 200, description = "see the Chroma API v2 specification", body = Vec<Object>), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn list_databases(
    State(state): State<AppState>,
    Path(t): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let (limit, offset) = paging(&q)?;
    let dbs = blocking(&state, move |db| Ok(db.list_databases(&t, limit, offset))).await?;
    Ok(Json(Value::Array(dbs.iter().map(database_json).collect())))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases/{database}", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn get_database(
    State(state): State<AppState>,
    Path((t, d)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    check_db_name(&d)?;
    let info = blocking(&state, move |db| {
        db.get_database(&t, &d).map_err(Into::into)
    })
    .await?;
    Ok(Json(database_json(&info)))
}

#[utoipa::path(delete, path = "/api/v2/tenants/{tenant}/databases/{database}", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn delete_database(
    State(state): State<AppState>,
    Path((t, d)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(&state, move |db| {
        db.delete_database(&t, &d).map_err(Into::into)
    })
    .await?;
    Ok(Json(json!({})))
}

// ----- collections -----

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases/{database}/collections", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name")), responses((status = 200, description = "see the Chroma API v2 specification", body = Vec<Object>), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn list_collections(
    State(state): State<AppState>,
    Path((t, d)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    check_db_name(&d)?;
    let (limit, offset) = paging(&q)?;
    let list = blocking(&state, move |db| {
        Ok(db.list_collections(&t, &d, limit, offset))
    })
    .await?;
    Ok(Json(Value::Array(
        list.iter().map(collection_json).collect(),
    )))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases/{database}/collections_count", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name")), responses((status = 200, description = "see the Chroma API v2 specification", body = u64, content_type = "application/json"), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn count_collections(
    State(state): State<AppState>,
    Path((t, d)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    check_db_name(&d)?;
    let n = blocking(&state, move |db| Ok(db.count_collections(&t, &d))).await?;
    Ok(Json(json!(n)))
}

/// The engine request of a create body: everything the route checks before the engine sees it
/// (database name `d`, configuration, schema, metadata), in the order it checks them.
pub fn create_request(d: &str, body: CreateCollectionBody) -> ApiResult<CreateCollection> {
    let configuration = resolve_configuration(
        body.configuration.as_ref(),
        body.metadata.as_ref(),
        body.schema.as_ref(),
    )?;
    check_db_name(d)?;
    let metadata = create_metadata(body.metadata.as_ref())?;
    Ok(CreateCollection {
        name: body.name,
        metadata,
        configuration,
        get_or_create: body.get_or_create.unwrap_or(false),
    })
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name")), request_body = CreateCollectionBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 409, description = "the name is taken", body = ErrorBody)))]
pub async fn create_collection(
    State(state): State<AppState>,
    Path((t, d)): Path<(String, String)>,
    ChromaJson(body): ChromaJson<CreateCollectionBody>,
) -> ApiResult<Json<Value>> {
    let req = create_request(&d, body)?;
    let info = blocking(&state, move |db| {
        db.create_collection(&t, &d, req).map_err(Into::into)
    })
    .await?;
    Ok(Json(collection_json(&info)))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection name")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn get_collection(
    State(state): State<AppState>,
    Path((t, d, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    check_db_name(&d)?;
    let info = blocking(&state, move |db| {
        db.get_collection(&t, &d, &name).map_err(Into::into)
    })
    .await?;
    Ok(Json(collection_json(&info)))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/by-id/{collection_id}", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn get_collection_by_id(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    check_db_name(&d)?;
    let id = Uuid::parse_str(&id).map(CollectionId).map_err(|_| {
        ApiError::invalid(
            "Validation error: collection_id: Invalid collection ID format, expected UUID",
        )
    })?;
    let info = blocking(&state, move |db| {
        db.get_collection_by_id(&t, &d, id).map_err(Into::into)
    })
    .await?;
    Ok(Json(collection_json(&info)))
}

#[utoipa::path(get, path = "/api/v2/collections/{crn}", params(("crn" = String, Path, description = "tenant_resource_name:database:collection")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn get_collection_by_crn(
    State(state): State<AppState>,
    Path(crn): Path<String>,
) -> ApiResult<Json<Value>> {
    let parts: Vec<&str> = crn.split(':').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(ApiError::invalid("Validation error: crn: CRN must be in the format <tenant_resource_name>:<database_name>:<collection_name> with non-empty parts"));
    }
    let (t, d, name) = (
        parts[0].to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
    );
    let info = blocking(&state, move |db| {
        let tenant = db
            .list_tenants()
            .into_iter()
            .find(|x| x.resource_name.as_deref() == Some(t.as_str()))
            .map_or(t.clone(), |x| x.name);
        db.get_collection(&tenant, &d, &name).map_err(Into::into)
    })
    .await?;
    Ok(Json(collection_json(&info)))
}

/// The engine request of a modify body, as the route checks it.
pub fn modify_request(body: ModifyCollectionBody) -> ApiResult<ModifyCollection> {
    let mut req = ModifyCollection {
        new_name: body.new_name,
        ..Default::default()
    };
    if let Some(m) = &body.new_metadata {
        req.new_metadata = Some(parse_metadata("new_metadata", m)?);
    }
    if let Some(c) = body.new_configuration {
        if c.hnsw.is_some() && c.spann.is_some() {
            return Err(ApiError::invalid(
                "Multiple vector index configurations provided",
            ));
        }
        req.hnsw = c.hnsw;
        req.embedding_function = c.embedding_function.filter(|v| !v.is_null());
    }
    Ok(req)
}

#[utoipa::path(put, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = ModifyCollectionBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 409, description = "the name is taken", body = ErrorBody)))]
pub async fn modify_collection(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<ModifyCollectionBody>,
) -> ApiResult<Json<Value>> {
    let id = collection_path(&d, &id)?;
    let req = modify_request(body)?;
    blocking(&state, move |db| {
        db.modify_collection(&t, &d, id, req).map_err(Into::into)
    })
    .await?;
    Ok(Json(json!({})))
}

#[utoipa::path(delete, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection name")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn delete_collection(
    State(state): State<AppState>,
    Path((t, d, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    check_db_name(&d)?;
    blocking(&state, move |db| {
        db.delete_collection(&t, &d, &name).map_err(Into::into)
    })
    .await?;
    Ok(Json(json!({})))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct ForkBody {
    #[schema(
        min_length = 3,
        max_length = 512,
        pattern = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$"
    )]
    new_name: String,
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/fork", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = ForkBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 409, description = "the name is taken", body = ErrorBody)))]
pub async fn fork_collection(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<ForkBody>,
) -> ApiResult<Json<Value>> {
    let id = collection_path(&d, &id)?;
    let info = blocking(&state, move |db| {
        db.fork_collection(&t, &d, id, &body.new_name)
            .map_err(Into::into)
    })
    .await?;
    Ok(Json(collection_json(&info)))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/fork_count", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn fork_count(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let id = collection_path(&d, &id)?;
    let info = in_collection(&state, (t, d), id, |c| Ok(c.info())).await?;
    Ok(Json(json!({"count": info.forks})))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/indexing_status", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn indexing_status(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let id = collection_path(&d, &id)?;
    let info = in_collection(&state, (t, d), id, |c| Ok(c.info())).await?;
    // Ochre indexes synchronously: every acknowledged operation is indexed.
    Ok(Json(json!({
        "op_indexing_progress": 1.0,
        "num_unindexed_ops": 0,
        "num_indexed_ops": info.total_ops,
        "total_ops": info.total_ops
    })))
}

/// Searches per request whose filter reads documents (each may scan them).
const MAX_DOCUMENT_FILTERED_SEARCHES: usize = 64;

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/search", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = Object, responses((status = 200, description = "one column entry per search payload (spec §10.4)", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 422, description = "a body that is not a search request", body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<Value>,
) -> ApiResult<JsonBytes> {
    let id = collection_path(&d, &id)?;
    let max_searches = state.config.max_batch_size;
    let max_hits = state.config.max_query_results;
    let model = state.embedder.clone();
    in_collection(&state, (t, d), id, move |c| {
        // Parsing compiles the filters' regexes: on the blocking pool, like the engine call.
        let mut req = crate::search::parse(&body, max_searches)?;
        let configuration = c.info().configuration;
        let schema = Schema::of_collection(&configuration);
        let mut document_filters = 0;
        for p in &req.plans {
            if let Some(w) = &p.filter {
                schema.check_filters(Some(w), false)?;
                document_filters += usize::from(w.reads_document());
            }
        }
        if document_filters > MAX_DOCUMENT_FILTERED_SEARCHES {
            return Err(ApiError::invalid(format!(
                "{document_filters} searches filter on documents; at most \
                 {MAX_DOCUMENT_FILTERED_SEARCHES} per request may"
            )));
        }
        // A small request must not cost unbounded memory or time: the records all its searches
        // may return, and the nearest-neighbour candidates its `$knn`s keep, are each capped like
        // a query's hits.
        let n = c.count()?;
        let hits = req.plans.iter().fold(0usize, |acc, p| {
            acc.saturating_add(crate::search::result_bound(p, n))
        });
        let work = req.plans.iter().fold(0usize, |acc, p| {
            acc.saturating_add(crate::search::knn_cost(p, n))
        });
        if hits.max(work) > max_hits {
            return Err(ApiError::invalid(format!(
                "Search would return up to {hits} records and rank {work} nearest-neighbour \
                 candidates over {} searches; the maximum is {max_hits} (max_query_results): \
                 page with `limit`, lower `$knn` limits or send fewer searches",
                req.plans.len()
            )));
        }
        // Text `$knn` queries (an Ochre extension) are embedded last, once every cheaper check
        // has passed: at most `max_batch_size` per request.
        crate::embed::resolve_text_queries(
            &mut req,
            &configuration,
            model.as_deref(),
            max_searches,
        )?;
        let results = c.search(&req.plans)?;
        JsonBytes::of(&crate::search::SearchResponse::new(results, req.selects))
    })
    .await
}

// ----- records -----

/// Refuses filters on indexes the collection's schema disables (spec §8.5).
fn check_filters(
    c: &Collection,
    where_: Option<&ochre::Where>,
    where_document: bool,
) -> ApiResult<()> {
    if where_.is_none() && !where_document {
        return Ok(());
    }
    Schema::of_collection(&c.info().configuration).check_filters(where_, where_document)
}

/// The record batch of a write body, as the write routes check it before they look the collection
/// up, and the metadata key/type pairs it carries (for the schema's key evolution). An add or
/// upsert without embeddings passes here: once the collection is known, the server embeds its
/// documents or refuses it (`embed::prepare_write`).
///
/// `server_embeds`: whether the server has an embedding model. Without one, an add or upsert
/// without embeddings is refused here, first, exactly as before server-side embedding existed;
/// with one, the refusal waits for the collection's embedding function (`embed::prepare_write`).
pub fn write_batch(
    body: WriteBody,
    kind: WriteKind,
    max_batch_size: usize,
    server_embeds: bool,
) -> ApiResult<(RecordBatch, BTreeSet<(String, schema::ValueType)>)> {
    if body.ids.len() > max_batch_size {
        return Err(ApiError::invalid(format!(
            "Batch size {} exceeds maximum batch size {max_batch_size}",
            body.ids.len(),
        )));
    }
    let embeddings = match (&body.embeddings, kind) {
        (None | Some(Value::Null), WriteKind::Add | WriteKind::Upsert) if !server_embeds => {
            return Err(ApiError::shape("missing field `embeddings`"));
        }
        (None | Some(Value::Null), _) => None,
        (Some(v), _) => Some(decode_embeddings(v, matches!(kind, WriteKind::Update))?),
    };
    let metadatas = body
        .metadatas
        .as_deref()
        .map(decode_metadatas)
        .transpose()?;
    let keys = metadatas
        .as_deref()
        .map(schema::key_types)
        .unwrap_or_default();
    let batch = RecordBatch {
        ids: body.ids,
        embeddings,
        documents: body.documents,
        uris: body.uris,
        metadatas,
    };
    Ok((batch, keys))
}

/// Writes records to `collection` as the write routes do once a body is decoded, for callers in
/// the same process that hold the engine (an import into a data directory): `metadatas` (JSON,
/// as in a request) checked and converted into the batch's, BM25 vectors filled in, the schema's
/// keys evolved, in one engine write — without the JSON and base64 of a request. `model` embeds
/// documents sent without embeddings, as the server's own model does.
///
/// # Errors
/// The route's errors for the same batch (Chroma's names and messages).
pub fn write_records(
    collection: &ochre::Collection,
    kind: WriteKind,
    mut batch: RecordBatch,
    metadatas: Option<&[Option<serde_json::Map<String, Value>>]>,
    model: Option<&ochre_embed::MiniLm>,
) -> ApiResult<()> {
    batch.metadatas = metadatas.map(decode_metadatas).transpose()?;
    let mut keys = batch
        .metadatas
        .as_deref()
        .map(schema::key_types)
        .unwrap_or_default();
    crate::embed::prepare_write(
        &mut batch,
        kind,
        &collection.info().configuration,
        model,
        &mut keys,
    )?;
    collection
        .write_evolving_schema(kind, batch, |config| {
            if keys.is_empty() {
                return None;
            }
            let mut s = Schema::of_collection(config);
            s.ensure_keys(&keys).then(|| s.to_json())
        })
        .map_err(Into::into)
}

async fn write(
    state: AppState,
    (t, d, id): (String, String, String),
    body: WriteBody,
    kind: WriteKind,
) -> ApiResult<()> {
    let id = collection_path(&d, &id)?;
    let max_batch_size = state.config.max_batch_size;
    let model = state.embedder.clone();
    blocking(&state, move |db| {
        // Decoding (base64 or JSON numbers, metadata) is CPU work sized by the batch: done here,
        // on the blocking pool, before the collection is looked up (bad input is reported first).
        let (mut batch, mut keys) = write_batch(body, kind, max_batch_size, model.is_some())?;
        let c = db.collection_in(&t, &d, id)?;
        // What the client left to the server (documents to embed, BM25 vectors to fill in), or
        // the refusal of an add/upsert without embeddings; at most `max_batch_size` documents.
        crate::embed::prepare_write(
            &mut batch,
            kind,
            &c.info().configuration,
            model.as_deref(),
            &mut keys,
        )?;
        // Key evolution (spec §11.4): new key/type pairs join the schema, in the write's commit.
        c.write_evolving_schema(kind, batch, |config| {
            if keys.is_empty() {
                return None;
            }
            let mut s = Schema::of_collection(config);
            s.ensure_keys(&keys).then(|| s.to_json())
        })
        .map_err(Into::into)
    })
    .await
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/add", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = AddBody, responses((status = 201, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn add(
    State(state): State<AppState>,
    Path(p): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<WriteBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    write(state, p, body, WriteKind::Add).await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/upsert", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = AddBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn upsert(
    State(state): State<AppState>,
    Path(p): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<WriteBody>,
) -> ApiResult<Json<Value>> {
    write(state, p, body, WriteKind::Upsert).await?;
    Ok(Json(json!({})))
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/update", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = WriteBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Path(p): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<WriteBody>,
) -> ApiResult<Json<Value>> {
    write(state, p, body, WriteKind::Update).await?;
    Ok(Json(json!({})))
}

/// The engine request of a delete body, as the route checks it.
pub fn delete_request(body: DeleteBody) -> ApiResult<DeleteRequest> {
    Ok(DeleteRequest {
        ids: body.ids,
        where_: parse_where(body.where_.as_ref())?,
        where_document: parse_where_document(body.where_document.as_ref())?,
        limit: body.limit,
    })
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/delete", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = DeleteBody, responses((status = 200, description = "see the Chroma API v2 specification", body = Object), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<DeleteBody>,
) -> ApiResult<Json<Value>> {
    let id = collection_path(&d, &id)?;
    let req = delete_request(body)?;
    let n = in_collection(&state, (t, d), id, move |c| {
        check_filters(&c, req.where_.as_ref(), req.where_document.is_some())?;
        c.delete(req).map_err(Into::into)
    })
    .await?;
    Ok(Json(json!({"deleted": n})))
}

#[utoipa::path(get, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/count", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), responses((status = 200, description = "see the Chroma API v2 specification", body = u64, content_type = "application/json"), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn count(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let id = collection_path(&d, &id)?;
    if let Some(level) = q.get("read_level") {
        if !matches!(
            level.as_str(),
            "index_and_wal" | "index_only" | "index_and_bounded_wal"
        ) {
            return Err(ApiError::invalid(format!(
                "Failed to deserialize query string: read_level: unknown variant `{level}`"
            )));
        }
    }
    let n = in_collection(&state, (t, d), id, |c| c.count().map_err(Into::into)).await?;
    Ok(Json(json!(n)))
}

/// The engine request of a get body, as the route checks it, and the fields to answer with.
pub fn get_request(body: GetBody) -> ApiResult<(GetRequest, Vec<IncludeItem>)> {
    let include_items = body
        .include
        .unwrap_or_else(|| vec![IncludeItem::Documents, IncludeItem::Metadatas]);
    let req = GetRequest {
        ids: body.ids,
        where_: parse_where(body.where_.as_ref())?,
        where_document: parse_where_document(body.where_document.as_ref())?,
        limit: body.limit,
        offset: body.offset,
        include: include_of(&include_items),
    };
    Ok((req, include_items))
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/get", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = GetBody, responses((status = 200, description = "see the Chroma API v2 specification", body = GetResponse), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn get_records(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<GetBody>,
) -> ApiResult<JsonBytes> {
    let id = collection_path(&d, &id)?;
    let (req, include_items) = get_request(body)?;
    let r = in_collection(&state, (t, d), id, move |c| {
        check_filters(&c, req.where_.as_ref(), req.where_document.is_some())?;
        let r = c.get(req)?;
        JsonBytes::of(&GetResponse::new(r, include_items))
    })
    .await?;
    Ok(r)
}

/// The engine request of a query body, as the route checks it before it knows the collection
/// (at most `max_batch_size` query embeddings), and the fields to answer with.
pub fn query_request(
    body: QueryBody,
    max_batch_size: usize,
) -> ApiResult<(QueryRequest, Vec<IncludeItem>)> {
    let include_items = body.include.unwrap_or_else(|| {
        vec![
            IncludeItem::Documents,
            IncludeItem::Metadatas,
            IncludeItem::Distances,
        ]
    });
    let embeddings: Vec<Vec<f32>> = body
        .query_embeddings
        .iter()
        .map(|q| q.iter().map(|x| *x as f32).collect())
        .collect();
    if embeddings.len() > max_batch_size {
        return Err(ApiError::invalid(format!(
            "Batch size {} exceeds maximum batch size {max_batch_size}",
            embeddings.len()
        )));
    }
    let req = QueryRequest {
        embeddings,
        n_results: body.n_results.unwrap_or(10),
        ids: body.ids,
        where_: parse_where(body.where_.as_ref())?,
        where_document: parse_where_document(body.where_document.as_ref())?,
        include: include_of(&include_items),
    };
    Ok((req, include_items))
}

#[utoipa::path(post, path = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/query", params(("tenant" = String, Path, description = "tenant name"), ("database" = String, Path, description = "database name"), ("collection_id" = String, Path, description = "collection id (UUID)")), request_body = QueryBody, responses((status = 200, description = "see the Chroma API v2 specification", body = QueryResponse), (status = 400, description = "see the Chroma API v2 specification", body = ErrorBody), (status = 404, description = "see the Chroma API v2 specification", body = ErrorBody)))]
pub async fn query(
    State(state): State<AppState>,
    Path((t, d, id)): Path<(String, String, String)>,
    ChromaJson(body): ChromaJson<QueryBody>,
) -> ApiResult<JsonBytes> {
    let id = collection_path(&d, &id)?;
    // A small request must not cost unbounded memory: the queries are capped like a write batch
    // (`query_request`), and the hits of the response (below, once the collection's size is
    // known) by `max_query_results`.
    let (req, include_items) = query_request(body, state.config.max_batch_size)?;
    let max_hits = state.config.max_query_results;
    let r = in_collection(&state, (t, d), id, move |c| {
        check_filters(&c, req.where_.as_ref(), req.where_document.is_some())?;
        let per_query = (req.n_results as usize).min(c.count()?);
        let hits = req.embeddings.len().saturating_mul(per_query);
        if hits > max_hits {
            return Err(ApiError::invalid(format!(
                "Query would return {hits} results ({} query embeddings x {per_query}); the \
                 maximum is {max_hits} (max_query_results): send fewer embeddings per request \
                 or ask for fewer results",
                req.embeddings.len()
            )));
        }
        let r = c.query(req)?;
        JsonBytes::of(&QueryResponse::new(r, include_items))
    })
    .await?;
    Ok(r)
}
