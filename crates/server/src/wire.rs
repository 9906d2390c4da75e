//! Chroma's wire types and their conversion to and from the engine's types.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use base64::Engine as _;
use ochre::{
    CollectionConfiguration, CollectionInfo, GetResult, HnswConfig, HnswPatch, Include, Metadata,
    MetadataValue, QueryResult, UpdateMetadata, Where, WhereDocument,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;

/// `response` with `Connection: close`: for answers given before the request's body was read,
/// so the client does not send its next request on a connection whose unread body is in the way
/// (HTTP/1.1 cannot reuse it).
pub(crate) fn closing(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Middleware for request bodies: a request whose `Content-Length` is above
/// `max_payload_size_bytes` is refused with 413 at once, before any of its body is read (and its
/// connection closed), instead of after the body has been streamed up to the limit; every other
/// request gets its [`BodyDeadline`].
pub async fn body_limits(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let max = state.config.max_payload_size_bytes as u64;
    if declared.is_some_and(|n| n > max) {
        return closing(
            ApiError::chroma(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Failed to buffer the request body: length limit exceeded",
            )
            .into_response(),
        );
    }
    let mut req = req;
    req.extensions_mut()
        .insert(BodyDeadline(std::time::Duration::from_secs(
            state.config.http_body_timeout_seconds,
        )));
    next.run(req).await
}

/// How long a request's whole body may take to arrive (`http_body_timeout_seconds`), handed to
/// the body extractor by [`body_limits`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadline(pub std::time::Duration);

/// A JSON request body with Chroma's error behaviour: 415 for other content types, 400 for
/// invalid JSON, 422 for valid JSON of the wrong shape, 413 when too large.
pub struct ChromaJson<T>(pub T);

impl<S, T> FromRequest<S> for ChromaJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ok = ct
                .to_str()
                .map(|s| {
                    s.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .eq_ignore_ascii_case("application/json")
                })
                .unwrap_or(false);
            if !ok {
                return Err(closing(
                    ApiError::chroma(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "Expected request with `Content-Type: application/json`",
                    )
                    .into_response(),
                ));
            }
        }
        let deadline = req.extensions().get::<BodyDeadline>().map(|d| d.0);
        let read = Bytes::from_request(req, state);
        let read = match deadline {
            Some(d) => tokio::time::timeout(d, read).await.map_err(|_| {
                closing(
                    ApiError::chroma(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("The request body did not arrive within {} s", d.as_secs()),
                    )
                    .into_response(),
                )
            })?,
            None => read.await,
        };
        let bytes = read.map_err(|rejection| {
            use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
            let error = match &rejection {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    ApiError::chroma(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Failed to buffer the request body: length limit exceeded",
                    )
                }
                // The client went away, or sent a malformed body.
                _ => ApiError::chroma(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to read the request body: {rejection}"),
                ),
            };
            closing(error.into_response())
        })?;
        // Large bodies are parsed on the blocking pool: a 30 MB batch takes the CPU for long
        // enough to hold up every other request on an async worker.
        let parse = tracing::debug_span!("parse", bytes = bytes.len());
        if bytes.len() >= BLOCKING_PARSE_BYTES {
            return tokio::task::spawn_blocking(move || parse.in_scope(|| decode_body(&bytes)))
                .await
                .map_err(|e| ApiError::internal(format!("request parsing failed: {e}")))
                .and_then(|parsed| parsed)
                .map(ChromaJson)
                .map_err(IntoResponse::into_response);
        }
        parse
            .in_scope(|| decode_body(&bytes))
            .map(ChromaJson)
            .map_err(IntoResponse::into_response)
    }
}

/// Bodies from this size on are parsed off the async workers.
const BLOCKING_PARSE_BYTES: usize = 64 * 1024;

/// A JSON response serialised already (on the blocking pool, by [`JsonBytes::of`]), so the
/// async worker only writes bytes.
pub struct JsonBytes(pub Vec<u8>);

impl JsonBytes {
    /// Serialises `v`.
    ///
    /// # Errors
    /// Internal when `v` does not serialise (a bug).
    pub fn of<T: serde::Serialize>(v: &T) -> Result<JsonBytes, ApiError> {
        let _serialise = tracing::debug_span!("serialise").entered();
        serde_json::to_vec(v)
            .map(JsonBytes)
            .map_err(|e| ApiError::internal(format!("cannot serialise the response: {e}")))
    }
}

impl axum::response::IntoResponse for JsonBytes {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// A request body's bytes as `T`, with [`ChromaJson`]'s errors.
///
/// One pass from bytes to the target type. A body that is not JSON at all is a 400; JSON of the
/// wrong shape is a 422 (as Chroma's extractor answers). Which error comes first can depend on the
/// order of a broken body's fields, so a data error is re-checked for syntax before it is reported
/// as a shape error.
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let syntax = if e.classify() == serde_json::error::Category::Data {
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Err(syntax) => syntax,
                Ok(_) => {
                    // The message without serde_json's " at line L column C" suffix.
                    let text = e.to_string();
                    let suffix = format!(" at line {} column {}", e.line(), e.column());
                    let shape = text.strip_suffix(&suffix).unwrap_or(&text);
                    return ApiError::shape(shape);
                }
            }
        } else {
            e
        };
        ApiError::invalid(format!(
            "Failed to parse the request body as JSON: {syntax}"
        ))
    })
}

// ----- collections -----

#[derive(Deserialize, ToSchema)]
pub struct CreateCollectionBody {
    /// Chroma's name rules (the pattern is the plain form; no `..`, not an IP address; a
    /// `topology+name` form is also accepted).
    #[schema(
        min_length = 3,
        max_length = 512,
        pattern = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub configuration: Option<ConfigurationBody>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub get_or_create: Option<bool>,
}

#[derive(Deserialize, Default, ToSchema)]
pub struct ConfigurationBody {
    #[serde(default, deserialize_with = "hnsw_create")]
    pub hnsw: Option<HnswPatch>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub spann: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub embedding_function: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct ModifyCollectionBody {
    #[serde(default)]
    #[schema(
        min_length = 3,
        max_length = 512,
        pattern = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$"
    )]
    pub new_name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub new_metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub new_configuration: Option<ModifyConfigurationBody>,
}

#[derive(Deserialize, Default, ToSchema)]
pub struct ModifyConfigurationBody {
    /// Only the parameters that may change after creation (no `space`, no `ef_construction`).
    #[serde(default, deserialize_with = "hnsw_update")]
    #[schema(value_type = Option<HnswUpdate>)]
    pub hnsw: Option<HnswPatch>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub spann: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub embedding_function: Option<Value>,
}

/// The OpenAPI schema of a modify request's `hnsw` block (read as an [`HnswPatch`] by
/// [`hnsw_update`]).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documentation only")]
pub struct HnswUpdate {
    ef_search: Option<u64>,
    max_neighbors: Option<u64>,
    num_threads: Option<u64>,
    resize_factor: Option<f64>,
    sync_threshold: Option<u64>,
    batch_size: Option<u64>,
}

/// Deserializes an optional [`HnswPatch`] from a block that may hold only the fields in `accepted`
/// — the field list of Chroma's own type for that block, in its order, so that an unknown or
/// refused field gets the message serde gives for that type: ``unknown field `x`, expected one
/// of `a`, `b`, ...``.
pub(crate) fn patch_with_fields<'de, D: serde::Deserializer<'de>>(
    d: D,
    accepted: &'static [&'static str],
) -> Result<Option<HnswPatch>, D::Error> {
    use serde::de::Error as _;
    let Some(block) = Option::<Map<String, Value>>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(unknown) = block.keys().find(|k| !accepted.contains(&k.as_str())) {
        return Err(D::Error::unknown_field(unknown, accepted));
    }
    serde_json::from_value(Value::Object(block))
        .map(Some)
        .map_err(D::Error::custom)
}

/// A create request's `hnsw` block (Chroma's `CreateHnswConfiguration`).
fn hnsw_create<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<HnswPatch>, D::Error> {
    patch_with_fields(
        d,
        &[
            "space",
            "ef_construction",
            "ef_search",
            "max_neighbors",
            "num_threads",
            "resize_factor",
            "sync_threshold",
            "batch_size",
        ],
    )
}

/// A modify request's `hnsw` block: the parameters that may change after creation (Chroma's
/// `UpdateHnswConfiguration`).
fn hnsw_update<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<HnswPatch>, D::Error> {
    patch_with_fields(
        d,
        &[
            "ef_search",
            "max_neighbors",
            "num_threads",
            "resize_factor",
            "sync_threshold",
            "batch_size",
        ],
    )
}

fn hnsw_from_metadata(m: &Map<String, Value>) -> Result<Option<HnswConfig>, ApiError> {
    let bad = || ApiError::invalid("Failed to parse hnsw parameters from segment metadata");
    let mut cfg = HnswConfig::default();
    let mut any = false;
    for (k, v) in m {
        let Some(param) = k.strip_prefix("hnsw:") else {
            continue;
        };
        any = true;
        let int = || v.as_u64().ok_or_else(bad);
        // Chroma refuses these two below 2 with this message; the ranges of every knob are then
        // checked in one place (`HnswConfig::check`, by the engine).
        match param {
            "space" => cfg.space = v.as_str().ok_or_else(bad)?.parse().map_err(|_| bad())?,
            "construction_ef" => cfg.ef_construction = int()?,
            "search_ef" => cfg.ef_search = int()?,
            "M" => cfg.max_neighbors = int()?,
            "num_threads" => cfg.num_threads = int()?,
            "resize_factor" => cfg.resize_factor = v.as_f64().ok_or_else(bad)?,
            "batch_size" => {
                cfg.batch_size = int()?;
                if cfg.batch_size < 2 {
                    return Err(bad());
                }
            }
            "sync_threshold" => {
                cfg.sync_threshold = int()?;
                if cfg.sync_threshold < 2 {
                    return Err(bad());
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(any.then_some(cfg))
}

/// Resolves the collection configuration from a create request (spec §11.3): `configuration`
/// first, `hnsw:*` metadata where it says nothing, then the schema ([`crate::schema::reconcile`]).
pub fn resolve_configuration(
    body_config: Option<&ConfigurationBody>,
    metadata: Option<&Map<String, Value>>,
    schema: Option<&Value>,
) -> Result<CollectionConfiguration, ApiError> {
    let meta_cfg = metadata.map(hnsw_from_metadata).transpose()?.flatten();
    let mut out = CollectionConfiguration::default();
    let defaults = HnswConfig::default();
    if let Some(c) = body_config {
        if c.hnsw.is_some() && c.spann.is_some() {
            return Err(ApiError::invalid(
                "Multiple vector index configurations provided",
            ));
        }
        out.embedding_function = c.embedding_function.clone().filter(|v| !v.is_null());
        if let Some(h) = &c.hnsw {
            let mut cfg = defaults.clone();
            h.apply(&mut cfg);
            out.hnsw = match meta_cfg {
                Some(m) if cfg == defaults => m,
                _ => cfg,
            };
        } else if let Some(s) = &c.spann {
            let mut cfg = defaults.clone();
            if let Some(space) = s.get("space").and_then(Value::as_str) {
                cfg.space = space.parse().map_err(|e: ochre_types::UnknownSpace| {
                    ApiError::shape(format!("spann.space: {e}"))
                })?;
            }
            out.hnsw = cfg;
        } else if let Some(m) = meta_cfg {
            out.hnsw = m;
        }
    } else if let Some(m) = meta_cfg {
        out.hnsw = m;
    }
    crate::schema::reconcile(out, schema)
}

/// The `hnsw` block of `configuration_json` (spec §11.1: no `num_threads`, no `batch_size`).
fn hnsw_json(h: &HnswConfig) -> Value {
    json!({
        "space": h.space.as_str(),
        "ef_construction": h.ef_construction,
        "max_neighbors": h.max_neighbors,
        "ef_search": h.ef_search,
        "sync_threshold": h.sync_threshold,
        "resize_factor": h.resize_factor,
    })
}

/// The Collection object.
pub fn collection_json(c: &CollectionInfo) -> Value {
    json!({
        "id": c.id.to_string(),
        "name": c.name,
        "configuration_json": {
            "hnsw": hnsw_json(&c.configuration.hnsw),
            "spann": null,
            "embedding_function": c.configuration.embedding_function,
        },
        "schema": crate::schema::Schema::of_collection(&c.configuration).to_json(),
        "metadata": c.metadata.as_ref().map(ochre_metadata_json),
        "dimension": c.dimension,
        "tenant": c.tenant,
        "database": c.database,
        // Every write is indexed before it returns, so the log is always fully "compacted": both
        // count the record operations written (what distributed Chroma's compactions advance).
        "log_position": c.total_ops,
        "version": c.total_ops,
    })
}

pub fn ochre_metadata_json(m: &Metadata) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

/// Parses metadata (object) for collection create/modify; `null` values kept as deletions.
pub fn parse_metadata(field: &str, m: &Map<String, Value>) -> Result<UpdateMetadata, ApiError> {
    let mut out = UpdateMetadata::new();
    for (k, v) in m {
        if v.is_null() {
            out.insert(k.clone(), None);
            continue;
        }
        match MetadataValue::from_json(v) {
            Ok(Some(val)) => {
                out.insert(k.clone(), Some(val));
            }
            Ok(None) => {}
            Err(e) => return Err(ApiError::shape(format!("{field}.{k}: {e}"))),
        }
    }
    Ok(out)
}

// ----- records -----

/// The body of add, upsert and update (documented as [`AddBody`] for the first two).
#[derive(Deserialize, ToSchema)]
pub struct WriteBody {
    pub ids: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Option<UpdateEmbeddingsForm>)]
    pub embeddings: Option<Value>,
    #[serde(default)]
    pub documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    pub uris: Option<Vec<Option<String>>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Option<BTreeMap<String, MetadataValueForm>>>>)]
    pub metadatas: Option<Vec<Option<Map<String, Value>>>>,
}

/// The OpenAPI schema of an add or upsert body: a [`WriteBody`] whose `embeddings` are required
/// (Chroma computes none on the server; Ochre does for a collection whose embedding function is
/// the default MiniLM one when it was started with a model, an extension left out here).
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation only")]
pub struct AddBody {
    ids: Vec<String>,
    embeddings: EmbeddingsForm,
    documents: Option<Vec<Option<String>>>,
    uris: Option<Vec<Option<String>>>,
    /// A `null` value deletes the key (upsert of an existing record).
    metadatas: Option<Vec<Option<BTreeMap<String, MetadataValueForm>>>>,
}

/// The OpenAPI schema of the embeddings of an add or upsert (read by [`decode_embeddings`]):
/// lists of numbers, or base64 strings of little-endian f32, one form per request.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "documentation only")]
pub enum EmbeddingsForm {
    Numbers(Vec<Vec<f32>>),
    Base64(Vec<String>),
}

/// The OpenAPI schema of the embeddings of an update: as [`EmbeddingsForm`], where a `null` keeps
/// the stored embedding.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "documentation only")]
pub enum UpdateEmbeddingsForm {
    Numbers(Vec<Option<Vec<f32>>>),
    Base64(Vec<Option<String>>),
}

/// The OpenAPI schema of a record metadata value: a string, number or boolean, a list of one of
/// them, or `null` (deletes the key in an update or upsert).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "documentation only")]
pub enum MetadataValueForm {
    String(String),
    Number(f64),
    Bool(bool),
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    Bools(Vec<bool>),
    Null,
}

/// Decodes `embeddings`: JSON number arrays or base64 strings of little-endian f32 (one form per
/// request); `null` entries only when `allow_null`.
pub fn decode_embeddings(v: &Value, allow_null: bool) -> Result<Vec<Option<Vec<f32>>>, ApiError> {
    let shape = || {
        ApiError::shape(
            "embeddings: data did not match any variant of untagged enum EmbeddingsPayload",
        )
    };
    let items = v.as_array().ok_or_else(shape)?;
    let base64_form = items.iter().any(Value::is_string);
    let json_form = items.iter().any(Value::is_array);
    if base64_form && json_form {
        return Err(shape());
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Null if allow_null => out.push(None),
            Value::Array(nums) => {
                let mut e = Vec::with_capacity(nums.len());
                for n in nums {
                    let f = n.as_f64().ok_or_else(shape)?;
                    e.push(f as f32);
                }
                out.push(Some(e));
            }
            Value::String(s) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| ApiError::invalid(format!("Invalid base64 string: {e}")))?;
                if !bytes.len().is_multiple_of(4) {
                    return Err(ApiError::invalid(format!(
                        "Invalid byte length: {} bytes cannot be converted to f32 values (must be divisible by 4)",
                        bytes.len()
                    )));
                }
                let e: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if let Some((i, x)) = e.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                    return Err(ApiError::invalid(format!(
                        "Non-finite float value at embedding index {i}: {x}"
                    )));
                }
                out.push(Some(e));
            }
            _ => return Err(shape()),
        }
    }
    Ok(out)
}

/// Converts record metadatas; `null` values are deletions (rejected later for `add`).
pub fn decode_metadatas(
    ms: &[Option<Map<String, Value>>],
) -> Result<Vec<Option<UpdateMetadata>>, ApiError> {
    ms.iter()
        .enumerate()
        .map(|(i, m)| {
            m.as_ref()
                .map(|m| parse_metadata(&format!("metadatas[{i}]"), m))
                .transpose()
        })
        .collect()
}

#[derive(Deserialize, ToSchema)]
pub struct GetBody {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default, rename = "where")]
    #[schema(value_type = Option<Object>)]
    pub where_: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub where_document: Option<Value>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
    #[serde(default)]
    pub include: Option<Vec<IncludeItem>>,
}

#[derive(Deserialize, ToSchema)]
pub struct DeleteBody {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default, rename = "where")]
    #[schema(value_type = Option<Object>)]
    pub where_: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub where_document: Option<Value>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
pub struct QueryBody {
    pub query_embeddings: Vec<Vec<f64>>,
    #[serde(default)]
    pub n_results: Option<u32>,
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default, rename = "where")]
    #[schema(value_type = Option<Object>)]
    pub where_: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub where_document: Option<Value>,
    #[serde(default)]
    pub include: Option<Vec<IncludeItem>>,
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncludeItem {
    Documents,
    Embeddings,
    Metadatas,
    Uris,
    Distances,
}

pub fn include_of(items: &[IncludeItem]) -> Include {
    Include {
        embeddings: items.contains(&IncludeItem::Embeddings),
        documents: items.contains(&IncludeItem::Documents),
        metadatas: items.contains(&IncludeItem::Metadatas),
        uris: items.contains(&IncludeItem::Uris),
        distances: items.contains(&IncludeItem::Distances),
    }
}

pub fn parse_where(v: Option<&Value>) -> Result<Option<Where>, ApiError> {
    v.filter(|v| !v.is_null())
        .map(Where::from_json)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))
}

pub fn parse_where_document(v: Option<&Value>) -> Result<Option<WhereDocument>, ApiError> {
    v.filter(|v| !v.is_null())
        .map(WhereDocument::from_json)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// Metadata as it goes out: a JSON object (f64 precision is what Chroma sends for metadata).
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct OutMetadata(pub Value);

fn out_meta(m: Option<Metadata>) -> Option<OutMetadata> {
    m.map(|m| OutMetadata(ochre_metadata_json(&m)))
}

#[derive(Serialize, ToSchema)]
pub struct GetResponse {
    pub ids: Vec<String>,
    pub embeddings: Option<Vec<Vec<f32>>>,
    pub documents: Option<Vec<Option<String>>>,
    pub uris: Option<Vec<Option<String>>>,
    pub metadatas: Option<Vec<Option<OutMetadata>>>,
    pub include: Vec<IncludeItem>,
}

impl GetResponse {
    pub fn new(r: GetResult, include: Vec<IncludeItem>) -> Self {
        GetResponse {
            ids: r.ids,
            embeddings: r.embeddings,
            documents: r.documents,
            uris: r.uris,
            metadatas: r.metadatas.map(|v| v.into_iter().map(out_meta).collect()),
            include,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct QueryResponse {
    pub ids: Vec<Vec<String>>,
    pub embeddings: Option<Vec<Vec<Vec<f32>>>>,
    pub documents: Option<Vec<Vec<Option<String>>>>,
    pub uris: Option<Vec<Vec<Option<String>>>>,
    pub metadatas: Option<Vec<Vec<Option<OutMetadata>>>>,
    pub distances: Option<Vec<Vec<f32>>>,
    pub include: Vec<IncludeItem>,
}

impl QueryResponse {
    pub fn new(r: QueryResult, include: Vec<IncludeItem>) -> Self {
        QueryResponse {
            ids: r.ids,
            embeddings: r.embeddings,
            documents: r.documents,
            uris: r.uris,
            metadatas: r.metadatas.map(|v| {
                v.into_iter()
                    .map(|q| q.into_iter().map(out_meta).collect())
                    .collect()
            }),
            distances: r.distances,
            include,
        }
    }
}

/// Collection metadata from a create body: null values are a shape error (Chroma: 422).
pub fn create_metadata(m: Option<&Map<String, Value>>) -> Result<Option<Metadata>, ApiError> {
    let Some(m) = m else { return Ok(None) };
    let parsed = parse_metadata("metadata", m)?;
    let mut out = BTreeMap::new();
    for (k, v) in parsed {
        match v {
            Some(v) => {
                out.insert(k, v);
            }
            None => {
                return Err(ApiError::shape(format!(
                    "metadata.{k}: null is not a valid metadata value"
                )))
            }
        }
    }
    Ok(Some(out))
}
