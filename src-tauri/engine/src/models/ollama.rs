//! Ollama's store (`~/.ollama/models` or `$OLLAMA_MODELS`): JSON manifests at
//! `manifests/<registry>/<namespace>/<model>/<tag>`, whose layer of media type
//! `application/vnd.ollama.image.model` names a GGUF blob at `blobs/sha256-<hex>`. Each manifest is
//! one model, named as `ollama list` names it (`llama3.2:3b`; namespaces other than `library`, and
//! registries other than Ollama's, are kept: `hf.co/org/repo:Q4_K_M`); its path is the blob.

use std::path::{Path, PathBuf};

use hearth_inference::ModelFormat;
use serde::Deserialize;

use super::found::{Found, ModelSource};
use super::walk::file_size;

const MODEL_LAYER: &str = "application/vnd.ollama.image.model";
const ADAPTER_LAYER: &str = "application/vnd.ollama.image.adapter";
const DEFAULT_REGISTRY: &str = "registry.ollama.ai";
/// `<registry>/<namespace>/<model>/<tag>`; hosts such as `hf.co` use the same depth.
const MANIFEST_DEPTH: usize = 4;

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Debug, Deserialize)]
struct Layer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: Option<u64>,
}

pub(super) fn scan(store: &Path) -> Vec<Found> {
    let manifests = store.join("manifests");
    let mut files = Vec::new();
    collect_manifests(&manifests, &mut Vec::new(), &mut files);
    files.sort();
    files.into_iter().map(|(parts, path)| model(store, &parts, &path)).collect()
}

/// Every file exactly [`MANIFEST_DEPTH`] levels below `dir`, with its path components.
fn collect_manifests(dir: &Path, parts: &mut Vec<String>, out: &mut Vec<(Vec<String>, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        parts.push(name);
        if parts.len() == MANIFEST_DEPTH {
            if path.is_file() {
                out.push((parts.clone(), path));
            }
        } else if path.is_dir() {
            collect_manifests(&path, parts, out);
        }
        parts.pop();
    }
}

/// `registry.ollama.ai/library/llama3.2/3b` → `llama3.2:3b`, the name `ollama run` takes.
fn ollama_name(parts: &[String]) -> String {
    let (repo, tag) = parts.split_at(parts.len() - 1);
    let repo = match repo {
        [registry, ns, model] if registry == DEFAULT_REGISTRY && ns == "library" => model.clone(),
        [registry, rest @ ..] if registry == DEFAULT_REGISTRY => rest.join("/"),
        all => all.join("/"),
    };
    format!("{repo}:{}", tag[0])
}

fn model(store: &Path, parts: &[String], manifest_path: &Path) -> Found {
    let name = ollama_name(parts);
    let pull = format!("run `ollama pull {name}` to download it again");
    let blobs = store.join("blobs");
    let broken = |path: PathBuf, problem: String| {
        Found::model(name.clone(), path, ModelSource::Ollama, ModelFormat::Gguf, 0, pull.clone())
            .with_problem(problem)
    };
    let manifest: Manifest = match std::fs::read(manifest_path).map_err(|e| e.to_string()).and_then(|raw| {
        serde_json::from_slice(&raw).map_err(|e| format!("is not a manifest Hearth understands: {e}"))
    }) {
        Ok(m) => m,
        Err(e) => {
            let path = manifest_path.to_path_buf();
            return broken(path, format!("Ollama manifest {} {e}; {pull}", manifest_path.display()));
        }
    };
    let Some(layer) = manifest.layers.iter().find(|l| l.media_type == MODEL_LAYER) else {
        return broken(
            manifest_path.to_path_buf(),
            format!(
                "Ollama manifest {} lists no model weights (no layer of type {MODEL_LAYER}); {pull}",
                manifest_path.display()
            ),
        );
    };
    let Some(blob_name) = blob_file_name(&layer.digest) else {
        return broken(
            manifest_path.to_path_buf(),
            format!(
                "Ollama manifest {} names a blob `{}` that is not a sha256 digest; {pull}",
                manifest_path.display(),
                layer.digest
            ),
        );
    };
    let blob = blobs.join(&blob_name);
    if !blob.is_file() {
        return broken(
            blob,
            format!(
                "Ollama model {name}: its weights {blob_name} are missing from {} (manifest {}); {pull}",
                blobs.display(),
                manifest_path.display()
            ),
        );
    }
    let size = file_size(&blob);
    let mut found =
        Found::model(name.clone(), blob, ModelSource::Ollama, ModelFormat::Gguf, size, pull.clone());
    if let Some(expected) = layer.size.filter(|&s| s != size) {
        found.problems.push(format!(
            "Ollama model {name}: blob {blob_name} is {size} bytes but its manifest says {expected}: it is \
             incomplete or damaged; {pull}"
        ));
    }
    if manifest.layers.iter().any(|l| l.media_type == ADAPTER_LAYER) {
        found.warnings.push(format!(
            "Ollama model {name} adds a LoRA adapter, which Hearth does not apply: it serves the base model"
        ));
    }
    found
}

/// `sha256:<64 hex>` → `sha256-<64 hex>`, Ollama's blob file name. Anything else is refused, so a
/// manifest cannot point outside `blobs/`.
fn blob_file_name(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &str) -> Vec<String> {
        p.split('/').map(str::to_string).collect()
    }

    #[test]
    fn names_are_the_ones_ollama_lists() {
        assert_eq!(ollama_name(&parts("registry.ollama.ai/library/llama3.2/3b")), "llama3.2:3b");
        assert_eq!(ollama_name(&parts("registry.ollama.ai/library/qwen2.5/latest")), "qwen2.5:latest");
        assert_eq!(ollama_name(&parts("registry.ollama.ai/jmorgan/tiny/q4")), "jmorgan/tiny:q4");
        assert_eq!(
            ollama_name(&parts("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF/Q4_K_M")),
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
        );
    }

    #[test]
    fn only_sha256_digests_name_blobs() {
        let hex = "a".repeat(64);
        assert_eq!(blob_file_name(&format!("sha256:{hex}")), Some(format!("sha256-{hex}")));
        assert_eq!(blob_file_name("sha256:../../etc/passwd"), None);
        assert_eq!(blob_file_name(&format!("md5:{hex}")), None);
        assert_eq!(blob_file_name("sha256:abc"), None);
    }
}
