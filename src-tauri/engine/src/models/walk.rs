//! Model directories and GGUF files in a folder tree: Hearth's own models folder, LM Studio's, the
//! folders the user adds, and one Hugging Face snapshot. Layout only — which files make a model,
//! what it is called, which split parts belong together; what a file *is* is the inspection's
//! business.
//!
//! A directory is a model directory (MLX layout) when it holds `*.safetensors` or a `config.json`
//! (in a cache, where a library may have fetched just a config, only both count). Every `.gguf`
//! file is a model of its own, except vision projectors (`mmproj*.gguf`, companions of a model) and
//! the later parts of a split GGUF (`name-00002-of-00003.gguf`), which are listed once, by the part
//! a loader opens: the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hearth_inference::ModelFormat;

use super::found::{Found, ModelSource};

/// How many directory entries one root may make us look at: bounds the walk of a folder setting
/// that names something huge (`/`), so the Settings window still opens at once.
const ENTRY_BUDGET: usize = 20_000;

/// Hearth's folder: `<name>/` model directories and `<name>.gguf` files, or GGUFs one folder down.
pub(super) fn scan_hearth_folder(root: &Path) -> Vec<Found> {
    let mut walk = Walk::new(ModelSource::HearthModels, 2, false, "replace it with a complete copy");
    let _ = walk.visit(root, "", 0);
    walk.found
}

/// LM Studio: `<publisher>/<repo>/*.gguf` (and MLX directories on a Mac).
pub(super) fn scan_lm_studio(root: &Path) -> Vec<Found> {
    let mut walk = Walk::new(ModelSource::LmStudio, 3, false, "download it again in LM Studio");
    let _ = walk.visit(root, "", 0);
    walk.found
}

/// One Hugging Face snapshot (`models--org--name/snapshots/<rev>`): its MLX directory is named
/// `org/name`, its GGUFs `org/name/<file>`.
pub(super) fn scan_hf_snapshot(snapshot: &Path, repo: &str) -> Vec<Found> {
    let refetch = format!("download it again with `hf download {repo}`");
    let mut walk = Walk::new(ModelSource::HuggingFaceCache, 2, true, &refetch);
    let _ = walk.visit(snapshot, repo, 0);
    walk.found
}

/// A folder from the `model_folders` setting (or one model directory or `.gguf` file). Unlike the
/// well-known roots, a folder the user named is never passed over in silence: missing, unreadable
/// or empty, it gets an entry saying so.
pub(super) fn scan_user_folder(root: &Path) -> Vec<Found> {
    let source = ModelSource::UserFolder;
    let note = |problem: String| vec![Found::folder_note(root.to_path_buf(), source, problem)];
    let mut walk = Walk::new(source, 4, false, "replace it with a complete copy");
    if root.is_file() {
        let Some(parent) = root.parent() else { return vec![] };
        let file = root.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if !is_gguf(root) {
            return note(format!(
                "model folder {} is a file, not a folder (a single model file must be a .gguf)",
                root.display()
            ));
        }
        walk.ggufs(parent, "", vec![(file, root.to_path_buf())]);
        return walk.found;
    }
    if !root.exists() {
        return note(format!(
            "model folder {} does not exist (an unplugged disk?); plug it in or remove it from Settings",
            root.display()
        ));
    }
    if let Err(e) = walk.visit(root, "", 0) {
        return note(format!("model folder {} cannot be read: {e}", root.display()));
    }
    if walk.found.is_empty() {
        return note(format!(
            "no models in {} (looked for .gguf files and model directories with config.json and \
             *.safetensors, up to {} folders down)",
            root.display(),
            walk.max_depth
        ));
    }
    if walk.exhausted {
        walk.found.push(Found::folder_note(
            root.to_path_buf(),
            source,
            format!(
                "stopped after {ENTRY_BUDGET} files in {}: name the folder that holds the models",
                root.display()
            ),
        ));
    }
    walk.found
}

/// One file of a split GGUF: its part number, file name and path.
type SplitPart = (u32, String, PathBuf);

struct Walk {
    source: ModelSource,
    /// How many folders down from the root to look.
    max_depth: usize,
    /// A cache (Hugging Face): a directory counts only with both config.json and weights.
    cache: bool,
    refetch: String,
    budget: usize,
    exhausted: bool,
    found: Vec<Found>,
}

impl Walk {
    fn new(source: ModelSource, max_depth: usize, cache: bool, refetch: &str) -> Self {
        Walk {
            source,
            max_depth,
            cache,
            refetch: refetch.to_string(),
            budget: ENTRY_BUDGET,
            exhausted: false,
            found: Vec::new(),
        }
    }

    /// `dir`, whose models are named under `name` (`""` at a root that is a collection).
    fn visit(&mut self, dir: &Path, name: &str, depth: usize) -> std::io::Result<()> {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(dir)?.flatten() {
            if self.budget == 0 {
                self.exhausted = true;
                break;
            }
            self.budget -= 1;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            // Symlinks are followed (the Hugging Face cache is made of them); a dangling one is a
            // file here, so a GGUF link into a missing blob is reported rather than skipped.
            if path.is_dir() {
                dirs.push((file_name, path));
            } else {
                files.push((file_name, path));
            }
        }
        files.sort();
        dirs.sort();
        let has_config = files.iter().any(|(n, _)| n == "config.json");
        let has_weights = files.iter().any(|(_, p)| p.extension().is_some_and(|e| e == "safetensors"));
        let ggufs: Vec<(String, PathBuf)> =
            files.iter().filter(|(n, p)| is_gguf(p) && !is_projector(n)).cloned().collect();
        let model_dir = if self.cache {
            has_config && has_weights
        } else {
            has_weights || (has_config && ggufs.is_empty())
        };
        if model_dir {
            let dir_name = dir.file_name().unwrap_or_default().to_string_lossy();
            let model_name = if name.is_empty() { dir_name.into_owned() } else { name.to_string() };
            let size = files.iter().filter(|(_, p)| !is_gguf(p)).map(|(_, p)| file_size(p)).sum();
            self.found.push(Found::model(
                model_name,
                dir.to_path_buf(),
                self.source,
                ModelFormat::MlxDir,
                size,
                self.refetch.clone(),
            ));
        }
        self.ggufs(dir, name, ggufs);
        if depth < self.max_depth {
            for (sub, path) in dirs {
                let _ = self.visit(&path, &join(name, &sub), depth + 1);
            }
        }
        Ok(())
    }

    /// The GGUF models among `files` (all in `dir`): one per plain file, one per split set.
    fn ggufs(&mut self, dir: &Path, name: &str, files: Vec<(String, PathBuf)>) {
        // (prefix, number of parts) → the parts present: (part number, file name, path).
        let mut splits: BTreeMap<(String, u32), Vec<SplitPart>> = BTreeMap::new();
        for (file, path) in files {
            match split_part(&file) {
                Some((prefix, part, total)) => {
                    splits.entry((prefix.to_string(), total)).or_default().push((part, file, path))
                }
                None => {
                    let size = file_size(&path);
                    let found = self.gguf(join(name, &file), &file, path, size);
                    self.found.push(found);
                }
            }
        }
        for ((prefix, total), mut parts) in splits {
            parts.sort();
            let size: u64 = parts.iter().map(|(_, _, p)| file_size(p)).sum();
            let (first, file, path) = parts[0].clone();
            let mut found = self.gguf(join(name, &file), &file, path, size);
            let missing: Vec<u32> = (1..=total).filter(|i| !parts.iter().any(|(p, _, _)| p == i)).collect();
            if first != 1 {
                found.problems.push(format!(
                    "{file} is part {first} of a GGUF split into {total} files, and part 1 \
                     ({prefix}-00001-of-{total:05}.gguf), which a model is loaded from, is not in {}: \
                     put every part in that folder",
                    dir.display()
                ));
            } else if !missing.is_empty() {
                let list = missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
                found.problems.push(format!(
                    "{file} is part 1 of a GGUF split into {total} files; part(s) {list} are not in {}: \
                     download every part into that folder",
                    dir.display()
                ));
            }
            self.found.push(found);
        }
    }

    /// One GGUF model: `path` (a file, or a split's first part) of `size` bytes in all.
    fn gguf(&self, name: String, file: &str, path: PathBuf, size: u64) -> Found {
        let found = Found::model(name, path, self.source, ModelFormat::Gguf, size, self.refetch.clone());
        match dangling_target(&found.path) {
            Some(target) => {
                let problem = format!(
                    "{file} is a link to {}, which does not exist (an interrupted download?); {}",
                    target.display(),
                    self.refetch
                );
                found.with_problem(problem)
            }
            None => found,
        }
    }
}

fn join(base: &str, leaf: &str) -> String {
    if base.is_empty() {
        leaf.to_string()
    } else {
        format!("{base}/{leaf}")
    }
}

fn is_gguf(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// A vision projector shipped beside a model (`mmproj-model-f16.gguf`), not a model itself.
fn is_projector(file_name: &str) -> bool {
    file_name.to_ascii_lowercase().starts_with("mmproj")
}

/// `name-00001-of-00003.gguf` → `("name", 1, 3)`: llama.cpp's split naming (five digits each). A
/// "split" of one part is a plain file.
pub(super) fn split_part(file_name: &str) -> Option<(&str, u32, u32)> {
    let stem = file_name.get(..file_name.len().checked_sub(5)?)?;
    let (rest, total) = stem.rsplit_once("-of-")?;
    let (prefix, part) = rest.rsplit_once('-')?;
    let five_digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !five_digits(part) || !five_digits(total) {
        return None;
    }
    let (part, total): (u32, u32) = (part.parse().ok()?, total.parse().ok()?);
    (total > 1 && (1..=total).contains(&part)).then_some((prefix, part, total))
}

/// Where `path` points, when it is a symlink to nothing.
fn dangling_target(path: &Path) -> Option<PathBuf> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    (is_link && !path.exists()).then(|| std::fs::read_link(path).unwrap_or_default())
}

/// Size of the file a path (or symlink, as in the hub cache) points at; 0 for anything else.
pub(super) fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| if m.is_file() { m.len() } else { 0 }).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_follow_llama_cpp() {
        assert_eq!(split_part("Llama-3-70B-Q4_K_M-00001-of-00002.gguf"), Some(("Llama-3-70B-Q4_K_M", 1, 2)));
        assert_eq!(split_part("m-00003-of-00003.gguf"), Some(("m", 3, 3)));
        assert_eq!(split_part("m-00001-of-00001.gguf"), None, "one part is a plain file");
        assert_eq!(split_part("m-00004-of-00003.gguf"), None);
        assert_eq!(split_part("m-1-of-3.gguf"), None);
        assert_eq!(split_part("gemma-3-270m-q4_k_m.gguf"), None);
        assert_eq!(split_part(".gguf"), None);
    }

    #[test]
    fn projectors_are_not_models() {
        assert!(is_projector("mmproj-model-f16.gguf"));
        assert!(is_projector("MMPROJ.gguf"));
        assert!(!is_projector("gemma-3-4b-it-Q4_K_M.gguf"));
    }
}
