//! `ochre import`, `ochre snapshot` and `ochre restore`: the operator's commands over a data
//! directory (`--path`, server stopped) or a running server (`--url`).

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::client::{Client, Target};
use crate::transfer::{self, OnConflict};

/// Arguments of `ochre import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The export file to import (from `ochre export`).
    #[arg(
        required_unless_present = "from_chroma",
        conflicts_with = "from_chroma"
    )]
    pub file: Option<PathBuf>,
    /// Import a Chroma persistent directory instead (the folder holding chroma.sqlite3, as
    /// written by chromadb 1.0 to 1.5): every tenant, database, collection and record, read
    /// without running Chroma and without changing the directory.
    #[arg(long, value_name = "CHROMA_DIR")]
    pub from_chroma: Option<PathBuf>,
    /// What to do when a collection's name is taken in the target.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_conflict: OnConflict,
    /// Data directory to import into (created if missing; the server must not be running on
    /// it).
    #[arg(long, conflicts_with = "url")]
    pub path: Option<PathBuf>,
    /// URL of a running server to import into.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for a server with token auth.
    #[arg(long, env = "OCHRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `ochre import`.
pub fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let mut source: Box<dyn transfer::Source> = match (&args.file, &args.from_chroma) {
        (_, Some(dir)) => Box::new(crate::chroma::ChromaDir::open(dir)?),
        (Some(file), None) => Box::new(transfer::ExportFile { path: file.clone() }),
        (None, None) => bail!("name an export file or pass --from-chroma DIR"),
    };
    if args.path.is_none() && args.url.is_none() {
        bail!("name the target: --path DATA_DIR or --url http://HOST:PORT");
    }
    if let (Some(src), Some(dst)) = (&args.from_chroma, &args.path) {
        let (src, dst) = (std::path::absolute(src)?, std::path::absolute(dst)?);
        if dst.starts_with(&src) {
            bail!(
                "the target {} is inside the Chroma directory {}; choose another place",
                dst.display(),
                src.display()
            );
        }
    }
    let target = Target {
        path: args.path.clone(),
        url: args.url.clone(),
        token: args.token.clone(),
        tenant: "default_tenant".into(),
        database: "default_database".into(),
    };
    // A data directory this import creates is removed again if the import fails.
    let fresh_dir = match (&args.url, &args.path) {
        (None, Some(p)) if !p.exists() => Some(p.clone()),
        _ => None,
    };
    let result = (|| {
        let mut client = Client::connect(&target)?;
        transfer::import(source.as_mut(), &mut client, args.on_conflict)
    })();
    match result {
        Ok(totals) => {
            eprintln!(
                "imported {} collections, {} records from {}",
                totals.collections,
                totals.records,
                source.describe()
            );
            Ok(())
        }
        Err(e) => {
            if let Some(dir) = fresh_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            Err(e)
        }
    }
}

/// Arguments of `ochre snapshot`.
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// The new directory to write the snapshot to (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Data directory to snapshot (the server must not be running on it; for a running server
    /// use --url).
    #[arg(long, conflicts_with = "url", required_unless_present = "url")]
    pub path: Option<PathBuf>,
    /// URL of a running server to snapshot online.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for a server with token auth (an unscoped one).
    #[arg(long, env = "OCHRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// `ochre snapshot`.
pub fn snapshot(args: &SnapshotArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let manifest = match (&args.path, &args.url) {
        (Some(path), None) => {
            if !path.join("ochre.sqlite3").exists() {
                bail!(
                    "{} is not an Ochre data directory (no ochre.sqlite3)",
                    path.display()
                );
            }
            let db = ochre::Ochre::open(path).with_context(|| {
                format!(
                    "opening {} (if `ochre run` serves it, pass --url instead of --path)",
                    path.display()
                )
            })?;
            db.snapshot(&args.out)?
        }
        (None, Some(_)) => {
            let client = Client::connect(&Target {
                path: None,
                url: args.url.clone(),
                token: args.token.clone(),
                tenant: "default_tenant".into(),
                database: "default_database".into(),
            })?;
            let body = client.download("POST", "/api/v2/admin/snapshot")?;
            ochre::snapshot::receive_snapshot(body, &args.out).context("receiving the snapshot")?
        }
        _ => bail!("pass --path DIR or --url URL"),
    };
    eprintln!(
        "snapshot of {} files ({}) written to {} in {:.1} s",
        manifest.files.len(),
        mib(manifest.bytes()),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Arguments of `ochre restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The snapshot directory (from `ochre snapshot`).
    pub snapshot: PathBuf,
    /// The data directory to create from it (must not exist, or be empty).
    #[arg(long)]
    pub path: PathBuf,
}

/// `ochre restore`.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let manifest = ochre::snapshot::restore(&args.snapshot, &args.path)?;
    eprintln!(
        "restored {} ({}) to {}; serve it with: ochre run --path {}",
        args.snapshot.display(),
        mib(manifest.bytes()),
        args.path.display(),
        args.path.display()
    );
    Ok(())
}
