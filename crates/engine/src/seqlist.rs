//! An ascending set of sequence numbers with cheap inserts and removals anywhere: the records
//! holding one metadata value.
//!
//! A value held by few records (most of them) keeps them in one sorted `Vec`, as compact as a
//! list can be. Once it holds more than [`BLOCK`], it is kept as sorted blocks of at most
//! `2 · BLOCK` numbers, every block's numbers below the next block's: an insert or removal finds
//! its block by binary search and shifts at most one block, O(log n + BLOCK) instead of the
//! O(n) of one long `Vec` (a low-cardinality key such as a boolean holds half the collection).

use ochre_types::SeqNo;

/// Numbers per block, at least (once split); blocks grow to twice this before splitting.
const BLOCK: usize = 512;

#[derive(Debug, Clone)]
pub(crate) enum SeqList {
    /// At most `2 · BLOCK` numbers, ascending.
    Small(Vec<SeqNo>),
    /// Non-empty ascending blocks of at most `2 · BLOCK`, in order; `len` numbers in all.
    Blocks { blocks: Vec<Vec<SeqNo>>, len: usize },
}

impl Default for SeqList {
    fn default() -> Self {
        SeqList::Small(Vec::new())
    }
}

impl SeqList {
    /// Number of sequence numbers held.
    pub(crate) fn len(&self) -> usize {
        match self {
            SeqList::Small(v) => v.len(),
            SeqList::Blocks { len, .. } => *len,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `seq` (no effect when present).
    pub(crate) fn insert(&mut self, seq: SeqNo) {
        match self {
            SeqList::Small(v) => {
                insert_sorted(v, seq);
                if v.len() > 2 * BLOCK {
                    let all = std::mem::take(v);
                    let len = all.len();
                    let blocks = all.chunks(BLOCK).map(<[SeqNo]>::to_vec).collect();
                    *self = SeqList::Blocks { blocks, len };
                }
            }
            SeqList::Blocks { blocks, len } => {
                // The first block whose last number is not below `seq`, else the last block.
                let at = blocks
                    .partition_point(|b| b.last().is_some_and(|last| *last < seq))
                    .min(blocks.len() - 1);
                let block = &mut blocks[at];
                let before = block.len();
                insert_sorted(block, seq);
                if block.len() == before {
                    return;
                }
                *len += 1;
                if block.len() > 2 * BLOCK {
                    let upper = block.split_off(BLOCK);
                    blocks.insert(at + 1, upper);
                }
            }
        }
    }

    /// Removes `seq`; true if it was present.
    pub(crate) fn remove(&mut self, seq: SeqNo) -> bool {
        match self {
            SeqList::Small(v) => match v.binary_search(&seq) {
                Ok(i) => {
                    v.remove(i);
                    true
                }
                Err(_) => false,
            },
            SeqList::Blocks { blocks, len } => {
                let at = blocks.partition_point(|b| b.last().is_some_and(|last| *last < seq));
                let Some(block) = blocks.get_mut(at) else {
                    return false;
                };
                let Ok(i) = block.binary_search(&seq) else {
                    return false;
                };
                block.remove(i);
                *len -= 1;
                if block.is_empty() {
                    blocks.remove(at);
                }
                if *len <= BLOCK {
                    let all: Vec<SeqNo> = blocks.iter().flatten().copied().collect();
                    *self = SeqList::Small(all);
                }
                true
            }
        }
    }

    /// The numbers, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = SeqNo> + '_ {
        let (small, blocks): (&[SeqNo], &[Vec<SeqNo>]) = match self {
            SeqList::Small(v) => (v, &[]),
            SeqList::Blocks { blocks, .. } => (&[], blocks),
        };
        small
            .iter()
            .copied()
            .chain(blocks.iter().flatten().copied())
    }
}

/// Inserts `seq` into ascending `v` unless present; records are usually filed in sequence order,
/// so this is almost always a push.
fn insert_sorted(v: &mut Vec<SeqNo>, seq: SeqNo) {
    match v.last() {
        Some(last) if *last >= seq => {
            if let Err(at) = v.binary_search(&seq) {
                v.insert(at, seq);
            }
        }
        _ => v.push(seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Any sequence of inserts and removes leaves the same ascending set as a `BTreeSet`,
        /// across the switch to blocks and back.
        #[test]
        fn behaves_like_an_ordered_set(
            ops in proptest::collection::vec((any::<bool>(), 0u64..4000), 0..6000),
            ascending in 0usize..3000,
        ) {
            let mut list = SeqList::default();
            let mut model = BTreeSet::new();
            for s in 0..ascending as u64 {
                list.insert(SeqNo(s * 2));
                model.insert(SeqNo(s * 2));
            }
            for (insert, s) in ops {
                let s = SeqNo(s);
                if insert {
                    list.insert(s);
                    model.insert(s);
                } else {
                    prop_assert_eq!(list.remove(s), model.remove(&s));
                }
                prop_assert_eq!(list.len(), model.len());
            }
            let got: Vec<SeqNo> = list.iter().collect();
            let want: Vec<SeqNo> = model.iter().copied().collect();
            prop_assert_eq!(got, want);
            if let SeqList::Blocks { blocks, .. } = &list {
                prop_assert!(blocks.iter().all(|b| !b.is_empty() && b.len() <= 2 * BLOCK));
            }
        }
    }

    #[test]
    fn a_large_list_is_blocks_and_shrinks_back() {
        let mut list = SeqList::default();
        for s in 0..10_000 {
            list.insert(SeqNo(s));
        }
        assert!(matches!(list, SeqList::Blocks { .. }));
        for s in 0..9_800 {
            assert!(list.remove(SeqNo(s)));
        }
        assert!(matches!(list, SeqList::Small(ref v) if v.len() == 200));
        assert!(!list.remove(SeqNo(5)));
    }
}
