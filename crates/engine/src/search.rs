//! The Search API's plans and the parts of their evaluation that need no collection: the algebra
//! of rank domains, grouping, and the order of the final ranking (spec §10).
//!
//! A rank expression evaluates to a [`Domain`]: scores for a set of records (its support) plus
//! an optional default score for every record outside it. Combining two domains keeps a record
//! only where both sides can score it, so a `$knn` without a default restricts the ranking to its
//! own hits, and a rank made only of constants ranks nothing. Lower scores rank first.

use std::cmp::Ordering;
use std::collections::HashMap;

use ochre_types::{MetadataLookup, MetadataValue, SeqNo, SparseVector, Where};

use crate::packed::PackedMetadata;
use crate::request::Include;
use crate::Metadata;

/// One search of a `search` request: filter, rank, group, page, project.
#[derive(Debug, Clone, Default)]
pub struct SearchPlan {
    /// Records must pass it (`#id` and `#document` keys included).
    pub filter: Option<Where>,
    /// Without a rank, the filtered records in storage order.
    pub rank: Option<Rank>,
    /// Per-group top-k; only with a rank.
    pub group_by: Option<GroupBy>,
    /// Records skipped from the start of the final ordering.
    pub offset: u32,
    /// At most this many records after `offset`; `None` = all.
    pub limit: Option<u32>,
    pub select: Select,
}

/// The fields a search returns (ids always).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    pub document: bool,
    pub embedding: bool,
    /// The whole metadata.
    pub metadata: bool,
    pub score: bool,
    /// Metadata fields returned when `metadata` is not set.
    pub fields: Vec<String>,
}

/// A rank expression (spec §10.2).
#[derive(Debug, Clone, PartialEq)]
pub enum Rank {
    Knn(Knn),
    Val(f32),
    Sum(Vec<Rank>),
    Mul(Vec<Rank>),
    Max(Vec<Rank>),
    Min(Vec<Rank>),
    Sub(Box<Rank>, Box<Rank>),
    Div(Box<Rank>, Box<Rank>),
    Abs(Box<Rank>),
    Exp(Box<Rank>),
    Log(Box<Rank>),
}

/// Nearest-neighbour scores: distances (or 0-based positions with `return_rank`) of the `limit`
/// nearest records passing the filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    pub query: KnnQuery,
    /// For sparse queries, the metadata key holding the sparse vectors (its sparse index).
    pub key: String,
    pub limit: u32,
    /// The score of records outside the nearest `limit`; `None` drops them from the ranking.
    pub default: Option<f32>,
    pub return_rank: bool,
}

/// A dense or sparse query vector.
#[derive(Debug, Clone, PartialEq)]
pub enum KnnQuery {
    Dense(Vec<f32>),
    Sparse(SparseVector),
}

/// Records grouped by the values of `keys`; each group keeps its first `aggregate.k` records.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupBy {
    pub keys: Vec<String>,
    pub aggregate: Aggregate,
}

/// How a group orders its records before keeping `k`: ascending by `keys` (`$min_k`) or
/// descending (`$max_k`).
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub descending: bool,
    pub keys: Vec<AggregateKey>,
    pub k: u32,
}

/// A key groups are ordered by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggregateKey {
    Score,
    Field(String),
}

/// One search's result: parallel lists in final order; fields not selected are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    pub ids: Vec<String>,
    pub documents: Option<Vec<Option<String>>>,
    pub embeddings: Option<Vec<Option<Vec<f32>>>>,
    pub metadatas: Option<Vec<Option<Metadata>>>,
    pub scores: Option<Vec<f32>>,
}

impl Rank {
    /// The `$knn`s of the expression, in order.
    pub fn knns(&self) -> Vec<&Knn> {
        fn walk<'a>(r: &'a Rank, out: &mut Vec<&'a Knn>) {
            match r {
                Rank::Knn(k) => out.push(k),
                Rank::Val(_) => {}
                Rank::Sum(v) | Rank::Mul(v) | Rank::Max(v) | Rank::Min(v) => {
                    v.iter().for_each(|r| walk(r, out))
                }
                Rank::Sub(a, b) | Rank::Div(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Rank::Abs(e) | Rank::Exp(e) | Rank::Log(e) => walk(e, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// The `$knn`s of the expression, mutably, in the order of [`Rank::knns`] (the same walk:
    /// keep the two in step).
    pub fn knns_mut(&mut self) -> Vec<&mut Knn> {
        fn walk<'a>(r: &'a mut Rank, out: &mut Vec<&'a mut Knn>) {
            match r {
                Rank::Knn(k) => out.push(k),
                Rank::Val(_) => {}
                Rank::Sum(v) | Rank::Mul(v) | Rank::Max(v) | Rank::Min(v) => {
                    v.iter_mut().for_each(|r| walk(r, out))
                }
                Rank::Sub(a, b) | Rank::Div(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Rank::Abs(e) | Rank::Exp(e) | Rank::Log(e) => walk(e, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

impl Select {
    /// What the record projection must read.
    pub(crate) fn include(&self) -> Include {
        Include {
            embeddings: self.embedding,
            documents: self.document,
            metadatas: self.metadata || !self.fields.is_empty(),
            uris: false,
            distances: false,
        }
    }

    /// A record's metadata as selected: all of it, or only the selected fields (`None` when
    /// nothing is left).
    pub(crate) fn restrict(&self, m: Option<Metadata>) -> Option<Metadata> {
        if self.metadata {
            return m;
        }
        let m = m?;
        let kept: Metadata = m
            .into_iter()
            .filter(|(k, _)| self.fields.binary_search(k).is_ok())
            .collect();
        (!kept.is_empty()).then_some(kept)
    }
}

/// Scores over a support (sorted by sequence number, no duplicates) and the score of every other
/// record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Domain {
    pub(crate) support: Vec<(SeqNo, f32)>,
    pub(crate) default: Option<f32>,
}

/// The binary operators of rank expressions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Sum,
    Mul,
    Max,
    Min,
    Sub,
    Div,
}

impl Op {
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Op::Sum => a + b,
            Op::Mul => a * b,
            Op::Max => a.max(b),
            Op::Min => a.min(b),
            Op::Sub => a - b,
            Op::Div => a / b,
        }
    }

    /// The domain an n-ary fold starts from: a default and no support, so it restricts nothing.
    pub(crate) fn neutral(self) -> Domain {
        let d = match self {
            Op::Sum | Op::Sub => 0.0,
            Op::Mul | Op::Div => 1.0,
            Op::Max => f32::MIN,
            Op::Min => f32::MAX,
        };
        Domain::constant(d)
    }
}

impl Domain {
    /// A constant: no support, `x` everywhere.
    pub(crate) fn constant(x: f32) -> Domain {
        Domain {
            support: Vec::new(),
            default: Some(x),
        }
    }

    /// `f` applied to every score and to the default.
    pub(crate) fn map(mut self, f: impl Fn(f32) -> f32) -> Domain {
        for (_, s) in &mut self.support {
            *s = f(*s);
        }
        self.default = self.default.map(f);
        self
    }

    /// `self ⊕ other`: the union of supports where both sides have defaults, the side without
    /// a default's support where one has, the intersection where neither has.
    pub(crate) fn combine(self, other: Domain, op: Op) -> Domain {
        let (a, b) = (&self.support, &other.support);
        let mut out = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        let (da, db) = (self.default, other.default);
        while i < a.len() || j < b.len() {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let (seq, va, vb) = match ord {
                Ordering::Equal => {
                    let r = (a[i].0, Some(a[i].1), Some(b[j].1));
                    i += 1;
                    j += 1;
                    r
                }
                Ordering::Less => {
                    let r = (a[i].0, Some(a[i].1), None);
                    i += 1;
                    r
                }
                Ordering::Greater => {
                    let r = (b[j].0, None, Some(b[j].1));
                    j += 1;
                    r
                }
            };
            if let (Some(x), Some(y)) = (va.or(da), vb.or(db)) {
                // Where only one side has a default, the support is the other side's.
                let keep = match (da.is_some(), db.is_some()) {
                    (true, true) | (false, false) => true,
                    (true, false) => vb.is_some(),
                    (false, true) => va.is_some(),
                };
                if keep {
                    out.push((seq, op.apply(x, y)));
                }
            }
        }
        Domain {
            support: out,
            default: match (da, db) {
                (Some(x), Some(y)) => Some(op.apply(x, y)),
                _ => None,
            },
        }
    }
}

/// The ranking of a domain: its support by ascending score, ties by storage order.
pub(crate) fn ranking(d: Domain) -> Vec<(SeqNo, f32)> {
    let mut v = d.support;
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v
}

/// A metadata value as a grouping key (values of different types never collide).
fn group_key(v: Option<&MetadataValue>) -> String {
    match v {
        None => String::new(),
        Some(MetadataValue::Str(s)) => format!("s{s}"),
        Some(v) => format!("v{}", v.to_json()),
    }
}

/// Orders two optional metadata values for `$min_k`/`$max_k` as Chroma's distributed executor
/// does (it sorts `Option<MetadataValue>`): a missing value first, then by type (bool < int <
/// float < string < other), then by value within a type.
fn compare_values(a: Option<&MetadataValue>, b: Option<&MetadataValue>) -> Ordering {
    fn class(v: &MetadataValue) -> u8 {
        match v {
            MetadataValue::Bool(_) => 0,
            MetadataValue::Int(_) => 1,
            MetadataValue::Float(_) => 2,
            MetadataValue::Str(_) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match (x, y) {
            (MetadataValue::Bool(p), MetadataValue::Bool(q)) => p.cmp(q),
            (MetadataValue::Int(p), MetadataValue::Int(q)) => p.cmp(q),
            (MetadataValue::Float(p), MetadataValue::Float(q)) => p.total_cmp(q),
            (MetadataValue::Str(p), MetadataValue::Str(q)) => p.cmp(q),
            _ => class(x).cmp(&class(y)),
        },
    }
}

/// Keeps each group's first `k` records (grouped by `g.keys`, ordered by the aggregate keys),
/// then re-sorts everything kept by score. `metadata` gives a record's metadata.
pub(crate) fn group<'m>(
    ranked: Vec<(SeqNo, f32)>,
    g: &GroupBy,
    metadata: impl Fn(SeqNo) -> Option<&'m PackedMetadata>,
) -> Vec<(SeqNo, f32)> {
    let mut groups: HashMap<Vec<String>, Vec<(SeqNo, f32)>> = HashMap::new();
    for (seq, score) in ranked {
        let m = metadata(seq);
        let key = g
            .keys
            .iter()
            .map(|k| group_key(m.and_then(|m| m.value(k))))
            .collect();
        groups.entry(key).or_default().push((seq, score));
    }
    let field = |seq: SeqNo, k: &str| metadata(seq).and_then(|m| m.value(k));
    let mut kept = Vec::new();
    for (_, mut members) in groups {
        members.sort_by(|a, b| {
            let flip = |o: Ordering| {
                if g.aggregate.descending {
                    o.reverse()
                } else {
                    o
                }
            };
            let mut ord = Ordering::Equal;
            for key in &g.aggregate.keys {
                let o = match key {
                    AggregateKey::Score => flip(a.1.total_cmp(&b.1)),
                    AggregateKey::Field(f) => flip(compare_values(field(a.0, f), field(b.0, f))),
                };
                if o != Ordering::Equal {
                    ord = o;
                    break;
                }
            }
            ord.then(a.1.total_cmp(&b.1)).then(a.0.cmp(&b.0))
        });
        members.truncate(g.aggregate.k as usize);
        kept.extend(members);
    }
    kept.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(support: &[(u64, f32)], default: Option<f32>) -> Domain {
        Domain {
            support: support.iter().map(|(s, x)| (SeqNo(*s), *x)).collect(),
            default,
        }
    }

    #[test]
    fn domains_combine_as_the_spec_says() {
        let a = d(&[(1, 1.0), (2, 2.0)], None);
        let b = d(&[(2, 10.0), (3, 30.0)], None);
        // Neither has a default: the intersection.
        assert_eq!(a.clone().combine(b.clone(), Op::Sum), d(&[(2, 12.0)], None));
        // Only b has one: a's support, b's default where b misses.
        let b5 = Domain {
            default: Some(5.0),
            ..b.clone()
        };
        assert_eq!(
            a.clone().combine(b5.clone(), Op::Sum),
            d(&[(1, 6.0), (2, 12.0)], None)
        );
        assert_eq!(
            b5.clone().combine(a.clone(), Op::Sub),
            d(&[(1, 4.0), (2, 8.0)], None)
        );
        // Both: the union, and a default.
        let a1 = Domain {
            default: Some(1.0),
            ..a
        };
        assert_eq!(
            a1.combine(b5, Op::Mul),
            d(&[(1, 5.0), (2, 20.0), (3, 30.0)], Some(5.0))
        );
        // Constants rank nothing.
        let c = Op::Sum
            .neutral()
            .combine(Domain::constant(1.0), Op::Sum)
            .combine(Domain::constant(2.0), Op::Sum);
        assert_eq!(c, d(&[], Some(3.0)));
        assert!(ranking(c).is_empty());
    }

    #[test]
    fn neutral_elements_restrict_nothing() {
        let a = d(&[(1, 3.0), (4, -2.0)], None);
        for op in [Op::Sum, Op::Mul, Op::Max, Op::Min] {
            let r = op.neutral().combine(a.clone(), op);
            assert_eq!(r, a, "{op:?}");
        }
    }
}
