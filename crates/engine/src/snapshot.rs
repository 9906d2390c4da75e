//! Point-in-time snapshots of a persistent database and their restore (docs/format/snapshot.md).
//!
//! A snapshot is a directory: the store copied inside one read transaction (so it holds exactly
//! the batches committed before that transaction began, whole), the index checkpoints copied
//! just before it (older than the store copy, which the open-time reconciliation brings up to
//! date: a checkpoint is only ever a cache of the store), and `snapshot.json`, a manifest with
//! every file's size and BLAKE3 hash. It is written beside its destination under a temporary
//! name and renamed into place once complete, so a destination either holds a whole snapshot
//! or nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ochre_storage::{Reader, DB_FILE, FORMAT_VERSION};
use serde_json::{json, Value};

use crate::db::Ochre;
use crate::error::{Error, ErrorKind, Result};

/// The manifest's file name.
pub const MANIFEST: &str = "snapshot.json";
/// The manifest's `format` value.
pub const MANIFEST_FORMAT: &str = "ochre-snapshot";
/// The manifest version this build writes and reads.
pub const MANIFEST_VERSION: u64 = 1;

/// Where a server builds the snapshots it streams (`POST /api/v2/admin/snapshot`): a folder of
/// the data directory, so on the same file system. Whatever is left in it (a server stopped
/// while sending) is removed when the database opens.
pub const SENDING_DIR: &str = ".snapshots";

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Relative to the snapshot directory, `/`-separated: `ochre.sqlite3` or `index/<id>.hnsw`.
    pub path: String,
    pub bytes: u64,
    /// BLAKE3 of the content, lower-case hex.
    pub blake3: String,
}

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub created_by: String,
    /// Milliseconds since the Unix epoch when the copy began.
    pub created_at_ms: u64,
    /// The store's format version (`PRAGMA user_version` of the copy).
    pub store_format: i64,
    pub files: Vec<SnapshotFile>,
}

impl Manifest {
    /// Bytes of all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    fn to_json(&self) -> Value {
        json!({
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "created_by": self.created_by,
            "created_at_ms": self.created_at_ms,
            "store_format": self.store_format,
            "files": self.files.iter().map(|f| json!({
                "path": f.path, "bytes": f.bytes, "blake3": f.blake3,
            })).collect::<Vec<_>>(),
        })
    }

    /// Parses and checks a manifest (`path` names it in errors).
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] for anything but a well-formed manifest of a supported version.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let bad = |what: &str| {
            Error::new(
                ErrorKind::Corrupted,
                format!(
                    "{} is not a valid snapshot manifest: {what}",
                    path.display()
                ),
            )
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        if v.get("format").and_then(Value::as_str) != Some(MANIFEST_FORMAT) {
            return Err(bad(&format!("\"format\" is not \"{MANIFEST_FORMAT}\"")));
        }
        match v.get("version").and_then(Value::as_u64) {
            Some(MANIFEST_VERSION) => {}
            Some(n) => {
                return Err(Error::new(
                    ErrorKind::Corrupted,
                    format!(
                        "{} is a snapshot of manifest version {n}; this Ochre reads version {MANIFEST_VERSION}",
                        path.display()
                    ),
                ))
            }
            None => return Err(bad("\"version\" is missing")),
        }
        let text_field = |o: &Value, k: &str| {
            o.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(&format!("\"{k}\" is missing or not a string")))
        };
        let num_field = |o: &Value, k: &str| {
            o.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(&format!("\"{k}\" is missing or not a number")))
        };
        let store_format = v
            .get("store_format")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("\"store_format\" is missing"))?;
        let mut files = Vec::new();
        for f in v
            .get("files")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("\"files\" is missing"))?
        {
            let file = SnapshotFile {
                path: text_field(f, "path")?,
                bytes: num_field(f, "bytes")?,
                blake3: text_field(f, "blake3")?,
            };
            if !is_snapshot_file(&file.path) {
                return Err(bad(&format!("unexpected file {:?}", file.path)));
            }
            if files.iter().any(|g: &SnapshotFile| g.path == file.path) {
                return Err(bad(&format!("file {:?} is listed twice", file.path)));
            }
            files.push(file);
        }
        if !files.iter().any(|f| f.path == DB_FILE) {
            return Err(bad(&format!("{DB_FILE} is not listed")));
        }
        Ok(Manifest {
            created_by: text_field(&v, "created_by")?,
            created_at_ms: num_field(&v, "created_at_ms")?,
            store_format,
            files,
        })
    }
}

/// True for the names a snapshot may hold (besides its manifest): the store and index
/// checkpoints (`index/<uuid>.hnsw`). Nothing with another name, no subfolder, no `..`.
pub fn is_snapshot_file(path: &str) -> bool {
    if path == DB_FILE {
        return true;
    }
    path.strip_prefix("index/")
        .and_then(|n| n.strip_suffix(".hnsw"))
        .is_some_and(|stem| uuid::Uuid::parse_str(stem).is_ok() && stem.len() == 36)
}

fn io(what: String, e: std::io::Error) -> Error {
    Error::caused_by(ErrorKind::Storage, format!("{what}: {e}"), e)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(format!("cannot sync {}", dir.display()), e))
}

/// BLAKE3 and size of a file.
fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f =
        std::fs::File::open(path).map_err(|e| io(format!("cannot read {}", path.display()), e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((bytes, hasher.finalize().to_hex().to_string()))
}

/// Refuses a destination that exists and is not an empty directory.
fn check_destination(dest: &Path, what: &str) -> Result<()> {
    match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "{what} {} exists and is not empty; choose a new directory",
                    dest.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::invalid(format!(
            "{what} {} exists and is not a directory",
            dest.display()
        ))),
        Err(e) => Err(io(format!("cannot read {}", dest.display()), e)),
    }
}

/// Renames a finished staging directory onto `dest` (an empty directory there is replaced).
fn move_into_place(staging: &Path, dest: &Path) -> Result<()> {
    if dest.is_dir() {
        std::fs::remove_dir(dest)
            .map_err(|e| io(format!("cannot replace {}", dest.display()), e))?;
    }
    std::fs::rename(staging, dest).map_err(|e| {
        io(
            format!("cannot move {} to {}", staging.display(), dest.display()),
            e,
        )
    })?;
    sync_dir(
        dest.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// A new, empty sibling directory of a destination (with its `index/` folder) that a snapshot
/// or restore is built in, under a random name so a directory left by an interrupted run is
/// never reused. Removed when dropped, unless [`Staging::finish`] moved it into place: a failed
/// snapshot or restore leaves nothing behind.
struct Staging {
    dir: PathBuf,
    /// Set once moved into place.
    kept: bool,
}

impl Staging {
    fn beside(dest: &Path) -> Result<Staging> {
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::invalid(format!("{} is not a directory name", dest.display())))?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let dir = parent.join(format!(".{name}.partial-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir)
            .and_then(|()| std::fs::create_dir(dir.join("index")))
            .map_err(|e| io(format!("cannot create {}", dir.display()), e))?;
        Ok(Staging { dir, kept: false })
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Syncs the finished directory and renames it onto `dest`.
    fn finish(mut self, dest: &Path) -> Result<()> {
        sync_dir(&self.dir.join("index"))?;
        sync_dir(&self.dir)?;
        move_into_place(&self.dir, dest)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Ochre {
    /// Writes a point-in-time snapshot of this database to the new directory `dest` (which must
    /// not exist, or be empty): every batch committed before the call began, whole, and none
    /// half. Writes go on meanwhile (the store is copied inside one read transaction, which
    /// never blocks the writer). Returns what the snapshot holds.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an ephemeral database or a destination in use;
    /// [`ErrorKind::Storage`] when a copy fails (nothing is left at `dest` then).
    pub fn snapshot(&self, dest: &Path) -> Result<Manifest> {
        let Some(dir) = self.path() else {
            return Err(Error::invalid(
                "an ephemeral database has nothing on disk to snapshot",
            ));
        };
        check_destination(dest, "snapshot destination")?;
        let staging = Staging::beside(dest)?;
        let created_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut files = Vec::new();
        // Checkpoints first: each is replaced by an atomic rename, so a copy reads one whole
        // version; taken before the store's copy, none is newer than it.
        if let Ok(entries) = std::fs::read_dir(dir.join("index")) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let rel = format!("index/{name}");
                if !is_snapshot_file(&rel) {
                    continue;
                }
                match std::fs::copy(entry.path(), staging.join(&rel)) {
                    Ok(_) => {}
                    // Its collection was dropped meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(format!("cannot copy {}", entry.path().display()), e)),
                }
                files.push(rel);
            }
        }
        let reader = Reader::open(dir)?;
        reader.copy_to(&staging.join(DB_FILE))?;
        drop(reader);
        files.push(DB_FILE.to_owned());
        let mut listed = Vec::with_capacity(files.len());
        for rel in files {
            let path = staging.join(&rel);
            if rel != DB_FILE {
                std::fs::File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| io(format!("cannot sync {}", path.display()), e))?;
            }
            let (bytes, blake3) = hash_file(&path)?;
            listed.push(SnapshotFile {
                path: rel,
                bytes,
                blake3,
            });
        }
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = Manifest {
            created_by: format!("ochre {}", env!("CARGO_PKG_VERSION")),
            created_at_ms,
            store_format: FORMAT_VERSION,
            files: listed,
        };
        write_synced(
            &staging.join(MANIFEST),
            format!("{:#}\n", manifest.to_json()).as_bytes(),
        )?;
        staging.finish(dest)?;
        tracing::info!(dest = %dest.display(), bytes = manifest.bytes(), "snapshot written");
        Ok(manifest)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    std::fs::File::create(path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| io(format!("cannot write {}", path.display()), e))
}

/// Reads the manifest of the snapshot in `dir` and checks that the directory holds nothing it
/// does not list.
///
/// # Errors
/// [`ErrorKind::NotFound`] when `dir` has no manifest; [`ErrorKind::Corrupted`] for a bad
/// manifest or an unlisted file.
fn read_manifest(dir: &Path) -> Result<Manifest> {
    let manifest_path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_found(format!(
                "{} is not an Ochre snapshot (no {MANIFEST})",
                dir.display()
            )))
        }
        Err(e) => return Err(io(format!("cannot read {}", manifest_path.display()), e)),
    };
    let manifest = Manifest::parse(&text, &manifest_path)?;
    for (folder, prefix) in [(dir.to_owned(), ""), (dir.join("index"), "index/")] {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !prefix.is_empty() => continue,
            Err(e) => return Err(io(format!("cannot read {}", folder.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(format!("cannot read {}", folder.display()), e))?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let listed = name == MANIFEST
                || (prefix.is_empty() && name == "index")
                || manifest.files.iter().any(|f| f.path == name);
            if !listed {
                return Err(Error::new(
                    ErrorKind::Corrupted,
                    format!(
                        "snapshot {} holds {name}, which its manifest does not list",
                        dir.display()
                    ),
                ));
            }
        }
    }
    Ok(manifest)
}

/// Checks one file's size and hash, as read from the snapshot in `dir` (`None`: missing),
/// against its manifest entry.
fn check_file(dir: &Path, f: &SnapshotFile, found: Option<(u64, String)>) -> Result<()> {
    let Some((bytes, hash)) = found else {
        return Err(Error::new(
            ErrorKind::Corrupted,
            format!(
                "snapshot {} is incomplete: {} is missing",
                dir.display(),
                f.path
            ),
        ));
    };
    if bytes != f.bytes || hash != f.blake3 {
        return Err(Error::new(
            ErrorKind::Corrupted,
            format!(
                "snapshot {} is damaged: {} has {bytes} bytes and hash {hash}, the manifest says {} bytes and {}",
                dir.display(),
                f.path,
                f.bytes,
                f.blake3
            ),
        ));
    }
    Ok(())
}

/// Copies `from` to `to` (synced) and returns the size and BLAKE3 of what was copied, `None`
/// when `from` does not exist: one read of the file both checks and copies it.
fn copy_hashed(from: &Path, to: &Path) -> Result<Option<(u64, String)>> {
    let mut input = match std::fs::File::open(from) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("cannot read {}", from.display()), e)),
    };
    let mut out = HashingWriter {
        inner: std::fs::File::create(to)
            .map_err(|e| io(format!("cannot create {}", to.display()), e))?,
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    std::io::copy(&mut input, &mut out).map_err(|e| {
        io(
            format!("cannot copy {} to {}", from.display(), to.display()),
            e,
        )
    })?;
    out.finish(to).map(Some)
}

/// A file being written, hashed on the way.
struct HashingWriter {
    inner: std::fs::File,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl HashingWriter {
    /// Syncs the file; its size and hash.
    fn finish(self, path: &Path) -> Result<(u64, String)> {
        self.inner
            .sync_all()
            .map_err(|e| io(format!("cannot sync {}", path.display()), e))?;
        Ok((self.bytes, self.hasher.finalize().to_hex().to_string()))
    }
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Checks a snapshot directory: its manifest, and every listed file present with its size and
/// hash (nothing else but the manifest and listed files in it).
///
/// # Errors
/// [`ErrorKind::NotFound`] when `dir` has no manifest; [`ErrorKind::Corrupted`] naming the
/// first file that is missing, extra, or differs.
pub fn verify_snapshot(dir: &Path) -> Result<Manifest> {
    let manifest = read_manifest(dir)?;
    for f in &manifest.files {
        let path = dir.join(&f.path);
        let found = match hash_file(&path) {
            Ok(h) => Some(h),
            Err(_) if !path.exists() => None,
            Err(e) => return Err(e),
        };
        check_file(dir, f, found)?;
    }
    Ok(manifest)
}

/// Restores the snapshot in `snapshot` as the data directory `data` (which must not exist, or
/// be empty): verifies it, copies it beside `data`, opens the copy once (so a snapshot that does
/// not open is refused, and the store is migrated if it is older), then renames it into place.
///
/// # Errors
/// As [`verify_snapshot`]; [`ErrorKind::InvalidArgument`] when `data` is in use; the errors of
/// [`Ochre::open`] for a store that does not open. Nothing is left at `data` on error.
pub fn restore(snapshot: &Path, data: &Path) -> Result<Manifest> {
    let manifest = read_manifest(snapshot)?;
    check_destination(data, "data directory")?;
    let staging = Staging::beside(data)?;
    // Each file is checked as it is copied: what is restored is what was verified.
    for f in &manifest.files {
        let found = copy_hashed(&snapshot.join(&f.path), &staging.join(&f.path))?;
        check_file(snapshot, f, found)?;
    }
    drop(Ochre::open(&staging.dir)?);
    staging.finish(data)?;
    Ok(manifest)
}

/// Writes the snapshot in `dir`, described by `manifest` (as [`Ochre::snapshot`] or
/// [`verify_snapshot`] returned it), to `out` as a tar stream: the manifest first, then every
/// listed file. [`receive_snapshot`] reads it back and verifies it.
///
/// # Errors
/// [`ErrorKind::Storage`] when reading a file or writing to `out` fails (a closed connection,
/// say).
pub fn write_snapshot_tar(dir: &Path, manifest: &Manifest, out: impl std::io::Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut names = vec![MANIFEST.to_owned()];
    names.extend(manifest.files.iter().map(|f| f.path.clone()));
    for name in names {
        tar.append_path_with_name(dir.join(&name), &name)
            .map_err(|e| io(format!("cannot send {name}"), e))?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| io("cannot finish the snapshot stream".into(), e))
}

/// Reads a snapshot tar stream (as [`write_snapshot_tar`] writes it) into the new directory
/// `dest`: only the manifest and the files a snapshot may hold are accepted, the result is
/// verified against the manifest, and only a complete, verified snapshot is moved into place.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] when `dest` is in use; [`ErrorKind::Corrupted`] for a stream
/// that is not a whole snapshot; [`ErrorKind::Storage`] for I/O failures. Nothing is left at
/// `dest` on error.
pub fn receive_snapshot(input: impl Read, dest: &Path) -> Result<Manifest> {
    check_destination(dest, "snapshot destination")?;
    let staging = Staging::beside(dest)?;
    let corrupt = |what: String| {
        Error::new(
            ErrorKind::Corrupted,
            format!("the snapshot stream is not a whole snapshot: {what}"),
        )
    };
    let mut received = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("cannot read it ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("cannot read an entry ({e})")))?;
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .ok_or_else(|| corrupt("an entry's name is not UTF-8".into()))?;
        if name != MANIFEST && !is_snapshot_file(&name) {
            return Err(corrupt(format!("unexpected entry {name:?}")));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(corrupt(format!("{name} is not a regular file")));
        }
        let to = staging.join(&name);
        let mut file = HashingWriter {
            inner: std::fs::File::create(&to)
                .map_err(|e| io(format!("cannot create {}", to.display()), e))?,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        };
        std::io::copy(&mut entry, &mut file)
            .map_err(|e| corrupt(format!("{name} is cut short ({e})")))?;
        received.insert(name, file.finish(&to)?);
    }
    // Checked against the manifest with the hashes taken while writing: each file is read once.
    let manifest = read_manifest(&staging.dir).map_err(|e| match e.kind() {
        ErrorKind::NotFound => corrupt(format!("it has no {MANIFEST}")),
        _ => e,
    })?;
    for f in &manifest.files {
        check_file(&staging.dir, f, received.remove(&f.path))?;
    }
    staging.finish(dest)?;
    Ok(manifest)
}
