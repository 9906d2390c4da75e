//! The sparse index against a brute-force reference: unit cases, a seeded large case that
//! exercises pruning and block skipping, and model-based property tests over random inserts,
//! replacements, removals and queries.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use ochre_types::SeqNo;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{SparseHit, SparseIndex};

/// The reference: every live vector by sequence number.
type Model = BTreeMap<u64, (Vec<u32>, Vec<f32>)>;

/// The scoring rule of the module documentation, written out independently: products in `f64`
/// over shared terms in ascending term order, rounded to `f32` once; `None` when no term is
/// shared.
fn score(qi: &[u32], qv: &[f32], vi: &[u32], vv: &[f32]) -> Option<f32> {
    let mut acc = 0.0f64;
    let mut shared = false;
    for (a, &t) in qi.iter().enumerate() {
        if let Ok(b) = vi.binary_search(&t) {
            acc += f64::from(qv[a]) * f64::from(vv[b]);
            shared = true;
        }
    }
    shared.then_some(acc as f32)
}

fn brute(
    model: &Model,
    qi: &[u32],
    qv: &[f32],
    k: usize,
    allow: Option<&dyn Fn(SeqNo) -> bool>,
) -> Vec<SparseHit> {
    let mut hits: Vec<SparseHit> = model
        .iter()
        .filter(|(&s, _)| allow.is_none_or(|f| f(SeqNo(s))))
        .filter_map(|(&s, (vi, vv))| {
            score(qi, qv, vi, vv).map(|score| SparseHit {
                seq: SeqNo(s),
                score,
            })
        })
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.seq.cmp(&b.seq)));
    hits.truncate(k);
    hits
}

/// Asserts bit-identical results (`PartialEq` on f32 would let `-0.0 == 0.0` through).
fn assert_same(got: &[SparseHit], want: &[SparseHit], what: &str) {
    let bits = |h: &[SparseHit]| -> Vec<(u64, u32)> {
        h.iter().map(|h| (h.seq.0, h.score.to_bits())).collect()
    };
    assert_eq!(bits(got), bits(want), "{what}: got {got:?}, want {want:?}");
}

fn insert(ix: &mut SparseIndex, model: &mut Model, seq: u64, pairs: &[(u32, f32)]) {
    let (i, v): (Vec<u32>, Vec<f32>) = pairs.iter().copied().unzip();
    ix.insert(SeqNo(seq), &i, &v);
    model.insert(seq, (i, v));
}

fn hits(pairs: &[(u64, f32)]) -> Vec<SparseHit> {
    pairs
        .iter()
        .map(|&(s, score)| SparseHit {
            seq: SeqNo(s),
            score,
        })
        .collect()
}

#[test]
fn empty_index_and_empty_query_return_nothing() {
    let mut ix = SparseIndex::new();
    assert!(ix.is_empty());
    assert!(ix.search(&[1], &[1.0], 10, None).is_empty());
    ix.insert(SeqNo(1), &[1, 2], &[1.0, 2.0]);
    assert!(ix.search(&[], &[], 10, None).is_empty());
    assert!(ix.search(&[1], &[1.0], 0, None).is_empty());
    assert!(ix.search(&[7], &[1.0], 10, None).is_empty());
    assert!(ix.search_among(&[1], &[1.0], 0, &[SeqNo(1)]).is_empty());
    assert!(ix.search_among(&[1], &[1.0], 5, &[]).is_empty());
}

#[test]
fn insert_get_replace_remove() {
    let mut ix = SparseIndex::new();
    ix.insert(SeqNo(3), &[1, 5, 9], &[0.5, 1.5, 2.5]);
    ix.insert(SeqNo(4), &[5], &[1.0]);
    assert_eq!(ix.len(), 2);
    assert_eq!(ix.get(SeqNo(3)), Some((vec![1, 5, 9], vec![0.5, 1.5, 2.5])));
    ix.insert(SeqNo(3), &[2], &[4.0]);
    assert_eq!(ix.len(), 2);
    assert_eq!(ix.get(SeqNo(3)), Some((vec![2], vec![4.0])));
    assert_eq!(ix.doc_freq(5), 1);
    assert_eq!(ix.doc_freq(1), 0);
    assert_eq!(ix.doc_freq(2), 1);
    ix.remove(SeqNo(4));
    ix.remove(SeqNo(99));
    assert_eq!(ix.len(), 1);
    assert_eq!(ix.get(SeqNo(4)), None);
    assert_eq!(ix.doc_freq(5), 0);
    assert_same(
        &ix.search(&[2, 5], &[1.0, 1.0], 10, None),
        &hits(&[(3, 4.0)]),
        "after replace and remove",
    );
}

#[test]
fn vectors_sharing_no_term_are_not_hits() {
    let mut ix = SparseIndex::new();
    ix.insert(SeqNo(1), &[1], &[1.0]);
    ix.insert(SeqNo(2), &[2], &[1.0]);
    ix.insert(SeqNo(3), &[], &[]);
    assert_eq!(ix.len(), 3);
    assert_same(
        &ix.search(&[1], &[1.0], 10, None),
        &hits(&[(1, 1.0)]),
        "k > matches",
    );
    // A zero query value still shares the term: a hit with score 0.
    assert_same(
        &ix.search(&[2], &[0.0], 10, None),
        &hits(&[(2, 0.0)]),
        "zero weight",
    );
}

#[test]
fn ties_rank_by_ascending_seq_in_any_insertion_order() {
    for order in [[1u64, 2, 3, 4, 5], [5, 3, 1, 4, 2]] {
        let mut ix = SparseIndex::new();
        for s in order {
            ix.insert(SeqNo(s), &[7], &[1.0]);
        }
        assert_same(
            &ix.search(&[7], &[2.0], 3, None),
            &hits(&[(1, 2.0), (2, 2.0), (3, 2.0)]),
            "ties",
        );
    }
}

#[test]
fn negative_values_are_searched_exhaustively_and_exactly() {
    let mut ix = SparseIndex::new();
    let mut model = Model::new();
    insert(&mut ix, &mut model, 1, &[(1, 1.0), (2, -3.0)]);
    insert(&mut ix, &mut model, 2, &[(1, 0.5), (3, 2.0)]);
    insert(&mut ix, &mut model, 3, &[(2, 1.0)]);
    for (qi, qv) in [
        (vec![1, 2], vec![1.0, 1.0]),
        (vec![1, 2, 3], vec![-1.0, 1.0, 0.5]),
        (vec![2], vec![-2.0]),
    ] {
        for k in [1, 2, 5] {
            assert_same(
                &ix.search(&qi, &qv, k, None),
                &brute(&model, &qi, &qv, k, None),
                "signed",
            );
        }
    }
    // Negative scores are hits too when they share a term.
    assert_same(
        &ix.search(&[2], &[1.0], 5, None),
        &hits(&[(3, 1.0), (1, -3.0)]),
        "negative score",
    );
}

#[test]
fn unsorted_input_is_sorted_and_repeated_indices_summed() {
    let mut ix = SparseIndex::new();
    ix.insert(SeqNo(1), &[9, 3, 9, 1], &[1.0, 2.0, 0.5, 4.0, 8.0]);
    assert_eq!(ix.get(SeqNo(1)), Some((vec![1, 3, 9], vec![4.0, 2.0, 1.5])));
    assert_same(
        &ix.search(&[9, 1, 9], &[1.0, 1.0, 1.0], 1, None),
        &hits(&[(1, 7.0)]),
        "query",
    );
}

#[test]
fn filter_and_candidate_set_restrict_hits_exactly() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut ix = SparseIndex::new();
    let mut model = Model::new();
    for s in 0..3000u64 {
        let pairs = random_doc(&mut rng, 300, 8);
        insert(&mut ix, &mut model, s, &pairs);
    }
    for round in 0..50 {
        let (qi, qv) = random_query(&mut rng, 300, 3);
        for m in [1u64, 7, 97, 2999] {
            let allow = move |s: SeqNo| s.0 % m == round % m;
            let want = brute(&model, &qi, &qv, 10, Some(&allow));
            assert_same(&ix.search(&qi, &qv, 10, Some(&allow)), &want, "filter");
            // Duplicates and absent sequence numbers are ignored.
            let mut cands: Vec<SeqNo> = (0..3000u64).map(SeqNo).filter(|&s| allow(s)).collect();
            cands.extend(cands.clone().into_iter().rev().take(3));
            cands.push(SeqNo(5000));
            assert_same(&ix.search_among(&qi, &qv, 10, &cands), &want, "among");
        }
    }
}

/// Zipf-like document: `n` distinct terms out of `vocab`, BM25-like weights with a few ties.
fn random_doc(rng: &mut StdRng, vocab: u32, n: usize) -> Vec<(u32, f32)> {
    let mut terms = BTreeSet::new();
    let len = rng.gen_range(0..=n);
    while terms.len() < len {
        let r: f64 = rng.gen_range(0.0..1.0);
        terms.insert(((vocab as f64).powf(r) as u32).min(vocab - 1));
    }
    terms
        .into_iter()
        .map(|t| {
            let tf = if rng.gen_bool(0.8) {
                1.0
            } else {
                rng.gen_range(2..5) as f32
            };
            let len = rng.gen_range(3..20) as f32;
            (t, tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / 256.0)))
        })
        .collect()
}

fn random_query(rng: &mut StdRng, vocab: u32, n: usize) -> (Vec<u32>, Vec<f32>) {
    let mut terms = BTreeSet::new();
    let len = rng.gen_range(1..=n);
    while terms.len() < len {
        let r: f64 = rng.gen_range(0.0..1.0);
        terms.insert(((vocab as f64).powf(r) as u32).min(vocab - 1));
    }
    let qi: Vec<u32> = terms.into_iter().collect();
    let qv = qi.iter().map(|&t| 1.0 + (t as f32).ln_1p()).collect();
    (qi, qv)
}

#[test]
fn pruned_search_matches_brute_force_with_long_postings_and_removals() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut ix = SparseIndex::new();
    let mut model = Model::new();
    for s in 0..6000u64 {
        let pairs = random_doc(&mut rng, 2000, 12);
        insert(&mut ix, &mut model, s, &pairs);
    }
    let check = |ix: &SparseIndex, model: &Model, rng: &mut StdRng| {
        for _ in 0..100 {
            let (qi, qv) = random_query(rng, 2000, 5);
            for k in [1, 10, 100] {
                assert_same(
                    &ix.search(&qi, &qv, k, None),
                    &brute(model, &qi, &qv, k, None),
                    "k",
                );
            }
        }
    };
    check(&ix, &model, &mut rng);
    // Remove two thirds (compacting terms and rebuilding), replace some, check again.
    for s in 0..6000u64 {
        if s % 3 != 0 {
            ix.remove(SeqNo(s));
            model.remove(&s);
        } else if s % 9 == 0 {
            let pairs = random_doc(&mut rng, 2000, 12);
            insert(&mut ix, &mut model, s, &pairs);
        }
    }
    assert_eq!(ix.len(), model.len());
    check(&ix, &model, &mut rng);
    for t in 0..2000 {
        let df = model
            .values()
            .filter(|(i, _)| i.binary_search(&t).is_ok())
            .count();
        assert_eq!(ix.doc_freq(t), df, "doc_freq({t})");
    }
}

#[test]
fn long_queries_match_brute_force() {
    // More query terms than the batched probe handles: candidates are completed one by one.
    let mut rng = StdRng::seed_from_u64(5);
    let mut ix = SparseIndex::with_block_shift(3);
    let mut model = Model::new();
    for s in 0..2000u64 {
        let pairs = random_doc(&mut rng, 400, 30);
        insert(&mut ix, &mut model, s, &pairs);
    }
    for _ in 0..40 {
        let (qi, qv) = random_query(&mut rng, 400, 80);
        for k in [1, 10, 50] {
            assert_same(
                &ix.search(&qi, &qv, k, None),
                &brute(&model, &qi, &qv, k, None),
                "long",
            );
        }
    }
}

#[test]
fn pruning_skips_most_candidates() {
    // One rare, heavy term and one common, light one: once the heap holds the rare term's
    // vectors, the common term's postings are only probed, never walked as candidates.
    let mut ix = SparseIndex::new();
    for s in 0..20_000u64 {
        if s % 1000 == 0 {
            ix.insert(SeqNo(s), &[1, 2], &[1.0, 5.0]);
        } else {
            ix.insert(SeqNo(s), &[1], &[1.0]);
        }
    }
    let calls = Cell::new(0usize);
    let allow = |_: SeqNo| {
        calls.set(calls.get() + 1);
        true
    };
    let got = ix.search(&[1, 2], &[1.0, 1.0], 10, Some(&allow));
    let want: Vec<(u64, f32)> = (0..10).map(|i| (i * 1000, 6.0)).collect();
    assert_same(&got, &hits(&want), "rare term first");
    // The first block of the common term is gathered before the heap is full; after that only
    // the rare term's vectors are candidates.
    assert!(
        calls.get() < 2 * super::BLOCK + 100,
        "{} candidates reached the filter",
        calls.get()
    );
}

#[test]
fn removed_memory_is_reclaimed() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut ix = SparseIndex::new();
    let base = ix.memory_bytes();
    for s in 0..5000u64 {
        let pairs = random_doc(&mut rng, 5000, 20);
        let (i, v): (Vec<u32>, Vec<f32>) = pairs.into_iter().unzip();
        ix.insert(SeqNo(s), &i, &v);
    }
    let grown = ix.memory_bytes();
    ix.shrink_to_fit();
    let full = ix.memory_bytes();
    assert!(
        full < grown,
        "shrink_to_fit released headroom: {full} of {grown}"
    );
    for s in (0..5000u64).step_by(97) {
        let (i, v) = ix.get(SeqNo(s)).unwrap();
        assert_eq!(
            ix.search_among(&i, &v, 1, &[SeqNo(s)]).len(),
            usize::from(!i.is_empty())
        );
    }
    for s in 10..5000u64 {
        ix.remove(SeqNo(s));
    }
    let few = ix.memory_bytes();
    assert!(few * 20 < full, "10 of 5000 left: {few} of {full} bytes");
    for s in 0..10u64 {
        ix.remove(SeqNo(s));
    }
    assert!(ix.is_empty());
    assert!(
        ix.memory_bytes() < base + 4096,
        "empty: {} bytes",
        ix.memory_bytes()
    );
    // Replacing the same records over and over does not grow the index either.
    for round in 0..50u64 {
        for s in 0..100u64 {
            ix.insert(SeqNo(s), &[(s + round) as u32 % 300, 1000], &[1.0, 2.0]);
        }
    }
    let steady = ix.memory_bytes();
    for _ in 0..50 {
        for s in 0..100u64 {
            ix.insert(SeqNo(s), &[s as u32 % 300, 1000], &[1.0, 2.0]);
        }
    }
    assert!(
        ix.memory_bytes() < steady * 2,
        "{} after as much again as {steady}",
        ix.memory_bytes()
    );
    assert_eq!(ix.doc_freq(1000), 100);
}

#[test]
fn out_of_order_inserts_are_reordered_by_a_rebuild() {
    let mut ix = SparseIndex::new();
    for s in (0..100u64).rev() {
        ix.insert(SeqNo(s), &[1], &[1.0]);
    }
    assert!(!ix.ordered);
    for s in 100..300u64 {
        ix.insert(SeqNo(s), &[1], &[1.0]);
    }
    assert!(ix.ordered, "a rebuild restored sequence order");
    assert_same(
        &ix.search(&[1], &[1.0], 2, None),
        &hits(&[(0, 1.0), (1, 1.0)]),
        "ties after reorder",
    );
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, Vec<(u32, f32)>),
    Remove(u64),
    Query {
        terms: Vec<(u32, f32)>,
        k: usize,
        filter: Option<(u64, u64)>,
    },
}

/// A small vocabulary (terms collide) with one far-away term; values from a few fixed ones (to
/// make ties) and a range, negative ones only when `signed`.
fn pairs(signed: bool) -> impl Strategy<Value = Vec<(u32, f32)>> {
    let term = prop_oneof![0u32..12, Just(u32::MAX)];
    let value = if signed {
        prop_oneof![Just(0.0f32), Just(1.0), Just(-1.0), Just(0.5), -4.0f32..4.0].boxed()
    } else {
        prop_oneof![Just(0.0f32), Just(1.0), Just(2.0), Just(0.5), 0.0f32..4.0].boxed()
    };
    proptest::collection::btree_map(term, value, 0..6).prop_map(|m| m.into_iter().collect())
}

fn op(signed: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..40, pairs(signed)).prop_map(|(s, p)| Op::Insert(s, p)),
        1 => (0u64..40).prop_map(Op::Remove),
        2 => (pairs(signed), prop_oneof![Just(0usize), 1usize..5, Just(10), Just(100)],
              proptest::option::of((1u64..6, 0u64..6)))
            .prop_map(|(terms, k, filter)| Op::Query { terms, k, filter }),
    ]
}

fn run(ops: &[Op], shift: u32) {
    let mut ix = SparseIndex::with_block_shift(shift);
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Insert(s, p) => insert(&mut ix, &mut model, *s, p),
            Op::Remove(s) => {
                ix.remove(SeqNo(*s));
                model.remove(s);
            }
            Op::Query { terms, k, filter } => {
                let (qi, qv): (Vec<u32>, Vec<f32>) = terms.iter().copied().unzip();
                let f = filter.map(|(m, r)| move |s: SeqNo| s.0 % m == r % m);
                let allow = f.as_ref().map(|f| f as &dyn Fn(SeqNo) -> bool);
                let want = brute(&model, &qi, &qv, *k, allow);
                assert_same(&ix.search(&qi, &qv, *k, allow), &want, "search");
                let cands: Vec<SeqNo> = (0..45u64)
                    .map(SeqNo)
                    .filter(|&s| allow.is_none_or(|f| f(s)))
                    .collect();
                assert_same(
                    &ix.search_among(&qi, &qv, *k, &cands),
                    &want,
                    "search_among",
                );
            }
        }
        assert_eq!(ix.len(), model.len());
        for t in (0u32..12).chain([u32::MAX]) {
            let df = model.values().filter(|(i, _)| i.contains(&t)).count();
            assert_eq!(ix.doc_freq(t), df, "doc_freq({t})");
        }
        if let Op::Insert(s, _) | Op::Remove(s) = op {
            assert_eq!(ix.get(SeqNo(*s)), model.get(s).cloned());
        }
    }
    let live: BTreeSet<u64> = ix.seqs().map(|s| s.0).collect();
    assert_eq!(live, model.keys().copied().collect::<BTreeSet<u64>>());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn model_non_negative(ops in proptest::collection::vec(op(false), 1..200), shift in 1u32..4) {
        run(&ops, shift);
    }

    #[test]
    fn model_signed(ops in proptest::collection::vec(op(true), 1..200), shift in 1u32..4) {
        run(&ops, shift);
    }

    #[test]
    fn model_default_blocks(ops in proptest::collection::vec(op(false), 1..400)) {
        run(&ops, super::BLOCK_SHIFT);
    }
}
