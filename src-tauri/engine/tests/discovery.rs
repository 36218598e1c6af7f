//! Model discovery against the layouts other apps leave on disk — an Ollama store, LM Studio's
//! models folders, the Hugging Face hub cache — built in temp dirs from real model files: the
//! shared tiny MLX fixtures and the Gemma 3 270M GGUF (`HEARTH_GEMMA_GGUF`, provisioned by
//! `scripts/fetch-gemma.sh`), symlinked rather than copied, plus cut-short copies of its first
//! 64 KiB for the damaged-file cases.
//!
//! What the inspection says is asserted only where every GGUF inspection agrees (format, file,
//! size, architecture, refusing a cut-short file); the rest is discovery's own: names, sources,
//! grouping of split parts, missing blobs and parts, memory fit.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hearth_engine::models::{discover, Fit, LocalModel, ModelEngine, ModelRoots, ModelSource};
use hearth_inference::ModelFormat;
use hearth_testkit::shared_fixtures::fixture_models_if_present;

const RAM: u64 = 16 << 30;

/// The Gemma GGUF and the MLX fixtures' folder, or `None` (skip, saying so) where this machine has
/// neither — unless `HEARTH_REQUIRE_MODELS` is set, which makes that a failure.
fn model_files() -> Option<(PathBuf, PathBuf)> {
    let gemma = std::env::var_os("HEARTH_GEMMA_GGUF").map(PathBuf::from).filter(|p| p.is_file());
    match (gemma, fixture_models_if_present()) {
        (Some(g), Some(f)) => Some((g, f)),
        _ => {
            assert!(
                std::env::var_os("HEARTH_REQUIRE_MODELS").is_none(),
                "HEARTH_GEMMA_GGUF (scripts/fetch-gemma.sh) and the shared fixtures are required"
            );
            println!("SKIP: set HEARTH_GEMMA_GGUF (scripts/fetch-gemma.sh) and HEARTH_SHARED_DIR");
            None
        }
    }
}

fn mkdirs(p: &Path) -> &Path {
    std::fs::create_dir_all(p).unwrap();
    p
}

/// The first 64 KiB of `gguf`: a download cut short inside the header.
fn write_cut_copy(gguf: &Path, to: &Path) {
    let bytes = std::fs::read(gguf).map(|b| b[..64 << 10].to_vec()).unwrap();
    std::fs::write(to, bytes).unwrap();
}

/// A well-formed GGUF (v3) with no tensors whose `general.architecture` no engine runs.
fn write_gguf_of_architecture(to: &Path, arch: &str) {
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    };
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes()); // key/value pairs
    string(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes()); // string
    string(&mut b, arch);
    std::fs::write(to, b).unwrap();
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn roots() -> ModelRoots {
    ModelRoots {
        hearth_models: PathBuf::from("/nonexistent/hearth/models"),
        hf_hub_cache: None,
        lm_studio: vec![],
        ollama: None,
        user_folders: vec![],
    }
}

fn get<'a>(found: &'a [LocalModel], name: &str) -> &'a LocalModel {
    found.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no {name} in {found:#?}"))
}

fn problems(m: &LocalModel) -> String {
    m.problems.join(" | ")
}

/// A GGUF entry both inspections accept: the Gemma file, named as found.
fn assert_gemma(m: &LocalModel, gemma: &Path) {
    assert!(m.loadable, "{m:#?}");
    assert_eq!((m.format, m.engine), (Some(ModelFormat::Gguf), Some(ModelEngine::Gguf)));
    assert_eq!(m.family.as_deref(), Some("gemma3"));
    assert_eq!(m.size_bytes, size(gemma));
    assert!(m.quantization.as_ref().is_some_and(|q| !q.mode.is_empty()), "{m:?}");
    assert!(m.context_length.unwrap() > 0);
    assert!(m.estimated_memory_bytes.unwrap() >= size(gemma));
    assert_eq!((m.fit, m.machine_ram_bytes), (Some(Fit::Fits), Some(RAM)));
    assert!(m.problems.is_empty(), "{m:?}");
}

#[test]
fn the_ollama_store_lists_models_by_their_ollama_names_and_explains_a_missing_blob() {
    let Some((gemma, _)) = model_files() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("ollama/models");
    let blobs = mkdirs(&store.join("blobs")).to_path_buf();
    let (have, gone) = ("a".repeat(64), "b".repeat(64));
    symlink(&gemma, blobs.join(format!("sha256-{have}"))).unwrap();
    let manifest = |path: &str, digest: &str, size: u64| {
        let file = store.join("manifests").join(path);
        mkdirs(file.parent().unwrap());
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": format!("sha256:{}", "c".repeat(64)), "size": 10},
            "layers": [
                {"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{digest}"), "size": size},
                {"mediaType": "application/vnd.ollama.image.template", "digest": format!("sha256:{}", "d".repeat(64)), "size": 358},
            ],
        });
        std::fs::write(&file, body.to_string()).unwrap();
        file
    };
    manifest("registry.ollama.ai/library/gemma3/270m", &have, size(&gemma));
    manifest("registry.ollama.ai/library/gemma3/latest", &have, size(&gemma));
    manifest("hf.co/unsloth/gemma-3-270m-it-GGUF/Q4_K_M", &have, size(&gemma));
    let llama = manifest("registry.ollama.ai/library/llama3.2/3b", &gone, 2_019_393_189);
    let broken = store.join("manifests/registry.ollama.ai/someone/broken/1b");
    mkdirs(broken.parent().unwrap());
    std::fs::write(&broken, "{not json").unwrap();

    let found = discover(&ModelRoots { ollama: Some(store.clone()), ..roots() }, Some(RAM));
    let names: Vec<_> = found.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "gemma3:270m",
            "gemma3:latest",
            "hf.co/unsloth/gemma-3-270m-it-GGUF:Q4_K_M",
            "llama3.2:3b",
            "someone/broken:1b"
        ]
    );
    assert!(found.iter().all(|m| m.source == ModelSource::Ollama));

    let blob = blobs.join(format!("sha256-{have}"));
    for name in ["gemma3:270m", "gemma3:latest", "hf.co/unsloth/gemma-3-270m-it-GGUF:Q4_K_M"] {
        let m = get(&found, name);
        assert_eq!(m.path, blob, "the blob is what the loader opens");
        assert_eq!(
            (m.format, m.engine, m.size_bytes),
            (Some(ModelFormat::Gguf), Some(ModelEngine::Gguf), size(&gemma))
        );
        // The picker says what the loader's inspection says of the blob, no more and no less.
        match hearth_inference::inspect_model(&blob) {
            Ok(info) => {
                assert_eq!(info.family, "gemma3");
                assert_gemma(m, &gemma);
            }
            Err(e) => {
                assert!(!m.loadable, "{m:#?}");
                let first_line = e.to_string().lines().next().unwrap().to_string();
                assert!(problems(m).contains(&first_line), "{m:#?}");
            }
        }
    }

    let missing = get(&found, "llama3.2:3b");
    assert!(!missing.loadable);
    assert_eq!((missing.path.clone(), missing.size_bytes), (blobs.join(format!("sha256-{gone}")), 0));
    let why = problems(missing);
    for part in
        [format!("sha256-{gone}"), llama.display().to_string(), "run `ollama pull llama3.2:3b`".into()]
    {
        assert!(why.contains(&part), "{part:?} in {why}");
    }

    let bad = get(&found, "someone/broken:1b");
    assert!(!bad.loadable);
    let why = problems(bad);
    assert!(
        why.contains(&broken.display().to_string()) && why.contains("ollama pull someone/broken:1b"),
        "{why}"
    );
}

#[test]
fn lm_studio_folders_list_models_by_publisher_and_repo_and_refuse_what_cannot_run() {
    let Some((gemma, fixtures)) = model_files() else { return };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let repo = mkdirs(&home.join(".lmstudio/models/lmstudio-community/gemma-3-270m-it-GGUF")).to_path_buf();
    symlink(&gemma, repo.join("gemma-3-270m-it-Q4_K_M.gguf")).unwrap();
    write_cut_copy(&gemma, &repo.join("gemma-3-270m-it-Q8_0.gguf"));
    // A vision projector beside a model is not a model.
    write_cut_copy(&gemma, &repo.join("mmproj-model-f16.gguf"));
    mkdirs(&home.join(".lmstudio/models/mlx-community"));
    symlink(fixtures.join("tiny-qwen2-4bit"), home.join(".lmstudio/models/mlx-community/tiny-qwen2-4bit"))
        .unwrap();
    let old = mkdirs(&home.join(".cache/lm-studio/models/someone/odd-GGUF")).to_path_buf();
    write_gguf_of_architecture(&old.join("xyzzy-Q4_0.gguf"), "xyzzy");

    let roots = ModelRoots {
        lm_studio: vec![home.join(".lmstudio/models"), home.join(".cache/lm-studio/models")],
        ..roots()
    };
    let found = discover(&roots, Some(RAM));
    let names: Vec<_> = found.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "lmstudio-community/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf",
            "lmstudio-community/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q8_0.gguf",
            "mlx-community/tiny-qwen2-4bit",
            "someone/odd-GGUF/xyzzy-Q4_0.gguf",
        ]
    );
    assert!(found.iter().all(|m| m.source == ModelSource::LmStudio));
    let q4 = get(&found, "lmstudio-community/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf");
    assert_eq!(q4.path, repo.join("gemma-3-270m-it-Q4_K_M.gguf"));
    assert_gemma(q4, &gemma);

    let cut = get(&found, "lmstudio-community/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q8_0.gguf");
    assert!(!cut.loadable, "a cut-short GGUF is never loadable: {cut:#?}");
    assert_eq!((cut.format, cut.size_bytes), (Some(ModelFormat::Gguf), 64 << 10));
    assert!(problems(cut).contains("gemma-3-270m-it-Q8_0.gguf"), "names the file: {cut:#?}");

    let qwen = get(&found, "mlx-community/tiny-qwen2-4bit");
    assert!(qwen.loadable, "{qwen:#?}");
    assert_eq!((qwen.format, qwen.family.as_deref()), (Some(ModelFormat::MlxDir), Some("qwen2")));

    let odd = get(&found, "someone/odd-GGUF/xyzzy-Q4_0.gguf");
    assert!(!odd.loadable, "{odd:#?}");
    let why = problems(odd);
    assert!(
        why.contains("xyzzy") && why.contains("xyzzy-Q4_0.gguf"),
        "names the architecture and the file: {why}"
    );

    // On a machine with less memory than the model needs it is listed, and refused, with numbers.
    let small = discover(&roots, Some(100 << 20));
    let q4 = get(&small, "lmstudio-community/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf");
    assert_eq!((q4.fit, q4.loadable), (Some(Fit::DoesNotFit), false));
    let why = problems(q4);
    assert!(
        why.starts_with("gemma-3-270m-it-Q4_K_M.gguf needs about") && why.contains("100.0 MiB of RAM"),
        "{why}"
    );
}

#[test]
fn the_hf_cache_lists_mlx_repos_and_ggufs_groups_split_parts_and_skips_what_is_not_a_model() {
    let Some((gemma, fixtures)) = model_files() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hf/hub");
    // The hub's layout: files in snapshots/<rev>/ are relative links into the repo's blobs/.
    let repo = |id: &str, files: &[(&str, Option<&Path>)]| -> PathBuf {
        let root = hub.join(format!("models--{}", id.replace('/', "--")));
        let snap = root.join("snapshots/0123abcd");
        mkdirs(&root.join("blobs"));
        mkdirs(&root.join("refs"));
        std::fs::write(root.join("refs/main"), "0123abcd").unwrap();
        mkdirs(&root.join("snapshots/older"));
        for (i, (file, target)) in files.iter().enumerate() {
            let blob = format!("{i:040x}");
            if let Some(t) = target {
                symlink(t, root.join("blobs").join(&blob)).unwrap();
            }
            let link = snap.join(file);
            mkdirs(link.parent().unwrap());
            let up = "../".repeat(file.matches('/').count() + 2);
            symlink(format!("{up}blobs/{blob}"), &link).unwrap();
        }
        snap
    };
    let llama = fixtures.join("tiny-llama-4bit");
    let llama_files: Vec<(String, PathBuf)> = std::fs::read_dir(&llama)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    let llama_snap = repo(
        "mlx-community/tiny-llama-4bit",
        &llama_files.iter().map(|(n, p)| (n.as_str(), Some(p.as_path()))).collect::<Vec<_>>(),
    );
    let cut = dir.path().join("cut.gguf");
    write_cut_copy(&gemma, &cut);
    let gguf_snap = repo(
        "unsloth/gemma-3-270m-it-GGUF",
        &[
            ("README.md", Some(&llama.join("config.json"))),
            ("gemma-3-270m-it-Q4_K_M.gguf", Some(&gemma)),
            ("Q8_0/gemma-3-270m-it-Q8_0.gguf", Some(&cut)),
            ("gemma-3-270m-it-F16.gguf", None),
            ("big/big-00001-of-00002.gguf", Some(&gemma)),
            ("odd-00002-of-00003.gguf", Some(&gemma)),
        ],
    );
    // A library fetched only a config (transformers does for every model it was asked about), and
    // datasets live beside models: neither is a model to list.
    repo("google-bert/bert-base-uncased", &[("config.json", Some(&llama.join("config.json")))]);
    mkdirs(&hub.join("datasets--someone--data/snapshots/0123abcd"));

    let found = discover(&ModelRoots { hf_hub_cache: Some(hub.clone()), ..roots() }, Some(RAM));
    let names: Vec<_> = found.iter().map(|m| m.name.as_str()).collect();
    let g = "unsloth/gemma-3-270m-it-GGUF";
    assert_eq!(
        names,
        [
            "mlx-community/tiny-llama-4bit".to_string(),
            format!("{g}/Q8_0/gemma-3-270m-it-Q8_0.gguf"),
            format!("{g}/big/big-00001-of-00002.gguf"),
            format!("{g}/gemma-3-270m-it-F16.gguf"),
            format!("{g}/gemma-3-270m-it-Q4_K_M.gguf"),
            format!("{g}/odd-00002-of-00003.gguf"),
        ]
    );
    assert!(found.iter().all(|m| m.source == ModelSource::HuggingFaceCache));

    let tiny = get(&found, "mlx-community/tiny-llama-4bit");
    assert!(tiny.loadable, "{tiny:#?}");
    assert_eq!(tiny.path, llama_snap, "refs/main's snapshot");
    assert_eq!((tiny.family.as_deref(), tiny.format), (Some("llama"), Some(ModelFormat::MlxDir)));
    assert_eq!(tiny.size_bytes, llama_files.iter().map(|(_, p)| size(p)).sum::<u64>());

    let q4 = get(&found, &format!("{g}/gemma-3-270m-it-Q4_K_M.gguf"));
    assert_eq!(q4.path, gguf_snap.join("gemma-3-270m-it-Q4_K_M.gguf"));
    assert_gemma(q4, &gemma);

    let q8 = get(&found, &format!("{g}/Q8_0/gemma-3-270m-it-Q8_0.gguf"));
    assert!(!q8.loadable && problems(q8).contains("gemma-3-270m-it-Q8_0.gguf"), "{q8:#?}");

    let f16 = get(&found, &format!("{g}/gemma-3-270m-it-F16.gguf"));
    assert!(!f16.loadable);
    let why = problems(f16);
    assert!(
        why.contains("gemma-3-270m-it-F16.gguf is a link to") && why.contains(&format!("hf download {g}")),
        "{why}"
    );

    let big = get(&found, &format!("{g}/big/big-00001-of-00002.gguf"));
    assert!(!big.loadable);
    assert_eq!(big.size_bytes, size(&gemma), "the parts that are there");
    let why = problems(big);
    assert!(why.contains("part 1 of a GGUF split into 2 files; part(s) 2 are not in"), "{why}");

    let odd = get(&found, &format!("{g}/odd-00002-of-00003.gguf"));
    assert!(!odd.loadable);
    let why = problems(odd);
    assert!(
        why.contains("part 2 of a GGUF split into 3 files, and part 1 (odd-00001-of-00003.gguf)"),
        "{why}"
    );
}
