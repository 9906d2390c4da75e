//! The `ochre` command.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command-line interface talks to its user on stdout and stderr"
)]

mod chroma;
mod client;
mod ingest;
mod operations;
mod pickle;
mod query;
mod telemetry;
mod transfer;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ochre_server::{AppState, ServerConfig};

/// mimalloc rather than the system allocator: recovery builds millions of small strings and maps,
/// and with glibc's allocator half of a 100k-record reopen went to heap growth and page faults
/// (docs/benchmarks.md, "Restart").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ochre",
    version,
    about = "Ochre: a retrieval database for AI applications"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Chroma's HTTP API v2 on a data directory.
    Run {
        /// Data directory (default: ./chroma, or `persist_path` from the config file).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Address to listen on (default: localhost).
        #[arg(long)]
        host: Option<String>,
        /// Port (default: 8000).
        #[arg(long)]
        port: Option<u16>,
        /// A Chroma-style YAML config file.
        config: Option<PathBuf>,
        /// Embedding model directory (sentence-transformers layout; also `embedding_model` in
        /// the config file or OCHRE_MODEL_DIR). With it, documents written without embeddings
        /// to collections using the default embedding function are embedded by the server.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Embed text: one text per line on stdin, one JSON array of floats per line on stdout
    /// (all-MiniLM-L6-v2, unit length), or with --bm25 one {"indices", "values"} object per
    /// line (Chroma's chroma_bm25 sparse vectors).
    Embed {
        /// Model directory; default: OCHRE_MODEL_DIR, the Hugging Face cache, or a one-time
        /// download of sentence-transformers/all-MiniLM-L6-v2.
        #[arg(long)]
        model: Option<PathBuf>,
        /// BM25 sparse vectors instead of dense embeddings (needs no model).
        #[arg(long)]
        bm25: bool,
    },
    /// Ingest a folder (or a file) of text into a collection: chunked, embedded (dense and
    /// BM25) and stored with its source path. Re-running skips unchanged files, replaces
    /// changed ones and removes deleted ones.
    ///
    /// Example: ochre ingest ./notes --collection notes --path ./data
    Ingest(ingest::IngestArgs),
    /// Search a collection `ochre ingest` filled: hybrid (dense + BM25) by default.
    ///
    /// Example: ochre query "how do I rotate keys" --collection notes --path ./data
    Query(query::QueryArgs),
    /// Compact a data directory offline: the space that deleted records and collections freed
    /// returns to the file system (like `chroma vacuum`). Stop the server first: the directory
    /// is locked while it runs.
    Vacuum {
        /// Data directory.
        #[arg(long)]
        path: PathBuf,
    },
    /// Export collections and their records to a JSON Lines file (docs/format/export.md):
    /// lossless (embeddings bit for bit), streamed, readable by `ochre import`.
    ///
    /// Example: ochre export --path ./data --out backup.jsonl
    Export(transfer::ExportArgs),
    /// Import an export file, or a Chroma data directory (--from-chroma), into a data directory
    /// or a running server. Everything is checked before anything is written; a name taken in
    /// the target fails the import unless --on-conflict skip.
    ///
    /// Examples: ochre import backup.jsonl --path ./data;
    /// ochre import --from-chroma ./chroma-data --path ./data
    Import(operations::ImportArgs),
    /// Take a consistent point-in-time snapshot of a data directory or, online, of a running
    /// server (writes go on meanwhile), into a new directory.
    ///
    /// Examples: ochre snapshot --url http://localhost:8000 --out ./snap-monday;
    /// ochre snapshot --path ./data --out ./snap
    Snapshot(operations::SnapshotArgs),
    /// Restore a snapshot as a new data directory (checked against its manifest first).
    ///
    /// Example: ochre restore ./snap-monday --path ./data-restored
    Restore(operations::RestoreArgs),
}

fn main() -> ExitCode {
    ochre_server::allocator::commit_heap_on_demand();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// For the embedding commands: candle runs each matrix product on one thread and
/// [`MiniLm::with_threads`](ochre_embed::MiniLm::with_threads) runs one batch per core instead
/// (1.3x the throughput on 2 cores). candle reads these variables; a user's own values win.
fn batch_parallel_embedding() {
    for key in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(key).is_none() {
            // No other thread runs yet: this is the first thing `main` does after parsing.
            std::env::set_var(key, "1");
        }
    }
}

/// Threads for batch-parallel embedding: the cores `batch_parallel_embedding` took from candle.
fn embedding_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Embed { .. } | Command::Ingest(_) | Command::Query(_)
    ) {
        ochre_server::allocator::keep_freed_memory();
        batch_parallel_embedding();
    }
    // `ochre run` sets up its logging once its configuration is read (it may export traces).
    if !matches!(cli.command, Command::Run { .. }) {
        telemetry::init_logs();
    }
    match cli.command {
        Command::Run {
            path,
            host,
            port,
            config,
            model,
        } => {
            let mut cfg = match &config {
                Some(p) => ServerConfig::from_file(p)?,
                None => ServerConfig::default(),
            };
            cfg.apply_env(|k| std::env::var(k).ok())?;
            if let Some(p) = path {
                cfg.persist_path = p;
            }
            if let Some(h) = host {
                cfg.listen_address = h;
            }
            if let Some(p) = port {
                cfg.port = p;
            }
            if let Some(m) = model {
                cfg.embedding_model = Some(m);
            }
            serve(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Vacuum { path } => {
            vacuum(&path)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Embed { model, bm25 } => {
            embed(model.as_deref(), bm25)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest(args) => {
            ingest::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query(args) => {
            query::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => {
            transfer::export(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => {
            operations::import(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Snapshot(args) => {
            operations::snapshot(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore(args) => {
            operations::restore(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Finds and loads the embedding model, saying where it came from when it was not named.
pub(crate) fn load_model(given: Option<&Path>) -> anyhow::Result<ochre_embed::MiniLm> {
    let (dir, origin) = ochre_embed::resolve_model_dir(given, true)?;
    match origin {
        ochre_embed::ModelOrigin::Downloaded => {
            eprintln!(
                "downloaded {} into {}",
                ochre_embed::DEFAULT_MODEL_REPO,
                dir.display()
            );
        }
        ochre_embed::ModelOrigin::Given
        | ochre_embed::ModelOrigin::Environment
        | ochre_embed::ModelOrigin::Cache => {}
    }
    Ok(ochre_embed::MiniLm::load(&dir)
        .with_context(|| format!("loading the embedding model from {}", dir.display()))?
        .with_threads(embedding_threads()))
}

/// Lines embedded per batch by `ochre embed`.
const EMBED_LINES: usize = 256;

/// `ochre embed`: stdin lines to JSON lines.
fn embed(model: Option<&Path>, bm25: bool) -> anyhow::Result<()> {
    let model = if bm25 { None } else { Some(load_model(model)?) };
    let sparse = ochre_embed::bm25::Bm25::default();
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut lines = stdin.lines();
    loop {
        let mut batch = Vec::with_capacity(EMBED_LINES);
        for line in lines.by_ref().take(EMBED_LINES) {
            batch.push(line.context("reading stdin (it must be UTF-8 text)")?);
        }
        if batch.is_empty() {
            break;
        }
        match &model {
            Some(m) => {
                for v in m.embed(&batch)? {
                    serde_json::to_writer(&mut out, &v)?;
                    out.write_all(b"\n")?;
                }
            }
            None => {
                for text in &batch {
                    let v = sparse.embed(text);
                    serde_json::to_writer(
                        &mut out,
                        &serde_json::json!({"indices": v.indices, "values": v.values}),
                    )?;
                    out.write_all(b"\n")?;
                }
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// `ochre vacuum`: compacts the store and reports the directory's size before and after.
fn vacuum(path: &std::path::Path) -> anyhow::Result<()> {
    let db = operations::open_data_dir(path, "")?;
    let before = dir_size(path);
    db.vacuum()
        .with_context(|| format!("compacting {}", path.display()))?;
    drop(db);
    let after = dir_size(path);
    println!(
        "compacted {}: {} -> {}",
        path.display(),
        operations::mib(before),
        operations::mib(after)
    );
    Ok(())
}

/// Bytes of the files in `dir` and its subfolders.
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn serve(cfg: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ochre-http")
        .build()
        .context("starting the async runtime")?;
    // Before the data directory opens, so its recovery is logged (and traced).
    let telemetry = {
        let _in_runtime = runtime.enter();
        telemetry::init(cfg.open_telemetry.as_ref())?
    };
    let served = serve_on(&runtime, cfg);
    // While the runtime still runs: the exporter's channel lives on it.
    telemetry.shutdown();
    served
}

fn serve_on(runtime: &tokio::runtime::Runtime, cfg: ServerConfig) -> anyhow::Result<()> {
    let db = ochre::Ochre::open(&cfg.persist_path)
        .with_context(|| format!("opening {}", cfg.persist_path.display()))?;
    let addr = format!("{}:{}", cfg.listen_address, cfg.port);
    let data = std::fs::canonicalize(&cfg.persist_path).unwrap_or(cfg.persist_path.clone());
    let model = cfg
        .embedding_model
        .as_deref()
        .map(|dir| {
            ochre_embed::MiniLm::load(dir)
                .with_context(|| format!("loading the embedding model from {}", dir.display()))
        })
        .transpose()?;
    let mut state = AppState::new(db, cfg)?;
    match model {
        Some(m) => state = state.with_embedder(std::sync::Arc::new(m)),
        None => ochre_server::allocator::return_freed_memory_at_once(),
    }
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr().context("local address")?;
        println!(
            "Ochre {} serving http://{local}/api/v2 with data in {}\n\
             Dashboard: http://{local}/dashboard",
            env!("CARGO_PKG_VERSION"),
            data.display()
        );
        ochre_server::serve(listener, state, shutdown_signal())
            .await
            .context("serving")?;
        println!("Ochre stopped cleanly");
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
