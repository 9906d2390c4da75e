//! Finding the model directory: named, from the environment, in the Hugging Face cache, or
//! downloaded into that cache once.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{EmbedError, DEFAULT_MODEL_REPO, MODEL_DIR_ENV};

/// Files a model directory must hold, and the optional ones fetched with them.
const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
const OPTIONAL: [&str; 2] = ["sentence_bert_config.json", "1_Pooling/config.json"];

/// The largest file a download accepts (the model's weights are 90 MB).
const MAX_DOWNLOAD: u64 = 1 << 30;

/// Where a model directory was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOrigin {
    /// Named by the caller (`--model DIR`).
    Given,
    /// Named by `OCHRE_MODEL_DIR`.
    Environment,
    /// Found in the Hugging Face cache.
    Cache,
    /// Downloaded into the Hugging Face cache just now.
    Downloaded,
}

/// The model directory to load: `given`, else `$OCHRE_MODEL_DIR`, else a complete snapshot of
/// [`DEFAULT_MODEL_REPO`] in the Hugging Face cache (`$HF_HUB_CACHE`, `$HF_HOME/hub` or
/// `$XDG_CACHE_HOME/huggingface/hub` or `~/.cache/huggingface/hub`), else — when `download` is true and `HF_HUB_OFFLINE` is not set —
/// a fresh download of it from the hub (`$HF_ENDPOINT`, default `https://huggingface.co`) into
/// that cache.
///
/// # Errors
/// [`EmbedError::NoModel`] when nothing is found and downloading is not allowed;
/// [`EmbedError::Download`] when the download fails (nothing partial is left in the cache).
pub fn resolve_model_dir(
    given: Option<&Path>,
    download: bool,
) -> Result<(PathBuf, ModelOrigin), EmbedError> {
    if let Some(dir) = given {
        return Ok((dir.to_path_buf(), ModelOrigin::Given));
    }
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok((PathBuf::from(dir), ModelOrigin::Environment));
    }
    let cache = hub_cache();
    if let Some(cache) = &cache {
        if let Some(dir) = cached_snapshot(cache, DEFAULT_MODEL_REPO) {
            return Ok((dir, ModelOrigin::Cache));
        }
    }
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0");
    match cache {
        Some(cache) if download && !offline => {
            let dir = download_snapshot(&cache, DEFAULT_MODEL_REPO)?;
            Ok((dir, ModelOrigin::Downloaded))
        }
        _ => Err(EmbedError::NoModel),
    }
}

/// The Hugging Face hub cache directory, as `huggingface_hub` chooses it.
fn hub_cache() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
}

fn repo_folder(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

fn complete(dir: &Path) -> bool {
    REQUIRED.iter().all(|f| dir.join(f).is_file())
}

/// The snapshot `refs/main` points at, else any complete snapshot.
fn cached_snapshot(cache: &Path, repo: &str) -> Option<PathBuf> {
    let folder = repo_folder(cache, repo);
    if let Ok(rev) = std::fs::read_to_string(folder.join("refs").join("main")) {
        let dir = folder.join("snapshots").join(rev.trim());
        if complete(&dir) {
            return Some(dir);
        }
    }
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(folder.join("snapshots"))
        .ok()?
        .flatten()
        // Not a download still staged (`.<commit>.partial`).
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| complete(p))
        .collect();
    snapshots.sort();
    snapshots.pop()
}

fn download_error(what: impl std::fmt::Display) -> EmbedError {
    EmbedError::Download(what.to_string())
}

/// Downloads the model's files into `snapshots/<commit>/` of the cache: staged in the hidden
/// `snapshots/.<commit>.partial/` (which lookups skip), renamed into place when complete, then
/// `refs/main` pointed at it.
fn download_snapshot(cache: &Path, repo: &str) -> Result<PathBuf, EmbedError> {
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".to_string());
    let endpoint = endpoint.trim_end_matches('/');
    tracing::info!(
        "downloading {repo} from {endpoint} into {}",
        cache.display()
    );
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(20))
        .timeout_read(std::time::Duration::from_secs(60))
        .build();
    let info: serde_json::Value = agent
        .get(&format!("{endpoint}/api/models/{repo}/revision/main"))
        .call()
        .map_err(download_error)?
        .into_json()
        .map_err(download_error)?;
    let commit = info
        .get("sha")
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| download_error("the hub's answer names no commit"))?
        .to_string();
    let folder = repo_folder(cache, repo);
    let snapshots = folder.join("snapshots");
    let staging = snapshots.join(format!(".{commit}.partial"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| EmbedError::Io { path, source: e }
    };
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let result = (|| {
        for (file, required) in REQUIRED
            .iter()
            .map(|f| (f, true))
            .chain(OPTIONAL.iter().map(|f| (f, false)))
        {
            let url = format!("{endpoint}/{repo}/resolve/{commit}/{file}");
            let response = match agent.get(&url).call() {
                Ok(r) => r,
                Err(ureq::Error::Status(404, _)) if !required => continue,
                Err(e) => return Err(download_error(format!("{url}: {e}"))),
            };
            let target = staging.join(file);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let mut body = Vec::new();
            response
                .into_reader()
                .take(MAX_DOWNLOAD + 1)
                .read_to_end(&mut body)
                .map_err(|e| download_error(format!("{url}: {e}")))?;
            if body.len() as u64 > MAX_DOWNLOAD {
                return Err(download_error(format!("{url} is larger than 1 GiB")));
            }
            std::fs::write(&target, &body).map_err(io(&target))?;
        }
        let dir = snapshots.join(&commit);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir).map_err(io(&dir))?;
        let refs = folder.join("refs");
        std::fs::create_dir_all(&refs).map_err(io(&refs))?;
        std::fs::write(refs.join("main"), &commit).map_err(io(&refs))?;
        Ok(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_snapshot_is_found_by_its_ref_or_else_any_complete_one() {
        let cache = tempfile::tempdir().unwrap();
        let folder = repo_folder(cache.path(), DEFAULT_MODEL_REPO);
        assert_eq!(cached_snapshot(cache.path(), DEFAULT_MODEL_REPO), None);
        let make = |rev: &str, files: &[&str]| {
            let dir = folder.join("snapshots").join(rev);
            std::fs::create_dir_all(&dir).unwrap();
            for f in files {
                std::fs::write(dir.join(f), b"{}").unwrap();
            }
            dir
        };
        make("aaaa", &["config.json"]);
        assert_eq!(cached_snapshot(cache.path(), DEFAULT_MODEL_REPO), None);
        let b = make("bbbb", &REQUIRED);
        assert_eq!(cached_snapshot(cache.path(), DEFAULT_MODEL_REPO), Some(b));
        let c = make("cccc", &REQUIRED);
        let a = make("0000", &REQUIRED);
        std::fs::create_dir_all(folder.join("refs")).unwrap();
        std::fs::write(folder.join("refs").join("main"), "0000\n").unwrap();
        assert_eq!(cached_snapshot(cache.path(), DEFAULT_MODEL_REPO), Some(a));
        std::fs::write(folder.join("refs").join("main"), "ffff").unwrap();
        assert_eq!(
            cached_snapshot(cache.path(), DEFAULT_MODEL_REPO),
            Some(c.clone())
        );
        // A download still staged is never taken, complete or not.
        make(".zzzz.partial", &REQUIRED);
        assert_eq!(cached_snapshot(cache.path(), DEFAULT_MODEL_REPO), Some(c));
    }
}
