//! The Search API's wire format: `POST .../collections/{id}/search` bodies parsed into engine
//! plans with Chroma's messages, and the column-wise response (spec §10).

use ochre::search::{
    Aggregate, AggregateKey, GroupBy, Knn, KnnQuery, Rank, SearchPlan, SearchResult, Select,
};
use ochre_types::{f32_as_f64, metadata_to_json, SparseVector, Where};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

/// A parsed request: its plans, each plan's selected keys as the response lists them, and the
/// `$knn`s whose query arrived as text (their `query` a placeholder until the server embeds them,
/// [`crate::embed::resolve_text_queries`]).
#[derive(Debug)]
pub struct SearchRequest {
    pub plans: Vec<SearchPlan>,
    pub selects: Vec<Vec<String>>,
    pub texts: Vec<TextQuery>,
}

/// A `$knn` whose `query` is a string (an Ochre extension: Chroma's clients embed text before
/// they send it). Its plan holds an empty dense query in its place.
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    /// The plan's index in the request.
    pub plan: usize,
    /// The `$knn`'s position among its plan's `$knn`s, in [`Rank::knns`] order (depth first,
    /// left to right: the order the parser meets them).
    pub knn: usize,
    /// The `$knn`'s key (`#embedding` for the dense index, else a sparse-indexed metadata key).
    pub key: String,
    pub text: String,
    /// Where it is in the body, for error messages (`searches[0].rank`).
    pub path: String,
}

/// The text `$knn`s met while parsing one plan.
struct Texts<'a> {
    plan: usize,
    /// `$knn`s of the plan parsed so far, text or not.
    seen: usize,
    out: &'a mut Vec<TextQuery>,
}

const RANK_OPS: &str =
    "`$abs`, `$div`, `$exp`, `$knn`, `$log`, `$max`, `$min`, `$mul`, `$sub`, `$sum`, `$val`";
const READ_LEVELS: [&str; 3] = ["index_and_wal", "index_only", "index_and_bounded_wal"];

/// The special keys of `select` and aggregates.
const DOCUMENT: &str = "#document";
const EMBEDDING: &str = "#embedding";
const METADATA: &str = "#metadata";
const SCORE: &str = "#score";

fn shape(path: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::shape(format!("{path}: {message}"))
}

fn invalid(path: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("Validation error: {path}: {message}"))
}

/// Parses a search body.
///
/// # Errors
/// 422 for a body of the wrong shape (unknown operators, wrong types), 400 for the validation
/// failures Chroma reports as such (group_by rules, sparse queries), with Chroma's messages.
pub fn parse(body: &Value, max_searches: usize) -> Result<SearchRequest, ApiError> {
    let Value::Object(top) = body else {
        return Err(ApiError::shape(
            "invalid type: expected a search request object",
        ));
    };
    for k in top.keys() {
        if k != "searches" && k != "read_level" {
            return Err(ApiError::shape(format!(
                "unknown field `{k}`, expected `searches` or `read_level`"
            )));
        }
    }
    match top.get("read_level") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if READ_LEVELS.contains(&s.as_str()) => {}
        Some(v) => {
            return Err(ApiError::shape(format!(
                "read_level: unknown variant `{}`, expected one of `index_and_wal`, `index_only`, `index_and_bounded_wal`",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            )))
        }
    }
    let searches = match top.get("searches") {
        Some(Value::Array(s)) => s,
        Some(_) => {
            return Err(ApiError::shape(
                "searches: invalid type: expected a sequence",
            ))
        }
        None => return Err(ApiError::shape("missing field `searches`")),
    };
    if searches.len() > max_searches {
        return Err(ApiError::invalid(format!(
            "Batch size {} exceeds maximum batch size {max_searches}",
            searches.len()
        )));
    }
    // Every payload's shape is checked (422) before any validation rule (400), as Chroma's
    // deserialisation runs before its validation.
    let mut plans = Vec::with_capacity(searches.len());
    let mut selects = Vec::with_capacity(searches.len());
    let mut invalid = Vec::new();
    let mut texts = Vec::new();
    for (i, s) in searches.iter().enumerate() {
        let mut t = Texts {
            plan: i,
            seen: 0,
            out: &mut texts,
        };
        let (plan, select) = payload(s, &format!("searches[{i}]"), &mut invalid, &mut t)?;
        plans.push(plan);
        selects.push(select);
    }
    if let Some(e) = invalid.into_iter().next() {
        return Err(e);
    }
    Ok(SearchRequest {
        plans,
        selects,
        texts,
    })
}

/// Validation failures (400) found while parsing, reported once every payload's shape is known
/// to be right.
type Invalid = Vec<ApiError>;

fn payload(
    v: &Value,
    path: &str,
    bad: &mut Invalid,
    texts: &mut Texts<'_>,
) -> Result<(SearchPlan, Vec<String>), ApiError> {
    let Value::Object(m) = v else {
        return Err(shape(
            path,
            "invalid type: expected a search payload object",
        ));
    };
    let mut plan = SearchPlan::default();
    for (k, v) in m {
        let here = format!("{path}.{k}");
        match k.as_str() {
            "filter" => plan.filter = filter(v, &here)?,
            "rank" => {
                plan.rank = match v {
                    Value::Null => None,
                    Value::Object(o) if o.is_empty() => None,
                    v => Some(rank(v, &here, bad, texts)?),
                }
            }
            "group_by" => plan.group_by = group_by(v, &here, bad)?,
            "limit" => (plan.offset, plan.limit) = limit(v, &here)?,
            "select" => {}
            other => {
                return Err(shape(
                    path,
                    format!("unknown field `{other}`, expected one of `filter`, `rank`, `group_by`, `limit`, `select`"),
                ))
            }
        }
    }
    if plan.group_by.is_some() && plan.rank.is_none() {
        bad.push(invalid(
            &format!("{path}.__all__"),
            "group_by requires rank expression to be specified",
        ));
    }
    let (select, keys) = select(m.get("select"), &format!("{path}.select"))?;
    plan.select = select;
    Ok((plan, keys))
}

fn filter(v: &Value, path: &str) -> Result<Option<Where>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) if o.is_empty() => Ok(None),
        v => Where::from_json(v).map(Some).map_err(|e| shape(path, e)),
    }
}

fn number(v: &Value, path: &str) -> Result<f64, ApiError> {
    v.as_f64()
        .ok_or_else(|| shape(path, format!("invalid type: {v}, expected a number")))
}

fn count(v: &Value, path: &str) -> Result<u32, ApiError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| shape(path, format!("invalid value: {v}, expected a u32")))
}

fn limit(v: &Value, path: &str) -> Result<(u32, Option<u32>), ApiError> {
    match v {
        Value::Null => Ok((0, None)),
        Value::Object(m) => {
            let mut offset = 0;
            let mut limit = None;
            for (k, v) in m {
                match k.as_str() {
                    "offset" if !v.is_null() => offset = count(v, &format!("{path}.offset"))?,
                    "limit" if !v.is_null() => limit = Some(count(v, &format!("{path}.limit"))?),
                    "offset" | "limit" => {}
                    other => {
                        return Err(shape(
                            path,
                            format!("unknown field `{other}`, expected `offset` or `limit`"),
                        ))
                    }
                }
            }
            Ok((offset, limit))
        }
        _ => Err(shape(path, "invalid type: expected a limit object")),
    }
}

fn string_list(v: &Value, path: &str) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = v else {
        return Err(shape(path, "invalid type: expected a sequence of strings"));
    };
    items
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| shape(path, format!("invalid type: {s}, expected a string")))
        })
        .collect()
}

/// The selected fields, and the keys as the response lists them: the special keys first in a
/// fixed order, then metadata fields in byte order, each once.
fn select(v: Option<&Value>, path: &str) -> Result<(Select, Vec<String>), ApiError> {
    let keys = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => {
            if let Some(k) = m.keys().find(|k| *k != "keys") {
                return Err(shape(path, format!("unknown field `{k}`, expected `keys`")));
            }
            match m.get("keys") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => string_list(v, &format!("{path}.keys"))?,
            }
        }
        Some(_) => return Err(shape(path, "invalid type: expected a select object")),
    };
    let mut s = Select::default();
    for k in &keys {
        match k.as_str() {
            DOCUMENT => s.document = true,
            EMBEDDING => s.embedding = true,
            METADATA => s.metadata = true,
            SCORE => s.score = true,
            field => s.fields.push(field.to_owned()),
        }
    }
    s.fields.sort();
    s.fields.dedup();
    let mut listed = Vec::new();
    for (on, name) in [
        (s.document, DOCUMENT),
        (s.embedding, EMBEDDING),
        (s.metadata, METADATA),
        (s.score, SCORE),
    ] {
        if on {
            listed.push(name.to_owned());
        }
    }
    listed.extend(s.fields.iter().cloned());
    Ok((s, listed))
}

fn group_by(v: &Value, path: &str, bad: &mut Invalid) -> Result<Option<GroupBy>, ApiError> {
    let m = match v {
        Value::Null => return Ok(None),
        Value::Object(m) => m,
        _ => return Err(shape(path, "invalid type: expected a group_by object")),
    };
    if let Some(k) = m.keys().find(|k| *k != "keys" && *k != "aggregate") {
        return Err(shape(
            path,
            format!("unknown field `{k}`, expected `keys` or `aggregate`"),
        ));
    }
    let keys = match m.get("keys") {
        None | Some(Value::Null) => None,
        Some(v) => Some(string_list(v, &format!("{path}.keys"))?),
    };
    let aggregate = match m.get("aggregate") {
        None | Some(Value::Null) => None,
        Some(v) => Some(aggregate(v, &format!("{path}.aggregate"))?),
    };
    let (keys, aggregate) = match (keys, aggregate) {
        (None, None) => return Ok(None),
        (Some(k), None) if k.is_empty() => return Ok(None),
        (Some(k), Some(Ok(a))) if !k.is_empty() => (k, a),
        (_, Some(Err(e))) => {
            bad.push(e);
            return Ok(None);
        }
        _ => {
            bad.push(invalid(
                path,
                "group_by keys and aggregate must both be specified or both be omitted",
            ));
            return Ok(None);
        }
    };
    if keys.iter().any(|k| k.starts_with('#')) {
        bad.push(invalid(
            path,
            "group_by keys must be metadata fields (cannot use #score, #document, #embedding, or #metadata)",
        ));
        return Ok(None);
    }
    Ok(Some(GroupBy { keys, aggregate }))
}

/// The aggregate; the inner error is a validation failure (400), the outer a shape one (422).
fn aggregate(v: &Value, path: &str) -> Result<Result<Aggregate, ApiError>, ApiError> {
    let Value::Object(m) = v else {
        return Err(shape(path, "invalid type: expected an aggregate object"));
    };
    let (descending, body) = match (m.len(), m.iter().next()) {
        (1, Some((k, body))) if k == "$min_k" => (false, body),
        (1, Some((k, body))) if k == "$max_k" => (true, body),
        (1, Some((k, _))) => {
            return Err(shape(
                path,
                format!("unknown variant `{k}`, expected `$min_k` or `$max_k`"),
            ))
        }
        _ => return Err(shape(path, "expected exactly one of `$min_k` or `$max_k`")),
    };
    let Value::Object(b) = body else {
        return Err(shape(
            path,
            "invalid type: expected an object with `keys` and `k`",
        ));
    };
    let keys = match b.get("keys") {
        Some(v) => string_list(v, &format!("{path}.keys"))?,
        None => return Err(shape(path, "missing field `keys`")),
    };
    let k = match b.get("k") {
        Some(v) => count(v, &format!("{path}.k"))?,
        None => return Err(shape(path, "missing field `k`")),
    };
    let parent = path.trim_end_matches(".aggregate");
    if keys.is_empty() {
        return Ok(Err(invalid(parent, "aggregate keys must not be empty")));
    }
    if k == 0 {
        return Ok(Err(invalid(parent, "aggregate k must be greater than 0")));
    }
    let keys = keys
        .into_iter()
        .map(|k| match k.as_str() {
            SCORE => Ok(AggregateKey::Score),
            DOCUMENT | EMBEDDING | METADATA => Err(invalid(
                parent,
                "aggregate keys must be metadata fields or #score (cannot use #document, #embedding, or #metadata)",
            )),
            _ => Ok(AggregateKey::Field(k)),
        })
        .collect::<Result<_, _>>();
    Ok(keys.map(|keys| Aggregate {
        descending,
        keys,
        k,
    }))
}

fn rank(v: &Value, path: &str, bad: &mut Invalid, texts: &mut Texts<'_>) -> Result<Rank, ApiError> {
    let Value::Object(m) = v else {
        return Err(shape(
            path,
            "invalid type: expected a rank expression object",
        ));
    };
    let (op, arg) = match (m.len(), m.iter().next()) {
        (1, Some(e)) => e,
        _ => {
            return Err(shape(
                path,
                format!("a rank expression has exactly one operator, one of {RANK_OPS}"),
            ))
        }
    };
    // Operands are parsed depth first, left to right: the order `Rank::knns` walks, which
    // `TextQuery::knn` counts in.
    let list =
        |arg: &Value, bad: &mut Invalid, texts: &mut Texts<'_>| -> Result<Vec<Rank>, ApiError> {
            let Value::Array(items) = arg else {
                return Err(shape(
                    path,
                    format!("{op}: invalid type: expected a sequence"),
                ));
            };
            items.iter().map(|e| rank(e, path, bad, texts)).collect()
        };
    let pair = |arg: &Value,
                bad: &mut Invalid,
                texts: &mut Texts<'_>|
     -> Result<(Box<Rank>, Box<Rank>), ApiError> {
        let (Some(l), Some(r)) = (arg.get("left"), arg.get("right")) else {
            return Err(shape(path, format!("{op}: expected `left` and `right`")));
        };
        let l = rank(l, path, bad, texts)?;
        Ok((Box::new(l), Box::new(rank(r, path, bad, texts)?)))
    };
    Ok(match op.as_str() {
        "$knn" => Rank::Knn(knn(arg, path, bad, texts)?),
        "$val" => Rank::Val(number(arg, path)? as f32),
        "$sum" => Rank::Sum(list(arg, bad, texts)?),
        "$mul" => Rank::Mul(list(arg, bad, texts)?),
        "$max" => Rank::Max(list(arg, bad, texts)?),
        "$min" => Rank::Min(list(arg, bad, texts)?),
        "$sub" => {
            let (l, r) = pair(arg, bad, texts)?;
            Rank::Sub(l, r)
        }
        "$div" => {
            let (l, r) = pair(arg, bad, texts)?;
            Rank::Div(l, r)
        }
        "$abs" => Rank::Abs(Box::new(rank(arg, path, bad, texts)?)),
        "$exp" => Rank::Exp(Box::new(rank(arg, path, bad, texts)?)),
        "$log" => Rank::Log(Box::new(rank(arg, path, bad, texts)?)),
        other => {
            return Err(shape(
                path,
                format!("unknown variant `{other}`, expected one of {RANK_OPS}"),
            ))
        }
    })
}

fn knn(v: &Value, path: &str, bad: &mut Invalid, texts: &mut Texts<'_>) -> Result<Knn, ApiError> {
    let Value::Object(m) = v else {
        return Err(shape(path, "$knn: invalid type: expected an object"));
    };
    for k in m.keys() {
        if !matches!(
            k.as_str(),
            "query" | "key" | "limit" | "default" | "return_rank"
        ) {
            return Err(shape(
                path,
                format!("$knn: unknown field `{k}`, expected one of `query`, `key`, `limit`, `default`, `return_rank`"),
            ));
        }
    }
    let ordinal = texts.seen;
    texts.seen += 1;
    let mut text = None;
    let query = match m.get("query") {
        Some(Value::Array(xs)) => {
            let q: Vec<f32> = xs
                .iter()
                .map(|x| number(x, path).map(|f| f as f32))
                .collect::<Result<_, _>>()?;
            if q.iter().any(|x| !x.is_finite()) {
                bad.push(invalid(
                    path,
                    "Invalid KNN query: embeddings must not contain NaN or Infinity values",
                ));
            }
            KnnQuery::Dense(q)
        }
        Some(Value::Object(o)) => match SparseVector::from_json(o) {
            Some(Ok(sv)) => {
                if let Err(e) = sv.validate() {
                    bad.push(invalid(
                        path,
                        format!("Invalid sparse vector in KNN query: {e}"),
                    ));
                }
                KnnQuery::Sparse(sv)
            }
            Some(Err(e)) => {
                bad.push(invalid(
                    path,
                    format!("Invalid sparse vector in KNN query: {e}"),
                ));
                KnnQuery::Sparse(SparseVector::default())
            }
            None => return Err(shape(path, "$knn.query: expected a dense or sparse vector")),
        },
        // Embedded by the server once the collection is known (its embedding functions).
        Some(Value::String(s)) => {
            text = Some(s.clone());
            KnnQuery::Dense(Vec::new())
        }
        Some(_) => return Err(shape(path, "$knn.query: expected a dense or sparse vector")),
        None => return Err(shape(path, "$knn: missing field `query`")),
    };
    let key = match m.get("key") {
        None | Some(Value::Null) => EMBEDDING.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(shape(
                path,
                format!("$knn.key: invalid type: {v}, expected a string"),
            ))
        }
    };
    let limit = match m.get("limit") {
        None | Some(Value::Null) => 16,
        Some(v) => count(v, &format!("{path}.$knn.limit"))?,
    };
    let default = match m.get("default") {
        None | Some(Value::Null) => None,
        Some(v) => Some(number(v, path)? as f32),
    };
    let return_rank = match m.get("return_rank") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(shape(
                path,
                format!("$knn.return_rank: invalid type: {v}, expected a boolean"),
            ))
        }
    };
    if let Some(text) = text {
        texts.out.push(TextQuery {
            plan: texts.plan,
            knn: ordinal,
            key: key.clone(),
            text,
            path: path.to_owned(),
        });
    }
    Ok(Knn {
        query,
        key,
        limit,
        default,
        return_rank,
    })
}

/// The most records a plan can return from a collection of `n`: its limit, and for a ranked
/// plan the sum of its `$knn` limits (a rank's support never leaves the union of its `$knn`
/// hits).
pub fn result_bound(p: &SearchPlan, n: usize) -> usize {
    let ranked = p.rank.as_ref().map_or(n, |r| {
        r.knns()
            .iter()
            .fold(0usize, |a, k| a.saturating_add(k.limit as usize))
    });
    p.limit.map_or(n, |l| l as usize).min(ranked).min(n)
}

/// The nearest-neighbour work of a plan over a collection of `n`: each `$knn` costs the
/// candidates it keeps (`min(limit, n)`, at least one search).
pub fn knn_cost(p: &SearchPlan, n: usize) -> usize {
    p.rank.as_ref().map_or(0, |r| {
        r.knns().iter().fold(0usize, |a, k| {
            a.saturating_add((k.limit as usize).min(n).max(1))
        })
    })
}

/// The response: one entry per plan in every column.
#[derive(Debug, Default, Serialize)]
pub struct SearchResponse {
    pub ids: Vec<Vec<String>>,
    pub documents: Vec<Option<Vec<Option<String>>>>,
    pub embeddings: Vec<Option<Vec<Option<Vec<f32>>>>>,
    pub metadatas: Vec<Option<Vec<Option<Value>>>>,
    pub scores: Vec<Option<Vec<f64>>>,
    pub select: Vec<Vec<String>>,
}

impl SearchResponse {
    pub fn new(results: Vec<SearchResult>, selects: Vec<Vec<String>>) -> Self {
        let mut out = SearchResponse::default();
        for r in results {
            out.ids.push(r.ids);
            out.documents.push(r.documents);
            out.embeddings.push(r.embeddings);
            out.metadatas.push(r.metadatas.map(|ms| {
                ms.into_iter()
                    .map(|m| m.map(|m| metadata_to_json(&m)))
                    .collect()
            }));
            out.scores
                .push(r.scores.map(|s| s.into_iter().map(f32_as_f64).collect()));
        }
        out.select = selects;
        out
    }
}
