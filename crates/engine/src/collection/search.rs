//! The Search API on one collection: filter, rank, group, page and project each plan (spec §10).

use ochre_index::CandidateSet;
use ochre_types::SeqNo;

use super::{Collection, CollectionState};
use crate::db::Inner;
use crate::error::{Error, Result};
use crate::search::{self, Domain, Knn, KnnQuery, Op, Rank, SearchPlan, SearchResult};

/// Deepest rank expression accepted (a deeper one is refused rather than risk the stack).
pub(crate) const MAX_RANK_DEPTH: usize = 128;

/// The records a plan's filter lets through.
struct Allowed {
    /// `None`: every record.
    seqs: Option<Vec<SeqNo>>,
    /// The same set prepared for the vector index, made on first use.
    prepared: Option<CandidateSet>,
}

impl Allowed {
    fn contains(&self, s: SeqNo) -> bool {
        self.seqs
            .as_ref()
            .is_none_or(|v| v.binary_search(&s).is_ok())
    }
}

impl CollectionState {
    /// Evaluates one rank expression over the records `allowed`.
    fn rank(&self, r: &Rank, allowed: &mut Allowed, depth: usize) -> Result<Domain> {
        if depth > MAX_RANK_DEPTH {
            return Err(Error::invalid(format!(
                "rank expression nested deeper than {MAX_RANK_DEPTH} levels"
            )));
        }
        let fold = |this: &Self, items: &[Rank], op: Op, allowed: &mut Allowed| {
            let mut acc = op.neutral();
            for item in items {
                acc = acc.combine(this.rank(item, allowed, depth + 1)?, op);
            }
            Ok::<Domain, Error>(acc)
        };
        Ok(match r {
            Rank::Knn(k) => self.knn(k, allowed)?,
            Rank::Val(x) => Domain::constant(*x),
            Rank::Sum(v) => fold(self, v, Op::Sum, allowed)?,
            Rank::Mul(v) => fold(self, v, Op::Mul, allowed)?,
            Rank::Max(v) => fold(self, v, Op::Max, allowed)?,
            Rank::Min(v) => fold(self, v, Op::Min, allowed)?,
            Rank::Sub(a, b) => {
                let a = self.rank(a, allowed, depth + 1)?;
                a.combine(self.rank(b, allowed, depth + 1)?, Op::Sub)
            }
            Rank::Div(a, b) => {
                let a = self.rank(a, allowed, depth + 1)?;
                a.combine(self.rank(b, allowed, depth + 1)?, Op::Div)
            }
            Rank::Abs(e) => self.rank(e, allowed, depth + 1)?.map(f32::abs),
            Rank::Exp(e) => self.rank(e, allowed, depth + 1)?.map(f32::exp),
            Rank::Log(e) => self.rank(e, allowed, depth + 1)?.map(f32::ln),
        })
    }

    /// The `limit` nearest allowed records to a dense or sparse query.
    fn knn(&self, k: &Knn, allowed: &mut Allowed) -> Result<Domain> {
        let limit = k.limit as usize;
        let hits: Vec<(SeqNo, f32)> = match &k.query {
            KnnQuery::Dense(q) => {
                if q.iter().any(|x| !x.is_finite()) {
                    return Err(Error::invalid(
                        "Validation error: rank: Embeddings must not contain NaN or Infinity values",
                    ));
                }
                let (Some(index), Some(dim)) = (&self.index, self.row.dimension) else {
                    return Ok(Domain {
                        support: Vec::new(),
                        default: k.default,
                    });
                };
                if q.len() != dim as usize {
                    return Err(Error::invalid(format!(
                        "Collection expecting embedding with dimension of {dim}, got {}",
                        q.len()
                    )));
                }
                let found = match &allowed.seqs {
                    None => index.search(q, limit),
                    Some(seqs) => {
                        let c = allowed
                            .prepared
                            .get_or_insert_with(|| index.candidates(seqs));
                        index.search_candidates(q, limit, c)
                    }
                };
                found.into_iter().map(|n| (n.seq, n.distance)).collect()
            }
            KnnQuery::Sparse(q) => self.sparse_knn(&k.key, q, limit, allowed)?,
        };
        let mut support: Vec<(SeqNo, f32)> = hits
            .into_iter()
            .enumerate()
            .map(|(i, (s, d))| (s, if k.return_rank { i as f32 } else { d }))
            .collect();
        support.sort_unstable_by_key(|(s, _)| *s);
        Ok(Domain {
            support,
            default: k.default,
        })
    }

    /// Answers one plan.
    fn search_one(&self, inner: &Inner, plan: &SearchPlan) -> Result<SearchResult> {
        let offset = plan.offset as usize;
        let limit = plan.limit.map_or(usize::MAX, |l| l as usize);
        let ranked: Vec<(SeqNo, f32)> = match &plan.rank {
            None => {
                let _filter = tracing::debug_span!("filter").entered();
                let seqs: Vec<SeqNo> = match &plan.filter {
                    None => self
                        .records
                        .keys()
                        .skip(offset)
                        .take(limit)
                        .copied()
                        .collect(),
                    Some(w) => {
                        let (w, wd) = super::text::split_document(w);
                        let all = self.select(
                            inner,
                            None,
                            w.as_ref(),
                            wd.as_ref(),
                            offset.saturating_add(limit),
                        )?;
                        all.into_iter().skip(offset).collect()
                    }
                };
                // Without a rank, a record's score is its position in the page.
                seqs.into_iter()
                    .enumerate()
                    .map(|(i, s)| (s, i as f32))
                    .collect()
            }
            Some(rank) => {
                let seqs = match &plan.filter {
                    None => None,
                    Some(w) => {
                        let _filter = tracing::debug_span!("filter").entered();
                        let (w, wd) = super::text::split_document(w);
                        Some(self.select(inner, None, w.as_ref(), wd.as_ref(), usize::MAX)?)
                    }
                };
                let mut allowed = Allowed {
                    seqs,
                    prepared: None,
                };
                let domain = tracing::debug_span!("index_search")
                    .in_scope(|| self.rank(rank, &mut allowed, 0))?;
                // A record outside the filter never ranks, even through a default.
                let mut ranked = search::ranking(Domain {
                    support: domain
                        .support
                        .into_iter()
                        .filter(|(s, _)| allowed.contains(*s) && self.records.contains_key(s))
                        .collect(),
                    default: None,
                });
                if let Some(g) = &plan.group_by {
                    ranked = search::group(ranked, g, |s| {
                        self.records.get(&s).and_then(|r| r.metadata.as_ref())
                    });
                }
                ranked.into_iter().skip(offset).take(limit).collect()
            }
        };
        let seqs: Vec<SeqNo> = ranked.iter().map(|(s, _)| *s).collect();
        let g = tracing::debug_span!("hydrate", records = seqs.len())
            .in_scope(|| self.project(inner, &seqs, plan.select.include()))?;
        let embeddings = g.embeddings.map(|v| v.into_iter().map(Some).collect());
        Ok(SearchResult {
            ids: g.ids,
            documents: g.documents,
            embeddings,
            metadatas: plan.select.include().metadatas.then(|| {
                g.metadatas
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| plan.select.restrict(m))
                    .collect()
            }),
            scores: plan
                .select
                .score
                .then(|| ranked.iter().map(|(_, s)| *s).collect()),
        })
    }
}

impl Collection {
    /// Runs the plans of one `search` request against the same state, in order.
    ///
    /// # Errors
    /// Invalid queries (dimension, non-finite values, a sparse key without a sparse index);
    /// [`crate::ErrorKind::NotFound`]; storage errors while reading documents.
    pub fn search(&self, plans: &[SearchPlan]) -> Result<Vec<SearchResult>> {
        let _text = super::BuildTextOnDemand(self);
        let st = self.handle.state.read();
        if st.is_dropped() {
            return Err(self.gone());
        }
        plans
            .iter()
            .map(|p| st.search_one(&self.inner, p))
            .collect()
    }
}

impl CollectionState {
    /// The `limit` allowed records with the highest `q·v` over the sparse vectors under `key`,
    /// scored `1 − q·v`, best first. With BM25 on for the key, `q` is first weighted by each
    /// term's inverse document frequency over the collection.
    fn sparse_knn(
        &self,
        key: &str,
        q: &ochre_types::SparseVector,
        limit: usize,
        allowed: &Allowed,
    ) -> Result<Vec<(SeqNo, f32)>> {
        let Some(sparse) = self.sparse.as_ref().filter(|s| s.key == key) else {
            return Err(Error::invalid(format!(
                "Cannot filter using metadata key '{key}' with type 'SparseVector' because indexing is disabled"
            )));
        };
        q.validate().map_err(|e| {
            Error::invalid(format!(
                "Validation error: rank: Invalid sparse vector in KNN query: {e}"
            ))
        })?;
        let values: Vec<f32> = if sparse.bm25 {
            let n = self.records.len() as f64;
            q.indices
                .iter()
                .zip(&q.values)
                .map(|(t, v)| {
                    let nt = (sparse.index.doc_freq(*t) as f64).min(n);
                    let idf = ((n - nt + 0.5) / (nt + 0.5) + 1.0).ln();
                    v * idf as f32
                })
                .collect()
        } else {
            q.values.clone()
        };
        let hits = match &allowed.seqs {
            // A selective filter: score its records directly rather than walk the postings.
            Some(seqs) if seqs.len() <= (sparse.index.len() / 16).max(1024) => {
                sparse.index.search_among(&q.indices, &values, limit, seqs)
            }
            Some(_) => {
                let allow = |s: SeqNo| allowed.contains(s);
                sparse
                    .index
                    .search(&q.indices, &values, limit, Some(&allow))
            }
            None => sparse.index.search(&q.indices, &values, limit, None),
        };
        Ok(hits.into_iter().map(|h| (h.seq, 1.0 - h.score)).collect())
    }
}
