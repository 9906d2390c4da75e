//! The `ochre` command.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command-line interface talks to its user on stdout and stderr"
)]

use std::path::PathBuf;
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
    },
    /// Compact a data directory offline: the space that deleted records and collections freed
    /// returns to the file system (like `chroma vacuum`). Stop the server first: the directory
    /// is locked while it runs.
    Vacuum {
        /// Data directory.
        #[arg(long)]
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OCHRE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,ochre=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run {
            path,
            host,
            port,
            config,
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
            serve(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Vacuum { path } => {
            vacuum(&path)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `ochre vacuum`: compacts the store and reports the directory's size before and after.
fn vacuum(path: &std::path::Path) -> anyhow::Result<()> {
    if !path.join("ochre.sqlite3").exists() {
        anyhow::bail!(
            "{} is not an Ochre data directory (no ochre.sqlite3)",
            path.display()
        );
    }
    let db = ochre::Ochre::open(path).with_context(|| format!("opening {}", path.display()))?;
    let before = dir_size(path);
    db.vacuum()
        .with_context(|| format!("compacting {}", path.display()))?;
    drop(db);
    let after = dir_size(path);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "compacted {}: {:.1} MiB -> {:.1} MiB",
        path.display(),
        mib(before),
        mib(after)
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
    let db = ochre::Ochre::open(&cfg.persist_path)
        .with_context(|| format!("opening {}", cfg.persist_path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ochre-http")
        .build()
        .context("starting the async runtime")?;
    let addr = format!("{}:{}", cfg.listen_address, cfg.port);
    let data = std::fs::canonicalize(&cfg.persist_path).unwrap_or(cfg.persist_path.clone());
    let state = AppState::new(db, cfg)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr().context("local address")?;
        println!(
            "Ochre {} serving http://{local}/api/v2 with data in {}",
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
