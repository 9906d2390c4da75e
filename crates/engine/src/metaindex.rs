//! An inverted index over scalar metadata values: for every key, the records holding each value,
//! in sequence (storage) order.
//!
//! It answers `$eq`, `$in`, `$ne`, `$nin` and the numeric comparisons exactly: those operators
//! match scalar values only (see `ochre_types::filter`), and the index orders and compares values
//! as filters do; `$ne` and `$nin` are what `$eq` and `$in` leave out. `$and` / `$or` combine the answers. A
//! filter with parts the index cannot answer (array `$contains`, documents, ids) is narrowed by
//! the parts it can, and every candidate is then checked against the whole filter; with no such
//! part, a scan decides.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use ochre_types::{compare_int_float, MetaOp, MetadataValue, Scalar, ScalarList, SeqNo, Where};

use crate::seqlist::SeqList;

/// An indexed value. Booleans, numbers and strings never equal one another; integers and floats
/// are one kind, ordered and compared exactly as numbers, as filters compare them.
#[derive(Debug, Clone)]
enum Value {
    Bool(bool),
    Int(i64),
    /// Finite: non-finite floats cannot be stored, and are not indexed.
    Float(f64),
    Str(String),
}

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::Int(_) | Value::Float(_) => 1,
            Value::Str(_) => 2,
        }
    }

    fn of_metadata(v: &MetadataValue) -> Option<Value> {
        Some(match v {
            MetadataValue::Bool(b) => Value::Bool(*b),
            MetadataValue::Int(i) => Value::Int(*i),
            MetadataValue::Float(f) if f.is_finite() => Value::Float(*f),
            MetadataValue::Str(s) => Value::Str(s.clone()),
            _ => return None,
        })
    }

    fn of_scalar(s: &Scalar) -> Option<Value> {
        Some(match s {
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::Int(*i),
            Scalar::Float(f) if f.is_finite() => Value::Float(*f),
            Scalar::Str(s) => Value::Str(s.clone()),
            Scalar::Float(_) => return None,
        })
    }

    fn is_number(&self) -> bool {
        self.rank() == 1
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.partial_cmp(b).unwrap_or(a.total_cmp(b)),
            (Value::Int(a), Value::Float(b)) => compare_int_float(*a, *b).unwrap_or(Ordering::Less),
            (Value::Float(a), Value::Int(b)) => compare_int_float(*b, *a)
                .unwrap_or(Ordering::Less)
                .reverse(),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

/// Key → value → the records holding it, ascending (inserts and removals O(log n) per record
/// and value, see [`SeqList`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct MetaIndex {
    keys: HashMap<String, BTreeMap<Value, SeqList>>,
}

impl MetaIndex {
    /// Files record `seq` under each of its scalar values.
    pub(crate) fn insert<'a>(
        &mut self,
        seq: SeqNo,
        metadata: impl IntoIterator<Item = (&'a str, &'a MetadataValue)>,
    ) {
        for (key, value) in scalars(metadata) {
            let list = match self.keys.get_mut(key) {
                Some(values) => values.entry(value).or_default(),
                None => self
                    .keys
                    .entry(key.to_owned())
                    .or_default()
                    .entry(value)
                    .or_default(),
            };
            list.insert(seq);
        }
    }

    /// Forgets record `seq`, filed under `metadata`.
    pub(crate) fn remove<'a>(
        &mut self,
        seq: SeqNo,
        metadata: impl IntoIterator<Item = (&'a str, &'a MetadataValue)>,
    ) {
        for (key, value) in scalars(metadata) {
            let Some(values) = self.keys.get_mut(key) else {
                continue;
            };
            if let Some(list) = values.get_mut(&value) {
                list.remove(seq);
                if list.is_empty() {
                    values.remove(&value);
                }
            }
            if values.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// A superset of the records matching `w`, ascending, when the index can narrow it to at most
    /// `budget` records; `None` when only a scan can tell (or the narrowing is not worth it).
    /// The flag is true when the list is exactly the matches: the whole filter was answered
    /// from the index.
    ///
    /// `all` lists every record, ascending: `$ne` and `$nin` match what the listed values do not.
    pub(crate) fn candidates(
        &self,
        w: &Where,
        budget: usize,
        all: &dyn Fn() -> Vec<SeqNo>,
    ) -> Option<(Vec<SeqNo>, bool)> {
        match w {
            Where::Meta { key, op } => self.leaf(key, op, budget, all).map(|l| (l, true)),
            Where::And(clauses) => {
                let mut best: Option<Vec<SeqNo>> = None;
                let mut exact = true;
                for c in clauses {
                    match self.candidates(c, budget, all) {
                        Some((found, e)) => {
                            exact &= e;
                            best = Some(match best {
                                None => found,
                                Some(b) => intersect(&b, &found),
                            });
                        }
                        None => exact = false,
                    }
                }
                best.map(|b| (b, exact))
            }
            Where::Or(clauses) => {
                let mut union = Vec::new();
                let mut exact = true;
                for c in clauses {
                    let (found, e) = self.candidates(c, budget, all)?;
                    exact &= e;
                    union.extend(found);
                    if union.len() > budget {
                        return None;
                    }
                }
                union.sort_unstable();
                union.dedup();
                Some((union, exact))
            }
            Where::Document(_) | Where::Id(_) => None,
        }
    }

    fn leaf(
        &self,
        key: &str,
        op: &MetaOp,
        budget: usize,
        all: &dyn Fn() -> Vec<SeqNo>,
    ) -> Option<Vec<SeqNo>> {
        // A record matches `$ne` / `$nin` exactly when it does not match `$eq` / `$in` (a missing
        // key or an array value matches neither of the latter).
        let excluded = match op {
            MetaOp::Ne(s) => Some(MetaOp::Eq(s.clone())),
            MetaOp::Nin(l) => Some(MetaOp::In(l.clone())),
            _ => None,
        };
        if let Some(op) = excluded {
            let skip = self.leaf(key, &op, usize::MAX, all)?;
            let everything = all();
            if everything.len().saturating_sub(skip.len()) > budget {
                return None;
            }
            return Some(difference(&everything, &skip));
        }
        let empty = BTreeMap::new();
        let values = self.keys.get(key).unwrap_or(&empty);
        let lists: Vec<&SeqList> = match op {
            MetaOp::Eq(s) => values.get(&Value::of_scalar(s)?).into_iter().collect(),
            MetaOp::In(list) => {
                let wanted: Vec<Value> = match list {
                    ScalarList::Bool(l) => l.iter().map(|b| Value::Bool(*b)).collect(),
                    ScalarList::Int(l) => l.iter().map(|i| Value::Int(*i)).collect(),
                    ScalarList::Float(l) => l
                        .iter()
                        .map(|f| Value::of_scalar(&Scalar::Float(*f)))
                        .collect::<Option<_>>()?,
                    ScalarList::Str(l) => l.iter().map(|s| Value::Str(s.clone())).collect(),
                };
                let mut lists: Vec<&SeqList> =
                    wanted.iter().filter_map(|v| values.get(v)).collect();
                // Equal values listed twice (1 and 1.0) find the same list.
                lists.sort_unstable_by_key(|l| std::ptr::from_ref(*l));
                lists.dedup_by_key(|l| std::ptr::from_ref(*l));
                lists
            }
            MetaOp::Gt(s) | MetaOp::Gte(s) | MetaOp::Lt(s) | MetaOp::Lte(s) => {
                let bound = Value::of_scalar(s).filter(Value::is_number)?;
                let numbers = values
                    .range((Bound::Excluded(Value::Bool(true)), Bound::Unbounded))
                    .take_while(|(v, _)| v.is_number());
                let keep = |v: &Value| match op {
                    MetaOp::Gt(_) => *v > bound,
                    MetaOp::Gte(_) => *v >= bound,
                    MetaOp::Lt(_) => *v < bound,
                    _ => *v <= bound,
                };
                numbers.filter(|(v, _)| keep(v)).map(|(_, l)| l).collect()
            }
            MetaOp::Ne(_) | MetaOp::Nin(_) | MetaOp::Contains(_) | MetaOp::NotContains(_) => {
                return None
            }
        };
        let total: usize = lists.iter().map(|l| l.len()).sum();
        if total > budget {
            return None;
        }
        let mut out = Vec::with_capacity(total);
        for l in &lists {
            out.extend(l.iter());
        }
        // A record holds one value per key, so the lists are disjoint.
        if lists.len() > 1 {
            out.sort_unstable();
        }
        Some(out)
    }
}

/// The entries of a record's metadata the index files: those with a scalar value.
fn scalars<'a>(
    metadata: impl IntoIterator<Item = (&'a str, &'a MetadataValue)>,
) -> impl Iterator<Item = (&'a str, Value)> {
    metadata
        .into_iter()
        .filter_map(|(k, v)| Some((k, Value::of_metadata(v)?)))
}

/// The elements of ascending `a` not in ascending `b`.
fn difference(a: &[SeqNo], b: &[SeqNo]) -> Vec<SeqNo> {
    let mut out = Vec::with_capacity(a.len().saturating_sub(b.len()));
    let mut j = 0;
    for x in a {
        while j < b.len() && b[j] < *x {
            j += 1;
        }
        if b.get(j) != Some(x) {
            out.push(*x);
        }
    }
    out
}

/// Both ascending lists' common elements.
pub(crate) fn intersect(a: &[SeqNo], b: &[SeqNo]) -> Vec<SeqNo> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small
        .iter()
        .filter(|s| large.binary_search(s).is_ok())
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ochre_types::Metadata;
    use proptest::prelude::*;

    /// The entries of optional metadata, as the index takes them.
    fn entries(m: Option<&Metadata>) -> impl Iterator<Item = (&str, &MetadataValue)> {
        m.into_iter().flatten().map(|(k, v)| (k.as_str(), v))
    }

    fn value() -> impl Strategy<Value = MetadataValue> {
        prop_oneof![
            any::<bool>().prop_map(MetadataValue::Bool),
            (-3i64..4).prop_map(MetadataValue::Int),
            prop_oneof![
                Just(-0.0f64),
                Just(0.0),
                Just(1.0),
                Just(1.5),
                Just(-2.5),
                Just(3.0)
            ]
            .prop_map(MetadataValue::Float),
            prop_oneof![Just("a"), Just("b"), Just("")].prop_map(|s| MetadataValue::Str(s.into())),
            prop::collection::vec(-2i64..3, 1..3).prop_map(MetadataValue::IntArray),
        ]
    }

    fn metadata() -> impl Strategy<Value = Option<Metadata>> {
        prop::option::of(prop::collection::btree_map(
            prop_oneof![Just("k".to_owned()), Just("j".to_owned())],
            value(),
            0..3,
        ))
    }

    fn scalar() -> impl Strategy<Value = Scalar> {
        prop_oneof![
            any::<bool>().prop_map(Scalar::Bool),
            (-3i64..4).prop_map(Scalar::Int),
            prop_oneof![Just(-0.0f64), Just(1.0), Just(1.5), Just(-2.5), Just(2.0)]
                .prop_map(Scalar::Float),
            prop_oneof![Just("a"), Just("b"), Just("")].prop_map(|s| Scalar::Str(s.into())),
        ]
    }

    fn leaf() -> impl Strategy<Value = Where> {
        let key = prop_oneof![
            Just("k".to_owned()),
            Just("j".to_owned()),
            Just("x".to_owned())
        ];
        let op = prop_oneof![
            scalar().prop_map(MetaOp::Eq),
            scalar().prop_map(MetaOp::Ne),
            scalar().prop_map(MetaOp::Gt),
            scalar().prop_map(MetaOp::Gte),
            scalar().prop_map(MetaOp::Lt),
            scalar().prop_map(MetaOp::Lte),
            scalar().prop_map(MetaOp::Contains),
            prop::collection::vec(-3i64..4, 0..3).prop_map(|l| MetaOp::In(ScalarList::Int(l))),
            prop::collection::vec(prop_oneof![Just(1.0f64), Just(1.5), Just(-0.0)], 0..3)
                .prop_map(|l| MetaOp::In(ScalarList::Float(l))),
            prop::collection::vec(
                prop_oneof![Just("a".to_owned()), Just("c".to_owned())],
                0..3
            )
            .prop_map(|l| MetaOp::In(ScalarList::Str(l))),
            prop::collection::vec(any::<bool>(), 0..2)
                .prop_map(|l| MetaOp::In(ScalarList::Bool(l))),
        ];
        (key, op).prop_map(|(key, op)| Where::Meta { key, op })
    }

    fn filter() -> impl Strategy<Value = Where> {
        leaf().prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Where::And),
                prop::collection::vec(inner, 0..3).prop_map(Where::Or),
            ]
        })
    }

    proptest! {
        /// After any sequence of inserts and removals, the candidates are a superset of the
        /// records that match (exactly the matches when so flagged), ascending, without repeats.
        #[test]
        fn candidates_are_a_sorted_superset_of_the_matches(
            ops in prop::collection::vec((0u64..12, metadata(), any::<bool>()), 0..40),
            w in filter(),
            budget in prop_oneof![Just(usize::MAX), 0usize..6],
        ) {
            let mut index = MetaIndex::default();
            let mut records: BTreeMap<SeqNo, Option<Metadata>> = BTreeMap::new();
            for (seq, metadata, keep) in ops {
                let seq = SeqNo(seq);
                if let Some(old) = records.remove(&seq) {
                    index.remove(seq, entries(old.as_ref()));
                }
                if keep {
                    index.insert(seq, entries(metadata.as_ref()));
                    records.insert(seq, metadata);
                }
            }
            let all = || records.keys().copied().collect::<Vec<_>>();
            if let Some((found, exact)) = index.candidates(&w, budget, &all) {
                prop_assert!(found.len() <= budget);
                prop_assert!(found.windows(2).all(|p| p[0] < p[1]));
                for (seq, metadata) in &records {
                    let matches = w.matches("id", metadata.as_ref(), None);
                    if matches {
                        prop_assert!(found.contains(seq), "{seq:?} matches {w:?} but is not a candidate");
                    } else if exact {
                        prop_assert!(!found.contains(seq), "{seq:?} does not match {w:?} but was found exactly");
                    }
                }
            }
            // Removing everything leaves nothing behind.
            for (seq, metadata) in &records {
                index.remove(*seq, entries(metadata.as_ref()));
            }
            prop_assert!(index.keys.is_empty());
        }
    }

    #[test]
    fn equal_numbers_share_a_list_and_kinds_stay_apart() {
        let mut index = MetaIndex::default();
        let m = |v: MetadataValue| Some([("k".to_owned(), v)].into_iter().collect::<Metadata>());
        index.insert(SeqNo(1), entries(m(MetadataValue::Int(1)).as_ref()));
        index.insert(SeqNo(2), entries(m(MetadataValue::Float(1.0)).as_ref()));
        index.insert(SeqNo(3), entries(m(MetadataValue::Bool(true)).as_ref()));
        index.insert(
            SeqNo(4),
            entries(m(MetadataValue::Str("1".into())).as_ref()),
        );
        let eq = |s: Scalar| {
            index
                .candidates(
                    &Where::Meta {
                        key: "k".into(),
                        op: MetaOp::Eq(s),
                    },
                    usize::MAX,
                    &|| (1..=4).map(SeqNo).collect(),
                )
                .map(|(found, _)| found)
        };
        assert_eq!(eq(Scalar::Int(1)), Some(vec![SeqNo(1), SeqNo(2)]));
        assert_eq!(eq(Scalar::Float(1.0)), Some(vec![SeqNo(1), SeqNo(2)]));
        assert_eq!(eq(Scalar::Bool(true)), Some(vec![SeqNo(3)]));
        assert_eq!(eq(Scalar::Str("1".into())), Some(vec![SeqNo(4)]));
        let gt = index.candidates(
            &Where::Meta {
                key: "k".into(),
                op: MetaOp::Gt(Scalar::Float(0.5)),
            },
            usize::MAX,
            &|| (1..=4).map(SeqNo).collect(),
        );
        assert_eq!(gt, Some((vec![SeqNo(1), SeqNo(2)], true)));
        // Too many candidates: a scan is cheaper.
        assert_eq!(
            index.candidates(
                &Where::Meta {
                    key: "k".into(),
                    op: MetaOp::Gte(Scalar::Int(0)),
                },
                1,
                &|| (1..=4).map(SeqNo).collect(),
            ),
            None
        );
        let ne = index.candidates(
            &Where::Meta {
                key: "k".into(),
                op: MetaOp::Ne(Scalar::Int(1)),
            },
            usize::MAX,
            &|| (1..=5).map(SeqNo).collect(),
        );
        assert_eq!(ne, Some((vec![SeqNo(3), SeqNo(4), SeqNo(5)], true)));
    }
}
