//! The Hugging Face hub cache: `models--<org>--<name>/snapshots/<rev>/…`, whose files are symlinks
//! into the repo's `blobs/`. One snapshot per repo is listed (the one `refs/main` names, else the
//! newest), walked like any folder: its MLX directory is `org/name`, its GGUFs `org/name/<file>`.
//! Datasets, spaces and snapshots without weights (a library fetched only a config) are not models.

use std::path::{Path, PathBuf};

use super::found::Found;
use super::walk;

pub(super) fn scan(hub: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(hub) else { return out };
    for entry in entries.flatten() {
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        let Some(repo) = dir_name.strip_prefix("models--") else { continue };
        // `models--org--name`: the repo id's `/` is spelled `--`.
        let name = repo.replacen("--", "/", 1);
        let Some(snapshot) = pick_snapshot(&entry.path()) else { continue };
        out.extend(walk::scan_hf_snapshot(&snapshot, &name));
    }
    out
}

/// The snapshot `refs/main` points at, else the most recently modified one.
fn pick_snapshot(repo_dir: &Path) -> Option<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo_dir.join("refs/main")) {
        let rev = rev.trim();
        let dir = snapshots.join(rev);
        // A commit hash; anything with a path in it is not one.
        if !rev.contains(['/', '\\']) && rev != ".." && dir.is_dir() {
            return Some(dir);
        }
    }
    std::fs::read_dir(&snapshots)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}
