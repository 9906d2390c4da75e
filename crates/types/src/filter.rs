//! The filter language: `where` (metadata, plus the special keys `#document` and `#id`) and
//! `where_document`, parsed from Chroma's JSON grammar and evaluated against one record.
//!
//! Parsing follows Chroma 1.5.9: one key per object, `$and`/`$or` of any length (an empty `$and`
//! matches everything, an empty `$or` nothing), `$in`/`$nin` lists typed by their first element,
//! comparison operators only on numbers, regexes compiled at parse time.
//!
//! Evaluation differs from Chroma in one deliberate way: integers and floats compare exactly as
//! numbers (Chroma truncates float operands compared with integer values).

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::metadata::{compare_int_float, MetadataLookup, MetadataValue};

/// A filter parse error. The message is the one Chroma reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhereError {
    #[error("Invalid where clause")]
    InvalidWhere,
    #[error("Invalid where document clause")]
    InvalidWhereDocument,
    #[error("Regex syntax errror: {0}")]
    Regex(String),
}

/// A scalar operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A homogeneous, non-empty operand list for `$in` / `$nin`.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarList {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str(Vec<String>),
}

/// An operator applied to one metadata key.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaOp {
    Eq(Scalar),
    Ne(Scalar),
    Gt(Scalar),
    Gte(Scalar),
    Lt(Scalar),
    Lte(Scalar),
    In(ScalarList),
    Nin(ScalarList),
    Contains(Scalar),
    NotContains(Scalar),
}

/// An operator on the record id (`#id`).
#[derive(Debug, Clone, PartialEq)]
pub enum IdOp {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    Nin(Vec<String>),
}

/// A leaf of `where_document`.
#[derive(Debug, Clone)]
pub enum DocOp {
    Contains(String),
    NotContains(String),
    Regex(Regex),
    NotRegex(Regex),
}

impl PartialEq for DocOp {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (DocOp::Contains(a), DocOp::Contains(b)) => a == b,
            (DocOp::NotContains(a), DocOp::NotContains(b)) => a == b,
            (DocOp::Regex(a), DocOp::Regex(b)) => a.as_str() == b.as_str(),
            (DocOp::NotRegex(a), DocOp::NotRegex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// A metadata filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    And(Vec<Where>),
    Or(Vec<Where>),
    Meta { key: String, op: MetaOp },
    Document(DocOp),
    Id(IdOp),
}

/// A document filter.
#[derive(Debug, Clone, PartialEq)]
pub enum WhereDocument {
    And(Vec<WhereDocument>),
    Or(Vec<WhereDocument>),
    Leaf(DocOp),
}

fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::String(s) => Some(Scalar::Str(s.clone())),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Scalar::Int(i))
            } else if n.is_u64() {
                // An integer literal beyond i64.
                None
            } else {
                n.as_f64().filter(|f| f.is_finite()).map(Scalar::Float)
            }
        }
        _ => None,
    }
}

fn scalar_list(v: &Value) -> Option<ScalarList> {
    let items = v.as_array()?;
    let first = scalar(items.first()?)?;
    Some(match first {
        Scalar::Str(_) => ScalarList::Str(
            items
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<_>>()?,
        ),
        Scalar::Bool(_) => {
            ScalarList::Bool(items.iter().map(Value::as_bool).collect::<Option<_>>()?)
        }
        Scalar::Int(_) => ScalarList::Int(
            items
                .iter()
                .map(|x| match scalar(x) {
                    Some(Scalar::Int(i)) => Some(i),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
        Scalar::Float(_) => ScalarList::Float(
            items
                .iter()
                .map(|x| match scalar(x) {
                    Some(Scalar::Int(i)) => Some(i as f64),
                    Some(Scalar::Float(f)) => Some(f),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
    })
}

fn single_entry(v: &Value) -> Option<(&String, &Value)> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.iter().next()
}

fn compile(pattern: &str) -> Result<Regex, WhereError> {
    Regex::new(pattern).map_err(|e| WhereError::Regex(e.to_string()))
}

impl Where {
    /// Parses Chroma's JSON `where` grammar.
    ///
    /// # Errors
    /// [`WhereError::InvalidWhere`] for any grammar or typing violation, [`WhereError::Regex`] for
    /// an invalid pattern under `#document`.
    pub fn from_json(v: &Value) -> Result<Where, WhereError> {
        let bad = || WhereError::InvalidWhere;
        let (key, value) = single_entry(v).ok_or_else(bad)?;
        match key.as_str() {
            "$and" | "$or" => {
                let items = value.as_array().ok_or_else(bad)?;
                let children = items
                    .iter()
                    .map(Where::from_json)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if key == "$and" {
                    Where::And(children)
                } else {
                    Where::Or(children)
                })
            }
            k if k.starts_with('$') => Err(bad()),
            "#document" => {
                let (op, operand) = single_entry(value).ok_or_else(bad)?;
                let s = operand.as_str().ok_or_else(bad)?;
                Ok(Where::Document(match op.as_str() {
                    "$contains" => DocOp::Contains(s.to_owned()),
                    "$not_contains" => DocOp::NotContains(s.to_owned()),
                    "$regex" => DocOp::Regex(compile(s)?),
                    "$not_regex" => DocOp::NotRegex(compile(s)?),
                    _ => return Err(bad()),
                }))
            }
            "#id" => {
                if let Some(s) = value.as_str() {
                    return Ok(Where::Id(IdOp::Eq(s.to_owned())));
                }
                let (op, operand) = single_entry(value).ok_or_else(bad)?;
                let strings = |v: &Value| -> Option<Vec<String>> {
                    let a = v.as_array()?;
                    if a.is_empty() {
                        return None;
                    }
                    a.iter().map(|x| x.as_str().map(str::to_owned)).collect()
                };
                Ok(Where::Id(match op.as_str() {
                    "$eq" => IdOp::Eq(operand.as_str().ok_or_else(bad)?.to_owned()),
                    "$ne" => IdOp::Ne(operand.as_str().ok_or_else(bad)?.to_owned()),
                    "$in" => IdOp::In(strings(operand).ok_or_else(bad)?),
                    "$nin" => IdOp::Nin(strings(operand).ok_or_else(bad)?),
                    _ => return Err(bad()),
                }))
            }
            _ => {
                let op = if let Some(s) = scalar(value) {
                    MetaOp::Eq(s)
                } else {
                    let (op, operand) = single_entry(value).ok_or_else(bad)?;
                    let number = || match scalar(operand) {
                        Some(s @ (Scalar::Int(_) | Scalar::Float(_))) => Ok(s),
                        _ => Err(bad()),
                    };
                    match op.as_str() {
                        "$eq" => MetaOp::Eq(scalar(operand).ok_or_else(bad)?),
                        "$ne" => MetaOp::Ne(scalar(operand).ok_or_else(bad)?),
                        "$gt" => MetaOp::Gt(number()?),
                        "$gte" => MetaOp::Gte(number()?),
                        "$lt" => MetaOp::Lt(number()?),
                        "$lte" => MetaOp::Lte(number()?),
                        "$in" => MetaOp::In(scalar_list(operand).ok_or_else(bad)?),
                        "$nin" => MetaOp::Nin(scalar_list(operand).ok_or_else(bad)?),
                        "$contains" => MetaOp::Contains(scalar(operand).ok_or_else(bad)?),
                        "$not_contains" => MetaOp::NotContains(scalar(operand).ok_or_else(bad)?),
                        _ => return Err(bad()),
                    }
                };
                Ok(Where::Meta {
                    key: key.clone(),
                    op,
                })
            }
        }
    }

    /// True when evaluating the filter looks at the record's document (a `#document` clause).
    pub fn reads_document(&self) -> bool {
        match self {
            Where::And(c) | Where::Or(c) => c.iter().any(Where::reads_document),
            Where::Document(_) => true,
            Where::Id(_) | Where::Meta { .. } => false,
        }
    }

    /// True when a record with this id, metadata and document passes the filter.
    pub fn matches<M: MetadataLookup + ?Sized>(
        &self,
        id: &str,
        metadata: Option<&M>,
        document: Option<&str>,
    ) -> bool {
        match self {
            Where::And(c) => c.iter().all(|w| w.matches(id, metadata, document)),
            Where::Or(c) => c.iter().any(|w| w.matches(id, metadata, document)),
            Where::Document(op) => op.matches(document),
            Where::Id(op) => match op {
                IdOp::Eq(s) => id == s,
                IdOp::Ne(s) => id != s,
                IdOp::In(l) => l.iter().any(|s| s == id),
                IdOp::Nin(l) => !l.iter().any(|s| s == id),
            },
            Where::Meta { key, op } => {
                let value = metadata.and_then(|m| m.value(key));
                op.matches(value)
            }
        }
    }
}

fn scalar_eq(value: &MetadataValue, s: &Scalar) -> bool {
    match (value, s) {
        (MetadataValue::Bool(a), Scalar::Bool(b)) => a == b,
        (MetadataValue::Str(a), Scalar::Str(b)) => a == b,
        (MetadataValue::Int(_) | MetadataValue::Float(_), Scalar::Int(_) | Scalar::Float(_)) => {
            numeric_cmp(value, s) == Some(Ordering::Equal)
        }
        _ => false,
    }
}

/// Orders a scalar numeric metadata value against a numeric operand; `None` for anything else.
fn numeric_cmp(value: &MetadataValue, s: &Scalar) -> Option<Ordering> {
    match (value, s) {
        (MetadataValue::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
        (MetadataValue::Int(a), Scalar::Float(b)) => compare_int_float(*a, *b),
        (MetadataValue::Float(a), Scalar::Int(b)) => {
            compare_int_float(*b, *a).map(Ordering::reverse)
        }
        (MetadataValue::Float(a), Scalar::Float(b)) => a.partial_cmp(b),
        _ => None,
    }
}

fn array_contains(value: &MetadataValue, s: &Scalar) -> bool {
    match (value, s) {
        (MetadataValue::BoolArray(a), Scalar::Bool(b)) => a.contains(b),
        (MetadataValue::IntArray(a), Scalar::Int(b)) => a.contains(b),
        (MetadataValue::FloatArray(a), Scalar::Float(b)) => a.contains(b),
        (MetadataValue::StrArray(a), Scalar::Str(b)) => a.contains(b),
        _ => false,
    }
}

fn list_contains(value: &MetadataValue, list: &ScalarList) -> bool {
    match list {
        ScalarList::Bool(l) => l.iter().any(|b| scalar_eq(value, &Scalar::Bool(*b))),
        ScalarList::Int(l) => l.iter().any(|i| scalar_eq(value, &Scalar::Int(*i))),
        ScalarList::Float(l) => l.iter().any(|f| scalar_eq(value, &Scalar::Float(*f))),
        ScalarList::Str(l) => match value {
            MetadataValue::Str(s) => l.contains(s),
            _ => false,
        },
    }
}

impl MetaOp {
    /// Evaluates the operator against a key's value (`None` when the key is missing).
    pub fn matches(&self, value: Option<&MetadataValue>) -> bool {
        let cmp = |s: &Scalar, accept: fn(Ordering) -> bool| {
            value.and_then(|v| numeric_cmp(v, s)).is_some_and(accept)
        };
        match self {
            MetaOp::Eq(s) => value.is_some_and(|v| scalar_eq(v, s)),
            MetaOp::Ne(s) => !value.is_some_and(|v| scalar_eq(v, s)),
            MetaOp::Gt(s) => cmp(s, |o| o == Ordering::Greater),
            MetaOp::Gte(s) => cmp(s, |o| o != Ordering::Less),
            MetaOp::Lt(s) => cmp(s, |o| o == Ordering::Less),
            MetaOp::Lte(s) => cmp(s, |o| o != Ordering::Greater),
            MetaOp::In(l) => value.is_some_and(|v| list_contains(v, l)),
            MetaOp::Nin(l) => !value.is_some_and(|v| list_contains(v, l)),
            MetaOp::Contains(s) => value.is_some_and(|v| array_contains(v, s)),
            MetaOp::NotContains(s) => !value.is_some_and(|v| array_contains(v, s)),
        }
    }
}

impl DocOp {
    /// Evaluates the operator against a record's document.
    pub fn matches(&self, document: Option<&str>) -> bool {
        match self {
            DocOp::Contains(s) => document.is_some_and(|d| d.contains(s.as_str())),
            DocOp::NotContains(s) => !document.is_some_and(|d| d.contains(s.as_str())),
            DocOp::Regex(r) => document.is_some_and(|d| r.is_match(d)),
            DocOp::NotRegex(r) => !document.is_some_and(|d| r.is_match(d)),
        }
    }
}

impl WhereDocument {
    /// Parses Chroma's JSON `where_document` grammar.
    ///
    /// # Errors
    /// [`WhereError::InvalidWhereDocument`] for a grammar violation, [`WhereError::Regex`] for an
    /// invalid pattern.
    pub fn from_json(v: &Value) -> Result<WhereDocument, WhereError> {
        let bad = || WhereError::InvalidWhereDocument;
        let (key, value) = single_entry(v).ok_or_else(bad)?;
        match key.as_str() {
            "$and" | "$or" => {
                let items = value.as_array().ok_or_else(bad)?;
                let children = items
                    .iter()
                    .map(WhereDocument::from_json)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if key == "$and" {
                    WhereDocument::And(children)
                } else {
                    WhereDocument::Or(children)
                })
            }
            op => {
                let s = value.as_str().ok_or_else(bad)?;
                Ok(WhereDocument::Leaf(match op {
                    "$contains" => DocOp::Contains(s.to_owned()),
                    "$not_contains" => DocOp::NotContains(s.to_owned()),
                    "$regex" => DocOp::Regex(compile(s)?),
                    "$not_regex" => DocOp::NotRegex(compile(s)?),
                    _ => return Err(bad()),
                }))
            }
        }
    }

    /// True when a record with this document passes the filter.
    pub fn matches(&self, document: Option<&str>) -> bool {
        match self {
            WhereDocument::And(c) => c.iter().all(|w| w.matches(document)),
            WhereDocument::Or(c) => c.iter().any(|w| w.matches(document)),
            WhereDocument::Leaf(op) => op.matches(document),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x:?}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[cfg(test)]
mod tests;
