//! Record and collection metadata values, their JSON form and their validation rules.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

/// One metadata value. Arrays are non-empty and homogeneous.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    BoolArray(Vec<bool>),
    IntArray(Vec<i64>),
    FloatArray(Vec<f64>),
    StrArray(Vec<String>),
    /// A sparse vector (Chroma's `{"#type": "sparse_vector", ...}` object). Boxed: it is rare,
    /// and inline it would make every value 72 bytes instead of 32 (records hold many values).
    Sparse(Box<SparseVector>),
}

/// A sparse vector: strictly ascending term indices, one finite value per index, and optionally
/// the token each index stands for (Chroma's BM25 embedding function sends them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
    pub tokens: Option<Vec<String>>,
}

/// Why a sparse vector is malformed; the messages are Chroma's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SparseError {
    #[error("Sparse vector indices, values, and tokens (when present) must have the same length")]
    Lengths,
    #[error("Sparse vector indices must be sorted in strictly ascending order (no duplicates)")]
    Unsorted,
    #[error("Sparse vector values must be finite")]
    NotFinite,
    #[error("Sparse vector indices and values must be arrays of numbers")]
    Shape,
}

impl SparseVector {
    /// Checks Chroma's rules: equal lengths, strictly ascending indices, finite values.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), SparseError> {
        if self.indices.len() != self.values.len()
            || self
                .tokens
                .as_ref()
                .is_some_and(|t| t.len() != self.indices.len())
        {
            return Err(SparseError::Lengths);
        }
        if self.indices.windows(2).any(|w| w[0] >= w[1]) {
            return Err(SparseError::Unsorted);
        }
        if self.values.iter().any(|v| !v.is_finite()) {
            return Err(SparseError::NotFinite);
        }
        Ok(())
    }

    /// The vector as Chroma writes it: `{"#type": "sparse_vector", "indices", "values"[, "tokens"]}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("#type".into(), Value::String("sparse_vector".into()));
        m.insert(
            "indices".into(),
            Value::Array(
                self.indices
                    .iter()
                    .map(|i| Value::Number((*i).into()))
                    .collect(),
            ),
        );
        m.insert(
            "values".into(),
            Value::Array(
                self.values
                    .iter()
                    .map(|v| Number::from_f64(f32_as_f64(*v)).map_or(Value::Null, Value::Number))
                    .collect(),
            ),
        );
        if let Some(t) = &self.tokens {
            m.insert(
                "tokens".into(),
                Value::Array(t.iter().map(|s| Value::String(s.clone())).collect()),
            );
        }
        Value::Object(m)
    }

    /// Parses a JSON object with `indices` and `values` (and optionally `tokens` and a
    /// `#type` of `sparse_vector`); the shape only (see [`SparseVector::validate`]).
    ///
    /// Returns `None` when the object is not shaped like a sparse vector at all.
    pub fn from_json(m: &Map<String, Value>) -> Option<Result<SparseVector, SparseError>> {
        match m.get("#type") {
            Some(Value::String(t)) if t == "sparse_vector" => {}
            None => {}
            _ => return None,
        }
        let (Some(Value::Array(ix)), Some(Value::Array(vals))) =
            (m.get("indices"), m.get("values"))
        else {
            return None;
        };
        if m.keys()
            .any(|k| !matches!(k.as_str(), "#type" | "indices" | "values" | "tokens"))
        {
            return None;
        }
        let parse = || -> Result<SparseVector, SparseError> {
            let indices = ix
                .iter()
                .map(|v| v.as_u64().and_then(|i| u32::try_from(i).ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or(SparseError::Shape)?;
            let values = vals
                .iter()
                .map(|v| v.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or(SparseError::Shape)?;
            let tokens = match m.get("tokens") {
                None | Some(Value::Null) => None,
                Some(Value::Array(t)) => Some(
                    t.iter()
                        .map(|s| s.as_str().map(str::to_owned))
                        .collect::<Option<Vec<String>>>()
                        .ok_or(SparseError::Shape)?,
                ),
                Some(_) => return Err(SparseError::Shape),
            };
            Ok(SparseVector {
                indices,
                values,
                tokens,
            })
        };
        Some(parse())
    }
}

/// The f64 nearest to `v`'s shortest decimal form (`0.1f32` → `0.1`, not
/// `0.10000000149011612`), as Chroma's f32 serialisation prints it.
pub fn f32_as_f64(v: f32) -> f64 {
    let text = v.to_string();
    text.parse().unwrap_or(f64::from(v))
}

/// A record's (or collection's) metadata: keys in sorted order.
pub type Metadata = BTreeMap<String, MetadataValue>;

/// Read access to one record's metadata, whatever its representation in memory (filters take
/// this, so an engine may hold metadata more compactly than a [`Metadata`] map).
pub trait MetadataLookup {
    /// The value under `key`, if any.
    fn value(&self, key: &str) -> Option<&MetadataValue>;
}

impl MetadataLookup for Metadata {
    fn value(&self, key: &str) -> Option<&MetadataValue> {
        self.get(key)
    }
}

/// Metadata as given to `update`/`upsert`: `None` deletes the key.
pub type UpdateMetadata = BTreeMap<String, Option<MetadataValue>>;

/// Compares an integer with a float exactly, as mathematical numbers.
///
/// Returns `None` only when `f` is NaN.
pub fn compare_int_float(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // 2^63 is exactly representable; every i64 is below it and at or above -2^63.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    // `t` is integral and within i64 range, so the cast is exact.
    let ti = t as i64;
    match i.cmp(&ti) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - t)),
        other => Some(other),
    }
}

impl MetadataValue {
    /// The value as JSON (ints stay integers, floats keep a fraction or exponent).
    pub fn to_json(&self) -> Value {
        fn float(f: f64) -> Value {
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        match self {
            MetadataValue::Bool(b) => Value::Bool(*b),
            MetadataValue::Int(i) => Value::Number((*i).into()),
            MetadataValue::Float(f) => float(*f),
            MetadataValue::Str(s) => Value::String(s.clone()),
            MetadataValue::BoolArray(v) => {
                Value::Array(v.iter().map(|b| Value::Bool(*b)).collect())
            }
            MetadataValue::IntArray(v) => {
                Value::Array(v.iter().map(|i| Value::Number((*i).into())).collect())
            }
            MetadataValue::FloatArray(v) => Value::Array(v.iter().map(|f| float(*f)).collect()),
            MetadataValue::StrArray(v) => {
                Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
            }
            MetadataValue::Sparse(v) => v.to_json(),
        }
    }

    /// Parses one JSON value. `Ok(None)` is an empty array (Chroma drops the key).
    ///
    /// # Errors
    /// A description of the shape problem (null, object, nested or mixed arrays, integers that fit
    /// neither i64 nor f64).
    pub fn from_json(v: &Value) -> Result<Option<MetadataValue>, MetadataError> {
        Ok(Some(match v {
            Value::Bool(b) => MetadataValue::Bool(*b),
            Value::Number(n) => number(n)?,
            Value::String(s) => MetadataValue::Str(s.clone()),
            Value::Array(items) => {
                let Some(first) = items.first() else {
                    return Ok(None);
                };
                match first {
                    Value::String(_) => MetadataValue::StrArray(
                        items
                            .iter()
                            .map(|x| x.as_str().map(str::to_owned).ok_or_else(mixed))
                            .collect::<Result<_, _>>()?,
                    ),
                    Value::Bool(_) => MetadataValue::BoolArray(
                        items
                            .iter()
                            .map(|x| x.as_bool().ok_or_else(mixed))
                            .collect::<Result<_, _>>()?,
                    ),
                    Value::Number(_) => {
                        let mut ints = Vec::with_capacity(items.len());
                        let mut all_int = true;
                        for x in items {
                            let Value::Number(n) = x else {
                                return Err(mixed());
                            };
                            match number(n)? {
                                MetadataValue::Int(i) => ints.push(MetadataValue::Int(i)),
                                other => {
                                    all_int = false;
                                    ints.push(other)
                                }
                            }
                        }
                        if all_int {
                            MetadataValue::IntArray(
                                ints.iter()
                                    .filter_map(|v| match v {
                                        MetadataValue::Int(i) => Some(*i),
                                        _ => None,
                                    })
                                    .collect(),
                            )
                        } else {
                            MetadataValue::FloatArray(
                                ints.iter()
                                    .filter_map(|v| match v {
                                        MetadataValue::Int(i) => Some(*i as f64),
                                        MetadataValue::Float(f) => Some(*f),
                                        _ => None,
                                    })
                                    .collect(),
                            )
                        }
                    }
                    _ => return Err(MetadataError::BadArrayElement),
                }
            }
            Value::Null => return Err(MetadataError::Null),
            Value::Object(m) => match SparseVector::from_json(m) {
                Some(Ok(v)) => MetadataValue::Sparse(Box::new(v)),
                Some(Err(e)) => return Err(MetadataError::Sparse(e)),
                None => return Err(MetadataError::Nested),
            },
        }))
    }

    /// True for array values.
    pub fn is_array(&self) -> bool {
        matches!(
            self,
            MetadataValue::BoolArray(_)
                | MetadataValue::IntArray(_)
                | MetadataValue::FloatArray(_)
                | MetadataValue::StrArray(_)
        )
    }
}

/// Why a JSON value is not metadata, or metadata breaks a rule. The messages are Chroma's where
/// Chroma has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error("metadata must be an object")]
    NotAnObject,
    #[error("null is not a metadata value here")]
    Null,
    #[error("nested objects are not metadata values")]
    Nested,
    #[error("arrays may only hold strings, booleans or numbers")]
    BadArrayElement,
    #[error("array elements must all have the same type")]
    MixedArray,
    #[error("number out of range")]
    NumberOutOfRange,
    /// The value of `key` is malformed.
    #[error("{key}: {source}")]
    Key {
        key: String,
        #[source]
        source: Box<MetadataError>,
    },
    #[error("Metadata key cannot be empty")]
    EmptyKey,
    #[error("Metadata key cannot start with '#' or '$': {0}")]
    ReservedStart(String),
    #[error("Metadata key is reserved: {0}")]
    ReservedKey(String),
    #[error("Metadata value for {0} must be finite")]
    NotFinite(String),
    #[error("Metadata list for {0} must be non-empty")]
    EmptyList(String),
    #[error("{0}")]
    Sparse(SparseError),
    /// A sparse vector under `key` breaks a rule.
    #[error("Invalid sparse vector for key {key}: {error}")]
    BadSparse { key: String, error: SparseError },
}

fn mixed() -> MetadataError {
    MetadataError::MixedArray
}

fn number(n: &Number) -> Result<MetadataValue, MetadataError> {
    if let Some(i) = n.as_i64() {
        Ok(MetadataValue::Int(i))
    } else {
        match n.as_f64() {
            Some(f) if f.is_finite() => Ok(MetadataValue::Float(f)),
            _ => Err(MetadataError::NumberOutOfRange),
        }
    }
}

/// Metadata as a JSON object.
pub fn metadata_to_json(m: &Metadata) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<Map<String, Value>>(),
    )
}

/// Parses a JSON object into metadata; `null` values become `None` (delete) entries, empty arrays
/// are dropped.
///
/// # Errors
/// [`MetadataError::Key`] naming the key whose value has the wrong shape, or
/// [`MetadataError::NotAnObject`].
pub fn metadata_from_json(v: &Value) -> Result<UpdateMetadata, MetadataError> {
    let Value::Object(map) = v else {
        return Err(MetadataError::NotAnObject);
    };
    let mut out = UpdateMetadata::new();
    for (k, v) in map {
        if v.is_null() {
            out.insert(k.clone(), None);
            continue;
        }
        let value = MetadataValue::from_json(v).map_err(|e| MetadataError::Key {
            key: k.clone(),
            source: Box::new(e),
        })?;
        if let Some(value) = value {
            out.insert(k.clone(), Some(value));
        }
    }
    Ok(out)
}

/// Checks the key and value rules for one record's metadata.
///
/// Keys must be non-empty, must not start with `#` or `$`, and must not start with the internal
/// prefix `chroma:`; floats must be finite; arrays must be non-empty.
///
/// # Errors
/// The first violation ([`MetadataError::EmptyKey`], [`MetadataError::ReservedStart`],
/// [`MetadataError::ReservedKey`], [`MetadataError::NotFinite`], [`MetadataError::EmptyList`]).
pub fn validate_record_metadata<'a>(
    entries: impl IntoIterator<Item = (&'a String, Option<&'a MetadataValue>)>,
) -> Result<(), MetadataError> {
    for (k, v) in entries {
        if k.is_empty() {
            return Err(MetadataError::EmptyKey);
        }
        if k.starts_with('#') || k.starts_with('$') {
            return Err(MetadataError::ReservedStart(k.clone()));
        }
        if k.starts_with("chroma:") {
            return Err(MetadataError::ReservedKey(k.clone()));
        }
        let empty = match v {
            Some(MetadataValue::BoolArray(a)) => a.is_empty(),
            Some(MetadataValue::IntArray(a)) => a.is_empty(),
            Some(MetadataValue::FloatArray(a)) => a.is_empty(),
            Some(MetadataValue::StrArray(a)) => a.is_empty(),
            Some(
                MetadataValue::Bool(_)
                | MetadataValue::Int(_)
                | MetadataValue::Float(_)
                | MetadataValue::Str(_)
                | MetadataValue::Sparse(_),
            )
            | None => false,
        };
        if let Some(MetadataValue::Sparse(sv)) = v {
            sv.validate().map_err(|error| MetadataError::BadSparse {
                key: k.clone(),
                error,
            })?;
        }
        let finite = match v {
            Some(MetadataValue::Float(f)) => f.is_finite(),
            Some(MetadataValue::FloatArray(a)) => a.iter().all(|f| f.is_finite()),
            _ => true,
        };
        if !finite {
            return Err(MetadataError::NotFinite(k.clone()));
        }
        if empty {
            return Err(MetadataError::EmptyList(k.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn int_float_compare_is_exact() {
        assert_eq!(compare_int_float(2, 2.0), Some(Ordering::Equal));
        assert_eq!(compare_int_float(2, 2.5), Some(Ordering::Less));
        assert_eq!(compare_int_float(3, 2.5), Some(Ordering::Greater));
        assert_eq!(compare_int_float(-2, -2.5), Some(Ordering::Greater));
        assert_eq!(compare_int_float(i64::MAX, 9.3e18), Some(Ordering::Less));
        assert_eq!(
            compare_int_float(i64::MIN, -9.3e18),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_int_float(i64::MAX, 9_223_372_036_854_775_807.0),
            Some(Ordering::Less)
        );
        assert_eq!(compare_int_float(1, f64::NAN), None);
    }

    #[test]
    fn json_number_kinds_are_kept() {
        let m = metadata_from_json(
            &serde_json::json!({"i": 1, "f": 1.0, "a": [2, 1.5], "e": [], "n": null}),
        )
        .expect("valid");
        assert_eq!(m["i"], Some(MetadataValue::Int(1)));
        assert_eq!(m["f"], Some(MetadataValue::Float(1.0)));
        assert_eq!(m["a"], Some(MetadataValue::FloatArray(vec![2.0, 1.5])));
        assert!(!m.contains_key("e"));
        assert_eq!(m["n"], None);
        assert!(metadata_from_json(&serde_json::json!({"x": [1, "a"]})).is_err());
        assert!(metadata_from_json(&serde_json::json!({"x": {"y": 1}})).is_err());
        assert!(metadata_from_json(&serde_json::json!({"x": [[1]]})).is_err());
    }

    fn value() -> impl Strategy<Value = MetadataValue> {
        prop_oneof![
            any::<bool>().prop_map(MetadataValue::Bool),
            any::<i64>().prop_map(MetadataValue::Int),
            (-1e300f64..1e300).prop_map(MetadataValue::Float),
            ".*".prop_map(MetadataValue::Str),
            proptest::collection::vec(any::<bool>(), 1..4).prop_map(MetadataValue::BoolArray),
            proptest::collection::vec(any::<i64>(), 1..4).prop_map(MetadataValue::IntArray),
            proptest::collection::vec(-1e300f64..1e300, 1..4).prop_map(MetadataValue::FloatArray),
            proptest::collection::vec(".*", 1..4).prop_map(MetadataValue::StrArray),
            proptest::collection::btree_map(any::<u32>(), -1e30f32..1e30, 0..4).prop_map(|m| {
                MetadataValue::Sparse(Box::new(SparseVector {
                    indices: m.keys().copied().collect(),
                    values: m.values().copied().collect(),
                    tokens: None,
                }))
            }),
        ]
    }

    proptest! {
        #[test]
        fn json_round_trip_is_identity(m in proptest::collection::btree_map("[a-z]{1,4}", value(), 0..6)) {
            let text = serde_json::to_string(&metadata_to_json(&m)).expect("serializable");
            let back: Value = serde_json::from_str(&text).expect("parses");
            let parsed = metadata_from_json(&back).expect("valid");
            let parsed: Metadata = parsed.into_iter().map(|(k, v)| (k, v.expect("no nulls"))).collect();
            prop_assert_eq!(parsed, m);
        }

        #[test]
        fn int_float_compare_agrees_with_wide_arithmetic(i in any::<i64>(), f in -1e19f64..1e19) {
            // i128 holds every i64, and f's integral part when |f| < 1e19.
            let t = f.trunc() as i128;
            let expected = (i as i128).cmp(&t).then_with(|| if f - f.trunc() > 0.0 { Ordering::Less } else if f - f.trunc() < 0.0 { Ordering::Greater } else { Ordering::Equal });
            prop_assert_eq!(compare_int_float(i, f), Some(expected));
        }
    }
}
