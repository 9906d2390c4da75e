//! Insertion: appending nodes, linking them into the graph (one at a time or on several
//! threads), and the orphan repair that keeps every live node findable.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ochre_types::SeqNo;

use super::{prefetch_row, HnswIndex};

/// The level generator: level `l` with probability `e^{-l / ln m}`, deterministic per seed.
#[derive(Clone)]
pub(super) struct Levels {
    /// What the generator started from: a rebuild of this graph starts from it again.
    seed: u64,
    rng: u64,
    mult: f64,
}

impl Levels {
    pub(super) fn new(m: usize, seed: u64) -> Self {
        Levels {
            seed,
            rng: seed | 1,
            mult: 1.0 / (m as f64).ln(),
        }
    }

    /// The generator's state (written to checkpoints so a reloaded graph draws on).
    pub(super) fn state(&self) -> u64 {
        self.rng
    }

    /// The seed a rebuild of this graph uses.
    pub(super) fn seed(&self) -> u64 {
        self.seed
    }

    /// Continues from a saved state (which is also the seed of a later rebuild).
    pub(super) fn resume(m: usize, state: u64) -> Self {
        Levels {
            rng: state.max(1),
            ..Levels::new(m, state)
        }
    }

    fn next(&mut self) -> usize {
        // xorshift64*: good enough for level assignment.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let u = ((r >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        ((-u.ln() * self.mult) as usize).min(31)
    }
}

impl HnswIndex {
    /// Stores (or replaces) the vector of `seq`.
    ///
    /// # Panics
    /// When `vector` does not have the index dimension (callers validate first).
    pub fn insert(&mut self, seq: SeqNo, vector: &[f32]) {
        let node = self.push_node(seq, vector);
        if self.defer {
            self.unlinked_from.get_or_insert(node);
        } else {
            self.connect(node);
        }
    }

    /// Stores many vectors, linking them into the graph on `threads` threads.
    ///
    /// Parallel insertion follows hnswlib's scheme: each node's lists are guarded by its own lock,
    /// readers see lists through atomics, so inserters only wait for each other on the few nodes
    /// they both update.
    ///
    /// # Panics
    /// When a vector does not have the index dimension (callers validate first).
    pub fn insert_batch(&mut self, items: &[(SeqNo, &[f32])], threads: usize) {
        let first = self.nodes.len() as u32;
        for (seq, v) in items {
            self.push_node(*seq, v);
        }
        if self.defer {
            if !items.is_empty() {
                self.unlinked_from.get_or_insert(first);
            }
            return;
        }
        self.connect_from(first, threads);
    }

    /// From now on (`true`) insertions only store their vectors and leave linking them into the
    /// graph for later ([`HnswIndex::link_deferred`], or [`HnswIndex::adopt`] of a graph built
    /// elsewhere); searches meanwhile scan exactly, so answers stay right, only slower. For bulk
    /// loads. `false` links what is pending first.
    pub fn defer_links(&mut self, defer: bool) {
        if !defer {
            self.link_deferred();
        }
        self.defer = defer;
    }

    /// Room for `additional` more nodes without reallocating: for a bulk load whose size is
    /// known, so that its vectors are not copied as their arrays grow (and the old and new
    /// arrays are not both held while they do).
    pub fn reserve(&mut self, additional: usize) {
        self.rows.reserve(additional);
        self.codes.reserve(additional, self.dim);
        self.nodes.seq.reserve_exact(additional);
        self.nodes.deleted.reserve_exact(additional);
        self.nodes.by_seq.reserve(additional);
        self.graph.reserve(additional);
    }

    /// Whether some nodes wait to be linked into the graph.
    pub fn has_unlinked(&self) -> bool {
        self.unlinked_from.is_some()
    }

    /// How many nodes wait to be linked into the graph.
    pub fn unlinked(&self) -> usize {
        self.unlinked_from
            .map_or(0, |first| self.nodes.len() - first as usize)
    }

    /// Links every node inserted while links were deferred, on the index's build threads, and
    /// stops deferring.
    pub fn link_deferred(&mut self) {
        self.defer = false;
        if let Some(first) = self.unlinked_from.take() {
            self.connect_from(first, self.threads());
        }
    }

    /// Links the appended nodes `first..` into the graph.
    fn connect_from(&mut self, first: u32, threads: usize) {
        let nodes: Vec<u32> = (first..self.nodes.len() as u32).collect();
        self.connect_nodes(&nodes, first as usize, threads);
    }

    /// Links `nodes` (unlinked, in this order) into a graph where `linked` nodes are linked.
    pub(super) fn connect_nodes(&mut self, nodes: &[u32], linked: usize, threads: usize) {
        // Seed the graph sequentially so parallel inserters always have somewhere to start.
        let seeded = nodes.len().min(256usize.saturating_sub(linked));
        for &n in &nodes[..seeded] {
            self.connect(n);
        }
        let rest = &nodes[seeded..];
        if threads <= 1 || rest.len() < 64 {
            for &n in rest {
                self.connect(n);
            }
            self.maybe_repair();
            return;
        }
        let counter = AtomicUsize::new(0);
        let this = &*self;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = counter.fetch_add(1, Relaxed);
                    let Some(&n) = rest.get(i) else { break };
                    this.connect(n);
                });
            }
        });
        self.maybe_repair();
    }

    /// Appends a node (vector, code, level, empty lists) without linking it.
    fn push_node(&mut self, seq: SeqNo, vector: &[f32]) -> u32 {
        assert_eq!(vector.len(), self.dim, "dimension checked by the caller");
        self.nodes.remove(seq);
        let node = self.nodes.len() as u32;
        let level = self.levels.next();
        let inv = self.inv_norm(vector);
        self.rows
            .push(vector, inv, self.kernels.dot(vector, vector));
        self.codes.push(vector);
        self.nodes.seq.push(seq);
        self.nodes.by_seq.insert(seq, node);
        self.nodes.deleted.push(false);
        self.graph.push(level);
        node
    }

    /// The paper's neighbour-selection heuristic over candidates sorted nearest first.
    fn select(&self, candidates: &[(f32, u32)], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for &(d, c) in candidates {
            if kept.len() >= m {
                break;
            }
            if kept.iter().all(|&k| self.dist_nodes(c, k) > d) {
                kept.push(c);
            }
        }
        kept
    }

    /// Links an appended node into the graph. Safe to run for different nodes concurrently.
    fn connect(&self, node: u32) {
        let level = self.graph.level(node);
        let (entry, max_level) = match self.graph.enter_or_top(node, level) {
            (None, _) => return,
            (Some(e), top) => (e, top),
        };
        if entry == node {
            return;
        }
        let q = self.rows.row(node);
        let inv = self.rows.inv_norm(node);
        let dist = |n: u32| self.dist_q(q, inv, n);
        let mut ep = entry;
        let mut d = dist(ep);
        for layer in (level + 1..=max_level).rev() {
            (ep, d) = self.greedy(&dist, ep, d, layer);
        }
        // First the node's own lists on every layer, then the links to it: other inserters can
        // reach the node only through those links, so they never see (and never link into) a
        // node whose lower-layer lists are not written yet.
        let m = self.graph.m;
        let mut entries = vec![(d, ep)];
        let mut visited = self.visited.take(self.nodes.len());
        let mut plan: Vec<(usize, Vec<u32>)> = Vec::new();
        for layer in (0..=level.min(max_level)).rev() {
            visited.reset(self.nodes.len());
            let found = self.search_layer(
                &dist,
                &|n| prefetch_row(self.rows.all(), n as usize * self.dim, self.dim.min(64)),
                &entries,
                self.knobs.ef_construction.max(m),
                layer,
                &|_| true,
                &mut visited,
            );
            let found: Vec<(f32, u32)> = found.into_iter().filter(|&(_, n)| n != node).collect();
            let chosen = self.select(&found, m);
            {
                let _own = self.graph.lock(node);
                self.graph.set_list(node, layer, &chosen);
            }
            plan.push((layer, chosen));
            if !found.is_empty() {
                entries = found;
            }
        }
        self.visited.give(visited);
        for (layer, chosen) in plan {
            let max = if layer == 0 { self.graph.m0 } else { m };
            let mut reachable = false;
            for &nb in &chosen {
                reachable |= self.link(nb, node, layer, max);
            }
            if !reachable {
                // Every neighbour pruned the new node away (it is an outlier): force one
                // incoming edge, replacing the nearest neighbour's farthest link, so the node can
                // always be found.
                if let Some(&nb) = chosen.first() {
                    self.force_link(nb, node, layer);
                }
            }
        }
        if level > max_level {
            self.graph.raise_entry(node, level);
        }
    }

    /// Replaces the farthest link of `node` with `new`.
    fn force_link(&self, node: u32, new: u32, layer: usize) {
        let _lock = self.graph.lock(node);
        let mut list = self.graph.list(node, layer);
        if list.contains(&new) {
            return;
        }
        let farthest = list
            .iter()
            .enumerate()
            .map(|(i, &c)| (self.dist_nodes(node, c), i))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, i)| i);
        match farthest {
            Some(i) => list[i] = new,
            None => list.push(new),
        }
        self.graph.set_list(node, layer, &list);
    }

    /// Adds `new` to `node`'s list on `layer`, shrinking with the heuristic when full. Returns
    /// whether `new` is in the list afterwards.
    fn link(&self, node: u32, new: u32, layer: usize, max: usize) -> bool {
        let _lock = self.graph.lock(node);
        let current = self.graph.list(node, layer);
        if current.contains(&new) {
            return true;
        }
        if current.len() < max {
            let mut list = current;
            list.push(new);
            self.graph.set_list(node, layer, &list);
            return true;
        }
        let mut cands: Vec<(f32, u32)> = current
            .iter()
            .chain(std::iter::once(&new))
            .map(|&c| (self.dist_nodes(node, c), c))
            .collect();
        cands.sort_by(|a, b| a.0.total_cmp(&b.0));
        let kept = self.select(&cands, max);
        let linked = kept.contains(&new);
        self.graph.set_list(node, layer, &kept);
        linked
    }

    /// Runs [`HnswIndex::repair_orphans`] once the graph has grown by a tenth (at least 1024
    /// nodes) since the last run, so its cost (a pass over every edge) stays a small constant
    /// share of insertion however the writes are batched. (Smaller graphs are never walked:
    /// searches scan below [`super::EXACT_SCAN_BELOW`] vectors.)
    fn maybe_repair(&mut self) {
        let n = self.nodes.len();
        if n >= self.repaired_at + (self.repaired_at / 10).max(1024) {
            self.repair_orphans();
            self.repaired_at = n;
        }
    }

    /// Makes every live vector findable after a batch of insertions.
    ///
    /// Pruning by later insertions (and races between parallel inserters) can take away a node's
    /// last incoming layer-0 edges — sometimes of a whole group of nodes, cutting it off from the
    /// entry point — or leave a node a single edge from far away that a search reaching its
    /// neighbourhood never follows. A walk from the entry point finds the cut-off nodes; those and
    /// the weakly linked ones (at most one incoming edge) are searched for with their own vector,
    /// and a node the search misses is linked from where the search ended (else from its nearest
    /// reachable neighbour), replacing that node's farthest link among nodes that keep another
    /// incoming edge. Costs one pass over the edges, and a search per repaired node.
    pub(super) fn repair_orphans(&mut self) {
        let n = self.nodes.len();
        let Some(entry) = self.graph.top().0 else {
            return;
        };
        let mut indeg = vec![0u32; n];
        for a in 0..n as u32 {
            self.graph.for_neighbors(a, 0, |b| {
                if let Some(d) = indeg.get_mut(b as usize) {
                    *d += 1;
                }
            });
        }
        let mut reached = vec![false; n];
        self.mark_reachable(entry, &mut reached);
        for u in 0..n as u32 {
            let i = u as usize;
            if self.nodes.deleted[i] || u == entry || (reached[i] && indeg[i] > 1) {
                continue;
            }
            let seq = self.nodes.seq[i];
            let found = self.search(self.rows.row(u), 2);
            if reached[i] && found.iter().any(|f| f.seq == seq) {
                continue;
            }
            let mut near: Vec<(f32, u32)> = self
                .graph
                .list(u, 0)
                .into_iter()
                .filter(|&v| v != u && reached[v as usize])
                .map(|v| (self.dist_nodes(u, v), v))
                .collect();
            near.sort_by(|a, b| a.0.total_cmp(&b.0));
            let landed = found
                .iter()
                .filter_map(|f| self.nodes.by_seq.get(&f.seq).map(|&n| (f.distance, n)))
                .filter(|&(_, v)| v != u && reached[v as usize]);
            for (_, v) in landed.chain(near) {
                let mut list = self.graph.list(v, 0);
                if list.contains(&u) {
                    break;
                }
                if list.len() < self.graph.m0 {
                    list.push(u);
                } else {
                    let victim = list
                        .iter()
                        .enumerate()
                        .filter(|(_, &w)| indeg[w as usize] > 1)
                        .map(|(i, &w)| (self.dist_nodes(v, w), i))
                        .max_by(|a, b| a.0.total_cmp(&b.0));
                    let Some((_, k)) = victim else {
                        continue;
                    };
                    indeg[list[k] as usize] -= 1;
                    list[k] = u;
                }
                self.graph.set_list(v, 0, &list);
                indeg[i] += 1;
                break;
            }
            if !reached[i] {
                self.mark_reachable(u, &mut reached);
            }
        }
    }

    /// Marks every node reachable from `from` on layer 0.
    fn mark_reachable(&self, from: u32, reached: &mut [bool]) {
        let mut stack = vec![from];
        reached[from as usize] = true;
        while let Some(a) = stack.pop() {
            self.graph.for_neighbors(a, 0, |b| {
                if let Some(r) = reached.get_mut(b as usize) {
                    if !*r {
                        *r = true;
                        stack.push(b);
                    }
                }
            });
        }
    }
}
