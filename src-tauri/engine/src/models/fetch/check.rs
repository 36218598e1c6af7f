//! The checks before a pull: room on the disk (`statvfs`), and whether the model fits this
//! machine's memory — judged by the same estimate and thresholds discovery uses for the picker
//! (`entry::fit`), so "fits" before the download means "fits" in Settings after it.
//!
//! An MLX model's estimate comes from its config (layers, heads, context): the inspection the
//! loader runs reads it, so the check runs that inspection on a probe folder holding the small files
//! already fetched and empty sparse stand-ins of the advertised size for the weights (the
//! inspection only lists and measures weights, never reads them). A GGUF's KV cache is described
//! in its header, which is not there before the download: its estimate is the file's size, a lower
//! bound, and says so.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use super::cache::RepoDir;
use super::hub::FileMeta;
use super::progress::{DiskCheck, MemoryCheck};
use crate::models::entry::{fit, human, inspect};
use crate::models::found::{Found, ModelSource};
use crate::models::Fit;
use hearth_inference::ModelFormat;

/// Free bytes for an unprivileged writer on the file system holding `path` (or its nearest
/// existing parent, since the cache may not exist yet); `None` if it cannot be measured.
pub fn free_bytes(path: &Path) -> Option<(PathBuf, u64)> {
    let existing = path.ancestors().find(|p| p.exists())?.to_path_buf();
    let c_path = CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: a valid NUL-terminated path and a zeroed statvfs for the call to fill.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    // f_bavail: blocks free to non-root users, the space a pull can actually use.
    #[allow(clippy::unnecessary_cast)] // the field types differ between Linux and macOS
    let free = (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64);
    Some((existing, free))
}

/// The disk check for `files`: what is not already in `repo` must fit the free space.
pub fn disk(hub: &Path, repo: &RepoDir, files: &[FileMeta]) -> DiskCheck {
    let needed_bytes = files.iter().map(|f| f.size - repo.bytes_present(&f.etag, f.size)).sum();
    match free_bytes(hub) {
        Some((path, free)) => DiskCheck { path, needed_bytes, free_bytes: Some(free) },
        None => DiskCheck { path: hub.to_path_buf(), needed_bytes, free_bytes: None },
    }
}

impl DiskCheck {
    pub fn summary(&self) -> String {
        match self.free_bytes {
            Some(free) => format!(
                "disk: {} to download, {} free on {}",
                human(self.needed_bytes),
                human(free),
                self.path.display()
            ),
            None => format!("disk: {} to download (free space unknown)", human(self.needed_bytes)),
        }
    }
}

/// A GGUF file: its size is the least it needs.
pub fn memory_for_gguf(name: &str, size: u64, ram: Option<u64>) -> MemoryCheck {
    judge(name, Some(size), ram, " (its weights; the context's cache comes on top)")
}

/// An MLX model whose small files are complete blobs in `repo`: the inspection's estimate.
pub fn memory_for_mlx(repo: &RepoDir, name: &str, files: &[FileMeta], ram: Option<u64>) -> MemoryCheck {
    let probe = repo.root.join(format!(".hearth-probe-{}", std::process::id()));
    let estimate = build_probe(repo, &probe, files).map(|()| {
        let found = Found::model(
            name.to_string(),
            probe.clone(),
            ModelSource::HuggingFaceCache,
            ModelFormat::MlxDir,
            0,
            "",
        );
        inspect(found, None)
    });
    let _ = std::fs::remove_dir_all(&probe);
    match estimate {
        Ok(model) => match model.estimated_memory_bytes {
            Some(needed) => judge(name, Some(needed), ram, ""),
            None => MemoryCheck {
                needed_bytes: None,
                ram_bytes: ram,
                fit: None,
                summary: format!(
                    "memory: unknown ({})",
                    model.problems.first().map_or("its config could not be read", String::as_str)
                ),
            },
        },
        Err(e) => MemoryCheck {
            needed_bytes: None,
            ram_bytes: ram,
            fit: None,
            summary: format!("memory: unknown (could not prepare the estimate: {e})"),
        },
    }
}

/// Links the complete small files and makes sparse stand-ins for the rest.
fn build_probe(repo: &RepoDir, probe: &Path, files: &[FileMeta]) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(probe);
    for f in files {
        let path = probe.join(&f.file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let blob = repo.blob(&f.etag);
        if blob.is_file() {
            std::os::unix::fs::symlink(&blob, &path)?;
        } else {
            std::fs::File::create(&path)?.set_len(f.size)?;
        }
    }
    Ok(())
}

fn judge(name: &str, needed: Option<u64>, ram: Option<u64>, qualifier: &str) -> MemoryCheck {
    let (Some(needed), Some(ram)) = (needed, ram) else {
        return MemoryCheck {
            needed_bytes: needed,
            ram_bytes: ram,
            fit: None,
            summary: "memory: unknown (this machine's RAM could not be read)".into(),
        };
    };
    let verdict = fit(needed, ram);
    let words = match verdict {
        Fit::Fits => "fits",
        Fit::Tight => "tight: it runs, but leaves little memory for other apps",
        Fit::DoesNotFit => "does not fit",
    };
    MemoryCheck {
        needed_bytes: Some(needed),
        ram_bytes: Some(ram),
        fit: Some(verdict),
        summary: format!(
            "memory: {words} — {name} needs about {}{qualifier}, this machine has {} of RAM",
            human(needed),
            human(ram)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_at_the_nearest_existing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (at, free) = free_bytes(&dir.path().join("not/yet/there")).unwrap();
        assert_eq!(at, dir.path());
        assert!(free > 0);
    }

    #[test]
    fn a_gguf_is_judged_by_its_size() {
        let m = memory_for_gguf("m.gguf", 13 << 30, Some(16 << 30));
        assert_eq!(m.fit, Some(Fit::Tight));
        assert!(m.summary.contains("13.0 GiB") && m.summary.contains("16.0 GiB"), "{}", m.summary);
        assert_eq!(memory_for_gguf("m.gguf", 17 << 30, Some(16 << 30)).fit, Some(Fit::DoesNotFit));
        assert_eq!(memory_for_gguf("m.gguf", 1, None).fit, None);
    }
}
