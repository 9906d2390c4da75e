//! Posting lists: the ascending slots of the documents that hold one trigram, compressed.
//!
//! A list is one of two shapes, chosen by its density (postings per slot handed out):
//!
//! - [`Packed`], for most trigrams: a byte buffer of full blocks followed by a tail, plus one
//!   skip entry per full block:
//!
//!   ```text
//!   bytes:  [w₀ | 128 gaps × w₀ bits] [w₁ | 128 gaps × w₁ bits] … [tail: < 128 LEB128 gaps]
//!   skips:  (last slot of block 0, offset of block 0), (last of block 1, offset of block 1), …
//!   ```
//!
//!   A gap is `slot − (previous slot + 1)` (the list's first slot counts from 0), so consecutive
//!   slots cost nothing but the block's width byte. A full block packs its 128 gaps at the width
//!   of the widest (`w` ∈ 0..=32 bits, least significant bit first, so a block is `1 + 16·w`
//!   bytes). The tail takes appended slots one at a time as LEB128 varints and is packed into a
//!   block when it reaches 128. A trigram in a tenth of the documents costs about 5 bits per
//!   posting, a rare one up to 2–3 bytes; the skip entries add half a bit.
//! - [`Bitmap`], for trigrams in at least a third of the documents (`e t`, `the`, ` an`): one bit
//!   per slot, so at most 3 bits per posting, and membership is one bit test. Intersections with
//!   such a list cost the candidates, not the list.
//!
//! A list becomes a bitmap when it reaches a third of the slots ([`BITMAP_DENSITY`]; once at least
//! [`BITMAP_MIN_SLOTS`] slots are handed out), and packed again when it falls under a sixth as the
//! bitmap grows; the gap between the two thresholds means a list converts back only after the
//! slots double, so conversions cost O(1) amortised per posting. Compaction picks the shape anew.
//!
//! Invariants:
//! - Slots are strictly ascending: [`Postings::push`] is only called with a slot above every slot
//!   in the list (the index appends slots and dedups a document's trigrams).
//! - Packed: `skips[k].last` is the last slot of block `k`; block `k`'s gaps count from
//!   `skips[k-1].last + 1` (from 0 for block 0), and the tail's from the last block's.
//! - Slots are below `u32::MAX` (the index's slot limit), so `last + 1` never overflows.
//! - Only this module writes the buffers, so decoding never meets foreign bytes; it still reads
//!   through iterators and `get`, so a broken invariant gives wrong slots, never a panic.

/// A list becomes a bitmap once its postings reach `1 / BITMAP_DENSITY` of the slots handed out,
/// and packed again under half that density.
pub(super) const BITMAP_DENSITY: usize = 3;
/// Below this many slots handed out, every list stays packed (early on, every list is dense).
pub(super) const BITMAP_MIN_SLOTS: usize = 4096;

/// One trigram's posting list, in the shape its density calls for (module docs).
#[derive(Debug, Clone)]
pub(super) enum Postings {
    Packed(Packed),
    Bitmap(Bitmap),
}

impl Default for Postings {
    fn default() -> Self {
        Postings::Packed(Packed::default())
    }
}

/// How many slots are handed out, for choosing a list's shape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Universe {
    /// Slots handed out.
    pub(super) slots: usize,
    /// [`BITMAP_MIN_SLOTS`], lower in tests.
    pub(super) bitmap_min_slots: usize,
}

impl Universe {
    /// Whether `len` postings call for a bitmap.
    fn dense(self, len: usize) -> bool {
        self.slots >= self.bitmap_min_slots && len * BITMAP_DENSITY >= self.slots
    }

    /// Whether a bitmap of `len` postings is sparse enough to pack again.
    fn sparse(self, len: usize) -> bool {
        len * 2 * BITMAP_DENSITY < self.slots
    }
}

impl Postings {
    /// A list of `slots` (strictly ascending), in the shape its density calls for, with no spare
    /// capacity.
    pub(super) fn from_sorted(slots: &[u32], universe: Universe) -> Postings {
        if universe.dense(slots.len()) {
            Postings::Bitmap(Bitmap::from_sorted(slots))
        } else {
            Postings::Packed(Packed::from_sorted(slots))
        }
    }

    /// Postings in the list.
    pub(super) fn len(&self) -> usize {
        match self {
            Postings::Packed(p) => p.len(),
            Postings::Bitmap(b) => b.len as usize,
        }
    }

    /// True when the list holds nothing.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes the list holds (capacities, not lengths).
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Postings::Packed(p) => p.heap_bytes(),
            Postings::Bitmap(b) => b.words.capacity() * 8,
        }
    }

    /// Appends `slot`, above every slot already in the list; `universe` counts `slot` among the
    /// slots handed out. May change the list's shape.
    pub(super) fn push(&mut self, slot: u32, universe: Universe) {
        match self {
            Postings::Packed(p) => {
                p.push(slot);
                if universe.dense(p.len()) {
                    let mut slots = Vec::with_capacity(p.len());
                    p.for_each(|s| slots.push(s));
                    *self = Postings::Bitmap(Bitmap::from_sorted(&slots));
                }
            }
            Postings::Bitmap(b) => {
                if b.needs_word(slot) && universe.sparse(b.len as usize + 1) {
                    let mut slots = Vec::with_capacity(b.len as usize + 1);
                    b.for_each(|s| slots.push(s));
                    slots.push(slot);
                    *self = Postings::Packed(Packed::from_sorted(&slots));
                } else {
                    b.push(slot);
                }
            }
        }
    }

    /// Calls `f` with every slot, ascending.
    pub(super) fn for_each(&self, f: impl FnMut(u32)) {
        match self {
            Postings::Packed(p) => p.for_each(f),
            Postings::Bitmap(b) => b.for_each(f),
        }
    }

    /// Keeps the slots of `cur` (ascending) that the list holds.
    pub(super) fn retain_present(&self, cur: &mut Vec<u32>) {
        match self {
            Postings::Packed(p) => p.retain_present(cur),
            Postings::Bitmap(b) => cur.retain(|&s| b.contains(s)),
        }
    }
}

/// A dense list: bit `s` of the words is set when slot `s` is in the list.
#[derive(Debug, Clone, Default)]
pub(super) struct Bitmap {
    words: Vec<u64>,
    len: u32,
}

impl Bitmap {
    fn from_sorted(slots: &[u32]) -> Bitmap {
        let mut b = Bitmap::default();
        let words = slots.last().map_or(0, |&s| s as usize / 64 + 1);
        b.words.reserve_exact(words);
        for &s in slots {
            b.push(s);
        }
        b
    }

    /// Whether setting `slot` needs a word past the current ones.
    fn needs_word(&self, slot: u32) -> bool {
        slot as usize / 64 >= self.words.len()
    }

    fn push(&mut self, slot: u32) {
        let w = slot as usize / 64;
        if w >= self.words.len() {
            // Grow by a quarter, as packed buffers do.
            if w >= self.words.capacity() {
                self.words
                    .reserve_exact((w + 1 - self.words.len()).max(self.words.len() / 4));
            }
            self.words.resize(w + 1, 0);
        }
        if let Some(word) = self.words.get_mut(w) {
            *word |= 1 << (slot % 64);
            self.len += 1;
        }
    }

    fn contains(&self, slot: u32) -> bool {
        self.words
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    fn for_each(&self, mut f: impl FnMut(u32)) {
        for (i, &w) in self.words.iter().enumerate() {
            let mut w = w;
            while w != 0 {
                // `i · 64 + bit` is a slot that was pushed, so below `u32::MAX`.
                f((i * 64) as u32 + w.trailing_zeros());
                w &= w - 1;
            }
        }
    }
}

/// Postings per packed block.
pub(super) const BLOCK: usize = 128;

/// Where one full block lies and the last slot it holds.
#[derive(Debug, Clone, Copy)]
struct Skip {
    last: u32,
    offset: u32,
}

/// A sparse list: bit-packed gaps in blocks with skip entries, and a varint tail.
#[derive(Debug, Clone, Default)]
pub(super) struct Packed {
    bytes: Vec<u8>,
    skips: Vec<Skip>,
    len: u32,
    last: u32,
}

impl Packed {
    /// A list of `slots` (strictly ascending), with no spare capacity.
    fn from_sorted(slots: &[u32]) -> Packed {
        let mut p = Packed::default();
        for &s in slots {
            p.push(s);
        }
        p.bytes.shrink_to_fit();
        p.skips.shrink_to_fit();
        p
    }

    fn len(&self) -> usize {
        self.len as usize
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.skips.capacity() * std::mem::size_of::<Skip>()
    }

    /// Appends `slot`, which must be above every slot already in the list.
    fn push(&mut self, slot: u32) {
        debug_assert!(
            self.len == 0 || slot > self.last,
            "slots are appended in order"
        );
        let gap = slot.saturating_sub(self.next_base());
        // Grow by a quarter rather than doubling: most of the index is these buffers, and a
        // doubled buffer is on average a quarter empty.
        if self.bytes.len() + 5 > self.bytes.capacity() {
            self.bytes.reserve_exact((self.bytes.len() / 4).max(8));
        }
        write_varint(&mut self.bytes, gap);
        self.len += 1;
        self.last = slot;
        if (self.len as usize).is_multiple_of(BLOCK) {
            self.pack_tail();
        }
    }

    /// The base the next appended slot's gap counts from.
    fn next_base(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            self.last.saturating_add(1)
        }
    }

    /// Where the tail starts in `bytes`.
    fn tail_offset(&self) -> usize {
        self.skips.last().map_or(0, |s| {
            let at = s.offset as usize;
            let width = self.bytes.get(at).copied().unwrap_or(0) as usize;
            at + 1 + 16 * width
        })
    }

    /// Postings in the tail.
    fn tail_len(&self) -> usize {
        self.len as usize % BLOCK
    }

    /// Replaces the (full) varint tail by a packed block.
    fn pack_tail(&mut self) {
        let at = self.tail_offset();
        let mut gaps = [0u32; BLOCK];
        let mut it = self.bytes.get(at..).unwrap_or(&[]).iter().copied();
        for g in gaps.iter_mut() {
            *g = read_varint(&mut it);
        }
        self.bytes.truncate(at);
        let width = 32 - gaps.iter().fold(0, |a, &g| a | g).leading_zeros();
        self.bytes.reserve_exact(1 + 16 * width as usize);
        pack(&gaps, width, &mut self.bytes);
        self.skips.push(Skip {
            last: self.last,
            // Fits: 4 GiB of one packed list means billions of postings, far past the memory of
            // any index this one is (records under 2³², the densest lists bitmaps).
            offset: at as u32,
        });
    }

    /// Blocks, counting a non-empty tail as the last.
    fn blocks(&self) -> usize {
        self.skips.len() + usize::from(self.tail_len() > 0)
    }

    /// The last slot of block `k` (the tail when `k == skips.len()`).
    fn block_last(&self, k: usize) -> u32 {
        self.skips.get(k).map_or(self.last, |s| s.last)
    }

    /// Decodes block `k` into `out`, returning how many slots it holds.
    fn decode_block(&self, k: usize, out: &mut [u32; BLOCK]) -> usize {
        let base = match k.checked_sub(1) {
            None => 0,
            Some(p) => self.block_last(p).saturating_add(1),
        };
        let n = match self.skips.get(k) {
            Some(s) => {
                let at = s.offset as usize;
                let width = u32::from(self.bytes.get(at).copied().unwrap_or(0));
                let data = self.bytes.get(at + 1..).unwrap_or(&[]);
                unpack(data, width, out);
                BLOCK
            }
            None => {
                let n = self.tail_len();
                let mut it = self
                    .bytes
                    .get(self.tail_offset()..)
                    .unwrap_or(&[])
                    .iter()
                    .copied();
                for g in out.iter_mut().take(n) {
                    *g = read_varint(&mut it);
                }
                n
            }
        };
        // Slot `i` is `base + i + (gaps 0..=i)`: one add on the loop-carried chain.
        let mut sum = base;
        for (i, s) in out.iter_mut().take(n).enumerate() {
            sum = sum.wrapping_add(*s);
            *s = sum.wrapping_add(i as u32);
        }
        n
    }

    /// Calls `f` with every slot, ascending.
    fn for_each(&self, mut f: impl FnMut(u32)) {
        let mut buf = [0u32; BLOCK];
        for k in 0..self.blocks() {
            let n = self.decode_block(k, &mut buf);
            buf.iter().take(n).for_each(|&s| f(s));
        }
    }
}

/// Appends `v` as LEB128.
fn write_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one LEB128 value (0 past the end: never happens for bytes this module wrote).
fn read_varint(it: &mut impl Iterator<Item = u8>) -> u32 {
    let mut v = 0u32;
    let mut shift = 0;
    for b in it.by_ref() {
        v |= u32::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

/// Appends `width` (the block's bit width) and the gaps packed at that width, low bits first.
fn pack(gaps: &[u32; BLOCK], width: u32, out: &mut Vec<u8>) {
    out.push(width as u8);
    let mut acc = 0u64;
    let mut bits = 0;
    for &g in gaps {
        // `bits < 8` here and `g < 2^width`, so the accumulator holds at most 40 bits.
        acc |= u64::from(g) << bits;
        bits += width;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    // 128 · width is a multiple of 8: nothing is left over.
}

/// Bytes of the widest block's gaps (128 × 32 bits), plus the 8-byte reach of the last load.
const PADDED: usize = 16 * 32 + 8;

/// Reads 128 gaps of `width` bits from `data` into `out`.
fn unpack(data: &[u8], width: u32, out: &mut [u32; BLOCK]) {
    // A zero-padded copy, so every gap is one unaligned 8-byte load: a gap starts at most 7 bits
    // into its first byte and is at most 32 bits wide.
    let mut padded = [0u8; PADDED];
    let n = (16 * width as usize).min(data.len());
    if let (Some(dst), Some(src)) = (padded.get_mut(..n), data.get(..n)) {
        dst.copy_from_slice(src);
    }
    // One copy of the loop per width, so each has constant shifts and masks and no bounds checks.
    macro_rules! widths {
        ($($w:literal)*) => {
            match width {
                $($w => unpack_width::<$w>(&padded, out),)*
                _ => out.fill(0),
            }
        };
    }
    widths!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
}

fn unpack_width<const W: usize>(padded: &[u8; PADDED], out: &mut [u32; BLOCK]) {
    let mask = (1u64 << W) - 1;
    for (i, o) in out.iter_mut().enumerate() {
        let bit = i * W;
        // `bit / 8 + 8` ≤ 127 · 32 / 8 + 8 = PADDED − 4.
        let mut word = [0u8; 8];
        if let Some(b) = padded.get(bit / 8..bit / 8 + 8) {
            word.copy_from_slice(b);
        }
        *o = ((u64::from_le_bytes(word) >> (bit % 8)) & mask) as u32;
    }
}

impl Packed {
    /// Keeps the slots of `cur` (ascending) that the list holds. Skips blocks below the next slot
    /// of `cur` by galloping over the skip entries, and merges `cur` with each block it lands in.
    /// Costs at most one decode and one linear pass per block landed in.
    fn retain_present(&self, cur: &mut Vec<u32>) {
        let mut buf = [0u32; BLOCK];
        let mut next_block = 0;
        let mut kept = 0;
        let mut i = 0;
        while i < cur.len() {
            let Some(k) = self.find_block(next_block, cur[i]) else {
                break;
            };
            let n = self.decode_block(k, &mut buf);
            let block = &buf[..n];
            let last = self.block_last(k);
            let mut j = 0;
            while i < cur.len() && cur[i] <= last {
                let t = cur[i];
                // The block holds a slot at or past `t`, so `j` stays inside it.
                while block.get(j).is_some_and(|&s| s < t) {
                    j += 1;
                }
                if block.get(j) == Some(&t) {
                    // `kept <= i`: writes never pass the reads.
                    cur[kept] = t;
                    kept += 1;
                }
                i += 1;
            }
            next_block = k + 1;
        }
        cur.truncate(kept);
    }

    /// The first block at or after `start` whose last slot is at least `target`: galloping over
    /// the skip entries, then a binary search in the bracket found.
    fn find_block(&self, start: usize, target: u32) -> Option<usize> {
        let skips = &self.skips;
        let mut lo = start;
        let mut step = 1;
        let hi = loop {
            let probe = lo + step - 1;
            match skips.get(probe) {
                None => break skips.len(),
                Some(s) if s.last >= target => break probe + 1,
                Some(_) => {
                    lo = probe + 1;
                    step *= 2;
                }
            }
        };
        let k = lo
            + skips
                .get(lo..hi)
                .unwrap_or(&[])
                .partition_point(|s| s.last < target);
        (k < self.blocks() && self.block_last(k) >= target).then_some(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoded(p: &Postings) -> Vec<u32> {
        let mut v = Vec::new();
        p.for_each(|s| v.push(s));
        v
    }

    /// Strictly ascending slots with gaps from `gaps` (each gap at least 1 past the previous).
    fn ascending(gaps: &[u32]) -> Vec<u32> {
        let mut next = 0u32;
        gaps.iter()
            .map(|&g| {
                let s = next.saturating_add(g).min(u32::MAX - 1);
                next = s + 1;
                s
            })
            .collect()
    }

    fn universe(slots: usize) -> Universe {
        Universe {
            slots,
            bitmap_min_slots: BITMAP_MIN_SLOTS,
        }
    }

    /// The list `push` builds when slot `s` is the `s + 1`-th handed out.
    fn pushed(slots: &[u32], bitmap_min_slots: usize) -> Postings {
        let mut p = Postings::default();
        for &s in slots {
            p.push(
                s,
                Universe {
                    slots: s as usize + 1,
                    bitmap_min_slots,
                },
            );
        }
        p
    }

    fn bitmap(slots: &[u32]) -> Postings {
        Postings::Bitmap(Bitmap::from_sorted(slots))
    }

    #[test]
    fn consecutive_slots_pack_into_width_byte_only() {
        let slots: Vec<u32> = (0..BLOCK as u32 * 4).collect();
        let p = Packed::from_sorted(&slots);
        let mut v = Vec::new();
        p.for_each(|s| v.push(s));
        assert_eq!(v, slots);
        assert_eq!(p.bytes.len(), 4, "four blocks of width 0");
    }

    #[test]
    fn extreme_slots_round_trip() {
        let slots = vec![0, 1, u32::MAX / 2, u32::MAX - 2, u32::MAX - 1];
        let p = Postings::from_sorted(&slots, universe(u32::MAX as usize));
        assert_eq!(decoded(&p), slots);
        let many: Vec<u32> = (0..300u32).map(|i| i * 14_000_000).collect();
        let p = Postings::from_sorted(&many, universe(u32::MAX as usize));
        assert_eq!(decoded(&p), many);
    }

    #[test]
    fn density_picks_the_shape() {
        let every_other: Vec<u32> = (0..20_000).map(|i| i * 2).collect();
        let p = pushed(&every_other, BITMAP_MIN_SLOTS);
        assert!(matches!(p, Postings::Bitmap(_)), "half the slots");
        assert_eq!(decoded(&p), every_other);
        // Falling under a sixth of the slots turns it back into packed gaps.
        let mut p = p;
        let mut want = every_other.clone();
        for s in (50_000..400_000).step_by(64) {
            p.push(s, universe(s as usize + 1));
            want.push(s);
        }
        assert!(matches!(p, Postings::Packed(_)), "under a sixth");
        assert_eq!(decoded(&p), want);
        let sparse: Vec<u32> = (0..5_000).map(|i| i * 10).collect();
        assert!(matches!(
            pushed(&sparse, BITMAP_MIN_SLOTS),
            Postings::Packed(_)
        ));
        assert!(matches!(
            Postings::from_sorted(&sparse, universe(10_000)),
            Postings::Bitmap(_)
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn postings_round_trip(gaps in prop::collection::vec(
            prop_oneof![8 => 0u32..3, 2 => 0u32..300, 1 => 0u32..100_000], 0..3000)) {
            let slots = ascending(&gaps);
            for p in [pushed(&slots, 1), pushed(&slots, BITMAP_MIN_SLOTS), bitmap(&slots),
                      Postings::from_sorted(&slots, universe(u32::MAX as usize))] {
                prop_assert_eq!(p.len(), slots.len());
                prop_assert_eq!(decoded(&p), slots.clone());
            }
        }

        #[test]
        fn retain_present_intersects(
            gaps in prop::collection::vec(prop_oneof![3 => 0u32..4, 1 => 0u32..2_000], 0..3000),
            probe in prop::collection::vec(prop_oneof![3 => 0u32..3, 1 => 0u32..5_000], 0..400),
        ) {
            let slots = ascending(&gaps);
            let want: Vec<u32> = ascending(&probe)
                .into_iter()
                .filter(|s| slots.binary_search(s).is_ok())
                .collect();
            for p in [pushed(&slots, 1), bitmap(&slots),
                      Postings::from_sorted(&slots, universe(u32::MAX as usize))] {
                let mut cur = ascending(&probe);
                p.retain_present(&mut cur);
                prop_assert_eq!(&cur, &want);
            }
        }
    }
}
