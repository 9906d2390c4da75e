//! `ochre ingest`: a folder of text files into a collection, incrementally.
//!
//! Each file is split into token chunks (with overlap), and every chunk is stored with its dense
//! embedding (all-MiniLM-L6-v2), its BM25 sparse vector (under [`SPARSE_KEY`], with a sparse
//! index the Search API ranks by) and the metadata `source` (the file's absolute path), `chunk`,
//! `chunks`, `mtime` (seconds since the epoch) and `hash` (BLAKE3 of the file's bytes).
//!
//! Re-running is incremental. A file whose hash is unchanged is skipped. A changed file's
//! chunks are upserted, then its surplus chunks deleted. A file gone from the folder loses its
//! chunks, unless a new file has the same hash: that is a rename, and its chunks are moved
//! without embedding them again. Within a file, chunk 0 (which carries the hash that later runs
//! compare) is written last, so an interrupted run is redone, never mistaken for done.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use ochre_embed::bm25::Bm25;
use ochre_embed::MiniLm;
use serde_json::{json, Value};

use crate::client::{Client, CollectionRef};

/// The metadata key holding each chunk's BM25 vector (the key Chroma's documents use).
pub const SPARSE_KEY: &str = "sparse_embedding";

/// File extensions read as plain text (case-insensitive).
pub const TEXT_EXTENSIONS: &[&str] = &[
    "txt", "text", "md", "markdown", "mdx", "rst", "adoc", "asciidoc", "org", "tex", "csv", "tsv",
    "json", "jsonl", "yaml", "yml", "toml", "ini", "cfg", "conf", "xml", "log", "rs", "py", "js",
    "ts", "tsx", "jsx", "go", "java", "kt", "c", "h", "cc", "cpp", "hpp", "cs", "rb", "php",
    "swift", "scala", "sh", "bash", "zsh", "sql", "r", "lua", "pl", "hs", "ml", "ex", "exs", "erl",
    "clj", "dart", "vue", "svelte", "css", "scss",
];

/// Chunks embedded per flush: the most held in memory at once, besides one file's (a file's
/// chunks are never split across flushes).
const FLUSH_CHUNKS: usize = 256;

/// `ochre ingest` options.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// A folder (walked recursively; hidden files and folders are skipped) or a single file.
    pub input: PathBuf,
    /// Collection to ingest into (created if missing, with the default embedding function and
    /// a BM25 sparse index).
    #[arg(long, short = 'c')]
    pub collection: String,
    #[command(flatten)]
    pub target: crate::client::Target,
    /// Model directory (sentence-transformers layout); default: OCHRE_MODEL_DIR, the Hugging
    /// Face cache, or a one-time download of all-MiniLM-L6-v2.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Tokens per chunk (at most 254: what the model reads).
    #[arg(long, default_value_t = 200)]
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks.
    #[arg(long, default_value_t = 40)]
    pub overlap: usize,
    /// Extra file extensions to read as text (repeatable, without the dot).
    #[arg(long = "ext", value_name = "EXT")]
    pub extensions: Vec<String>,
    /// Files larger than this many MiB are skipped.
    #[arg(long, default_value_t = 16)]
    pub max_file_mib: u64,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub new: usize,
    pub changed: usize,
    pub renamed: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub chunks: usize,
}

/// A file found by the walk.
struct Found {
    path: PathBuf,
    source: String,
}

/// What the collection holds for one source (from its chunk 0).
#[derive(Debug, Clone)]
struct Stored {
    hash: String,
}

/// One chunk ready to embed.
struct Chunk {
    id: String,
    text: String,
    metadata: serde_json::Map<String, Value>,
}

/// Chunk ids: a prefix from the source path and the chunk number.
fn chunk_id(source: &str, chunk: usize) -> String {
    let hash = blake3::hash(source.as_bytes()).to_hex();
    format!("{}-{chunk}", &hash.as_str()[..16])
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// The text files under `root` (or `root` itself), sorted by path.
fn walk(root: &Path, extensions: &[String]) -> anyhow::Result<Vec<Found>> {
    let wanted = |p: &Path| {
        p.extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .is_some_and(|e| {
                TEXT_EXTENSIONS.contains(&e.as_str())
                    || extensions
                        .iter()
                        .any(|x| x.trim_start_matches('.').eq_ignore_ascii_case(&e))
            })
    };
    let mut out = Vec::new();
    if root.is_file() {
        out.push(Found {
            path: root.to_path_buf(),
            source: root.to_string_lossy().into_owned(),
        });
        return Ok(out);
    }
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
    for entry in walker {
        let entry = entry.with_context(|| format!("walking {}", root.display()))?;
        if entry.file_type().is_file() && wanted(entry.path()) {
            out.push(Found {
                path: entry.path().to_path_buf(),
                source: entry.path().to_string_lossy().into_owned(),
            });
        }
    }
    Ok(out)
}

fn mtime(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The schema of a new collection: cosine vectors of Chroma's default embedding function (its
/// all-MiniLM-L6-v2) from the documents, plus a BM25 index on [`SPARSE_KEY`].
fn new_schema(bm25: &Bm25) -> Value {
    json!({"keys": {
        "#embedding": {"float_list": {"vector_index": {"enabled": true, "config": {
            "space": "cosine", "source_key": "#document",
            "embedding_function": {"type": "known", "name": "default", "config": {}}}}}},
        SPARSE_KEY: {"sparse_vector": {"sparse_vector_index": {"enabled": true,
        "config": {"bm25": true, "source_key": "#document",
            "embedding_function": {"type": "known", "name": ochre_embed::bm25::NAME,
                "config": bm25.config()}}}}}}})
}

/// The collection `ochre ingest` writes to and `ochre query` reads.
pub struct Opened {
    pub collection: CollectionRef,
    /// The BM25 function of its sparse index on [`SPARSE_KEY`] (its own configuration), or
    /// `None` when it has no such `chroma_bm25` index.
    pub bm25: Option<Bm25>,
}

/// The collection, created if missing when `create`, else `Ok(None)`; refuses one whose
/// vectors another model made.
pub fn open_collection(
    client: &Client,
    name: &str,
    create: bool,
) -> anyhow::Result<Option<Opened>> {
    let c = match client.find_collection(name)? {
        Some(c) => c,
        None if create => client.get_or_create_collection(name, new_schema(&Bm25::default()))?,
        None => return Ok(None),
    };
    let ef = &c.json["configuration_json"]["embedding_function"];
    if !ef.is_null() && !ochre_embed::is_minilm_function(ef) {
        bail!(
            "collection {name} embeds with {ef}; ochre embeds with all-MiniLM-L6-v2 (Chroma's \
             default): use another collection"
        );
    }
    let index = &c.json["schema"]["keys"][SPARSE_KEY]["sparse_vector"]["sparse_vector_index"];
    let function = &index["config"]["embedding_function"];
    let bm25 = if index.is_null()
        || index["enabled"] == json!(false)
        || function["name"] != json!(ochre_embed::bm25::NAME)
    {
        None
    } else {
        let config = function.get("config").cloned().unwrap_or(json!({}));
        Some(Bm25::from_config(&config).with_context(|| {
            format!("the chroma_bm25 configuration of collection {name}'s {SPARSE_KEY} index")
        })?)
    };
    Ok(Some(Opened {
        collection: c,
        bm25,
    }))
}

/// Runs `ochre ingest`.
pub fn run(args: &IngestArgs) -> anyhow::Result<Summary> {
    let started = Instant::now();
    if !args.input.exists() {
        bail!("{} does not exist", args.input.display());
    }
    let root = std::fs::canonicalize(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let files = walk(&root, &args.extensions)?;
    let model = crate::load_model(args.model.as_deref())?;
    // Chunk sizes are checked before anything is written.
    model
        .chunks("check", args.chunk_tokens, args.overlap)
        .context("--chunk-tokens / --overlap")?;
    // A dry run creates nothing: no data directory, no collection.
    let local_missing = args.target.url.is_none()
        && !crate::client::data_dir(&args.target)
            .join("ochre.sqlite3")
            .exists();
    let client = if args.dry_run && local_missing {
        None
    } else {
        Some(Client::connect(&args.target)?)
    };
    let opened = match &client {
        Some(client) => open_collection(client, &args.collection, !args.dry_run)?,
        None => None,
    };
    if let Some(o) = &opened {
        if o.bm25.is_none() {
            eprintln!(
                "note: collection {} has no chroma_bm25 index on {SPARSE_KEY}: BM25 vectors are \
                 not stored",
                args.collection
            );
        }
    }

    // What the collection holds under this root: one chunk 0 per source.
    let prefix = if root.is_dir() {
        format!("{}{}", root.to_string_lossy(), std::path::MAIN_SEPARATOR)
    } else {
        root.to_string_lossy().into_owned()
    };
    let mut stored: BTreeMap<String, Stored> = BTreeMap::new();
    if let (Some(client), Some(o)) = (&client, &opened) {
        for row in client.get_all(&o.collection, &json!({"chunk": 0}), &["metadatas"])? {
            let m = &row["metadatas"];
            let Some(source) = m["source"].as_str() else {
                continue;
            };
            if source == prefix.as_str() || (root.is_dir() && source.starts_with(&prefix)) {
                stored.insert(
                    source.to_string(),
                    Stored {
                        hash: m["hash"].as_str().unwrap_or_default().to_string(),
                    },
                );
            }
        }
    }
    // Writing needs both; a dry run has neither or writes nothing.
    let writer = match (&client, &opened) {
        (Some(client), Some(o)) if !args.dry_run => Some(Writer {
            client,
            collection: &o.collection,
            model: &model,
            bm25: o.bm25.as_ref(),
        }),
        _ => None,
    };

    let bar = progress(files.len() as u64);
    let mut summary = Summary::default();
    let max_bytes = args.max_file_mib.saturating_mul(1 << 20);
    // Sources seen in the walk, and the changed or new files still to write (with their hash:
    // their text is read again when written, so the corpus is never all in memory).
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut to_write: Vec<(Found, String)> = Vec::new();
    for f in files {
        let size = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        if size > max_bytes {
            bar.println(format!(
                "skipped {} ({} MiB > --max-file-mib)",
                f.source,
                size >> 20
            ));
            summary.skipped += 1;
            bar.inc(1);
            continue;
        }
        let bytes = std::fs::read(&f.path).with_context(|| format!("reading {}", f.source))?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        if std::str::from_utf8(&bytes).is_err() {
            note(&bar, &format!("skipped {} (not UTF-8 text)", f.source));
            summary.skipped += 1;
            bar.inc(1);
            continue;
        };
        // A skipped file counts as gone (its old chunks are deleted); a read one as seen.
        seen.insert(f.source.clone(), ());
        if stored.get(&f.source).is_some_and(|s| s.hash == hash) {
            summary.unchanged += 1;
            bar.inc(1);
            continue;
        }
        to_write.push((f, hash));
    }
    let gone: Vec<(String, Stored)> = stored
        .iter()
        .filter(|(s, _)| !seen.contains_key(*s))
        .map(|(s, v)| (s.clone(), v.clone()))
        .collect();
    // Renames: a vanished source whose hash a new file has.
    let mut gone_by_hash: HashMap<String, String> = HashMap::new();
    for (source, s) in &gone {
        gone_by_hash.entry(s.hash.clone()).or_insert(source.clone());
    }
    let mut moved: HashMap<String, ()> = HashMap::new();
    let mut pending: Vec<Chunk> = Vec::new();
    let mut pending_files: Vec<(String, usize)> = Vec::new();
    for (f, hash) in to_write {
        let old = stored.get(&f.source).cloned();
        if old.is_none() {
            if let Some(from) = gone_by_hash.remove(&hash) {
                bar.set_message(format!("moving {from}"));
                if let Some(w) = &writer {
                    move_source(w, &from, &f, mtime(&f.path))?;
                }
                moved.insert(from, ());
                summary.renamed += 1;
                bar.inc(1);
                continue;
            }
        }
        // Read again: the file may have changed since it was hashed (then its new text and
        // hash are stored; the next run compares with those).
        let bytes = std::fs::read(&f.path).with_context(|| format!("reading {}", f.source))?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let Ok(text) = String::from_utf8(bytes) else {
            note(&bar, &format!("skipped {} (not UTF-8 text)", f.source));
            summary.skipped += 1;
            bar.inc(1);
            continue;
        };
        let spans = model.chunks(&text, args.chunk_tokens, args.overlap)?;
        let n = spans.len().max(1);
        let file_mtime = mtime(&f.path);
        let mut chunks: Vec<Chunk> = Vec::with_capacity(n);
        let pieces: Vec<&str> = if spans.is_empty() {
            vec![text.as_str()]
        } else {
            spans.iter().map(|r| &text[r.clone()]).collect()
        };
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut metadata = serde_json::Map::new();
            metadata.insert("source".into(), json!(f.source));
            metadata.insert("chunk".into(), json!(i));
            metadata.insert("chunks".into(), json!(n));
            metadata.insert("mtime".into(), json!(file_mtime));
            metadata.insert("hash".into(), json!(hash));
            chunks.push(Chunk {
                id: chunk_id(&f.source, i),
                text: piece.to_string(),
                metadata,
            });
        }
        if old.is_some() {
            summary.changed += 1;
        } else {
            summary.new += 1;
        }
        summary.chunks += chunks.len();
        pending_files.push((f.source.clone(), n));
        pending.extend(chunks);
        if pending.len() >= FLUSH_CHUNKS {
            bar.set_message(format!("embedding {} chunks", pending.len()));
            flush(writer.as_ref(), &mut pending, &mut pending_files)?;
        }
        bar.inc(1);
    }
    flush(writer.as_ref(), &mut pending, &mut pending_files)?;
    for (source, _) in gone {
        if moved.contains_key(&source) {
            continue;
        }
        if let Some(w) = &writer {
            w.client.post(
                w.collection,
                "delete",
                &json!({"where": {"source": source}}),
            )?;
        }
        summary.deleted += 1;
    }
    bar.finish_and_clear();
    let what = if args.dry_run {
        "would ingest"
    } else {
        "ingested"
    };
    eprintln!(
        "{what} {} into {} in {:.1} s: {} new, {} changed, {} renamed, {} deleted, {} unchanged, \
         {} skipped files; {} chunks embedded",
        root.display(),
        args.collection,
        started.elapsed().as_secs_f64(),
        summary.new,
        summary.changed,
        summary.renamed,
        summary.deleted,
        summary.unchanged,
        summary.skipped,
        summary.chunks,
    );
    Ok(summary)
}

fn progress(files: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(files);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} files {elapsed_precise} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Prints a line above the progress bar (or plainly when there is no bar).
fn note(bar: &ProgressBar, line: &str) {
    bar.suspend(|| eprintln!("{line}"));
}

/// What writing needs: the database, the collection, the embedders.
struct Writer<'a> {
    client: &'a Client,
    collection: &'a CollectionRef,
    model: &'a MiniLm,
    /// The collection's BM25 function, if it has the index.
    bm25: Option<&'a Bm25>,
}

impl Writer<'_> {
    /// Requests of at most this many records.
    fn batch(&self) -> usize {
        self.client.max_batch_size.clamp(1, 500)
    }
}

/// Embeds and writes the pending chunks of whole files: first every chunk but the chunk 0s,
/// then the deletion of each file's chunks past its new count (a shorter file's surplus, or what
/// an interrupted run left), then the chunk 0s. Without a writer (a dry run) it only forgets them.
fn flush(
    writer: Option<&Writer<'_>>,
    pending: &mut Vec<Chunk>,
    files: &mut Vec<(String, usize)>,
) -> anyhow::Result<()> {
    let Some(w) = writer.filter(|_| !pending.is_empty()) else {
        pending.clear();
        files.clear();
        return Ok(());
    };
    let texts: Vec<&str> = pending.iter().map(|c| c.text.as_str()).collect();
    let vectors = w.model.embed(&texts)?;
    let (rest, zeros): (Vec<usize>, Vec<usize>) =
        (0..pending.len()).partition(|&i| pending[i].metadata.get("chunk") != Some(&json!(0)));
    upsert(w, pending, &vectors, &rest)?;
    // One delete for the files of this flush.
    let clauses: Vec<Value> = files
        .drain(..)
        .map(|(source, n)| json!({"$and": [{"source": source}, {"chunk": {"$gte": n}}]}))
        .collect();
    for part in clauses.chunks(100) {
        let filter = match part {
            [one] => one.clone(),
            many => json!({"$or": many}),
        };
        w.client
            .post(w.collection, "delete", &json!({"where": filter}))?;
    }
    upsert(w, pending, &vectors, &zeros)?;
    pending.clear();
    Ok(())
}

/// Upserts the chunks `which` of `chunks` with their `vectors`, in requests of at most the
/// server's batch size.
fn upsert(
    w: &Writer<'_>,
    chunks: &[Chunk],
    vectors: &[Vec<f32>],
    which: &[usize],
) -> anyhow::Result<()> {
    for part in which.chunks(w.batch()) {
        let metadatas: Vec<Value> = part
            .iter()
            .map(|&i| {
                let c = &chunks[i];
                let mut m = c.metadata.clone();
                if let Some(bm25) = w.bm25 {
                    // Empty for a chunk without terms, as chromadb's client stores it.
                    let sv = bm25.embed(&c.text);
                    m.insert(
                        SPARSE_KEY.into(),
                        json!({"#type": "sparse_vector", "indices": sv.indices, "values": sv.values}),
                    );
                }
                Value::Object(m)
            })
            .collect();
        let body = json!({
            "ids": part.iter().map(|&i| chunks[i].id.as_str()).collect::<Vec<_>>(),
            "embeddings": part.iter().map(|&i| &vectors[i]).collect::<Vec<_>>(),
            "documents": part.iter().map(|&i| chunks[i].text.as_str()).collect::<Vec<_>>(),
            "metadatas": metadatas,
        });
        w.client.post(w.collection, "upsert", &body)?;
    }
    Ok(())
}

/// Moves a renamed file's chunks to its new source without embedding them again.
fn move_source(w: &Writer<'_>, from: &str, to: &Found, mtime: i64) -> anyhow::Result<()> {
    let mut rows = w.client.get_all(
        w.collection,
        &json!({"source": from}),
        &["embeddings", "documents", "metadatas"],
    )?;
    // Chunk 0 last, as for a fresh write.
    rows.sort_by_key(|r| {
        let c = r["metadatas"]["chunk"].as_i64().unwrap_or(0);
        if c == 0 {
            i64::MAX
        } else {
            c
        }
    });
    for part in rows.chunks(w.batch()) {
        let mut ids = Vec::new();
        let mut metadatas = Vec::new();
        for r in part {
            let chunk = r["metadatas"]["chunk"].as_u64().unwrap_or(0);
            ids.push(chunk_id(
                &to.source,
                usize::try_from(chunk).unwrap_or(usize::MAX),
            ));
            let mut m = r["metadatas"].clone();
            m["source"] = json!(to.source);
            m["mtime"] = json!(mtime);
            metadatas.push(m);
        }
        let body = json!({
            "ids": ids,
            "embeddings": part.iter().map(|r| &r["embeddings"]).collect::<Vec<_>>(),
            "documents": part.iter().map(|r| &r["documents"]).collect::<Vec<_>>(),
            "metadatas": metadatas,
        });
        w.client.post(w.collection, "upsert", &body)?;
    }
    w.client
        .post(w.collection, "delete", &json!({"where": {"source": from}}))?;
    Ok(())
}
