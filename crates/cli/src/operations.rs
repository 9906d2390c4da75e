//! `ochre import`, `ochre snapshot` and `ochre restore`: the operator's commands over a data
//! directory (`--path`, server stopped) or a running server (`--url`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::client::{Client, Endpoint};
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
    /// The database to import into (a data directory is created if missing).
    #[command(flatten)]
    pub into: Endpoint,
}

/// `ochre import`.
pub fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let mut source: Box<dyn transfer::Source + Send> = match (&args.file, &args.from_chroma) {
        (_, Some(dir)) => Box::new(crate::chroma::ChromaDir::open(dir)?),
        (Some(file), None) => Box::new(transfer::ExportFile { path: file.clone() }),
        (None, None) => bail!("name an export file or pass --from-chroma DIR"),
    };
    let target = args.into.target("default_tenant", "default_database")?;
    if let (Some(src), Some(dst)) = (&args.from_chroma, &target.path) {
        let (src, dst) = (std::path::absolute(src)?, std::path::absolute(dst)?);
        if dst.starts_with(&src) {
            bail!(
                "the target {} is inside the Chroma directory {}; choose another place",
                dst.display(),
                src.display()
            );
        }
    }
    // A data directory this import creates is removed again if the import fails.
    let fresh_dir = match (&target.url, &target.path) {
        (None, Some(p)) if !p.exists() => Some(p.clone()),
        _ => None,
    };
    let result = (|| {
        let mut client = Client::connect(&target)?;
        transfer::import(source.as_mut(), &mut client, args.on_conflict)
    })();
    match result {
        Ok(totals) => {
            let adopted = match totals.adopted_graphs {
                0 => String::new(),
                1 => " (one collection's HNSW graph adopted as it was)".to_owned(),
                n => format!(" ({n} collections' HNSW graphs adopted as they were)"),
            };
            eprintln!(
                "imported {} collections, {} records from {}{adopted}",
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
    /// The database to snapshot: a data directory, or online a running server (with an
    /// unscoped token when auth is on).
    #[command(flatten)]
    pub of: Endpoint,
}

/// Mebibytes, for messages.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Opens an existing data directory for an offline command (refusing a directory that holds no
/// Ochre store, rather than creating one); `hint` follows the path in an open error.
pub(crate) fn open_data_dir(path: &Path, hint: &str) -> anyhow::Result<ochre::Ochre> {
    if !path.join("ochre.sqlite3").exists() {
        bail!(
            "{} is not an Ochre data directory (no ochre.sqlite3)",
            path.display()
        );
    }
    ochre::Ochre::open(path).with_context(|| format!("opening {}{hint}", path.display()))
}

/// `ochre snapshot`.
pub fn snapshot(args: &SnapshotArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let target = args.of.target("default_tenant", "default_database")?;
    let manifest = match &target.path {
        Some(path) => open_data_dir(
            path,
            " (if `ochre run` serves it, pass --url instead of --path)",
        )?
        .snapshot(&args.out)?,
        None => {
            let client = Client::connect(&target)?;
            let body = client.download("POST", "/api/v2/admin/snapshot")?;
            ochre::snapshot::receive_snapshot(body, &args.out).context("receiving the snapshot")?
        }
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
