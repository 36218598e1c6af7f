//! Local model discovery: the models this machine already has, as the Settings picker lists them.
//!
//! A thin walk over the places models live — Hearth's own models folder, the Hugging Face cache,
//! LM Studio's models folder, Ollama's store and the folders the user adds in Settings
//! ([`ModelRoots`]) — that hands every candidate to the inference crate's own inspection
//! (`hearth_inference::inspect_model`, the one the loader runs). So the picker lists exactly what
//! loads: what inspection refuses is still listed, marked not loadable with the inspection's error,
//! because a picker that silently hides a model the user put there leaves them guessing. The walk
//! itself knows only layouts (which file is a model, what it is called, which parts belong
//! together), never formats or architectures.
//!
//! * [`roots`]: where to look, from the environment (so tests point `HOME` & co. at temp dirs);
//! * [`found`]: what a walk found, before inspection (and [`ModelSource`]);
//! * [`walk`]: model directories and GGUF files in a folder tree (Hearth's folder, LM Studio, the
//!   user's folders, a Hugging Face snapshot), split GGUFs grouped by their parts;
//! * [`hf_cache`]: the Hugging Face hub cache's `models--org--name/snapshots/<rev>` layout;
//! * [`ollama`]: Ollama's manifests and the GGUF blobs they point at;
//! * [`entry`]: inspection of one candidate into a [`LocalModel`] (engine, size, quantization,
//!   whether it fits this machine's RAM);
//! * [`fetch`]: pulling a model from the Hugging Face hub into its cache (`hearth models pull`);
//! * [`catalog`]: a few known-good models to suggest, and the first-launch view built on them.

pub mod catalog;
mod entry;
pub mod fetch;
mod found;
mod hf_cache;
mod ollama;
mod roots;
mod walk;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use entry::{human as human_bytes, Fit, LocalModel, ModelEngine, Quantization};
pub use found::ModelSource;
pub use roots::{hf_hub_cache_from_env, ModelRoots};

/// Every model under `roots`, grouped by source (in [`ModelSource`]'s order) and sorted by name.
/// Nothing here is fatal: unreadable folders are skipped (a user folder that cannot be read gets an
/// entry saying so), and a model that cannot be loaded is an entry with its reason. `ram_bytes` is
/// this machine's memory (`None`: unknown, no fit verdict).
pub fn discover(roots: &ModelRoots, ram_bytes: Option<u64>) -> Vec<LocalModel> {
    let mut found = walk::scan_hearth_folder(&roots.hearth_models);
    if let Some(hub) = &roots.hf_hub_cache {
        found.extend(hf_cache::scan(hub));
    }
    for folder in &roots.lm_studio {
        found.extend(walk::scan_lm_studio(folder));
    }
    if let Some(store) = &roots.ollama {
        found.extend(ollama::scan(store));
    }
    for folder in &roots.user_folders {
        found.extend(walk::scan_user_folder(folder));
    }
    // A user folder may overlap a well-known one (or another user folder): list each place once,
    // under the first source that found it. The folder is resolved, not the file, so two links to
    // one file under different names stay two entries. Ollama's tags are the other exception: two
    // tags of one blob (`llama3.2:3b`, `llama3.2:latest`) are two names a user knows, listed as
    // `ollama list` lists them.
    let mut seen = HashSet::new();
    found.retain(|f| {
        let tag = if f.source == ModelSource::Ollama { f.name.clone() } else { String::new() };
        seen.insert((resolved_folder(&f.path), f.path.file_name().map(|n| n.to_owned()), tag))
    });
    let mut models: Vec<LocalModel> = found.into_iter().map(|f| entry::inspect(f, ram_bytes)).collect();
    models.sort_by(|a, b| (a.source, &a.name, &a.path).cmp(&(b.source, &b.name, &b.path)));
    models
}

/// The folder holding `path`, with links and `..` resolved.
fn resolved_folder(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(path);
    parent.canonicalize().unwrap_or_else(|_| parent.to_path_buf())
}

#[cfg(test)]
mod tests {
    use hearth_inference::ModelFormat;
    use hearth_testkit::shared_fixtures::fixture_models_if_present;

    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn roots(hearth_models: PathBuf) -> ModelRoots {
        ModelRoots {
            hearth_models,
            hf_hub_cache: None,
            lm_studio: vec![],
            ollama: None,
            user_folders: vec![],
        }
    }

    fn by_name<'a>(found: &'a [LocalModel], name: &str) -> &'a LocalModel {
        found.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no {name} in {found:#?}"))
    }

    #[test]
    fn hearths_folder_lists_what_inspection_accepts_and_says_why_not_for_the_rest() {
        let Some(fixtures) = fixture_models_if_present() else {
            eprintln!("skipped: shared fixtures not found (set HEARTH_SHARED_DIR)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).unwrap();
        std::os::unix::fs::symlink(fixtures.join("tiny-qwen2-4bit"), models.join("tiny-qwen2-4bit")).unwrap();
        // The old discovery called this loadable-but-unsupported by its own family list; now the
        // loader's inspection decides (its config lacks what a forward pass needs).
        write(
            &models.join("mistral-8bit/config.json"),
            r#"{"model_type":"mistral","quantization":{"bits":8,"group_size":64}}"#,
        );
        write(&models.join("mistral-8bit/model.safetensors"), "x");
        write(&models.join("notes.txt"), "not a model");
        write(&models.join(".hidden/x.gguf"), "GGUF");
        write(&models.join("cut.gguf"), "GGUF\x03\x00");

        let found = discover(&roots(models.clone()), Some(16 << 30));
        let names: Vec<_> = found.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["cut.gguf", "mistral-8bit", "tiny-qwen2-4bit"]);
        assert!(found.iter().all(|m| m.source == ModelSource::HearthModels));

        let qwen = by_name(&found, "tiny-qwen2-4bit");
        assert!(qwen.loadable, "{:?}", qwen.problems);
        assert_eq!(qwen.family.as_deref(), Some("qwen2"));
        assert_eq!(qwen.format, Some(ModelFormat::MlxDir));
        let engine = if cfg!(target_os = "macos") { ModelEngine::Mlx } else { ModelEngine::Cpu };
        assert_eq!(qwen.engine, Some(engine));
        let q = qwen.quantization.as_ref().unwrap();
        assert_eq!((q.bits, q.group_size, q.mode.as_str()), (Some(4), Some(64), "affine"));
        assert_eq!(qwen.fit, Some(Fit::Fits));
        assert!(qwen.estimated_memory_bytes.unwrap() > 0);
        let info = hearth_inference::inspect_model(&qwen.path).unwrap();
        assert_eq!(qwen.context_length, Some(info.max_context as u64));

        let mistral = by_name(&found, "mistral-8bit");
        assert!(!mistral.loadable);
        assert!(mistral.problems[0].contains("config.json"), "{:?}", mistral.problems);

        let cut = by_name(&found, "cut.gguf");
        assert!(!cut.loadable);
        assert_eq!(cut.format, Some(ModelFormat::Gguf));
        assert_eq!(cut.size_bytes, 6);
        assert!(cut.problems[0].contains("cut.gguf"), "{:?}", cut.problems);
    }

    #[test]
    fn a_model_larger_than_ram_is_not_loadable_and_a_tight_one_is_with_a_warning() {
        let Some(fixtures) = fixture_models_if_present() else {
            eprintln!("skipped: shared fixtures not found (set HEARTH_SHARED_DIR)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).unwrap();
        std::os::unix::fs::symlink(fixtures.join("tiny-llama-4bit"), models.join("tiny-llama-4bit")).unwrap();
        let roots = roots(models);
        let need = discover(&roots, Some(16 << 30))[0].estimated_memory_bytes.unwrap();

        let big = &discover(&roots, Some(need - 1))[0];
        assert_eq!(big.fit, Some(Fit::DoesNotFit));
        assert!(!big.loadable);
        assert_eq!(big.machine_ram_bytes, Some(need - 1));
        let why = &big.problems[0];
        assert!(
            why.starts_with("tiny-llama-4bit needs about") && why.contains("choose a smaller model"),
            "{why}"
        );

        let tight = &discover(&roots, Some(need))[0];
        assert_eq!(tight.fit, Some(Fit::Tight));
        assert!(tight.loadable, "tight still loads: {:?}", tight.problems);
        assert!(tight.problems[0].contains("leaves little"), "{:?}", tight.problems);

        let unknown = &discover(&roots, None)[0];
        assert_eq!((unknown.fit, unknown.loadable), (None, true));
    }

    #[test]
    fn user_folders_are_never_passed_over_in_silence() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let missing = dir.path().join("unplugged");
        let not_gguf = dir.path().join("readme.txt");
        write(&not_gguf, "hi");
        let single = dir.path().join("single.gguf");
        write(&single, "GGUF");
        let roots = roots(dir.path().join("no-hearth-folder")).with_user_folders(&[
            empty.clone(),
            missing.clone(),
            not_gguf.clone(),
            single.clone(),
            // The same folder twice is listed once.
            empty.clone(),
        ]);
        let found = discover(&roots, Some(16 << 30));
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found.iter().all(|m| m.source == ModelSource::UserFolder && !m.loadable));
        let note = |p: &Path| found.iter().find(|m| m.path == p).unwrap();
        for (path, says) in [(&empty, "no models in"), (&missing, "does not exist"), (&not_gguf, "is a file")]
        {
            let m = note(path);
            assert_eq!((m.format, m.engine), (None, None), "a note about a folder, not a model");
            assert!(
                m.problems[0].contains(says) && m.problems[0].contains(&path.display().to_string()),
                "{m:?}"
            );
        }
        let single = note(&single);
        assert_eq!((single.name.as_str(), single.format), ("single.gguf", Some(ModelFormat::Gguf)));
    }
}
