//! Document filters answered through the collection's trigram index: the records a
//! `where_document` (or a `#document` clause of `where`) may match, for the caller to verify.

use ochre_index::{Candidates, TextIndex};
use ochre_types::{DocOp, SeqNo, Where, WhereDocument};

use crate::metaindex::intersect;

/// Candidate records for a document condition: `None` when the index cannot narrow it (every
/// record may match); otherwise a sorted list and whether it is exactly the matches.
pub(super) type Narrowed = Option<(Vec<SeqNo>, bool)>;

fn leaf(text: &TextIndex, op: &DocOp) -> Narrowed {
    let c = match op {
        DocOp::Contains(s) => text.contains_candidates(s),
        // An invalid pattern never reaches here (filters compile their regexes); planning
        // failures only lose the narrowing.
        DocOp::Regex(r) => text.regex_candidates(r.as_str()).ok()?,
        DocOp::NotContains(_) | DocOp::NotRegex(_) => return None,
    };
    match c {
        Candidates::All => None,
        Candidates::Some(s) => Some((s, false)),
        Candidates::Exact(s) => Some((s, true)),
    }
}

/// A conjunction: the narrowest intersection of what its parts narrow (exact only when every
/// part is).
fn all_of(parts: impl Iterator<Item = Narrowed>) -> Narrowed {
    let mut best: Option<Vec<SeqNo>> = None;
    let mut exact = true;
    for p in parts {
        match p {
            Some((s, e)) => {
                exact &= e;
                best = Some(match best {
                    None => s,
                    Some(b) => intersect(&b, &s),
                });
            }
            None => exact = false,
        }
    }
    best.map(|s| (s, exact))
}

/// A disjunction: narrowed only when every part is.
fn any_of(parts: impl Iterator<Item = Narrowed>) -> Narrowed {
    let mut out: Vec<SeqNo> = Vec::new();
    let mut exact = true;
    for p in parts {
        let (s, e) = p?;
        exact &= e;
        out.extend(s);
    }
    out.sort_unstable();
    out.dedup();
    Some((out, exact))
}

/// What the index narrows a `where_document` to.
pub(super) fn document(text: &TextIndex, wd: &WhereDocument) -> Narrowed {
    match wd {
        WhereDocument::Leaf(op) => leaf(text, op),
        WhereDocument::And(c) => all_of(c.iter().map(|w| document(text, w))),
        WhereDocument::Or(c) => any_of(c.iter().map(|w| document(text, w))),
    }
}

/// What the index narrows a `where`'s `#document` clauses to (its other clauses never narrow
/// here, so the result is never exact for the whole filter).
pub(super) fn where_clauses(text: &TextIndex, w: &Where) -> Narrowed {
    let n = match w {
        Where::Document(op) => leaf(text, op),
        Where::And(c) => all_of(c.iter().map(|w| where_clauses(text, w))),
        Where::Or(c) => any_of(c.iter().map(|w| where_clauses(text, w))),
        Where::Meta { .. } | Where::Id(_) => None,
    };
    n.map(|(s, _)| (s, false))
}

/// Splits a `where` into its metadata part and a `where_document` equivalent to its top-level
/// `#document` clauses (`{"#document": ...}` itself, or the `#document` members of a top-level
/// `$and`), so the full-text index can answer them exactly.
pub(super) fn split_document(w: &Where) -> (Option<Where>, Option<WhereDocument>) {
    match w {
        Where::Document(op) => (None, Some(WhereDocument::Leaf(op.clone()))),
        Where::And(c) if c.iter().any(|x| matches!(x, Where::Document(_))) => {
            let mut rest = Vec::new();
            let mut docs = Vec::new();
            for x in c {
                match x {
                    Where::Document(op) => docs.push(WhereDocument::Leaf(op.clone())),
                    other => rest.push(other.clone()),
                }
            }
            let wd = if docs.len() == 1 {
                docs.pop()
            } else {
                Some(WhereDocument::And(docs))
            };
            let w = match rest.len() {
                0 => None,
                1 => rest.pop(),
                _ => Some(Where::And(rest)),
            };
            (w, wd)
        }
        other => (Some(other.clone()), None),
    }
}
