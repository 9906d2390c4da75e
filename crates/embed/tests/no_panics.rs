//! Any text and any configuration: an answer or a typed error, never a panic.

use ochre_embed::bm25::Bm25;
use ochre_embed::chunk_spans;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn bm25_embeds_any_text(text in "\\PC{0,200}|[a-zA-Z' _\\-\\u{1c}\\u{85}\\u{a0}ΣσςİıßẞǅﬁⒶ]{0,80}") {
        let bm25 = Bm25::default();
        let v = bm25.embed(&text);
        prop_assert_eq!(v.indices.len(), v.values.len());
        prop_assert!(v.indices.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(v.values.iter().all(|x| x.is_finite() && *x > 0.0));
        let _ = bm25.tokenize(&text);
    }

    #[test]
    fn bm25_configs_are_accepted_or_refused(
        k in prop::option::of(-5.0f64..5.0),
        b in prop::option::of(-2.0f64..2.0),
        avg in prop::option::of(-10.0f64..1000.0),
        max_len in prop::option::of(-3i64..100),
        words in prop::option::of(prop::collection::vec("\\PC{0,8}", 0..5)),
    ) {
        let mut config = serde_json::Map::new();
        if let Some(k) = k { config.insert("k".into(), k.into()); }
        if let Some(b) = b { config.insert("b".into(), b.into()); }
        if let Some(a) = avg { config.insert("avg_doc_length".into(), a.into()); }
        if let Some(m) = max_len { config.insert("token_max_length".into(), m.into()); }
        if let Some(w) = words { config.insert("stopwords".into(), w.into()); }
        if let Ok(bm25) = Bm25::from_config(&serde_json::Value::Object(config)) {
            let _ = bm25.embed("the quick brown fox jumps over the lazy dog again and again");
        }
    }

    #[test]
    fn chunk_spans_stay_inside_the_text(
        text in "\\PC{0,60}",
        raw in prop::collection::vec((0usize..80, 0usize..80), 0..30),
        size in 0usize..10,
        overlap in 0usize..10,
    ) {
        if let Ok(spans) = chunk_spans(&text, &raw, size, overlap) {
            for s in spans {
                prop_assert!(s.start <= s.end && s.end <= text.len());
                prop_assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
            }
        }
    }
}
