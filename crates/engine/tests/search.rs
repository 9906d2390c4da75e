//! Model test of the Search API: random collections (dense vectors, sparse vectors under an
//! indexed key, documents, metadata) and random plans (rank expressions over dense and sparse
//! `$knn` with and without defaults and ranks, constants and every operator; filters on metadata,
//! ids and documents; group_by; offset/limit; select), checked against a plain evaluator written
//! from the spec (§10) here.
//!
//! The reference takes dense `$knn` hits from `Collection::query` with the same filter (the
//! collections stay under the exact-scan size, and the model test checks `query` against brute
//! force), and computes everything else itself: sparse scores by brute force, BM25 weights, the
//! domain algebra, grouping, paging and projection. Scores must agree bit for bit, since both
//! sides combine the same f32 values in the same order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed expectation is a failing test"
)]

use std::collections::BTreeMap;

use ochre::search::{
    Aggregate, AggregateKey, GroupBy, Knn, KnnQuery, Rank, SearchPlan, SearchResult, Select,
};
use ochre::{
    CollectionConfiguration, CreateCollection, Include, Metadata, MetadataValue, Ochre,
    QueryRequest, RecordBatch, Where,
};
use ochre_types::SparseVector;
use proptest::prelude::*;
use serde_json::json;

const DIM: usize = 4;
const SPARSE_KEY: &str = "sp";
const WORDS: [&str; 5] = ["apple", "banana", "cherry", "apple pie", "band"];

#[derive(Debug, Clone)]
struct Rec {
    id: String,
    embedding: Vec<f32>,
    document: Option<String>,
    metadata: Metadata,
}

fn sparse_strategy() -> impl Strategy<Value = SparseVector> {
    prop::collection::btree_map(0u32..6, 0.0f32..2.0, 0..4).prop_map(|m| SparseVector {
        indices: m.keys().copied().collect(),
        values: m.values().copied().collect(),
        tokens: None,
    })
}

fn rec_strategy() -> impl Strategy<
    Value = (
        Vec<f32>,
        Option<usize>,
        i64,
        Option<i64>,
        SparseVector,
        bool,
    ),
> {
    (
        prop::collection::vec(-1.0f32..1.0, DIM),
        prop::option::of(0..WORDS.len()),
        0i64..3,
        prop::option::of(0i64..4),
        sparse_strategy(),
        any::<bool>(),
    )
}

fn records_strategy() -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec(rec_strategy(), 0..25).prop_map(|rs| {
        rs.into_iter()
            .enumerate()
            .map(|(i, (embedding, doc, g, r, sp, has_sp))| {
                let mut metadata = Metadata::new();
                metadata.insert("g".into(), MetadataValue::Int(g));
                if let Some(r) = r {
                    metadata.insert("r".into(), MetadataValue::Int(r));
                }
                if has_sp {
                    metadata.insert(SPARSE_KEY.into(), MetadataValue::Sparse(Box::new(sp)));
                }
                Rec {
                    id: format!("r{i:02}"),
                    embedding,
                    document: doc.map(|d| WORDS[d].to_owned()),
                    metadata,
                }
            })
            .collect()
    })
}

fn knn_strategy() -> impl Strategy<Value = Rank> {
    (
        prop_oneof![
            prop::collection::vec(-1.0f32..1.0, DIM).prop_map(KnnQuery::Dense),
            sparse_strategy().prop_map(KnnQuery::Sparse),
        ],
        1u32..8,
        prop::option::of(prop_oneof![Just(0.0f32), Just(1.0), Just(10.0)]),
        any::<bool>(),
    )
        .prop_map(|(query, limit, default, return_rank)| {
            Rank::Knn(Knn {
                key: match query {
                    KnnQuery::Dense(_) => "#embedding".into(),
                    KnnQuery::Sparse(_) => SPARSE_KEY.into(),
                },
                query,
                limit,
                default,
                return_rank,
            })
        })
}

fn rank_strategy() -> impl Strategy<Value = Rank> {
    let leaf = prop_oneof![
        3 => knn_strategy(),
        1 => prop_oneof![Just(0.5f32), Just(-1.0), Just(2.0)].prop_map(Rank::Val),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(Rank::Sum),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Rank::Mul),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Rank::Max),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Rank::Min),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Rank::Sub(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Rank::Div(Box::new(a), Box::new(b))),
            inner.clone().prop_map(|a| Rank::Abs(Box::new(a))),
            inner.clone().prop_map(|a| Rank::Exp(Box::new(a))),
            inner.prop_map(|a| Rank::Log(Box::new(a))),
        ]
    })
}

fn filter_strategy() -> impl Strategy<Value = Option<Where>> {
    let leaf = prop_oneof![
        (0i64..3).prop_map(|g| json!({"g": g})),
        (0i64..4).prop_map(|r| json!({"r": {"$gte": r}})),
        prop::sample::select(vec!["app", "ban", "e", "pie", "zzz"])
            .prop_map(|s| json!({"#document": {"$contains": s}})),
        prop::sample::select(vec!["^a", "an+d", "y$"])
            .prop_map(|s| json!({"#document": {"$regex": s}})),
        Just(json!({"#document": {"$not_contains": "an"}})),
        Just(json!({"#id": {"$in": ["r01", "r03", "r05", "r07"]}})),
    ];
    prop_oneof![
        1 => Just(None),
        2 => leaf.clone().prop_map(Some),
        1 => (leaf.clone(), leaf).prop_map(|(a, b)| Some(json!({"$and": [a, b]}))),
    ]
    .prop_map(|w| w.map(|w| Where::from_json(&w).expect("valid filter")))
}

fn plan_strategy() -> impl Strategy<Value = SearchPlan> {
    (
        filter_strategy(),
        prop::option::of(rank_strategy()),
        prop::option::of((any::<bool>(), any::<bool>(), 1u32..3)),
        0u32..4,
        prop::option::of(0u32..8),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|(filter, rank, group, offset, limit, (d, e, m, s))| {
            let group_by = match (&rank, group) {
                (Some(_), Some((by_score, descending, k))) => Some(GroupBy {
                    keys: vec!["g".into()],
                    aggregate: Aggregate {
                        descending,
                        keys: if by_score {
                            vec![AggregateKey::Score]
                        } else {
                            vec![AggregateKey::Field("r".into()), AggregateKey::Score]
                        },
                        k,
                    },
                }),
                _ => None,
            };
            SearchPlan {
                filter,
                rank,
                group_by,
                offset,
                limit,
                select: Select {
                    document: d,
                    embedding: e,
                    metadata: m,
                    score: s,
                    fields: if m { Vec::new() } else { vec!["r".into()] },
                },
            }
        })
}

/// The reference's domain: scores by record position (storage order) and a default.
#[derive(Clone, Debug)]
struct Dom {
    support: BTreeMap<usize, f32>,
    default: Option<f32>,
}

struct Reference<'a> {
    recs: &'a [Rec],
    coll: &'a ochre::Collection,
    allowed: Vec<usize>,
    filter: Option<Where>,
    bm25: bool,
}

impl Reference<'_> {
    fn knn(&self, k: &Knn) -> Dom {
        let pos = |id: &str| self.recs.iter().position(|r| r.id == id).expect("known id");
        let hits: Vec<(usize, f32)> = match &k.query {
            KnnQuery::Dense(q) => {
                let r = self
                    .coll
                    .query(QueryRequest {
                        embeddings: vec![q.clone()],
                        n_results: k.limit,
                        ids: None,
                        where_: self.filter.clone(),
                        where_document: None,
                        include: Include {
                            distances: true,
                            ..Include::default()
                        },
                    })
                    .expect("query");
                let d = r.distances.expect("distances");
                r.ids[0]
                    .iter()
                    .zip(&d[0])
                    .map(|(id, d)| (pos(id), *d))
                    .collect()
            }
            KnnQuery::Sparse(q) => {
                let n = self.recs.len() as f64;
                let weights: Vec<f32> = q
                    .indices
                    .iter()
                    .zip(&q.values)
                    .map(|(t, v)| {
                        if !self.bm25 {
                            return *v;
                        }
                        let nt = self
                            .recs
                            .iter()
                            .filter(|r| sparse_of(r).is_some_and(|s| s.indices.contains(t)))
                            .count() as f64;
                        v * ((n - nt + 0.5) / (nt + 0.5) + 1.0).ln() as f32
                    })
                    .collect();
                let mut scored: Vec<(usize, f64)> = Vec::new();
                for &i in &self.allowed {
                    let Some(s) = sparse_of(&self.recs[i]) else {
                        continue;
                    };
                    let mut dot = 0f64;
                    let mut shared = false;
                    for (t, w) in q.indices.iter().zip(&weights) {
                        if let Some(p) = s.indices.iter().position(|x| x == t) {
                            dot += f64::from(*w) * f64::from(s.values[p]);
                            shared = true;
                        }
                    }
                    if shared {
                        scored.push((i, dot));
                    }
                }
                scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                scored.truncate(k.limit as usize);
                scored
                    .into_iter()
                    .map(|(i, d)| (i, 1.0 - d as f32))
                    .collect()
            }
        };
        Dom {
            support: hits
                .into_iter()
                .enumerate()
                .map(|(n, (i, d))| (i, if k.return_rank { n as f32 } else { d }))
                .collect(),
            default: k.default,
        }
    }

    fn combine(a: Dom, b: Dom, op: impl Fn(f32, f32) -> f32) -> Dom {
        let mut keys: Vec<usize> = match (a.default, b.default) {
            (Some(_), Some(_)) => a.support.keys().chain(b.support.keys()).copied().collect(),
            (Some(_), None) => b.support.keys().copied().collect(),
            (None, Some(_)) => a.support.keys().copied().collect(),
            (None, None) => a
                .support
                .keys()
                .filter(|k| b.support.contains_key(k))
                .copied()
                .collect(),
        };
        keys.sort_unstable();
        keys.dedup();
        let support = keys
            .into_iter()
            .map(|k| {
                let x = a.support.get(&k).copied().or(a.default).expect("a side");
                let y = b.support.get(&k).copied().or(b.default).expect("b side");
                (k, op(x, y))
            })
            .collect();
        let default = match (a.default, b.default) {
            (Some(x), Some(y)) => Some(op(x, y)),
            _ => None,
        };
        Dom { support, default }
    }

    fn fold(&self, items: &[Rank], start: f32, op: fn(f32, f32) -> f32) -> Dom {
        let mut acc = Dom {
            support: BTreeMap::new(),
            default: Some(start),
        };
        for r in items {
            acc = Self::combine(acc, self.eval(r), op);
        }
        acc
    }

    fn map(mut d: Dom, f: fn(f32) -> f32) -> Dom {
        for v in d.support.values_mut() {
            *v = f(*v);
        }
        d.default = d.default.map(f);
        d
    }

    fn eval(&self, r: &Rank) -> Dom {
        match r {
            Rank::Knn(k) => self.knn(k),
            Rank::Val(x) => Dom {
                support: BTreeMap::new(),
                default: Some(*x),
            },
            Rank::Sum(v) => self.fold(v, 0.0, |a, b| a + b),
            Rank::Mul(v) => self.fold(v, 1.0, |a, b| a * b),
            Rank::Max(v) => self.fold(v, f32::MIN, f32::max),
            Rank::Min(v) => self.fold(v, f32::MAX, f32::min),
            Rank::Sub(a, b) => Self::combine(self.eval(a), self.eval(b), |x, y| x - y),
            Rank::Div(a, b) => Self::combine(self.eval(a), self.eval(b), |x, y| x / y),
            Rank::Abs(a) => Self::map(self.eval(a), f32::abs),
            Rank::Exp(a) => Self::map(self.eval(a), f32::exp),
            Rank::Log(a) => Self::map(self.eval(a), f32::ln),
        }
    }
}

fn sparse_of(r: &Rec) -> Option<&SparseVector> {
    match r.metadata.get(SPARSE_KEY) {
        Some(MetadataValue::Sparse(s)) => Some(s),
        _ => None,
    }
}

fn int(r: &Rec, k: &str) -> Option<i64> {
    match r.metadata.get(k) {
        Some(MetadataValue::Int(i)) => Some(*i),
        _ => None,
    }
}

fn reference(
    recs: &[Rec],
    coll: &ochre::Collection,
    plan: &SearchPlan,
    bm25: bool,
) -> SearchResult {
    let allowed: Vec<usize> = (0..recs.len())
        .filter(|&i| {
            let r = &recs[i];
            plan.filter
                .as_ref()
                .is_none_or(|w| w.matches(&r.id, Some(&r.metadata), r.document.as_deref()))
        })
        .collect();
    let offset = plan.offset as usize;
    let limit = plan.limit.map_or(usize::MAX, |l| l as usize);
    let ranked: Vec<(usize, f32)> = match &plan.rank {
        None => allowed
            .iter()
            .skip(offset)
            .take(limit)
            .enumerate()
            .map(|(n, &i)| (i, n as f32))
            .collect(),
        Some(rank) => {
            let rf = Reference {
                recs,
                coll,
                allowed: allowed.clone(),
                filter: plan.filter.clone(),
                bm25,
            };
            let d = rf.eval(rank);
            let mut v: Vec<(usize, f32)> = d
                .support
                .into_iter()
                .filter(|(i, _)| allowed.contains(i))
                .collect();
            let by_score =
                |a: &(usize, f32), b: &(usize, f32)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
            v.sort_by(by_score);
            if let Some(g) = &plan.group_by {
                let mut groups: BTreeMap<Option<i64>, Vec<(usize, f32)>> = BTreeMap::new();
                for x in v {
                    groups.entry(int(&recs[x.0], "g")).or_default().push(x);
                }
                let mut kept = Vec::new();
                for (_, mut m) in groups {
                    m.sort_by(|a, b| {
                        let flip = |o: std::cmp::Ordering| {
                            if g.aggregate.descending {
                                o.reverse()
                            } else {
                                o
                            }
                        };
                        let mut o = std::cmp::Ordering::Equal;
                        for key in &g.aggregate.keys {
                            o = match key {
                                AggregateKey::Score => flip(a.1.total_cmp(&b.1)),
                                // Option's order, a missing value first: Chroma sorts
                                // `Option<MetadataValue>`.
                                AggregateKey::Field(f) => {
                                    flip(int(&recs[a.0], f).cmp(&int(&recs[b.0], f)))
                                }
                            };
                            if o != std::cmp::Ordering::Equal {
                                break;
                            }
                        }
                        o.then(by_score(a, b))
                    });
                    m.truncate(g.aggregate.k as usize);
                    kept.extend(m);
                }
                kept.sort_by(by_score);
                v = kept;
            }
            v.into_iter().skip(offset).take(limit).collect()
        }
    };
    let s = &plan.select;
    SearchResult {
        ids: ranked.iter().map(|(i, _)| recs[*i].id.clone()).collect(),
        documents: s.document.then(|| {
            ranked
                .iter()
                .map(|(i, _)| recs[*i].document.clone())
                .collect()
        }),
        embeddings: s.embedding.then(|| {
            ranked
                .iter()
                .map(|(i, _)| Some(recs[*i].embedding.clone()))
                .collect()
        }),
        metadatas: (s.metadata || !s.fields.is_empty()).then(|| {
            ranked
                .iter()
                .map(|(i, _)| {
                    let m = &recs[*i].metadata;
                    let kept: Metadata = m
                        .iter()
                        .filter(|(k, _)| s.metadata || s.fields.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    (!kept.is_empty()).then_some(kept)
                })
                .collect()
        }),
        scores: s.score.then(|| ranked.iter().map(|(_, x)| *x).collect()),
    }
}

fn configuration(bm25: bool) -> CollectionConfiguration {
    CollectionConfiguration {
        schema: Some(
            json!({"keys": {SPARSE_KEY: {"sparse_vector": {"sparse_vector_index": {
            "enabled": true, "config": {"bm25": bm25}}}}}}),
        ),
        ..Default::default()
    }
}

/// Scores compared bit for bit, NaN equal to NaN.
fn same(a: &SearchResult, b: &SearchResult) -> bool {
    let scores = match (&a.scores, &b.scores) {
        (Some(x), Some(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
        }
        (None, None) => true,
        _ => false,
    };
    scores
        && a.ids == b.ids
        && a.documents == b.documents
        && a.embeddings == b.embeddings
        && a.metadatas == b.metadatas
}

/// Creates collection `name` with a sparse index on `sp` (BM25 weighting when `bm25`).
fn create(db: &Ochre, name: &str, bm25: bool) -> ochre::Collection {
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: name.into(),
                configuration: configuration(bm25),
                ..CreateCollection::default()
            },
        )
        .expect("create");
    db.collection(info.id).expect("collection")
}

/// Creates the collection `search` (see [`create`]) in `db` and adds `recs`.
fn load(db: &Ochre, recs: &[Rec], bm25: bool) -> ochre::Collection {
    let coll = create(db, "search", bm25);
    if !recs.is_empty() {
        coll.add(
            RecordBatch::new(
                recs.iter().map(|r| r.id.clone()).collect(),
                recs.iter().map(|r| r.embedding.clone()).collect(),
            )
            .documents(recs.iter().map(|r| r.document.clone()).collect())
            .metadatas(recs.iter().map(|r| Some(r.metadata.clone())).collect()),
        )
        .expect("add");
    }
    coll
}

fn run(recs: &[Rec], plans: &[SearchPlan], bm25: bool, db: &Ochre) -> Result<(), TestCaseError> {
    let coll = load(db, recs, bm25);
    let got = coll.search(plans).expect("search");
    for (plan, got) in plans.iter().zip(&got) {
        let want = reference(recs, &coll, plan, bm25);
        prop_assert!(
            same(got, &want),
            "plan {plan:#?}\ngot {got:#?}\nwant {want:#?}"
        );
    }
    drop(coll);
    db.delete_collection("default_tenant", "default_database", "search")
        .expect("delete");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every plan answers as the spec's evaluator does, in memory.
    #[test]
    fn search_plans_match_the_reference_evaluator(
        recs in records_strategy(),
        plans in prop::collection::vec(plan_strategy(), 1..4),
        bm25 in any::<bool>(),
    ) {
        run(&recs, &plans, bm25, &Ochre::ephemeral())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// The same on a persistent database, after a reopen (documents from the store, the sparse
    /// and text indexes rebuilt on recovery).
    #[test]
    fn search_plans_match_the_reference_after_a_reopen(
        recs in records_strategy(),
        plans in prop::collection::vec(plan_strategy(), 1..4),
        bm25 in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Ochre::open(dir.path()).expect("open");
            drop(load(&db, &recs, bm25));
        }
        let db = Ochre::open(dir.path()).expect("reopen");
        let coll = db
            .get_collection("default_tenant", "default_database", "search")
            .expect("get");
        let coll = db.collection(coll.id).expect("collection");
        coll.wait_for_index_maintenance();
        let got = coll.search(&plans).expect("search");
        for (plan, got) in plans.iter().zip(&got) {
            let want = reference(&recs, &coll, plan, bm25);
            prop_assert!(same(got, &want), "plan {plan:#?}\ngot {got:#?}\nwant {want:#?}");
        }
    }
}

/// Hybrid retrieval as the Python client sends it: RRF over a dense and a BM25 `$knn`, each
/// with `return_rank`, negated so that higher fused relevance ranks first.
#[test]
fn reciprocal_rank_fusion_ranks_records_found_by_both_first() {
    let db = Ochre::ephemeral();
    let c = create(&db, "rrf", true);
    let sv = |i: &[u32]| {
        let mut m = Metadata::new();
        m.insert(
            SPARSE_KEY.into(),
            MetadataValue::Sparse(Box::new(SparseVector {
                indices: i.to_vec(),
                values: vec![1.0; i.len()],
                tokens: None,
            })),
        );
        Some(m)
    };
    c.add(
        RecordBatch::new(
            vec![
                "both".into(),
                "dense".into(),
                "sparse".into(),
                "none".into(),
            ],
            vec![
                vec![1.0, 0.0],
                vec![0.9, 0.1],
                vec![-1.0, 0.0],
                vec![-0.9, -0.1],
            ],
        )
        .metadatas(vec![sv(&[1]), sv(&[9]), sv(&[1]), sv(&[9])]),
    )
    .expect("add");
    let knn = |query| {
        Rank::Knn(Knn {
            key: SPARSE_KEY.into(),
            query,
            limit: 2,
            default: Some(1000.0),
            return_rank: true,
        })
    };
    let term = |r: Rank| {
        Rank::Div(
            Box::new(Rank::Val(1.0)),
            Box::new(Rank::Sum(vec![Rank::Val(60.0), r])),
        )
    };
    let rrf = Rank::Mul(vec![
        Rank::Val(-1.0),
        Rank::Sum(vec![
            term(knn(KnnQuery::Dense(vec![1.0, 0.0]))),
            term(knn(KnnQuery::Sparse(SparseVector {
                indices: vec![1],
                values: vec![1.0],
                tokens: None,
            }))),
        ]),
    ]);
    let r = c
        .search(&[SearchPlan {
            rank: Some(rrf),
            limit: Some(3),
            ..SearchPlan::default()
        }])
        .expect("search");
    assert_eq!(r[0].ids[0], "both");
    assert_eq!(r[0].ids.len(), 3);
    assert!(!r[0].ids.contains(&"none".to_owned()));
}

#[test]
fn a_sparse_query_on_a_key_without_an_index_is_refused() {
    let db = Ochre::ephemeral();
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "plain".into(),
                ..CreateCollection::default()
            },
        )
        .expect("create");
    let c = db.collection(info.id).expect("collection");
    let e = c
        .search(&[SearchPlan {
            rank: Some(Rank::Knn(Knn {
                key: "sp".into(),
                query: KnnQuery::Sparse(SparseVector::default()),
                limit: 3,
                default: None,
                return_rank: false,
            })),
            ..SearchPlan::default()
        }])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot filter using metadata key 'sp' with type 'SparseVector' because indexing is disabled"
    );
}

#[test]
fn sparse_vectors_are_refused_in_collection_metadata_and_validated_in_records() {
    let db = Ochre::ephemeral();
    let mut m = Metadata::new();
    m.insert("s".into(), MetadataValue::Sparse(Box::default()));
    let e = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "meta".into(),
                metadata: Some(m),
                ..CreateCollection::default()
            },
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Sparse vectors are not allowed in collection metadata"),
        "{e}"
    );
    let c = create(&db, "records", false);
    let mut bad = Metadata::new();
    bad.insert(
        SPARSE_KEY.into(),
        MetadataValue::Sparse(Box::new(SparseVector {
            indices: vec![3, 1],
            values: vec![1.0, 1.0],
            tokens: None,
        })),
    );
    let e = c
        .add(RecordBatch::new(vec!["a".into()], vec![vec![0.0; DIM]]).metadatas(vec![Some(bad)]))
        .unwrap_err();
    assert!(e.to_string().contains("metadatas"), "{e}");
    assert_eq!(c.count().expect("count"), 0, "the batch changed nothing");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Document filters the trigram index can only narrow (needles of four or more bytes whose
    /// trigrams the documents' words hold apart, so trigram hits without a match are common): `query` checks the
    /// documents of its nearest candidates only, `get` and `search` verify every candidate; all
    /// three answer exactly what brute force does, in a persistent collection after a reopen.
    #[test]
    fn narrowed_document_filters_answer_exactly(
        docs in prop::collection::vec(
            prop::option::of(prop::collection::vec(
                prop::sample::select(vec!["abc", "bca", "cab", "abca", "bcab", "x"]), 0..5,
            ).prop_map(|w| w.join(" "))),
            1..120,
        ),
        needle in prop::sample::select(vec!["abca", "bcab", "cabc", "abcab", "bca bc"]),
        q in prop::collection::vec(-1.0f32..1.0, DIM),
        k in 1u32..12,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = docs.len();
        let ids: Vec<String> = (0..n).map(|i| format!("d{i:03}")).collect();
        let vecs: Vec<Vec<f32>> = (0..n)
            .map(|i| (0..DIM).map(|j| ((i * 7 + j * 13) % 17) as f32 / 17.0).collect())
            .collect();
        {
            let db = Ochre::open(dir.path()).expect("open");
            let info = db
                .create_collection("default_tenant", "default_database", CreateCollection {
                    name: "text".into(),
                    ..CreateCollection::default()
                })
                .expect("create");
            let c = db.collection(info.id).expect("collection");
            c.add(RecordBatch::new(ids.clone(), vecs.clone()).documents(docs.clone()))
                .expect("add");
        }
        let db = Ochre::open(dir.path()).expect("reopen");
        let id = db.get_collection("default_tenant", "default_database", "text").expect("get").id;
        let c = db.collection(id).expect("collection");
        // Half the cases before the full-text index is rebuilt (a scan), half after.
        if k % 2 == 0 {
            c.wait_for_index_maintenance();
        }
        let matching: Vec<usize> = (0..n)
            .filter(|&i| docs[i].as_deref().is_some_and(|d| d.contains(needle)))
            .collect();
        let wd = ochre::WhereDocument::from_json(&json!({"$contains": needle})).expect("filter");
        let got = c
            .get(ochre::GetRequest {
                where_document: Some(wd.clone()),
                ..ochre::GetRequest::default()
            })
            .expect("get");
        prop_assert_eq!(&got.ids, &matching.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>());
        let r = c
            .query(QueryRequest {
                embeddings: vec![q.clone()],
                n_results: k,
                ids: None,
                where_: None,
                where_document: Some(wd),
                include: Include { distances: true, ..Include::default() },
            })
            .expect("query");
        let dist = |v: &[f32]| v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
        let mut want: Vec<(f32, usize)> = matching.iter().map(|&i| (dist(&vecs[i]), i)).collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        want.truncate(k as usize);
        let got_set: std::collections::BTreeSet<&String> = r.ids[0].iter().collect();
        let want_set: std::collections::BTreeSet<&String> = want.iter().map(|(_, i)| &ids[*i]).collect();
        prop_assert_eq!(r.ids[0].len(), want.len());
        // Equal distances may come in either order; the sets and the distances must agree.
        let gd = r.distances.expect("distances");
        for (g, (w, _)) in gd[0].iter().zip(&want) {
            prop_assert!((g - w).abs() <= 1e-5, "{g} vs {w}");
        }
        if want.len() == matching.len() || want.windows(2).all(|p| p[0].0 != p[1].0) {
            prop_assert_eq!(got_set, want_set);
        }
        let s = c
            .search(&[SearchPlan {
                filter: Some(Where::from_json(&json!({"#document": {"$contains": needle}})).expect("w")),
                ..SearchPlan::default()
            }])
            .expect("search");
        prop_assert_eq!(&s[0].ids, &got.ids);
    }
}

/// Writes made while the full-text index is rebuilt in the background after an open (updates
/// that change or clear documents, deletes, new records) are all in the index once it is
/// installed: `$contains` answers as brute force before and after.
#[test]
fn writes_during_the_background_text_build_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 6000;
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let doc = |i: usize, round: usize| format!("word{} shared{} tail", (i + round) % 97, i % 5);
    {
        let db = Ochre::open(dir.path()).expect("open");
        let info = db
            .create_collection(
                "default_tenant",
                "default_database",
                CreateCollection {
                    name: "busy".into(),
                    ..CreateCollection::default()
                },
            )
            .expect("create");
        let c = db.collection(info.id).expect("collection");
        c.add(
            RecordBatch::new(ids.clone(), (0..n).map(|i| vec![i as f32, 1.0]).collect())
                .documents((0..n).map(|i| Some(doc(i, 0))).collect()),
        )
        .expect("add");
    }
    let db = Ochre::open(dir.path()).expect("reopen");
    let id = db
        .get_collection("default_tenant", "default_database", "busy")
        .expect("get")
        .id;
    let c = db.collection(id).expect("collection");
    let mut model: BTreeMap<usize, Option<String>> = (0..n).map(|i| (i, Some(doc(i, 0)))).collect();
    // Straight away, while the index is being built: change, delete, add.
    let changed: Vec<usize> = (0..n).step_by(7).collect();
    c.update(RecordBatch {
        ids: changed.iter().map(|&i| ids[i].clone()).collect(),
        documents: Some(changed.iter().map(|&i| Some(doc(i, 1))).collect()),
        ..RecordBatch::default()
    })
    .expect("update");
    for &i in &changed {
        model.insert(i, Some(doc(i, 1)));
    }
    c.delete(ochre::DeleteRequest {
        ids: Some((0..n).step_by(11).map(|i| ids[i].clone()).collect()),
        ..ochre::DeleteRequest::default()
    })
    .expect("delete");
    for i in (0..n).step_by(11) {
        model.remove(&i);
    }
    c.upsert(
        RecordBatch::new(
            vec!["new".into(), ids[3].clone()],
            vec![vec![0.0, 0.0], vec![3.0, 1.0]],
        )
        .documents(vec![Some("word1 brand new".into()), None]),
    )
    .expect("upsert");
    // A `None` document in an upsert of an existing record keeps its document.
    model.insert(n, Some("word1 brand new".into()));
    let check = |c: &ochre::Collection| {
        for needle in ["word1 ", "word42 shared", "shared3", "new"] {
            let wd = ochre::WhereDocument::from_json(&json!({"$contains": needle})).expect("wd");
            let mut got = c
                .get(ochre::GetRequest {
                    where_document: Some(wd),
                    ..ochre::GetRequest::default()
                })
                .expect("get")
                .ids;
            got.sort();
            let mut want: Vec<String> = model
                .iter()
                .filter(|(_, d)| d.as_deref().is_some_and(|d| d.contains(needle)))
                .map(|(i, _)| {
                    if *i == n {
                        "new".to_owned()
                    } else {
                        ids[*i].clone()
                    }
                })
                .collect();
            want.sort();
            assert_eq!(got, want, "{needle}");
        }
    };
    check(&c);
    c.wait_for_index_maintenance();
    check(&c);
}
