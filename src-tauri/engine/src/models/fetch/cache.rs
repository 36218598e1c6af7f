//! Writing the Hugging Face hub cache the way `huggingface_hub` does, so mlx_lm, LM Studio and
//! Hearth share one copy:
//!
//! ```text
//! <hub>/models--<org>--<name>/
//!     blobs/<etag>               the content, named by its ETag (sha256 for LFS files)
//!     blobs/<etag>.incomplete    a download under way or interrupted (resumed from its length)
//!     snapshots/<commit>/<file>  relative symlinks into blobs/
//!     refs/main                  the commit `main` pointed at
//! ```
//!
//! Discovery lists a repository by its snapshot (see `hf_cache`), so a snapshot appears only when
//! every file of the pull is a complete, verified blob: built in a staging folder beside
//! `snapshots/` and renamed into place in one step, or (when the snapshot already exists, say from
//! an earlier single-file pull) linked file by file with `config.json` last, each link itself made
//! under a hidden name and renamed, so no half-made link is ever visible.

use std::path::{Path, PathBuf};

use super::error::FetchError;
use super::PullSpec;

/// `org/name` → `models--org--name`.
pub fn repo_folder_name(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub struct RepoDir {
    pub root: PathBuf,
}

impl RepoDir {
    pub fn new(hub: &Path, repo: &str) -> Self {
        RepoDir { root: hub.join(repo_folder_name(repo)) }
    }

    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.blobs().join(etag)
    }

    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.blobs().join(format!("{etag}.incomplete"))
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    /// Bytes of `etag` already on disk: the whole blob, or what an interrupted download left.
    pub fn bytes_present(&self, etag: &str, size: u64) -> u64 {
        if self.blob(etag).is_file() {
            return size;
        }
        std::fs::metadata(self.incomplete(etag)).map(|m| m.len().min(size)).unwrap_or(0)
    }

    /// Links `files` (path in the repository, blob ETag) into `snapshots/<commit>`, every blob
    /// already complete. Returns the snapshot folder.
    pub fn link_snapshot(&self, commit: &str, files: &[(String, String)]) -> Result<PathBuf, FetchError> {
        let snapshot = self.snapshot(commit);
        let snapshots = self.root.join("snapshots");
        std::fs::create_dir_all(&snapshots).map_err(|e| FetchError::io(&snapshots, e))?;
        // config.json last: with it, a folder of weights becomes a model in discovery's eyes.
        let mut ordered: Vec<&(String, String)> = files.iter().collect();
        ordered.sort_by_key(|(file, _)| file == "config.json");
        if !snapshot.exists() {
            // Same depth as snapshots/<commit>, so the relative links stay right after the rename.
            let staging = self.root.join(".hearth-staging").join(commit);
            if staging.exists() {
                std::fs::remove_dir_all(&staging).map_err(|e| FetchError::io(&staging, e))?;
            }
            for (file, etag) in &ordered {
                link(&staging, file, etag)?;
            }
            match std::fs::rename(&staging, &snapshot) {
                Ok(()) => {
                    let _ = std::fs::remove_dir(self.root.join(".hearth-staging"));
                    return Ok(snapshot);
                }
                // Another pull made it meanwhile: add ours to it below.
                Err(_) if snapshot.is_dir() => {
                    let _ = std::fs::remove_dir_all(&staging);
                }
                Err(e) => return Err(FetchError::io(&snapshot, e)),
            }
        }
        for (file, etag) in ordered {
            link(&snapshot, file, etag)?;
        }
        Ok(snapshot)
    }

    /// `refs/<revision>` ← `commit`, when the revision is a name (a branch or tag), as
    /// huggingface_hub does; written whole or not at all.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), FetchError> {
        if revision == commit || revision.contains("..") {
            return Ok(());
        }
        let path = self.root.join("refs").join(revision);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| FetchError::io(&dir, e))?;
        let tmp = dir.join(format!(".{}.hearth-tmp", path.file_name().unwrap_or_default().to_string_lossy()));
        std::fs::write(&tmp, commit).map_err(|e| FetchError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| FetchError::io(&path, e))
    }
}

/// `<snapshot>/<file>` → `../../blobs/<etag>` (one more `..` per folder in `file`), made under a
/// hidden name and renamed into place.
fn link(snapshot: &Path, file: &str, etag: &str) -> Result<(), FetchError> {
    let path = snapshot.join(file);
    let dir = path.parent().unwrap_or(snapshot).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| FetchError::io(&dir, e))?;
    let depth = file.split('/').count() + 1;
    let target: PathBuf = std::iter::repeat_n("..", depth).collect::<PathBuf>().join("blobs").join(etag);
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let tmp = dir.join(format!(".{name}.hearth-link"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).map_err(|e| FetchError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| FetchError::io(&path, e))
}

/// Deletes `repo`'s folder from the cache at `hub`; returns the folder and the bytes it held.
/// Only ever a `models--…` folder directly inside the cache (checked after resolving links), and
/// a link there is removed as a link, never followed.
pub fn remove_repo(hub: &Path, repo: &str) -> Result<(PathBuf, u64), FetchError> {
    let spec: PullSpec = repo.parse()?;
    if spec.file.is_some() {
        return Err(FetchError::InvalidSpec(format!(
            "`hearth models remove` takes a repository (org/name), not a file: {repo}"
        )));
    }
    let dir = RepoDir::new(hub, &spec.repo).root;
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|_| FetchError::NotInCache { repo: spec.repo.clone(), path: dir.clone() })?;
    let hub_real = hub.canonicalize().map_err(|e| FetchError::io(hub, e))?;
    let parent_real = dir.parent().and_then(|p| p.canonicalize().ok());
    if parent_real.as_deref() != Some(hub_real.as_path()) {
        return Err(FetchError::RemoveRefused {
            path: dir,
            why: "it is not inside the Hugging Face cache".into(),
        });
    }
    if meta.file_type().is_symlink() {
        std::fs::remove_file(&dir).map_err(|e| FetchError::io(&dir, e))?;
        return Ok((dir, 0));
    }
    if !meta.is_dir() {
        return Err(FetchError::RemoveRefused { path: dir, why: "it is not a folder".into() });
    }
    let size = tree_size(&dir);
    std::fs::remove_dir_all(&dir).map_err(|e| FetchError::io(&dir, e))?;
    Ok((dir, size))
}

/// Bytes of the regular files under `dir` (links not followed: the blobs are counted once).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_link_relatively_into_blobs_and_appear_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoDir::new(dir.path(), "org/name");
        std::fs::create_dir_all(repo.blobs()).unwrap();
        std::fs::write(repo.blob("aaa"), "config").unwrap();
        std::fs::write(repo.blob("bbb"), "nested").unwrap();
        let files = vec![("config.json".to_string(), "aaa".to_string()), ("sub/x.txt".into(), "bbb".into())];
        let snap = repo.link_snapshot("c0ffee", &files).unwrap();
        assert_eq!(snap, dir.path().join("models--org--name/snapshots/c0ffee"));
        assert_eq!(std::fs::read_link(snap.join("config.json")).unwrap(), Path::new("../../blobs/aaa"));
        assert_eq!(std::fs::read_to_string(snap.join("sub/x.txt")).unwrap(), "nested");
        assert!(!repo.root.join(".hearth-staging").exists());
        // A second pull into the same snapshot adds to it.
        std::fs::write(repo.blob("ccc"), "more").unwrap();
        repo.link_snapshot("c0ffee", &[("m.gguf".into(), "ccc".into())]).unwrap();
        assert_eq!(std::fs::read_to_string(snap.join("m.gguf")).unwrap(), "more");
        assert!(snap.join("config.json").exists());
        repo.write_ref("main", "c0ffee").unwrap();
        assert_eq!(std::fs::read_to_string(repo.root.join("refs/main")).unwrap(), "c0ffee");
    }

    #[test]
    fn remove_deletes_only_a_repository_folder_of_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let hub = dir.path().join("hub");
        let repo = RepoDir::new(&hub, "org/name");
        std::fs::create_dir_all(repo.blobs()).unwrap();
        std::fs::write(repo.blob("aaa"), "12345").unwrap();
        assert!(matches!(remove_repo(&hub, "../x"), Err(FetchError::InvalidSpec(_))));
        assert!(matches!(remove_repo(&hub, "org/other"), Err(FetchError::NotInCache { .. })));
        // A link in the cache to a folder elsewhere: the link goes, the folder stays.
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, hub.join("models--org--linked")).unwrap();
        assert_eq!(remove_repo(&hub, "org/linked").unwrap().1, 0);
        assert!(outside.is_dir());
        let (gone, size) = remove_repo(&hub, "org/name").unwrap();
        assert_eq!((gone.exists(), size), (false, 5));
    }
}
