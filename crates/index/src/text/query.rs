//! Trigram queries, and how a regular expression's HIR becomes one.
//!
//! A [`Query`] is an AND/OR tree over trigrams. A document *satisfies* it when the tree is true
//! with "trigram `t` is in the document" at the leaves. The query planned for a pattern is sound:
//! every document the pattern matches satisfies it. Leaves only ever say "contains", so the tree is
//! monotone: a string that satisfies it still does inside any document that contains the string.
//!
//! The planner is the one of Russ Cox's Google Code Search ("Regular Expression Matching with a
//! Trigram Index", 2012), which pg_trgm also follows. For each HIR node it computes an [`Info`]
//! about the set `L` of strings the node matches:
//!
//! - `can_empty`: whether `""` ∈ `L`;
//! - `exact`: `L` itself, when it is small and known;
//! - `prefix` / `suffix` (only without `exact`): every string of `L` starts (ends) with one of
//!   these;
//! - `query`: every string of `L` satisfies it.
//!
//! Literals and small classes are exact; large classes (over [`MAX_CLASS`] characters: `.`,
//! `\w`, negated classes) match "any character". Case-insensitive literals reach us as classes
//! the parser has already case-folded (`(?i)k` is `[Kk\u{212A}]`), so they stay exact while small
//! and go to "any character" when large. Look-arounds (`^`, `$`, `\b`, …) match the empty string
//! (so `^abc` plans as `abc`), `x*` and `x{0,n}` (n > 1) match anything, `x?` is `x|`, and `x{n,m}`
//! with `n ≥ 1` is `x` (up to three times) followed by `x+`. Concatenation crosses exact sets
//! (and, without them, adds the trigrams spanning `x`'s suffixes and `y`'s prefixes); alternation
//! unions them. When an exact set grows past [`MAX_EXACT`] strings or [`MAX_EXACT_LEN`] bytes, its
//! trigrams go into the query and only its two-byte ends stay as prefixes and suffixes; prefix and
//! suffix sets have their trigrams added to the query and are cut back to two bytes (one, or the
//! empty string, while over [`MAX_SET`] strings).
//!
//! Every cap only forgets: a dropped conjunct, an OR turned into "any", a shorter prefix. So the
//! plan's size is bounded by the pattern's ([`MAX_LEAVES`] trigram leaves per subtree, at most
//! [`MAX_STRING_TRIGRAMS`] per string), and soundness never depends on a cap.

use regex_syntax::hir::{Class, Hir, HirKind, Repetition};

/// Exact sets larger than this become prefixes, suffixes and trigrams.
pub(super) const MAX_EXACT: usize = 16;
/// Exact strings longer than this (bytes) make their set become prefixes, suffixes and trigrams.
pub(super) const MAX_EXACT_LEN: usize = 64;
/// Prefix and suffix sets are cut shorter while larger than this.
pub(super) const MAX_SET: usize = 20;
/// Classes with more characters than this match "any character".
pub(super) const MAX_CLASS: usize = 16;
/// Trigram leaves a query subtree may hold; past it conjuncts are dropped and ORs become "any".
pub(super) const MAX_LEAVES: usize = 2048;
/// Trigrams taken from one string (evenly spread over its distinct ones).
pub(super) const MAX_STRING_TRIGRAMS: usize = 32;
/// `x{n}` with an exact `x` is unrolled up to this many times; longer repetitions plan as
/// `x x x+`.
const MAX_UNROLL: u32 = 3;

/// The key of the trigram `a b c`: its three bytes in the low 24 bits.
pub(super) fn trigram(a: u8, b: u8, c: u8) -> u32 {
    u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c)
}

/// The distinct trigram keys of `bytes`, ascending.
pub(super) fn trigrams(bytes: &[u8], out: &mut Vec<u32>) {
    out.clear();
    out.extend(bytes.windows(3).map(|w| match *w {
        [a, b, c] => trigram(a, b, c),
        _ => 0,
    }));
    out.sort_unstable();
    out.dedup();
}

/// An AND/OR tree of trigrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Query {
    /// True for every document.
    Any,
    /// True for no document (an empty class: the pattern matches nothing).
    Nothing,
    /// True when the document holds this trigram.
    Trigram(u32),
    /// All parts hold; `leaves` counts the trigram leaves below.
    And { parts: Vec<Query>, leaves: usize },
    /// Some part holds; `leaves` counts the trigram leaves below.
    Or { parts: Vec<Query>, leaves: usize },
}

impl Query {
    /// Trigram leaves in the tree.
    pub(super) fn leaves(&self) -> usize {
        match self {
            Query::Any | Query::Nothing => 0,
            Query::Trigram(_) => 1,
            Query::And { leaves, .. } | Query::Or { leaves, .. } => *leaves,
        }
    }

    /// `self AND other`. Conjuncts past [`MAX_LEAVES`] are dropped (a weaker query).
    pub(super) fn and(self, other: Query) -> Query {
        match (self, other) {
            (Query::Nothing, _) | (_, Query::Nothing) => Query::Nothing,
            (Query::Any, q) | (q, Query::Any) => q,
            (a, b) => {
                let mut leaves = 0;
                let mut parts = Vec::new();
                for p in a.into_and_parts().into_iter().chain(b.into_and_parts()) {
                    if leaves + p.leaves() <= MAX_LEAVES {
                        leaves += p.leaves();
                        parts.push(p);
                    }
                }
                Query::and_of(parts, leaves)
            }
        }
    }

    /// `self OR other`; "any" when the result would pass [`MAX_LEAVES`].
    pub(super) fn or(self, other: Query) -> Query {
        match (self, other) {
            (Query::Any, _) | (_, Query::Any) => Query::Any,
            (Query::Nothing, q) | (q, Query::Nothing) => q,
            (a, b) => {
                let leaves = a.leaves() + b.leaves();
                if leaves > MAX_LEAVES {
                    return Query::Any;
                }
                let mut parts = a.into_or_parts();
                parts.extend(b.into_or_parts());
                Query::Or { parts, leaves }
            }
        }
    }

    /// `self AND (OR over s in set of (AND of s's trigrams))`: every string of the language holds
    /// some string of `set`. Unchanged when some string of `set` is shorter than a trigram (it
    /// holds none), or when `set` is empty.
    fn and_strings(self, set: &[Vec<u8>]) -> Query {
        if set.is_empty() || set.iter().any(|s| s.len() < 3) {
            return self;
        }
        let mut keys = Vec::new();
        let mut alternatives = Query::Nothing;
        for s in set {
            trigrams(s, &mut keys);
            let step = keys.len().div_ceil(MAX_STRING_TRIGRAMS).max(1);
            let parts: Vec<Query> = keys
                .iter()
                .step_by(step)
                .map(|&t| Query::Trigram(t))
                .collect();
            let n = parts.len();
            alternatives = alternatives.or(Query::and_of(parts, n));
        }
        self.and(alternatives)
    }

    fn and_of(mut parts: Vec<Query>, leaves: usize) -> Query {
        match parts.len() {
            0 => Query::Any,
            1 => parts.pop().unwrap_or(Query::Any),
            _ => Query::And { parts, leaves },
        }
    }

    fn into_and_parts(self) -> Vec<Query> {
        match self {
            Query::And { parts, .. } => parts,
            q => vec![q],
        }
    }

    fn into_or_parts(self) -> Vec<Query> {
        match self {
            Query::Or { parts, .. } => parts,
            q => vec![q],
        }
    }
}

/// A planned pattern.
#[derive(Debug)]
pub(super) struct Plan {
    /// Satisfied by every document the pattern matches.
    pub(super) query: Query,
    /// The query is satisfied by exactly the matching documents: the pattern is a set of
    /// three-byte strings with no look-around, so a document matches iff it holds one of them.
    pub(super) exact: bool,
}

/// The trigram plan of a parsed pattern (matched anywhere in a document).
pub(super) fn plan(hir: &Hir) -> Plan {
    let mut info = analyze(hir);
    let exact = hir.properties().look_set().is_empty()
        && info
            .exact
            .as_ref()
            .is_some_and(|e| !e.is_empty() && e.iter().all(|s| s.len() == 3));
    if let Some(e) = info.exact.take() {
        info.query = info.query.and_strings(&e);
    }
    Plan {
        query: info.query,
        exact,
    }
}

/// What is known of the strings one HIR node matches (module docs).
#[derive(Debug, Clone)]
struct Info {
    can_empty: bool,
    /// Sorted, unique.
    exact: Option<Vec<Vec<u8>>>,
    /// Unused while `exact` is known. Sorted, unique.
    prefix: Vec<Vec<u8>>,
    suffix: Vec<Vec<u8>>,
    query: Query,
}

impl Info {
    /// Strings of one character or more, nothing known of them.
    fn any_char() -> Info {
        Info {
            can_empty: false,
            exact: None,
            prefix: vec![Vec::new()],
            suffix: vec![Vec::new()],
            query: Query::Any,
        }
    }

    /// Any string, the empty one too.
    fn any_match() -> Info {
        Info {
            can_empty: true,
            ..Info::any_char()
        }
    }

    /// Exactly the strings of `set`.
    fn exact(mut set: Vec<Vec<u8>>) -> Info {
        set.sort_unstable();
        set.dedup();
        Info {
            can_empty: set.iter().any(|s| s.is_empty()),
            exact: Some(set),
            prefix: Vec::new(),
            suffix: Vec::new(),
            query: Query::Any,
        }
    }

    /// Just the empty string.
    fn empty_string() -> Info {
        Info::exact(vec![Vec::new()])
    }

    /// No string at all (an empty class).
    fn no_match() -> Info {
        Info {
            query: Query::Nothing,
            ..Info::exact(Vec::new())
        }
    }

    /// The same sets without the query: for a second copy of a node, whose query the first copy
    /// already contributes (forgetting a conjunct keeps the result sound).
    fn without_query(&self) -> Info {
        Info {
            query: Query::Any,
            ..self.clone()
        }
    }

    /// Moves an exact set's trigrams into the query (the set stays).
    fn add_exact(&mut self) {
        if let Some(e) = &self.exact {
            let q = std::mem::replace(&mut self.query, Query::Any);
            self.query = q.and_strings(e);
        }
    }

    /// One or more repetitions of this node.
    fn plus(mut self) -> Info {
        // The exact strings become prefixes and suffixes; simplifying adds their trigrams.
        if let Some(e) = self.exact.take() {
            self.prefix = e.clone();
            self.suffix = e;
        }
        self.simplify()
    }

    /// Applies the size caps (module docs).
    fn simplify(mut self) -> Info {
        let too_big = self
            .exact
            .as_ref()
            .is_some_and(|e| e.len() > MAX_EXACT || e.iter().any(|s| s.len() > MAX_EXACT_LEN));
        if too_big {
            self.add_exact();
            let e = self.exact.take().unwrap_or_default();
            self.prefix = e.iter().map(|s| head(s, 2).to_vec()).collect();
            self.suffix = e.iter().map(|s| tail(s, 2).to_vec()).collect();
        }
        if self.exact.is_none() {
            let prefix = std::mem::take(&mut self.prefix);
            self.prefix = self.simplify_set(prefix, false);
            let suffix = std::mem::take(&mut self.suffix);
            self.suffix = self.simplify_set(suffix, true);
        }
        self
    }

    /// Adds `set`'s trigrams to the query, then cuts its strings to two bytes (fewer while over
    /// [`MAX_SET`]) and drops the strings another one of the set already starts (or, for
    /// suffixes, ends).
    fn simplify_set(&mut self, mut set: Vec<Vec<u8>>, is_suffix: bool) -> Vec<Vec<u8>> {
        set.sort_unstable();
        set.dedup();
        let q = std::mem::replace(&mut self.query, Query::Any);
        self.query = q.and_strings(&set);
        let mut keep = 2;
        loop {
            for s in &mut set {
                let cut = if is_suffix {
                    tail(s, keep)
                } else {
                    head(s, keep)
                };
                *s = cut.to_vec();
            }
            set.sort_unstable();
            set.dedup();
            if set.len() <= MAX_SET || keep == 0 {
                break;
            }
            keep -= 1;
        }
        drop_redundant(set, is_suffix)
    }
}

/// The first `n` bytes of `s` (all of a shorter one).
fn head(s: &[u8], n: usize) -> &[u8] {
    s.get(..n).unwrap_or(s)
}

/// The last `n` bytes of `s` (all of a shorter one).
fn tail(s: &[u8], n: usize) -> &[u8] {
    s.get(s.len().saturating_sub(n)..).unwrap_or(s)
}

/// `set` without the strings that start (for suffixes: end) with another string of the set: that
/// shorter one already says as much. Returns the set sorted and unique.
fn drop_redundant(set: Vec<Vec<u8>>, is_suffix: bool) -> Vec<Vec<u8>> {
    let flip = |s: Vec<u8>| {
        if is_suffix {
            s.into_iter().rev().collect()
        } else {
            s
        }
    };
    let mut keys: Vec<Vec<u8>> = set.into_iter().map(flip).collect();
    keys.sort_unstable();
    keys.dedup();
    // Sorted, every string that starts with `p` follows `p` directly or after others starting
    // with `p`, so comparing with the last kept string finds them all.
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
    for k in keys {
        if out.last().is_some_and(|p| k.starts_with(p)) {
            continue;
        }
        out.push(k);
    }
    let mut out: Vec<Vec<u8>> = out.into_iter().map(flip).collect();
    out.sort_unstable();
    out
}

/// Every concatenation of a string of `a` and one of `b`, sorted and unique.
fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = Vec::with_capacity(x.len() + y.len());
            s.extend_from_slice(x);
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The union of two sets, sorted and unique.
fn union(a: &[Vec<u8>], b: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = a.iter().chain(b).cloned().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The shortest string's length (0 for an empty set).
fn min_len(set: &[Vec<u8>]) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

/// What is known of a node's strings. Recursion depth is the HIR's, which the parser's nest limit
/// (250, as in the `regex` crate) bounds.
fn analyze(hir: &Hir) -> Info {
    let info = match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Info::empty_string(),
        HirKind::Literal(lit) => Info::exact(vec![lit.0.to_vec()]),
        HirKind::Class(c) => class(c),
        HirKind::Repetition(r) => repetition(r),
        HirKind::Capture(c) => analyze(&c.sub),
        HirKind::Concat(subs) => {
            let mut it = subs.iter().map(analyze);
            let first = it.next().unwrap_or_else(Info::empty_string);
            it.fold(first, concat)
        }
        HirKind::Alternation(subs) => {
            let mut it = subs.iter().map(analyze);
            let first = it.next().unwrap_or_else(Info::no_match);
            it.fold(first, alternate)
        }
    };
    info.simplify()
}

/// A class: its characters' encodings when few, else "any character".
fn class(c: &Class) -> Info {
    let mut set: Vec<Vec<u8>> = Vec::new();
    match c {
        Class::Unicode(u) => {
            for r in u.ranges() {
                for ch in r.start()..=r.end() {
                    if set.len() == MAX_CLASS {
                        return Info::any_char();
                    }
                    set.push(ch.to_string().into_bytes());
                }
            }
        }
        Class::Bytes(b) => {
            for r in b.ranges() {
                for byte in r.start()..=r.end() {
                    if set.len() == MAX_CLASS {
                        return Info::any_char();
                    }
                    set.push(vec![byte]);
                }
            }
        }
    }
    if set.is_empty() {
        Info::no_match()
    } else {
        Info::exact(set)
    }
}

/// `x{min,max}` (`?`, `*` and `+` included).
fn repetition(r: &Repetition) -> Info {
    match (r.min, r.max) {
        (0, Some(0)) => Info::empty_string(),
        (0, Some(1)) => alternate(analyze(&r.sub), Info::empty_string()),
        (0, _) => Info::any_match(),
        (n, max) => {
            let x = analyze(&r.sub);
            if max == Some(n) && n <= MAX_UNROLL {
                // x{n}: exactly n copies.
                let copy = x.without_query();
                return (1..n).fold(x, |acc, _| concat(acc, copy.clone()));
            }
            // x{n,m}, n ≥ 1: a string of it is k ≥ n strings of x, so it is up to two strings
            // of x followed by one or more.
            let copy = x.without_query();
            let plus = copy.clone().plus();
            if n == 1 {
                return x.plus();
            }
            let unrolled = (1..n.min(MAX_UNROLL) - 1).fold(x, |acc, _| concat(acc, copy.clone()));
            concat(unrolled, plus)
        }
    }
}

/// `x` followed by `y`.
fn concat(x: Info, y: Info) -> Info {
    let can_empty = x.can_empty && y.can_empty;
    let mut exact = None;
    let mut prefix = Vec::new();
    let mut suffix = Vec::new();
    let mut junction = None;
    match (&x.exact, &y.exact) {
        (Some(a), Some(b)) => exact = Some(cross(a, b)),
        (xe, ye) => {
            prefix = match xe {
                Some(a) => cross(a, &y.prefix),
                None if x.can_empty => union(&x.prefix, &y.prefix),
                None => x.prefix.clone(),
            };
            suffix = match ye {
                Some(b) => cross(&x.suffix, b),
                None if y.can_empty => union(&x.suffix, &y.suffix),
                None => y.suffix.clone(),
            };
            // Neither side exact: a trigram may straddle the boundary, in some x-suffix followed
            // by some y-prefix; worth adding when every such pair holds one.
            if xe.is_none()
                && ye.is_none()
                && x.suffix.len() <= MAX_SET
                && y.prefix.len() <= MAX_SET
                && min_len(&x.suffix) + min_len(&y.prefix) >= 3
            {
                junction = Some(cross(&x.suffix, &y.prefix));
            }
        }
    }
    let mut query = x.query.and(y.query);
    if let Some(j) = junction {
        query = query.and_strings(&j);
    }
    Info {
        can_empty,
        exact,
        prefix,
        suffix,
        query,
    }
    .simplify()
}

/// `x` or `y`.
fn alternate(mut x: Info, mut y: Info) -> Info {
    let can_empty = x.can_empty || y.can_empty;
    let (exact, prefix, suffix) = match (&x.exact, &y.exact) {
        (Some(a), Some(b)) => (Some(union(a, b)), Vec::new(), Vec::new()),
        (Some(a), None) => {
            let p = union(a, &y.prefix);
            let s = union(a, &y.suffix);
            x.add_exact();
            (None, p, s)
        }
        (None, Some(b)) => {
            let p = union(&x.prefix, b);
            let s = union(&x.suffix, b);
            y.add_exact();
            (None, p, s)
        }
        (None, None) => (
            None,
            union(&x.prefix, &y.prefix),
            union(&x.suffix, &y.suffix),
        ),
    };
    Info {
        can_empty,
        exact,
        prefix,
        suffix,
        query: x.query.or(y.query),
    }
    .simplify()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(pattern: &str) -> Plan {
        plan(&regex_syntax::Parser::new().parse(pattern).unwrap())
    }

    fn tri(s: &str) -> Query {
        let b = s.as_bytes();
        Query::Trigram(trigram(b[0], b[1], b[2]))
    }

    #[test]
    fn literal_plans_as_and_of_its_trigrams() {
        let p = planned("abcd");
        assert!(!p.exact);
        let mut want = vec![tri("abc"), tri("bcd")];
        let Query::And { mut parts, leaves } = p.query else {
            panic!("{:?}", p.query)
        };
        parts.sort_by_key(|q| format!("{q:?}"));
        want.sort_by_key(|q| format!("{q:?}"));
        assert_eq!((parts, leaves), (want, 2));
    }

    #[test]
    fn three_byte_alternatives_are_exact() {
        assert!(planned("abc").exact);
        assert!(planned("abc|xyz").exact);
        assert!(planned("(?i)abc").exact);
        assert!(!planned("^abc").exact, "a look-around is not exact");
        assert!(!planned("ab").exact);
        assert_eq!(planned("ab").query, Query::Any);
    }

    #[test]
    fn unbounded_patterns_plan_as_any() {
        for p in ["", "a*", ".*", "(abc)*", "a|bcd", "\\w+", "(?s).", "x?y?z?"] {
            assert_eq!(planned(p).query, Query::Any, "{p}");
        }
    }

    #[test]
    fn empty_class_plans_as_nothing() {
        assert_eq!(planned("[^\\x00-\\x{10FFFF}]").query, Query::Nothing);
    }

    #[test]
    fn plans_stay_small_for_large_patterns() {
        let alts: Vec<String> = (0..5000).map(|i| format!("w{i:05}x")).collect();
        let p = planned(&alts.join("|"));
        assert!(p.query.leaves() <= MAX_LEAVES);
        let long = "abcdefghij".repeat(2000);
        let p = planned(&long);
        assert!(p.query.leaves() <= MAX_LEAVES);
        let nested = "(?:(?:ab|cd){2}[ef]+)".repeat(200);
        assert!(planned(&nested).query.leaves() <= MAX_LEAVES);
    }
}
