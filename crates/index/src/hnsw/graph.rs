//! The graph's layout: per-node levels and neighbour lists, the entry point, per-node writer
//! locks, and the visited sets searches reuse.
//!
//! Layer-0 lists live in one flat array, `m0 + 1` slots per node (a count, then ids), so a search
//! walks memory it can prefetch; upper-layer lists (few nodes have any) use the same slot layout,
//! `m + 1` slots per list, node `n`'s starting at `upper_off[n]`. Slots are atomics: searches read
//! lists without locks, and a writer holds only the lock of the node whose lists it rewrites. A
//! list read while it is rewritten is a mix of old and new ids, all valid nodes.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;

use parking_lot::{Mutex as NodeLock, MutexGuard};

/// Adjacency of one HNSW graph. Nodes are numbered densely from 0 in insertion order.
pub(super) struct Graph {
    /// List capacity on layers above 0.
    pub(super) m: usize,
    /// List capacity on layer 0 (`2 * m`).
    pub(super) m0: usize,
    levels: Vec<u8>,
    layer0: Vec<AtomicU32>,
    upper: Vec<AtomicU32>,
    upper_off: Vec<u32>,
    locks: Vec<NodeLock<()>>,
    /// Entry node and top level.
    top: NodeLock<(Option<u32>, usize)>,
}

impl Graph {
    pub(super) fn new(m: usize) -> Self {
        Graph {
            m,
            m0: 2 * m,
            levels: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            upper_off: Vec::new(),
            locks: Vec::new(),
            top: NodeLock::new((None, 0)),
        }
    }

    /// A graph from checked checkpoint parts: `layer0` in slot layout, each node's upper lists.
    pub(super) fn from_parts(
        m: usize,
        levels: Vec<u8>,
        layer0: Vec<u32>,
        upper: &[Vec<Vec<u32>>],
        entry: Option<u32>,
        max_level: usize,
    ) -> Self {
        let n = levels.len();
        let mut g = Graph::new(m);
        g.levels = levels;
        g.layer0 = layer0.into_iter().map(AtomicU32::new).collect();
        g.upper_off = Vec::with_capacity(n);
        for (node, lists) in upper.iter().enumerate() {
            g.upper_off.push(g.upper.len() as u32);
            g.upper
                .extend((0..lists.len() * (m + 1)).map(|_| AtomicU32::new(0)));
            for (li, list) in lists.iter().enumerate() {
                g.set_list(node as u32, li + 1, list);
            }
        }
        g.locks = (0..n).map(|_| NodeLock::new(())).collect();
        g.top = NodeLock::new((entry, max_level));
        g
    }

    /// The top layer of node `n`.
    #[inline]
    pub(super) fn level(&self, n: u32) -> usize {
        self.levels[n as usize] as usize
    }

    /// Every node's top layer, in node order.
    pub(super) fn levels(&self) -> &[u8] {
        &self.levels
    }

    /// The raw layer-0 slots of every node, in node order.
    pub(super) fn layer0_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.layer0.iter().map(|a| a.load(Relaxed))
    }

    /// Room for `additional` more nodes' layer-0 lists without reallocating (upper layers,
    /// a few percent of the nodes, grow as they come).
    pub(super) fn reserve(&mut self, additional: usize) {
        self.levels.reserve_exact(additional);
        self.layer0
            .reserve_exact(additional.saturating_mul(self.m0 + 1));
        self.upper_off.reserve_exact(additional);
        self.locks.reserve_exact(additional);
    }

    /// Appends a node with empty lists on layers `0..=level`.
    pub(super) fn push(&mut self, level: usize) {
        self.levels.push(level as u8);
        self.layer0.extend((0..=self.m0).map(|_| AtomicU32::new(0)));
        self.upper_off.push(self.upper.len() as u32);
        self.upper
            .extend((0..level * (self.m + 1)).map(|_| AtomicU32::new(0)));
        self.locks.push(NodeLock::new(()));
    }

    /// The entry node (if any) and the top level.
    pub(super) fn top(&self) -> (Option<u32>, usize) {
        *self.top.lock()
    }

    /// Makes `node` the entry point if the graph has none; returns the entry and top level it
    /// had before.
    pub(super) fn enter_or_top(&self, node: u32, level: usize) -> (Option<u32>, usize) {
        let mut top = self.top.lock();
        let before = *top;
        if before.0.is_none() {
            *top = (Some(node), level);
        }
        before
    }

    /// Makes `node` the entry point if its level is above the current top.
    pub(super) fn raise_entry(&self, node: u32, level: usize) {
        let mut top = self.top.lock();
        if level > top.1 {
            *top = (Some(node), level);
        }
    }

    /// The lock writers of `n`'s lists hold.
    pub(super) fn lock(&self, n: u32) -> MutexGuard<'_, ()> {
        self.locks[n as usize].lock()
    }

    /// `n`'s list on `layer`: a count slot, then the capacity's id slots.
    #[inline]
    fn slots(&self, n: u32, layer: usize) -> &[AtomicU32] {
        if layer == 0 {
            let s = n as usize * (self.m0 + 1);
            &self.layer0[s..s + self.m0 + 1]
        } else if layer <= self.levels[n as usize] as usize {
            let s = self.upper_off[n as usize] as usize + (layer - 1) * (self.m + 1);
            &self.upper[s..s + self.m + 1]
        } else {
            &[]
        }
    }

    /// Calls `f` for each neighbour of `n` on `layer`, without locking.
    #[inline]
    pub(super) fn for_neighbors(&self, n: u32, layer: usize, mut f: impl FnMut(u32)) {
        let slots = self.slots(n, layer);
        let Some((count, ids)) = slots.split_first() else {
            return;
        };
        let count = (count.load(Relaxed) as usize).min(ids.len());
        for slot in &ids[..count] {
            f(slot.load(Relaxed));
        }
    }

    /// A copy of `n`'s list on `layer`.
    pub(super) fn list(&self, n: u32, layer: usize) -> Vec<u32> {
        let mut out = Vec::new();
        self.for_neighbors(n, layer, |x| out.push(x));
        out
    }

    /// Replaces `n`'s list on `layer` (cut to capacity); the caller holds `n`'s lock or has the
    /// graph to itself.
    pub(super) fn set_list(&self, n: u32, layer: usize, list: &[u32]) {
        let slots = self.slots(n, layer);
        let Some((count, ids)) = slots.split_first() else {
            return;
        };
        let len = list.len().min(ids.len());
        for (slot, &x) in ids.iter().zip(&list[..len]) {
            slot.store(x, Relaxed);
        }
        count.store(len as u32, Relaxed);
    }
}

impl Clone for Graph {
    fn clone(&self) -> Self {
        let copy = |v: &[AtomicU32]| v.iter().map(|a| AtomicU32::new(a.load(Relaxed))).collect();
        Graph {
            m: self.m,
            m0: self.m0,
            levels: self.levels.clone(),
            layer0: copy(&self.layer0),
            upper: copy(&self.upper),
            upper_off: self.upper_off.clone(),
            locks: self.locks.iter().map(|_| NodeLock::new(())).collect(),
            top: NodeLock::new(self.top()),
        }
    }
}

/// Generation-stamped visited set, reused across searches.
pub(super) struct Visited {
    marks: Vec<u32>,
    generation: u32,
}

impl Visited {
    fn new(n: usize) -> Self {
        Visited {
            marks: vec![0; n],
            generation: 1,
        }
    }

    /// Forgets every mark and makes room for `n` nodes.
    pub(super) fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.generation = 1;
        }
    }

    /// Marks `i`; true if it was not yet visited.
    #[inline]
    pub(super) fn insert(&mut self, i: u32) -> bool {
        let slot = &mut self.marks[i as usize];
        if *slot == self.generation {
            false
        } else {
            *slot = self.generation;
            true
        }
    }
}

/// Visited sets kept for reuse (a search takes one and gives it back).
#[derive(Default)]
pub(super) struct VisitedPool(Mutex<Vec<Visited>>);

impl VisitedPool {
    /// A cleared set for `n` nodes.
    pub(super) fn take(&self, n: usize) -> Visited {
        let mut v = self
            .0
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_else(|| Visited::new(n));
        v.reset(n);
        v
    }

    /// Returns a set for reuse (a few are kept).
    pub(super) fn give(&self, v: Visited) {
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < 16 {
                pool.push(v);
            }
        }
    }
}
