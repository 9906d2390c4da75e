//! `ochre query`: dense, BM25 or hybrid (reciprocal rank fusion) retrieval over a collection
//! `ochre ingest` filled, through the Search API.

use std::path::PathBuf;

use anyhow::{bail, Context};
use ochre_embed::bm25::Bm25;
use serde_json::{json, Value};

use crate::client::Client;
use crate::ingest::SPARSE_KEY;

/// How results are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Nearest chunks by embedding (cosine distance).
    Dense,
    /// BM25 over the chunks' terms.
    Bm25,
    /// Both, fused by reciprocal rank (k = 60).
    Hybrid,
}

/// `ochre query` options.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// What to look for.
    pub text: String,
    /// Collection to search.
    #[arg(long, short = 'c')]
    pub collection: String,
    #[command(flatten)]
    pub target: crate::client::Target,
    /// Results to show.
    #[arg(short = 'n', long = "n-results", default_value_t = 5)]
    pub n: u32,
    /// A filter in the Search API's syntax (Chroma's `where`, plus `#document`), e.g.
    /// '{"chunk": 0}' or '{"#document": {"$contains": "tokio"}}'.
    #[arg(long = "where", value_name = "JSON")]
    pub where_: Option<String>,
    /// Ranking.
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    pub mode: Mode,
    /// Print JSON: [{id, distance | score, document, metadata}].
    #[arg(long)]
    pub json: bool,
    /// Model directory (as for `ochre ingest`).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// Reciprocal rank fusion's constant.
const RRF_K: f64 = 60.0;

/// One result.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    /// Dense: the cosine distance (lower is nearer); BM25: the score; hybrid: the fused score
    /// (higher is better for both).
    pub value: f64,
    pub document: String,
    pub metadata: serde_json::Map<String, Value>,
}

/// The Search API request for `args`.
fn search_body(
    args: &QueryArgs,
    dense: Option<Vec<f32>>,
    sparse: Option<Value>,
    filter: Option<Value>,
) -> Value {
    let candidates = (args.n.saturating_mul(4)).clamp(50, 1000);
    let dense_knn = |rank: bool| {
        let mut k = json!({"$knn": {"query": dense, "limit": candidates}});
        if rank {
            k["$knn"]["return_rank"] = json!(true);
            k["$knn"]["default"] = json!(candidates);
        }
        k
    };
    let sparse_knn = |rank: bool| {
        let mut k = json!({"$knn": {"query": sparse, "key": SPARSE_KEY, "limit": candidates}});
        if rank {
            k["$knn"]["return_rank"] = json!(true);
            k["$knn"]["default"] = json!(candidates);
        }
        k
    };
    let rrf = |knn: Value| json!({"$div": {"left": {"$val": 1.0}, "right": {"$sum": [{"$val": RRF_K}, knn]}}});
    let rank = match args.mode {
        Mode::Dense => dense_knn(false),
        Mode::Bm25 => sparse_knn(false),
        Mode::Hybrid => json!({"$mul": [{"$val": -1.0},
            {"$sum": [rrf(dense_knn(true)), rrf(sparse_knn(true))]}]}),
    };
    let mut search = json!({
        "rank": rank,
        "limit": {"limit": args.n},
        "select": {"keys": ["#document", "#metadata", "#score"]},
    });
    if let Some(f) = filter {
        search["filter"] = f;
    }
    json!({"searches": [search]})
}

/// Runs the query and returns the hits, best first.
pub fn search(args: &QueryArgs) -> anyhow::Result<Vec<Hit>> {
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let filter = args
        .where_
        .as_deref()
        .map(|w| serde_json::from_str::<Value>(w).context("--where is not JSON"))
        .transpose()?;
    if args.target.url.is_none() {
        let path = crate::client::data_dir(&args.target);
        if !path.join("ochre.sqlite3").exists() {
            bail!(
                "{} is not an Ochre data directory (run `ochre ingest` first, or pass --url)",
                path.display()
            );
        }
    }
    let dense = match args.mode {
        Mode::Dense | Mode::Hybrid => {
            let model = crate::load_model(args.model.as_deref())?;
            model.embed(&[args.text.as_str()])?.pop()
        }
        Mode::Bm25 => None,
    };
    let client = Client::connect(&args.target)?;
    let Some(opened) = crate::ingest::open_collection(&client, &args.collection, false)? else {
        bail!("there is no collection named {}", args.collection);
    };
    let collection = opened.collection;
    let sparse = if args.mode == Mode::Dense {
        None
    } else {
        let Some(bm25) = &opened.bm25 else {
            bail!(
                "collection {} has no chroma_bm25 index on {SPARSE_KEY}: use --mode dense",
                args.collection
            );
        };
        let sv = bm25.embed(&args.text);
        if sv.indices.is_empty() && args.mode == Mode::Bm25 {
            bail!("the query has no terms BM25 can match (only stop words or punctuation)");
        }
        Some(json!({"indices": sv.indices, "values": sv.values}))
    };
    let answer = client.post(
        &collection,
        "search",
        &search_body(args, dense, sparse, filter),
    )?;
    let ids = answer["ids"][0].as_array().cloned().unwrap_or_default();
    let mut hits = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let score = answer["scores"][0][i].as_f64().unwrap_or(f64::NAN);
        let value = match args.mode {
            Mode::Dense => score,
            // The sparse $knn ranks by 1 - q·v; RRF by the negated fused score.
            Mode::Bm25 => 1.0 - score,
            Mode::Hybrid => -score,
        };
        let mut metadata = answer["metadatas"][0][i]
            .as_object()
            .cloned()
            .unwrap_or_default();
        metadata.remove(SPARSE_KEY);
        hits.push(Hit {
            id: id.as_str().unwrap_or_default().to_string(),
            value,
            document: answer["documents"][0][i]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            metadata,
        });
    }
    Ok(hits)
}

/// Runs `ochre query` and prints the answer.
pub fn run(args: &QueryArgs) -> anyhow::Result<()> {
    let hits = search(args)?;
    if args.json {
        let key = if args.mode == Mode::Dense {
            "distance"
        } else {
            "score"
        };
        let out: Vec<Value> = hits
            .iter()
            .map(|h| {
                json!({"id": h.id, key: h.value, "document": h.document, "metadata": h.metadata})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if hits.is_empty() {
        println!("no results");
        return Ok(());
    }
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let bm25 = Bm25::default();
    let terms: std::collections::HashSet<String> = bm25.tokenize(&args.text).into_iter().collect();
    let cwd = std::env::current_dir().ok();
    for (rank, h) in hits.iter().enumerate() {
        let source = h
            .metadata
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or(&h.id);
        let shown = cwd
            .as_ref()
            .and_then(|c| std::path::Path::new(source).strip_prefix(c).ok())
            .map_or(source.to_string(), |p| p.display().to_string());
        let chunk = match (h.metadata.get("chunk"), h.metadata.get("chunks")) {
            (Some(c), Some(n)) => format!(
                "  chunk {}/{}",
                c.as_i64().unwrap_or(0).saturating_add(1),
                n
            ),
            _ => String::new(),
        };
        let value = match args.mode {
            Mode::Dense => format!("distance {:.4}", h.value),
            _ => format!("score {:.4}", h.value),
        };
        println!("{}. {shown}{chunk}  {value}", rank + 1);
        println!("   {}", snippet(&h.document, &terms, &bm25, 300, tty));
    }
    Ok(())
}

/// Byte spans of the words of `text` (runs of alphanumerics and `_`).
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let word = c.is_alphanumeric() || c == '_';
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// About `width` bytes of `document` around its densest run of query terms (the start when
/// none match), whitespace collapsed, matches marked bold (ANSI on a terminal, `**…**`
/// otherwise).
pub fn snippet(
    document: &str,
    terms: &std::collections::HashSet<String>,
    bm25: &Bm25,
    width: usize,
    ansi: bool,
) -> String {
    let all = words(document);
    let matches: Vec<(usize, usize)> = all
        .iter()
        .copied()
        .filter(|&(s, e)| {
            bm25.tokenize(&document[s..e])
                .iter()
                .any(|t| terms.contains(t))
        })
        .collect();
    // The window holding the most matches, starting a little before its first one.
    let mut best = (0usize, 0usize);
    for (i, &(s, _)) in matches.iter().enumerate() {
        let n = matches[i..].iter().take_while(|m| m.1 <= s + width).count();
        if n > best.1 {
            best = (i, n);
        }
    }
    let mut start = matches
        .get(best.0)
        .map_or(0, |m| m.0.saturating_sub(width / 5));
    // Start on a word.
    if start > 0 {
        start = all
            .iter()
            .map(|w| w.0)
            .find(|&w| w >= start)
            .unwrap_or(start);
    }
    let mut end = (start + width).min(document.len());
    while !document.is_char_boundary(end) {
        end += 1;
    }
    if end < document.len() {
        end = all
            .iter()
            .rev()
            .map(|w| w.1)
            .find(|&w| w <= end && w > start)
            .unwrap_or(end);
    }
    let (on, off) = if ansi {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(s, e) in matches.iter().filter(|m| m.0 >= start && m.1 <= end) {
        out.push_str(&document[at..s]);
        out.push_str(on);
        out.push_str(&document[s..e]);
        out.push_str(off);
        at = e;
    }
    out.push_str(&document[at..end]);
    if end < document.len() {
        out.push('…');
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(q: &str) -> std::collections::HashSet<String> {
        Bm25::default().tokenize(q).into_iter().collect()
    }

    #[test]
    fn a_snippet_marks_stemmed_matches_around_the_densest_part() {
        let bm25 = Bm25::default();
        let doc = format!(
            "{} Vector databases index embeddings.\nThey search\tnearest neighbours. {}",
            "filler words here ".repeat(30),
            "tail text ".repeat(30)
        );
        let s = snippet(&doc, &terms("searching databases"), &bm25, 120, false);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(
            s.contains("**databases**") && s.contains("**search**"),
            "{s}"
        );
        assert!(!s.contains('\n') && !s.contains('\t'), "{s}");
        // Nothing matches: the start of the document.
        let s = snippet("alpha beta gamma", &terms("zeta"), &bm25, 120, false);
        assert_eq!(s, "alpha beta gamma");
        // Multi-byte text never splits a character.
        let s = snippet(&"é".repeat(200), &terms("zeta"), &bm25, 101, true);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn hybrid_requests_fuse_both_rankings_by_reciprocal_rank() {
        let args = QueryArgs {
            text: "x".into(),
            collection: "c".into(),
            target: crate::client::Target {
                path: None,
                url: None,
                token: None,
                tenant: "t".into(),
                database: "d".into(),
            },
            n: 3,
            where_: Some("{\"chunk\": 0}".into()),
            mode: Mode::Hybrid,
            json: false,
            model: None,
        };
        let body = search_body(
            &args,
            Some(vec![0.5, 0.5]),
            Some(json!({"indices": [1], "values": [1.0]})),
            Some(json!({"chunk": 0})),
        );
        let s = &body["searches"][0];
        assert_eq!(s["filter"], json!({"chunk": 0}));
        assert_eq!(s["limit"]["limit"], json!(3));
        let parts = &s["rank"]["$mul"][1]["$sum"];
        assert_eq!(
            parts[0]["$div"]["right"]["$sum"][1]["$knn"]["return_rank"],
            json!(true)
        );
        assert_eq!(
            parts[1]["$div"]["right"]["$sum"][1]["$knn"]["key"],
            json!(SPARSE_KEY)
        );
        assert_eq!(
            parts[1]["$div"]["right"]["$sum"][1]["$knn"]["default"],
            json!(50)
        );
    }
}
