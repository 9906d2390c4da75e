//! The text index against `str::contains` and `regex::Regex::is_match`: candidates never miss a
//! live match, never name a removed record, and say `Exact` only when they are the answer.

use std::collections::BTreeMap;

use ochre_types::SeqNo;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Candidates, TextError, TextIndex};

fn index_of(docs: &[&str]) -> TextIndex {
    let mut t = TextIndex::new();
    for (i, d) in docs.iter().enumerate() {
        t.insert(SeqNo(i as u64), d);
    }
    t
}

fn seqs(v: &[u64]) -> Vec<SeqNo> {
    v.iter().map(|&s| SeqNo(s)).collect()
}

/// Checks `got` against the live records of `model` that satisfy `matches`: a sorted, unique
/// superset of the matches among live records, equal to them when exact.
fn check(
    got: &Candidates,
    model: &BTreeMap<SeqNo, String>,
    matches: impl Fn(&str) -> bool,
    what: &str,
) {
    let want: Vec<SeqNo> = model
        .iter()
        .filter(|(_, d)| matches(d))
        .map(|(&s, _)| s)
        .collect();
    let Some(list) = got.seqs() else { return };
    assert!(
        list.windows(2).all(|w| w[0] < w[1]),
        "{what}: unsorted {list:?}"
    );
    for s in list {
        assert!(model.contains_key(s), "{what}: {s:?} is not live");
    }
    for s in &want {
        assert!(list.binary_search(s).is_ok(), "{what}: missed {s:?}");
    }
    if got.is_exact() {
        assert_eq!(list, want.as_slice(), "{what}: exact but not the answer");
    }
}

#[test]
fn contains_intersects_every_trigram_of_the_needle() {
    let t = index_of(&[
        "the quick brown fox",
        "quick thinking",
        "brown bread",
        "a fox",
    ]);
    assert_eq!(
        t.contains_candidates("quick"),
        Candidates::Some(seqs(&[0, 1]))
    );
    assert_eq!(
        t.contains_candidates("brown "),
        Candidates::Some(seqs(&[0, 2]))
    );
    assert_eq!(
        t.contains_candidates("fox"),
        Candidates::Exact(seqs(&[0, 3]))
    );
    assert_eq!(t.contains_candidates("zebra"), Candidates::Some(vec![]));
    // "own fox" is not in doc 2 ("brown bread") although "own" is.
    assert_eq!(
        t.contains_candidates("own fox"),
        Candidates::Some(seqs(&[0]))
    );
}

#[test]
fn short_needles_answer_all() {
    let t = index_of(&["abc", "xy"]);
    for n in ["", "a", "ab", "é"] {
        assert_eq!(t.contains_candidates(n), Candidates::All, "{n:?}");
    }
    // Three bytes are a trigram even inside one character.
    assert_eq!(t.contains_candidates("€"), Candidates::Exact(vec![]));
}

#[test]
fn multibyte_needles_match_their_bytes() {
    let t = index_of(&[
        "crème brûlée",
        "creme brulee",
        "€100 or €200",
        "日本語のテキスト",
    ]);
    assert_eq!(t.contains_candidates("brûl"), Candidates::Some(seqs(&[0])));
    assert_eq!(t.contains_candidates("€2"), Candidates::Some(seqs(&[2])));
    assert_eq!(t.contains_candidates("本語"), Candidates::Some(seqs(&[3])));
    assert_eq!(t.contains_candidates("語"), Candidates::Exact(seqs(&[3])));
}

#[test]
fn remove_and_reinsert_replace_what_is_indexed() {
    let mut t = index_of(&["alpha beta", "beta gamma", "gamma delta"]);
    t.remove(SeqNo(1));
    t.remove(SeqNo(42));
    assert_eq!(t.len(), 2);
    assert_eq!(t.contains_candidates("beta"), Candidates::Some(seqs(&[0])));
    t.insert(SeqNo(0), "omega");
    assert_eq!(t.len(), 2);
    assert_eq!(t.contains_candidates("beta"), Candidates::Some(vec![]));
    assert_eq!(t.contains_candidates("omega"), Candidates::Some(seqs(&[0])));
    t.insert(SeqNo(1), "beta again");
    assert_eq!(t.contains_candidates("beta"), Candidates::Some(seqs(&[1])));
    assert_eq!(t.contains_candidates("ga"), Candidates::All);
    t.remove(SeqNo(0));
    t.remove(SeqNo(1));
    t.remove(SeqNo(2));
    assert!(t.is_empty());
    assert_eq!(t.contains_candidates("gamma"), Candidates::Some(vec![]));
}

#[test]
fn candidates_stay_sorted_after_updates_out_of_order() {
    let mut t = TextIndex::new();
    for i in 0..300u64 {
        t.insert(SeqNo(i), "common words here");
    }
    // Updating a record keeps its sequence number: its new slot is out of order.
    t.insert(SeqNo(5), "common words again");
    t.insert(SeqNo(2), "common words again");
    let Candidates::Some(list) = t.contains_candidates("common") else {
        panic!()
    };
    assert_eq!(list, (0..300).map(SeqNo).collect::<Vec<_>>());
    assert_eq!(
        t.contains_candidates("again"),
        Candidates::Some(seqs(&[2, 5]))
    );
    t.compact();
    assert_eq!(
        t.contains_candidates("again"),
        Candidates::Some(seqs(&[2, 5]))
    );
    assert_eq!(
        t.contains_candidates("common").seqs().map(<[_]>::len),
        Some(300)
    );
}

#[test]
fn compaction_drops_dead_postings_and_keeps_answers() {
    let mut t = TextIndex::with_limits(super::MAX_SLOTS, 16, 64);
    for i in 0..200u64 {
        t.insert(SeqNo(i), &format!("record {i} says hello {}", i % 7));
    }
    let before = t.memory_bytes();
    for i in 0..150u64 {
        t.remove(SeqNo(i));
    }
    assert!(t.dead < 16 || t.dead * 4 < t.seqs.len(), "compaction ran");
    assert_eq!(t.len(), 50);
    assert_eq!(
        t.contains_candidates("hello 3"),
        Candidates::Some((150..200).filter(|i| i % 7 == 3).map(SeqNo).collect())
    );
    assert!(t.memory_bytes() < before);
}

#[test]
fn regex_candidates_follow_the_plan() {
    let t = index_of(&["hello world", "help wanted", "yellow", "HELLO"]);
    assert_eq!(
        t.regex_candidates("hel+o").unwrap(),
        Candidates::Some(seqs(&[0, 1]))
    );
    assert_eq!(
        t.regex_candidates("(?i)hello").unwrap(),
        Candidates::Some(seqs(&[0, 3]))
    );
    assert_eq!(
        t.regex_candidates("wor|wan").unwrap(),
        Candidates::Exact(seqs(&[0, 1]))
    );
    assert_eq!(
        t.regex_candidates("hel+o w").unwrap(),
        Candidates::Some(seqs(&[0]))
    );
    assert_eq!(
        t.regex_candidates("^yel").unwrap(),
        Candidates::Some(seqs(&[2]))
    );
    assert_eq!(t.regex_candidates("l+").unwrap(), Candidates::All);
    assert_eq!(t.regex_candidates("").unwrap(), Candidates::All);
    assert_eq!(
        t.regex_candidates("xyz.*").unwrap(),
        Candidates::Some(vec![])
    );
    assert_eq!(
        t.regex_candidates("[^\\x00-\\x{10FFFF}]").unwrap(),
        Candidates::Some(vec![])
    );
}

#[test]
fn invalid_regex_reports_the_regex_crate_message() {
    let t = index_of(&["abc"]);
    for p in [
        "(",
        "[a",
        "a{2,1}",
        "\\p{NoSuchClass}",
        "(?<n>a)(?<n>b)",
        "*",
        "a{1001}",
    ] {
        let ours = t.regex_candidates(p);
        match regex::Regex::new(p) {
            Err(regex::Error::Syntax(msg)) => assert_eq!(ours, Err(TextError::Regex(msg)), "{p}"),
            other => assert!(ours.is_ok(), "{p}: regex says {other:?}, we {ours:?}"),
        }
    }
    assert!(t.regex_candidates("(").is_err());
}

#[test]
fn slot_exhaustion_answers_all_until_the_overflow_is_removed() {
    let mut t = TextIndex::with_limits(4, usize::MAX, 1);
    for i in 0..4u64 {
        t.insert(SeqNo(i), "abcdef");
    }
    t.insert(SeqNo(4), "zzzz");
    assert_eq!(t.len(), 5);
    assert_eq!(t.contains_candidates("abcd"), Candidates::All);
    assert_eq!(t.regex_candidates("abc").unwrap(), Candidates::All);
    t.remove(SeqNo(4));
    assert_eq!(
        t.contains_candidates("abcd"),
        Candidates::Some(seqs(&[0, 1, 2, 3]))
    );
    // A dead slot is reclaimed by compacting when the slots run out.
    t.remove(SeqNo(1));
    t.insert(SeqNo(5), "abcxyz");
    assert_eq!(t.len(), 4);
    assert_eq!(
        t.contains_candidates("abc"),
        Candidates::Exact(seqs(&[0, 2, 3, 5]))
    );
}

#[test]
fn model_insert_replace_remove_never_misses_or_resurrects() {
    const ALPHABET: &[char] = &['a', 'b', 'c', ' ', 'é', '€'];
    let doc = |rng: &mut StdRng| -> String {
        let n = rng.gen_range(0..40);
        (0..n)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
            .collect()
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut t = TextIndex::with_limits(super::MAX_SLOTS, 8, 32);
    let mut model: BTreeMap<SeqNo, String> = BTreeMap::new();
    let mut next = 0u64;
    let mut compactions = 0;
    for step in 0..4000 {
        let live: Vec<SeqNo> = model.keys().copied().collect();
        let pick = |rng: &mut StdRng| live[rng.gen_range(0..live.len())];
        let dead_before = t.dead;
        match rng.gen_range(0..100) {
            0..=44 => {
                let d = doc(&mut rng);
                t.insert(SeqNo(next), &d);
                model.insert(SeqNo(next), d);
                next += 1;
            }
            45..=69 if !live.is_empty() => {
                let s = pick(&mut rng);
                let d = doc(&mut rng);
                t.insert(s, &d);
                model.insert(s, d);
            }
            70..=94 if !live.is_empty() => {
                let s = pick(&mut rng);
                t.remove(s);
                model.remove(&s);
            }
            _ => {
                // An absent or already removed record.
                let s = SeqNo(rng.gen_range(0..next + 5));
                if !model.contains_key(&s) {
                    t.remove(s);
                }
            }
        }
        if t.dead < dead_before {
            compactions += 1;
        }
        assert_eq!(t.len(), model.len(), "step {step}");
        if step % 7 == 0 {
            for _ in 0..4 {
                let n = rng.gen_range(0..6);
                let needle: String = (0..n)
                    .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
                    .collect();
                let got = t.contains_candidates(&needle);
                check(
                    &got,
                    &model,
                    |d| d.contains(&needle),
                    &format!("step {step} {needle:?}"),
                );
            }
            for p in ["ab+c", "(a|b)c é", "€[ab]", "c{2}", "a.b"] {
                let re = regex::Regex::new(p).unwrap();
                let got = t.regex_candidates(p).unwrap();
                check(
                    &got,
                    &model,
                    |d| re.is_match(d),
                    &format!("step {step} /{p}/"),
                );
            }
        }
    }
    assert!(compactions > 10, "compaction ran {compactions} times");
    let bitmaps = t
        .postings
        .values()
        .filter(|p| matches!(p, super::Postings::Bitmap(_)))
        .count();
    assert!(
        bitmaps > 0 && bitmaps < t.trigrams(),
        "both list shapes: {bitmaps} bitmaps"
    );
}

/// Strategy: documents over a small alphabet (so needles and patterns hit), with multi-byte
/// characters and upper case for `(?i)`.
fn documents() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[abcAB é€\n]{0,40}", 0..20)
}

/// Strategy: patterns from a small grammar over the documents' alphabet.
fn pattern() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => "[abcAé ]{1,3}",
        1 => Just(".".to_owned()),
        1 => Just("[ab]".to_owned()),
        1 => Just("[^a]".to_owned()),
        1 => Just("[a-c]".to_owned()),
        1 => Just("[é€]".to_owned()),
        1 => Just("\\w".to_owned()),
        1 => Just("\\s".to_owned()),
        1 => Just("\\b".to_owned()),
        1 => Just("^".to_owned()),
        1 => Just("$".to_owned()),
        1 => Just("(?i:ab)".to_owned()),
        1 => Just("(?i)b".to_owned()),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.concat()),
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("(?:{a}|{b})")),
            1 => inner.clone().prop_map(|a| format!("(?:{a})?")),
            1 => inner.clone().prop_map(|a| format!("(?:{a})*")),
            1 => inner.clone().prop_map(|a| format!("(?:{a})+")),
            1 => (inner.clone(), 0u32..4, 0u32..3)
                .prop_map(|(a, n, extra)| format!("(?:{a}){{{n},{}}}", n + extra)),
            1 => (inner.clone(), 1u32..5).prop_map(|(a, n)| format!("(?:{a}){{{n},}}")),
            1 => inner.clone().prop_map(|a| format!("(?i:{a})")),
            1 => inner.prop_map(|a| format!("({a})")),
        ]
    })
}

fn model_of(docs: &[String]) -> (TextIndex, BTreeMap<SeqNo, String>) {
    // Bitmaps from four slots on, so small cases hold both list shapes.
    let mut t = TextIndex::with_limits(super::MAX_SLOTS, super::COMPACT_MIN_DEAD, 4);
    let mut model = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        t.insert(SeqNo(i as u64 * 3), d);
        model.insert(SeqNo(i as u64 * 3), d.clone());
    }
    (t, model)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn contains_candidates_cover_str_contains(
        docs in documents(),
        needles in prop::collection::vec("[abcAB é€]{0,6}", 1..8),
    ) {
        let (t, model) = model_of(&docs);
        for n in &needles {
            check(&t.contains_candidates(n), &model, |d| d.contains(n.as_str()), n);
        }
    }

    #[test]
    fn regex_candidates_cover_is_match(docs in documents(), p in pattern()) {
        let re = regex::Regex::new(&p).unwrap();
        let (t, model) = model_of(&docs);
        let got = t.regex_candidates(&p).unwrap();
        check(&got, &model, |d| re.is_match(d), &p);
    }

    #[test]
    fn arbitrary_patterns_parse_like_the_regex_crate(
        docs in documents(),
        p in "[abc()|*+?{}\\[\\]^$.\\\\0-9,é-]{0,14}",
    ) {
        let (t, model) = model_of(&docs);
        let ours = t.regex_candidates(&p);
        match regex::Regex::new(&p) {
            Ok(re) => check(&ours.unwrap(), &model, |d| re.is_match(d), &p),
            Err(regex::Error::Syntax(msg)) => prop_assert_eq!(ours, Err(TextError::Regex(msg))),
            Err(_) => {} // Too big to compile: the engine rejects it before asking us.
        }
    }
}

/// English-like text: Zipf-distributed words (a real head of common words, a synthetic tail, some
/// numbers and capitalized names),
/// sentences with capitals and punctuation.
pub(super) struct Prose {
    words: Vec<String>,
    cumulative: Vec<f64>,
    rng: StdRng,
}

impl Prose {
    pub(super) fn new(seed: u64) -> Prose {
        const COMMON: &str = "the of and to a in is it you that he was for on are with as I his they be at \
            one have this from or had by hot word but what some we can out other were all there when up \
            use your how said an each she which do their time if will way about many then them write would \
            like so these her long make thing see him two has look more day could go come did number sound \
            no most people my over know water than call first who may down side been now find any new work \
            part take get place made live where after back little only round man year came show every good \
            me give our under name very through just form sentence great think say help low line differ turn \
            cause much mean before move right boy old too same tell does set three want air well also play \
            small end put home read hand port large spell add even land here must big high such follow act \
            why ask men change went light kind off need house picture try us again animal point mother world";
        let mut rng = StdRng::seed_from_u64(seed);
        let mut words: Vec<String> = COMMON.split_whitespace().map(str::to_owned).collect();
        let onsets = [
            "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "ch",
            "cl", "dr", "gr", "pl", "pr", "sh", "st", "th", "tr",
        ];
        let vowels = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "io", "y"];
        let codas = [
            "", "", "n", "r", "s", "t", "l", "nd", "st", "ng", "ck", "rt", "ed", "ing", "tion",
            "ment", "ly",
        ];
        while words.len() < 30_000 {
            let syllables = rng.gen_range(1..4);
            let mut w = String::new();
            for _ in 0..syllables {
                w.push_str(onsets[rng.gen_range(0..onsets.len())]);
                w.push_str(vowels[rng.gen_range(0..vowels.len())]);
            }
            w.push_str(codas[rng.gen_range(0..codas.len())]);
            words.push(w);
        }
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|r| {
                total += 1.0 / (r as f64 + 2.7);
                total
            })
            .collect();
        Prose {
            words,
            cumulative,
            rng,
        }
    }

    /// About `bytes` bytes of prose.
    pub(super) fn document(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes + 32);
        let top = self.cumulative.last().copied().unwrap_or(1.0);
        while out.len() < bytes {
            let n = self.rng.gen_range(6..20);
            for i in 0..n {
                let x = self.rng.gen_range(0.0..top);
                let w = &self.words[self
                    .cumulative
                    .partition_point(|&c| c < x)
                    .min(self.words.len() - 1)];
                if i == 0 {
                    let mut cs = w.chars();
                    if let Some(c) = cs.next() {
                        out.extend(c.to_uppercase());
                        out.push_str(cs.as_str());
                    }
                } else {
                    out.push(' ');
                    match self.rng.gen_range(0..40) {
                        // Numbers and proper names: the long tail of real text's trigrams.
                        0 => out.push_str(&self.rng.gen_range(0..100_000).to_string()),
                        1 | 2 => {
                            let mut cs = w.chars();
                            if let Some(c) = cs.next() {
                                out.extend(c.to_uppercase());
                                out.push_str(cs.as_str());
                            }
                        }
                        _ => out.push_str(w),
                    }
                }
                if i + 1 < n && self.rng.gen_range(0..12) == 0 {
                    out.push(',');
                }
            }
            out.push_str(if self.rng.gen_range(0..10) == 0 {
                "? "
            } else {
                ". "
            });
        }
        out
    }
}

#[test]
fn memory_per_record_for_english_like_documents() {
    let mut prose = Prose::new(1);
    let mut t = TextIndex::new();
    let n = 20_000u64;
    let mut bytes = 0;
    let mut postings = 0;
    let mut keys = Vec::new();
    for i in 0..n {
        let d = prose.document(2048);
        bytes += d.len();
        super::query::trigrams(d.as_bytes(), &mut keys);
        postings += keys.len();
        t.insert(SeqNo(i), &d);
    }
    let per_record = t.memory_bytes() as f64 / n as f64;
    let per_posting = t.memory_bytes() as f64 / postings as f64;
    println!(
        "{n} records of {} bytes on average, {:.0} distinct trigrams each, {} trigrams in all: \
         {per_record:.0} bytes per record, {per_posting:.2} bytes per posting",
        bytes / n as usize,
        postings as f64 / n as f64,
        t.trigrams()
    );
    assert!(per_posting < 1.0, "{per_posting:.2} bytes per posting");
    // Finding what was indexed.
    let d = prose.document(2048);
    t.insert(SeqNo(n), &d);
    let needle: String = d.chars().skip(40).take(12).collect();
    let got = t.contains_candidates(&needle);
    assert!(
        got.seqs().is_some_and(|s| s.contains(&SeqNo(n))),
        "{needle:?}"
    );
}
