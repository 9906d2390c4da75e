//! The filter parser (`Where::from_json`, `WhereDocument::from_json`) and the evaluator.

use std::collections::BTreeMap;

use ochre_types::{DocOp, IdOp, MetaOp, Metadata, MetadataValue, Where, WhereDocument};
use serde_json::Value;

/// The records every accepted filter is evaluated against: every metadata value type, extreme
/// numbers, no metadata, no document.
pub(crate) fn records() -> Vec<(&'static str, Option<Metadata>, Option<&'static str>)> {
    let m = |pairs: Vec<(&str, MetadataValue)>| -> Option<Metadata> {
        Some(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    use MetadataValue::*;
    vec![
        (
            "a",
            m(vec![
                ("s", Str("a".into())),
                ("i", Int(1)),
                ("f", Float(1.5)),
                ("b", Bool(true)),
                ("sa", StrArray(vec!["a".into(), "b".into()])),
                ("ia", IntArray(vec![1, i64::MAX])),
                ("fa", FloatArray(vec![0.5, -1e300])),
                ("ba", BoolArray(vec![false])),
            ]),
            Some("the quick brown fox"),
        ),
        (
            "b",
            m(vec![
                ("s", Str(String::new())),
                ("i", Int(i64::MIN)),
                ("f", Float(-0.0)),
                ("b", Bool(false)),
                ("x", Float(9_223_372_036_854_775_808.0)),
            ]),
            Some(""),
        ),
        ("c", m(vec![("i", Float(1.0)), ("f", Int(2))]), None),
        ("", None, Some("ünïcödé \u{0} \n")),
    ]
}

/// The operator that must match exactly where `op` does not.
fn complement(op: &MetaOp) -> MetaOp {
    match op {
        MetaOp::Eq(s) => MetaOp::Ne(s.clone()),
        MetaOp::Ne(s) => MetaOp::Eq(s.clone()),
        MetaOp::In(l) => MetaOp::Nin(l.clone()),
        MetaOp::Nin(l) => MetaOp::In(l.clone()),
        MetaOp::Contains(s) => MetaOp::NotContains(s.clone()),
        MetaOp::NotContains(s) => MetaOp::Contains(s.clone()),
        // Ordering operators have no complement (a missing key or a string fails both).
        MetaOp::Gt(s) => MetaOp::Gt(s.clone()),
        MetaOp::Gte(s) => MetaOp::Gte(s.clone()),
        MetaOp::Lt(s) => MetaOp::Lt(s.clone()),
        MetaOp::Lte(s) => MetaOp::Lte(s.clone()),
    }
}

fn doc_complement(op: &DocOp) -> DocOp {
    match op {
        DocOp::Contains(s) => DocOp::NotContains(s.clone()),
        DocOp::NotContains(s) => DocOp::Contains(s.clone()),
        DocOp::Regex(r) => DocOp::NotRegex(r.clone()),
        DocOp::NotRegex(r) => DocOp::Regex(r.clone()),
    }
}

/// Evaluates `w` on every record, checking the negated operators on each leaf.
pub(crate) fn evaluate(w: &Where) {
    for (id, metadata, document) in records() {
        let metadata = metadata.as_ref();
        let _ = w.matches(id, metadata, document);
        check_leaves(w, id, metadata, document);
    }
}

fn check_leaves(w: &Where, id: &str, metadata: Option<&Metadata>, document: Option<&str>) {
    match w {
        Where::And(c) | Where::Or(c) => {
            for w in c {
                check_leaves(w, id, metadata, document);
            }
        }
        Where::Meta { key, op } => {
            let value = metadata.and_then(|m| m.get(key));
            let ordering = matches!(
                op,
                MetaOp::Gt(_) | MetaOp::Gte(_) | MetaOp::Lt(_) | MetaOp::Lte(_)
            );
            if !ordering {
                assert_ne!(
                    op.matches(value),
                    complement(op).matches(value),
                    "{op:?} and its negation agree on {value:?}"
                );
            }
        }
        Where::Document(op) => {
            assert_ne!(
                op.matches(document),
                doc_complement(op).matches(document),
                "{op:?} and its negation agree on {document:?}"
            );
        }
        Where::Id(op) => {
            let negated = match op {
                IdOp::Eq(s) => IdOp::Ne(s.clone()),
                IdOp::Ne(s) => IdOp::Eq(s.clone()),
                IdOp::In(l) => IdOp::Nin(l.clone()),
                IdOp::Nin(l) => IdOp::In(l.clone()),
            };
            assert_ne!(
                Where::Id(op.clone()).matches(id, metadata, document),
                Where::Id(negated).matches(id, metadata, document),
                "{op:?} and its negation agree on {id:?}"
            );
        }
    }
}

/// Arbitrary bytes as JSON (anything else is skipped: the routes refuse it before any filter
/// is parsed), parsed as a `where` and as a `where_document`; what parses is evaluated.
pub fn filter(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(w) = Where::from_json(&v) {
        evaluate(&w);
        let _ = format!("{w:?}");
    }
    if let Ok(w) = WhereDocument::from_json(&v) {
        for (_, _, document) in records() {
            let _ = w.matches(document);
        }
    }
}
