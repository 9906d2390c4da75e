//! The data directory lock: one Ochre process per directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// First bytes of the `LOCK` file (format in docs/format/lock.md).
pub const LOCK_MAGIC: &[u8] = b"OCHRE-LOCK 1\n";

/// An exclusive advisory lock (`flock`) on `<dir>/LOCK`, held for the life of the value.
///
/// A second process (or a second open in the same process) gets [`Error::Locked`] naming the
/// holder's pid. The operating system releases the lock when the holder exits, even on SIGKILL,
/// so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock.
    ///
    /// # Errors
    /// [`Error::Locked`] when another handle holds it, [`Error::Io`] when the file cannot be
    /// created.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join("LOCK");
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text
                    .lines()
                    .find_map(|l| l.strip_prefix("pid "))
                    .unwrap_or("unknown")
                    .to_owned();
                return Err(Error::Locked { path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut content = LOCK_MAGIC.to_vec();
        content.extend_from_slice(format!("pid {}\n", std::process::id()).as_bytes());
        file.write_all(&content).map_err(io)?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path()).expect("first lock");
        let err = DirLock::acquire(dir.path()).expect_err("second lock");
        assert!(
            matches!(&err, Error::Locked { holder, .. } if *holder == std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        DirLock::acquire(dir.path()).expect("lock after release");
        let text = std::fs::read(dir.path().join("LOCK")).expect("readable");
        assert!(text.starts_with(LOCK_MAGIC));
    }
}
