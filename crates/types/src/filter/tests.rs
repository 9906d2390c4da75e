use super::*;
use crate::metadata::Metadata;
use proptest::prelude::*;
use serde_json::json;

fn parse(v: Value) -> Result<Where, WhereError> {
    Where::from_json(&v)
}

fn meta(pairs: &[(&str, MetadataValue)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[test]
fn grammar_rejects_what_chroma_rejects() {
    for bad in [
        json!({}),
        json!({"a": 1, "b": 2}),
        json!({"$contains": "x"}),
        json!({"x": null}),
        json!({"x": [1, 2]}),
        json!({"x": {"$gt": 1, "$lt": 3}}),
        json!({"x": {"$gt": "a"}}),
        json!({"x": {"$gt": true}}),
        json!({"x": {"$in": []}}),
        json!({"x": {"$in": [2, 3.5]}}),
        json!({"x": {"$in": ["2", 2]}}),
        json!({"x": {"$regex": "a"}}),
        json!({"x": {"$bogus": 1}}),
        json!({"x": 9_223_372_036_854_775_808u64}),
        json!({"$and": {"x": 1}}),
        json!({"$and": [{"x": 1}, {}]}),
    ] {
        assert_eq!(parse(bad.clone()), Err(WhereError::InvalidWhere), "{bad}");
    }
}

#[test]
fn grammar_accepts_what_chroma_accepts() {
    for good in [
        json!({"x": 1}),
        json!({"x": "s"}),
        json!({"x": 1.5}),
        json!({"x": {"$in": [2.5, 3]}}),
        json!({"$and": []}),
        json!({"$or": [{"x": 1}]}),
        json!({"x": {"$contains": 1}}),
        json!({"#document": {"$contains": "x"}}),
        json!({"#document": {"$regex": "a+"}}),
        json!({"#id": {"$in": ["a", "b"]}}),
    ] {
        assert!(parse(good.clone()).is_ok(), "{good}");
    }
    assert_eq!(
        parse(json!({"x": {"$in": [2.5, 3]}})),
        Ok(Where::Meta {
            key: "x".into(),
            op: MetaOp::In(ScalarList::Float(vec![2.5, 3.0]))
        })
    );
}

#[test]
fn regex_errors_carry_chroma_message() {
    let err = WhereDocument::from_json(&json!({"$regex": "["})).expect_err("invalid");
    assert!(err
        .to_string()
        .starts_with("Regex syntax errror: regex parse error:"));
    let err = WhereDocument::from_json(&json!({"$regex": "a(?=b)"})).expect_err("invalid");
    assert!(err.to_string().contains("look-around"));
    assert_eq!(
        WhereDocument::from_json(&json!({"$contains": 1})),
        Err(WhereError::InvalidWhereDocument)
    );
    assert_eq!(
        WhereDocument::from_json(&json!({})),
        Err(WhereError::InvalidWhereDocument)
    );
}

#[test]
fn evaluation_follows_chroma_types() {
    let m = meta(&[
        ("i", MetadataValue::Int(2)),
        ("f", MetadataValue::Float(2.0)),
        ("b", MetadataValue::Bool(true)),
        ("s", MetadataValue::Str("abc".into())),
        ("t", MetadataValue::StrArray(vec!["a".into(), "b".into()])),
        ("ff", MetadataValue::FloatArray(vec![1.5, 2.0])),
    ]);
    let check = |w: Value| {
        parse(w)
            .expect("valid")
            .matches("id1", Some(&m), Some("Hello %_ world"))
    };
    assert!(check(json!({"i": 2})));
    assert!(check(json!({"i": 2.0})));
    assert!(check(json!({"f": 2})));
    assert!(
        !check(json!({"i": 2.5})),
        "exact numeric comparison, not truncation"
    );
    assert!(check(json!({"i": {"$lt": 2.5}})));
    assert!(!check(json!({"i": {"$gte": 2.5}})));
    assert!(!check(json!({"b": 1})));
    assert!(!check(json!({"i": true})));
    assert!(check(json!({"missing": {"$ne": 1}})));
    assert!(check(json!({"s": {"$ne": 1}})));
    assert!(!check(json!({"t": "a"})));
    assert!(check(json!({"t": {"$contains": "a"}})));
    assert!(
        !check(json!({"s": {"$contains": "b"}})),
        "no substring match on metadata"
    );
    assert!(!check(json!({"ff": {"$contains": 2}})));
    assert!(check(json!({"ff": {"$contains": 2.0}})));
    assert!(check(json!({"missing": {"$not_contains": "a"}})));
    assert!(check(json!({"missing": {"$nin": [1]}})));
    assert!(!check(json!({"missing": {"$in": [1]}})));
    assert!(!check(json!({"s": {"$gt": 1}})));
    assert!(check(json!({"$and": []})));
    assert!(!check(json!({"$or": []})));
    assert!(check(json!({"#document": {"$contains": "%_"}})));
    assert!(check(json!({"#id": "id1"})));
    assert!(!check(json!({"#id": {"$nin": ["id1"]}})));
    assert!(check(json!({"#other": {"$ne": 1}})));

    let wd = |w: Value, d: Option<&str>| WhereDocument::from_json(&w).expect("valid").matches(d);
    assert!(wd(json!({"$contains": ""}), Some("")));
    assert!(!wd(json!({"$contains": ""}), None));
    assert!(wd(json!({"$not_contains": "x"}), None));
    assert!(wd(json!({"$not_regex": "x"}), None));
    assert!(wd(json!({"$regex": "(?i)HELLO"}), Some("say hello")));
    assert!(!wd(json!({"$contains": "Hello"}), Some("hello")));
}

fn scalar_to_json(s: &Scalar) -> Value {
    match s {
        Scalar::Bool(b) => json!(b),
        Scalar::Int(i) => json!(i),
        Scalar::Float(f) => json!(f),
        Scalar::Str(s) => json!(s),
    }
}

fn list_to_json(l: &ScalarList) -> Value {
    match l {
        ScalarList::Bool(v) => json!(v),
        ScalarList::Int(v) => json!(v),
        ScalarList::Float(v) => json!(v),
        ScalarList::Str(v) => json!(v),
    }
}

fn where_to_json(w: &Where) -> Value {
    match w {
        Where::And(c) => json!({"$and": c.iter().map(where_to_json).collect::<Vec<_>>()}),
        Where::Or(c) => json!({"$or": c.iter().map(where_to_json).collect::<Vec<_>>()}),
        Where::Meta { key, op } => {
            let (name, operand) = match op {
                MetaOp::Eq(s) => ("$eq", scalar_to_json(s)),
                MetaOp::Ne(s) => ("$ne", scalar_to_json(s)),
                MetaOp::Gt(s) => ("$gt", scalar_to_json(s)),
                MetaOp::Gte(s) => ("$gte", scalar_to_json(s)),
                MetaOp::Lt(s) => ("$lt", scalar_to_json(s)),
                MetaOp::Lte(s) => ("$lte", scalar_to_json(s)),
                MetaOp::In(l) => ("$in", list_to_json(l)),
                MetaOp::Nin(l) => ("$nin", list_to_json(l)),
                MetaOp::Contains(s) => ("$contains", scalar_to_json(s)),
                MetaOp::NotContains(s) => ("$not_contains", scalar_to_json(s)),
            };
            json!({ key.clone(): { name: operand } })
        }
        Where::Document(DocOp::Contains(s)) => json!({"#document": {"$contains": s}}),
        Where::Document(DocOp::NotContains(s)) => json!({"#document": {"$not_contains": s}}),
        Where::Document(DocOp::Regex(r)) => json!({"#document": {"$regex": r.as_str()}}),
        Where::Document(DocOp::NotRegex(r)) => json!({"#document": {"$not_regex": r.as_str()}}),
        Where::Id(IdOp::Eq(s)) => json!({"#id": {"$eq": s}}),
        Where::Id(IdOp::Ne(s)) => json!({"#id": {"$ne": s}}),
        Where::Id(IdOp::In(l)) => json!({"#id": {"$in": l}}),
        Where::Id(IdOp::Nin(l)) => json!({"#id": {"$nin": l}}),
    }
}

fn scalar_strategy() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        any::<bool>().prop_map(Scalar::Bool),
        (-5i64..5).prop_map(Scalar::Int),
        (-5.0f64..5.0).prop_map(Scalar::Float),
        "[ab]{0,2}".prop_map(Scalar::Str),
    ]
}

fn number_strategy() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        (-5i64..5).prop_map(Scalar::Int),
        (-5.0f64..5.0).prop_map(Scalar::Float)
    ]
}

fn list_strategy() -> impl Strategy<Value = ScalarList> {
    prop_oneof![
        proptest::collection::vec(any::<bool>(), 1..3).prop_map(ScalarList::Bool),
        proptest::collection::vec(-5i64..5, 1..3).prop_map(ScalarList::Int),
        proptest::collection::vec(-5.0f64..5.0, 1..3).prop_map(ScalarList::Float),
        proptest::collection::vec("[ab]{0,2}", 1..3).prop_map(ScalarList::Str),
    ]
}

fn leaf_strategy() -> impl Strategy<Value = Where> {
    let key = prop_oneof![Just("k".to_owned()), Just("j".to_owned())];
    let op = prop_oneof![
        scalar_strategy().prop_map(MetaOp::Eq),
        scalar_strategy().prop_map(MetaOp::Ne),
        number_strategy().prop_map(MetaOp::Gt),
        number_strategy().prop_map(MetaOp::Gte),
        number_strategy().prop_map(MetaOp::Lt),
        number_strategy().prop_map(MetaOp::Lte),
        list_strategy().prop_map(MetaOp::In),
        list_strategy().prop_map(MetaOp::Nin),
        scalar_strategy().prop_map(MetaOp::Contains),
        scalar_strategy().prop_map(MetaOp::NotContains),
    ];
    prop_oneof![
        8 => (key, op).prop_map(|(key, op)| Where::Meta { key, op }),
        1 => "[ab]{0,2}".prop_map(|s| Where::Document(DocOp::Contains(s))),
        1 => "[ab]{1,2}".prop_map(|s| Where::Id(IdOp::Eq(s))),
    ]
}

fn where_strategy() -> impl Strategy<Value = Where> {
    leaf_strategy().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Where::And),
            proptest::collection::vec(inner, 0..3).prop_map(Where::Or),
        ]
    })
}

fn value_strategy() -> impl Strategy<Value = MetadataValue> {
    prop_oneof![
        any::<bool>().prop_map(MetadataValue::Bool),
        (-5i64..5).prop_map(MetadataValue::Int),
        (-5.0f64..5.0).prop_map(MetadataValue::Float),
        "[ab]{0,2}".prop_map(MetadataValue::Str),
        proptest::collection::vec(-5i64..5, 1..3).prop_map(MetadataValue::IntArray),
        proptest::collection::vec("[ab]{0,2}", 1..3).prop_map(MetadataValue::StrArray),
    ]
}

/// An independent oracle for one leaf, written as plainly as possible in f64 (exact for the small
/// integers the strategies produce).
fn oracle_leaf(op: &MetaOp, v: Option<&MetadataValue>) -> bool {
    fn num(v: &MetadataValue) -> Option<f64> {
        match v {
            MetadataValue::Int(i) => Some(*i as f64),
            MetadataValue::Float(f) => Some(*f),
            _ => None,
        }
    }
    fn snum(s: &Scalar) -> Option<f64> {
        match s {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }
    fn eq(v: &MetadataValue, s: &Scalar) -> bool {
        match (v, s) {
            (MetadataValue::Bool(a), Scalar::Bool(b)) => a == b,
            (MetadataValue::Str(a), Scalar::Str(b)) => a == b,
            _ => matches!((num(v), snum(s)), (Some(a), Some(b)) if a == b),
        }
    }
    let list: Vec<Scalar> = match op {
        MetaOp::In(l) | MetaOp::Nin(l) => match l {
            ScalarList::Bool(x) => x.iter().map(|b| Scalar::Bool(*b)).collect(),
            ScalarList::Int(x) => x.iter().map(|b| Scalar::Int(*b)).collect(),
            ScalarList::Float(x) => x.iter().map(|b| Scalar::Float(*b)).collect(),
            ScalarList::Str(x) => x.iter().map(|b| Scalar::Str(b.clone())).collect(),
        },
        _ => vec![],
    };
    let ord = |s: &Scalar| v.and_then(num).zip(snum(s));
    match op {
        MetaOp::Eq(s) => v.is_some_and(|v| eq(v, s)),
        MetaOp::Ne(s) => !v.is_some_and(|v| eq(v, s)),
        MetaOp::Gt(s) => ord(s).is_some_and(|(a, b)| a > b),
        MetaOp::Gte(s) => ord(s).is_some_and(|(a, b)| a >= b),
        MetaOp::Lt(s) => ord(s).is_some_and(|(a, b)| a < b),
        MetaOp::Lte(s) => ord(s).is_some_and(|(a, b)| a <= b),
        MetaOp::In(_) => v.is_some_and(|v| list.iter().any(|s| eq(v, s))),
        MetaOp::Nin(_) => !v.is_some_and(|v| list.iter().any(|s| eq(v, s))),
        MetaOp::Contains(s) | MetaOp::NotContains(s) => {
            let hit = match (v, s) {
                (Some(MetadataValue::IntArray(a)), Scalar::Int(i)) => a.contains(i),
                (Some(MetadataValue::StrArray(a)), Scalar::Str(x)) => a.contains(x),
                _ => false,
            };
            if matches!(op, MetaOp::Contains(_)) {
                hit
            } else {
                !hit
            }
        }
    }
}

fn oracle(w: &Where, id: &str, m: &Metadata, doc: Option<&str>) -> bool {
    match w {
        Where::And(c) => c.iter().all(|w| oracle(w, id, m, doc)),
        Where::Or(c) => c.iter().any(|w| oracle(w, id, m, doc)),
        Where::Meta { key, op } => oracle_leaf(op, m.get(key)),
        Where::Document(DocOp::Contains(s)) => doc.is_some_and(|d| d.contains(s.as_str())),
        Where::Id(IdOp::Eq(s)) => id == s,
        other => panic!("strategy does not generate {other:?}"),
    }
}

proptest! {
    #[test]
    fn where_json_round_trip_is_identity(w in where_strategy()) {
        let parsed = Where::from_json(&where_to_json(&w)).expect("generated filters are valid");
        prop_assert_eq!(parsed, w);
    }

    #[test]
    fn evaluator_agrees_with_oracle(
        w in where_strategy(),
        m in proptest::collection::btree_map(prop_oneof![Just("k".to_owned()), Just("j".to_owned())], value_strategy(), 0..3),
        doc in proptest::option::of("[ab]{0,3}"),
        id in "[ab]{1,2}",
    ) {
        prop_assert_eq!(w.matches(&id, Some(&m), doc.as_deref()), oracle(&w, &id, &m, doc.as_deref()));
    }

    #[test]
    fn parser_never_panics(s in "[\\[\\]{}\",:a-z$#0-9.]{0,40}") {
        if let Ok(v) = serde_json::from_str::<Value>(&s) {
            let _ = Where::from_json(&v);
            let _ = WhereDocument::from_json(&v);
        }
    }
}
