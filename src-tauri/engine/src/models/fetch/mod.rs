//! Fetching a model from the Hugging Face hub into the hub's own cache layout (`hearth models
//! pull`, and `POST /api/models/pull` for the Settings window): an MLX repository whole, or one GGUF
//! file of a repository (every part of a split one).
//!
//! A pull, in order: the revision API names the commit and the files; a HEAD of each file gives
//! its size and ETag; the disk check refuses a pull that cannot fit before anything is written;
//! the memory check says whether the model fits this machine (refusing one that does not, unless
//! forced); then each file is downloaded into its blob (resumable, verified), and only when all
//! are complete does the snapshot appear, then `refs/main`. Discovery lists a repository by its
//! snapshot, so nothing half-done ever looks like a model.
//!
//! * [`hub`]: the hub's HTTP API (`HF_ENDPOINT`, `HF_TOKEN`, errors for gated, private and missing);
//! * [`cache`]: the cache layout (blobs, snapshots, refs), and removing a repository from it;
//! * [`download`]: one file into its blob, resumed with `Range`, size- and sha256-checked;
//! * [`check`]: disk room (`statvfs`) and memory fit (discovery's own estimate);
//! * [`progress`]: bytes, rate and time left, for the CLI's bar and the control API;
//! * [`pulls`]: pulls running in the background of the app, listed and cancelled by id.

pub mod cache;
mod check;
mod download;
pub mod error;
pub mod hub;
pub mod progress;
pub mod pulls;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use cache::{remove_repo, repo_folder_name, RepoDir};
// The first-launch view shows the same free space a pull's disk check measures.
pub(crate) use check::free_bytes;
pub use error::FetchError;
pub use hub::{FileMeta, Hub, Revision};
pub use progress::{DiskCheck, MemoryCheck, Progress, ProgressSnapshot};
pub use pulls::{PullRequest, PullState, PullView, Pulls};

use super::walk::split_part;
use super::Fit;

/// What to pull: `org/name`, or `org/name:file` for one file (a GGUF) of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullSpec {
    pub repo: String,
    pub file: Option<String>,
}

impl PullSpec {
    pub fn new(repo: &str, file: Option<&str>) -> Result<Self, FetchError> {
        let repo = repo.trim().trim_end_matches('/');
        // A repository's page URL works too: it is what people copy.
        let repo = ["https://huggingface.co/", "http://huggingface.co/", "huggingface.co/"]
            .iter()
            .find_map(|p| repo.strip_prefix(p))
            .unwrap_or(repo);
        let bad = |why: &str| FetchError::InvalidSpec(format!("{repo:?} is not a repository: {why}"));
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.len() != 2 {
            return Err(bad("write it as org/name, e.g. mlx-community/Qwen2.5-0.5B-Instruct-4bit"));
        }
        let name_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && !p.starts_with('-')
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !parts.iter().all(|p| name_ok(p)) {
            return Err(bad("org and name are letters, digits, '-', '_' and '.'"));
        }
        let file = match file.map(str::trim) {
            None | Some("") => None,
            Some(f) => {
                let ok = !f.starts_with('/')
                    && !f.contains(['\\', '\0'])
                    && f.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
                if !ok {
                    return Err(FetchError::InvalidSpec(format!(
                        "{f:?} is not a file of a repository (a path like model-Q4_K_M.gguf, without ..)"
                    )));
                }
                Some(f.to_string())
            }
        };
        Ok(PullSpec { repo: repo.to_string(), file })
    }
}

impl FromStr for PullSpec {
    type Err = FetchError;

    /// `REPO[:FILE]`.
    fn from_str(s: &str) -> Result<Self, FetchError> {
        match s.split_once(':') {
            // `https://…` is a URL, not a file separator.
            Some((scheme, _)) if scheme.starts_with("http") && s.contains("://") => {
                match s.splitn(3, ':').collect::<Vec<_>>()[..] {
                    [a, b, file] => PullSpec::new(&format!("{a}:{b}"), Some(file)),
                    _ => PullSpec::new(s, None),
                }
            }
            Some((repo, file)) => PullSpec::new(repo, Some(file)),
            None => PullSpec::new(s, None),
        }
    }
}

impl std::fmt::Display for PullSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{file}", self.repo),
            None => f.write_str(&self.repo),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The branch, tag or commit; `main` by default.
    pub revision: String,
    /// Download even if the memory check says it does not fit (never past the disk check).
    pub force: bool,
    /// This machine's memory; `None`: unknown, no verdict.
    pub ram_bytes: Option<u64>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { revision: "main".into(), force: false, ram_bytes: crate::system::total_ram_bytes() }
    }
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pulled {
    /// The name discovery lists it under (`org/name`, or `org/name/<file>` for a GGUF).
    pub name: String,
    /// What to put in `model_path`: the snapshot folder, or the GGUF file in it.
    pub path: PathBuf,
    pub commit: String,
    pub bytes_total: u64,
}

/// Pulls `spec` into the hub cache at `cache_root`, reporting into `progress`; `cancel` stops it
/// (what was downloaded stays for a later resume).
pub async fn pull(
    hub: &Hub,
    cache_root: &Path,
    spec: &PullSpec,
    options: &PullOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Pulled, FetchError> {
    let cancellable = |e| if cancel.is_cancelled() { FetchError::Cancelled } else { e };
    let revision = tokio::select! {
        _ = cancel.cancelled() => return Err(FetchError::Cancelled),
        r = hub.revision(&spec.repo, &options.revision) => r?,
    };
    let (gguf, files) = choose_files(spec, &revision)?;
    let mut metas = Vec::with_capacity(files.len());
    for file in &files {
        let meta = tokio::select! {
            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
            m = hub.file_meta(&spec.repo, &revision.commit, file) => m.map_err(cancellable)?,
        };
        metas.push(meta);
    }
    let total: u64 = metas.iter().map(|m| m.size).sum();
    progress.set_total(total);
    let repo = RepoDir::new(cache_root, &spec.repo);

    let disk = check::disk(cache_root, &repo, &metas);
    progress.note(disk.summary());
    progress.set_checks(Some(disk.clone()), None);
    if let Some(free) = disk.free_bytes.filter(|free| disk.needed_bytes > *free) {
        return Err(FetchError::NoRoom {
            repo: spec.repo.clone(),
            path: disk.path,
            needed: disk.needed_bytes,
            free,
        });
    }

    // Small files first: the MLX memory estimate reads the config, and a pull refused for memory
    // has then spent seconds, not gigabytes.
    let (weights, small): (Vec<&FileMeta>, Vec<&FileMeta>) = metas.iter().partition(|m| is_weights(m));
    let name = match &gguf {
        Some(file) => format!("{}/{file}", spec.repo),
        None => spec.repo.clone(),
    };
    fetch_each(hub, &spec.repo, &repo, small, progress, cancel).await?;
    let memory = match &gguf {
        Some(file) => {
            let size = metas.iter().filter(|m| m.file.ends_with(".gguf")).map(|m| m.size).sum();
            Some(check::memory_for_gguf(file, size, options.ram_bytes))
        }
        None if metas.iter().any(|m| m.file == "config.json") => {
            Some(check::memory_for_mlx(&repo, &spec.repo, &metas, options.ram_bytes))
        }
        None => None,
    };
    if let Some(memory) = memory {
        progress.note(memory.summary.clone());
        let refused = memory.fit == Some(Fit::DoesNotFit);
        progress.set_checks(None, Some(memory.clone()));
        if refused && !options.force {
            return Err(FetchError::DoesNotFit { message: memory.summary });
        }
        if refused {
            progress.note("downloading anyway (forced)");
        }
    }
    fetch_each(hub, &spec.repo, &repo, weights, progress, cancel).await?;

    let links: Vec<(String, String)> = metas.iter().map(|m| (m.file.clone(), m.etag.clone())).collect();
    let snapshot = repo.link_snapshot(&revision.commit, &links)?;
    repo.write_ref(&options.revision, &revision.commit)?;
    let path = match &gguf {
        Some(file) => snapshot.join(file),
        None => snapshot,
    };
    Ok(Pulled { name, path, commit: revision.commit, bytes_total: total })
}

async fn fetch_each(
    hub: &Hub,
    repo_id: &str,
    repo: &RepoDir,
    list: Vec<&FileMeta>,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(), FetchError> {
    for meta in list {
        progress.set_file(&meta.file);
        download::fetch_blob(hub, repo_id, repo, meta, progress, cancel).await?;
    }
    Ok(())
}

/// The files of a pull, and the GGUF it is about (if it is one). A named split GGUF brings all
/// its parts; a repository with no MLX config and exactly one GGUF means that GGUF.
fn choose_files(spec: &PullSpec, revision: &Revision) -> Result<(Option<String>, Vec<String>), FetchError> {
    let ggufs: Vec<&String> = revision
        .files
        .iter()
        .filter(|f| f.ends_with(".gguf") && !file_name(f).to_ascii_lowercase().starts_with("mmproj"))
        .collect();
    let named = match &spec.file {
        Some(file) => file.clone(),
        None if revision.files.iter().any(|f| f == "config.json") => {
            return Ok((None, revision.files.clone()));
        }
        None => match ggufs[..] {
            [one] => one.clone(),
            [] => {
                return Err(FetchError::NotAModel(format!(
                    "{} holds neither an MLX model (config.json and *.safetensors) nor a GGUF file",
                    spec.repo
                )))
            }
            _ => {
                let list: Vec<&str> = ggufs.iter().map(|s| s.as_str()).collect();
                return Err(FetchError::NotAModel(format!(
                    "{} holds {} GGUF files: name one, e.g. `hearth models pull {}:{}` (it has: {})",
                    spec.repo,
                    ggufs.len(),
                    spec.repo,
                    ggufs[0],
                    list.join(", ")
                )));
            }
        },
    };
    if !revision.files.contains(&named) {
        let available =
            if ggufs.is_empty() { revision.files.clone() } else { ggufs.into_iter().cloned().collect() };
        return Err(FetchError::FileNotFound { repo: spec.repo.clone(), file: named, available });
    }
    let files = match split_part(file_name(&named)) {
        Some((prefix, _, total)) => {
            let dir = named.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
            let parts: Vec<String> =
                (1..=total).map(|i| format!("{dir}{prefix}-{i:05}-of-{total:05}.gguf")).collect();
            if let Some(missing) = parts.iter().find(|p| !revision.files.contains(p)) {
                return Err(FetchError::FileNotFound {
                    repo: spec.repo.clone(),
                    file: missing.clone(),
                    available: vec![],
                });
            }
            parts
        }
        None => vec![named.clone()],
    };
    // The part a loader opens is the first; that is the model's name and path.
    Ok((Some(files[0].clone()), files))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The big files, downloaded after the checks: weights in any of the usual containers.
fn is_weights(meta: &FileMeta) -> bool {
    const WEIGHTS: [&str; 8] = [".safetensors", ".gguf", ".bin", ".pt", ".pth", ".onnx", ".npz", ".h5"];
    WEIGHTS.iter().any(|ext| meta.file.ends_with(ext)) || meta.size > 64 << 20
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<PullSpec, FetchError> {
        s.parse()
    }

    #[test]
    fn specs_are_repo_and_optional_file() {
        let s = spec("mlx-community/Qwen2.5-0.5B-Instruct-4bit").unwrap();
        assert_eq!((s.repo.as_str(), s.file), ("mlx-community/Qwen2.5-0.5B-Instruct-4bit", None));
        let s = spec("unsloth/gemma-3-270m-it-GGUF:gemma-3-270m-it-Q4_K_M.gguf").unwrap();
        assert_eq!(s.file.as_deref(), Some("gemma-3-270m-it-Q4_K_M.gguf"));
        assert_eq!(s.to_string(), "unsloth/gemma-3-270m-it-GGUF:gemma-3-270m-it-Q4_K_M.gguf");
        let s = spec("https://huggingface.co/org/name:sub/m.gguf").unwrap();
        assert_eq!((s.repo.as_str(), s.file.as_deref()), ("org/name", Some("sub/m.gguf")));
        for bad in
            ["name", "a/b/c", "../x", "org/..", "org/na me", "org/x:../../etc/passwd", "org/x:/abs", ""]
        {
            assert!(matches!(spec(bad), Err(FetchError::InvalidSpec(_))), "{bad}");
        }
    }

    fn revision(files: &[&str]) -> Revision {
        Revision { commit: "c".repeat(40), files: files.iter().map(|f| f.to_string()).collect() }
    }

    #[test]
    fn files_of_a_pull() {
        let mlx = revision(&["config.json", "model.safetensors", "tokenizer.json"]);
        assert_eq!(choose_files(&spec("o/m").unwrap(), &mlx).unwrap(), (None, mlx.files.clone()));
        let one = revision(&["README.md", "m-Q4_K_M.gguf", "mmproj-f16.gguf"]);
        let (gguf, files) = choose_files(&spec("o/m").unwrap(), &one).unwrap();
        assert_eq!((gguf.as_deref(), files), (Some("m-Q4_K_M.gguf"), vec!["m-Q4_K_M.gguf".to_string()]));
        let many = revision(&["a-Q4.gguf", "a-Q8.gguf"]);
        let e = choose_files(&spec("o/m").unwrap(), &many).unwrap_err().to_string();
        assert!(e.contains("name one") && e.contains("o/m:a-Q4.gguf"), "{e}");
        let e = choose_files(&spec("o/m:a-Q5.gguf").unwrap(), &many).unwrap_err().to_string();
        assert!(e.contains("has no file a-Q5.gguf; it has: a-Q4.gguf, a-Q8.gguf"), "{e}");
        let split = revision(&["q/big-00001-of-00002.gguf", "q/big-00002-of-00002.gguf"]);
        let (gguf, files) = choose_files(&spec("o/m:q/big-00001-of-00002.gguf").unwrap(), &split).unwrap();
        assert_eq!(gguf.as_deref(), Some("q/big-00001-of-00002.gguf"));
        assert_eq!(files.len(), 2);
    }
}
