//! Local model discovery: what could this machine serve?
//!
//! Two places are searched: the Hugging Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`; layout `models--<org>--<name>/snapshots/<rev>/…` with files that are
//! symlinks into `blobs/`) and Hearth's own folder (`<data_dir>/models`, one directory or `.gguf`
//! file per model). For each model we report what a user needs to pick one: family, quantisation,
//! size on disk, a memory estimate against this machine's RAM, and whether the engine can load it
//! (and if not, why).
//!
//! This reads `config.json` and GGUF headers itself rather than asking the inference crate, so that
//! listing models never loads one and never depends on which backends are compiled in.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use hearth_inference::ModelFormat;

/// Families (`config.json` `model_type`) the engine's safetensors path can load.
pub const SUPPORTED_FAMILIES: &[&str] = &["llama", "qwen2", "gemma3_text"];
/// GGUF `general.architecture` values the engine can load.
pub const SUPPORTED_GGUF_ARCHS: &[&str] = &["llama", "qwen2", "gemma3"];
/// Runtime overhead over the weights (activations, KV cache for a modest context, buffers).
const MEMORY_OVERHEAD: f64 = 1.2;
/// Share of physical RAM a model may take and still leave the machine usable.
const RAM_BUDGET: f64 = 0.75;

/// Where a model was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    HuggingFaceCache,
    HearthModels,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    /// Bits per weight (4 for the 4-bit layouts); `None` for GGUF types without one fixed width.
    pub bits: Option<u32>,
    pub group_size: Option<u32>,
    /// `affine` for mlx; the GGUF file type name (e.g. `Q4_K_M`) for GGUF.
    pub mode: String,
}

/// One model found on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalModel {
    /// `org/name` for the hub cache, the directory or file name for Hearth's folder.
    pub name: String,
    /// What to put in `model_path`.
    pub path: PathBuf,
    pub source: ModelSource,
    pub format: ModelFormat,
    /// `model_type` from config.json, or the GGUF architecture.
    pub family: Option<String>,
    /// `None`: not quantised (full precision).
    pub quantization: Option<Quantization>,
    pub size_bytes: u64,
    /// Rough memory needed to serve it: the weights plus runtime overhead.
    pub estimated_memory_bytes: u64,
    pub machine_ram_bytes: Option<u64>,
    /// The estimate fits in a comfortable share of this machine's RAM.
    pub fits_in_memory: bool,
    pub loadable: bool,
    /// Why not, when `loadable` is false (or why it may struggle, when it does not fit).
    pub problems: Vec<String>,
}

/// The roots searched, resolved from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoots {
    pub hf_hub_cache: Option<PathBuf>,
    pub hearth_models: PathBuf,
}

impl ModelRoots {
    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`; and `<data_dir>/models`.
    pub fn from_env(data_dir: &Path) -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let hf = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")));
        Self { hf_hub_cache: hf, hearth_models: data_dir.join("models") }
    }
}

/// Every model under `roots`, sorted by name. Unreadable entries are skipped, never fatal: this is a
/// listing for a settings window.
pub fn discover(roots: &ModelRoots, ram_bytes: Option<u64>) -> Vec<LocalModel> {
    let mut found = Vec::new();
    if let Some(hub) = &roots.hf_hub_cache {
        found.extend(scan_hf_cache(hub, ram_bytes));
    }
    found.extend(scan_hearth_folder(&roots.hearth_models, ram_bytes));
    found.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    found
}

fn scan_hf_cache(hub: &Path, ram: Option<u64>) -> Vec<LocalModel> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(hub) else { return out };
    for entry in entries.flatten() {
        let dir_name = entry.file_name().to_string_lossy().to_string();
        let Some(repo) = dir_name.strip_prefix("models--") else { continue };
        // `models--org--name`: the repo id's `/` is spelled `--`.
        let name = repo.replacen("--", "/", 1);
        let Some(snapshot) = pick_snapshot(&entry.path()) else { continue };
        out.extend(inspect(&snapshot, name, ModelSource::HuggingFaceCache, ram));
    }
    out
}

/// The snapshot `refs/main` points at, else the most recently modified one.
fn pick_snapshot(repo_dir: &Path) -> Option<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo_dir.join("refs/main")) {
        let dir = snapshots.join(rev.trim());
        if dir.is_dir() {
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

fn scan_hearth_folder(root: &Path, ram: Option<u64>) -> Vec<LocalModel> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        out.extend(inspect(&path, name, ModelSource::HearthModels, ram));
    }
    out
}

/// A model directory (safetensors, or holding GGUF files) or a single GGUF file.
fn inspect(path: &Path, name: String, source: ModelSource, ram: Option<u64>) -> Vec<LocalModel> {
    if path.is_file() {
        return if is_gguf(path) { vec![gguf_model(path, name, source, ram)] } else { vec![] };
    }
    if !path.is_dir() {
        return vec![];
    }
    let mut out = Vec::new();
    if path.join("config.json").is_file() {
        out.push(safetensors_model(path, name.clone(), source, ram));
    }
    // GGUF files beside (or instead of) a safetensors layout: each is its own model.
    let mut ggufs: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file() && is_gguf(p)).collect())
        .unwrap_or_default();
    ggufs.sort();
    for file in ggufs {
        let file_name = file.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
        out.push(gguf_model(&file, format!("{name}/{file_name}"), source, ram));
    }
    out
}

fn is_gguf(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// The subset of `config.json` we read.
#[derive(Debug, Default, Deserialize)]
struct ConfigJson {
    model_type: Option<String>,
    quantization: Option<QuantJson>,
    quantization_config: Option<QuantJson>,
}

#[derive(Debug, Default, Deserialize)]
struct QuantJson {
    bits: Option<u32>,
    group_size: Option<u32>,
    mode: Option<String>,
    quant_method: Option<String>,
}

fn safetensors_model(dir: &Path, name: String, source: ModelSource, ram: Option<u64>) -> LocalModel {
    let mut problems = Vec::new();
    let config: ConfigJson = match std::fs::read(dir.join("config.json")) {
        Ok(raw) => serde_json::from_slice(&raw).unwrap_or_else(|e| {
            problems.push(format!("config.json does not parse: {e}"));
            ConfigJson::default()
        }),
        Err(e) => {
            problems.push(format!("config.json cannot be read: {e}"));
            ConfigJson::default()
        }
    };
    let quantization = config.quantization.or(config.quantization_config).map(|q| Quantization {
        bits: q.bits,
        group_size: q.group_size,
        // mlx writes `mode` only since it grew other modes; without one it is affine.
        mode: q.mode.or(q.quant_method).unwrap_or_else(|| "affine".into()),
    });
    let family = config.model_type;
    match family.as_deref() {
        Some(f) if SUPPORTED_FAMILIES.contains(&f) => {}
        Some(f) => problems.push(format!(
            "model family {f} is not supported (supported: {})",
            SUPPORTED_FAMILIES.join(", ")
        )),
        None => problems.push("config.json has no model_type".into()),
    }
    match &quantization {
        Some(q) if q.bits == Some(4) && q.mode == "affine" => {}
        Some(q) => problems.push(format!(
            "{}-bit {} quantization is not supported (needs 4-bit affine)",
            q.bits.map_or("?".to_string(), |b| b.to_string()),
            q.mode
        )),
        None => problems.push("not quantized; the engine loads 4-bit affine weights".into()),
    }
    let files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    let weights: u64 = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| file_size(p))
        .sum();
    if weights == 0 {
        problems.push("no *.safetensors weights".into());
    }
    if !dir.join("tokenizer.json").is_file() {
        problems.push("no tokenizer.json".into());
    }
    let size = files.iter().filter(|p| !is_gguf(p)).map(|p| file_size(p)).sum();
    finish(
        LocalModel {
            name,
            path: dir.to_path_buf(),
            source,
            format: ModelFormat::MlxDir,
            family,
            quantization,
            size_bytes: size,
            estimated_memory_bytes: 0,
            machine_ram_bytes: ram,
            fits_in_memory: false,
            loadable: problems.is_empty(),
            problems,
        },
        weights,
    )
}

fn gguf_model(file: &Path, name: String, source: ModelSource, ram: Option<u64>) -> LocalModel {
    let mut problems = Vec::new();
    let meta = match read_gguf_meta(file) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("not a readable GGUF file: {e}"));
            GgufMeta::default()
        }
    };
    match meta.architecture.as_deref() {
        Some(a) if SUPPORTED_GGUF_ARCHS.contains(&a) => {}
        Some(a) => problems.push(format!(
            "GGUF architecture {a} is not supported (supported: {})",
            SUPPORTED_GGUF_ARCHS.join(", ")
        )),
        None if problems.is_empty() => problems.push("GGUF file names no general.architecture".into()),
        None => {}
    }
    let size = file_size(file);
    let quantization = meta.file_type.map(|t| Quantization {
        bits: gguf_file_type_bits(t),
        group_size: None,
        mode: gguf_file_type_name(t),
    });
    finish(
        LocalModel {
            name,
            path: file.to_path_buf(),
            source,
            format: ModelFormat::Gguf,
            family: meta.architecture,
            quantization,
            size_bytes: size,
            estimated_memory_bytes: 0,
            machine_ram_bytes: ram,
            fits_in_memory: false,
            loadable: problems.is_empty(),
            problems,
        },
        size,
    )
}

fn finish(mut m: LocalModel, weight_bytes: u64) -> LocalModel {
    m.estimated_memory_bytes = (weight_bytes as f64 * MEMORY_OVERHEAD).ceil() as u64;
    m.fits_in_memory = match m.machine_ram_bytes {
        Some(ram) => (m.estimated_memory_bytes as f64) <= ram as f64 * RAM_BUDGET,
        None => true,
    };
    if !m.fits_in_memory {
        m.problems.push(format!(
            "needs about {:.1} GiB but this machine has {:.1} GiB of RAM",
            gib(m.estimated_memory_bytes),
            gib(m.machine_ram_bytes.unwrap_or(0))
        ));
    }
    m
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

/// Size of the file a path (or symlink, as in the hub cache) points at.
fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| if m.is_file() { m.len() } else { 0 }).unwrap_or(0)
}

#[derive(Debug, Default)]
struct GgufMeta {
    architecture: Option<String>,
    file_type: Option<u32>,
}

/// Reads just the key/value header of a GGUF file (v2/v3) for `general.architecture` and
/// `general.file_type`; stops as soon as both are known. Values we do not need are skipped.
fn read_gguf_meta(path: &Path) -> std::io::Result<GgufMeta> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)?;
    if &magic != b"GGUF" {
        return Err(bad("bad magic"));
    }
    let version = read_u32(&mut r)?;
    if !(2..=3).contains(&version) {
        return Err(bad(&format!("unsupported GGUF version {version}")));
    }
    let _tensors = read_u64(&mut r)?;
    let kv_count = read_u64(&mut r)?;
    let mut meta = GgufMeta::default();
    for _ in 0..kv_count.min(1 << 20) {
        let key = read_string(&mut r)?;
        let ty = read_u32(&mut r)?;
        match (key.as_str(), ty) {
            ("general.architecture", 8) => meta.architecture = Some(read_string(&mut r)?),
            ("general.file_type", 4) => meta.file_type = Some(read_u32(&mut r)?),
            _ => skip_value(&mut r, ty, 0)?,
        }
        if meta.architecture.is_some() && meta.file_type.is_some() {
            break;
        }
    }
    Ok(meta)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_string(r: &mut impl Read) -> std::io::Result<String> {
    let len = read_u64(r)?;
    if len > 1 << 20 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "string too long"));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

fn skip_value(r: &mut impl Read, ty: u32, depth: u32) -> std::io::Result<()> {
    let fixed = |n: u64, r: &mut dyn Read| std::io::copy(&mut r.take(n), &mut std::io::sink()).map(|_| ());
    match ty {
        0 | 1 | 7 => fixed(1, r),
        2 | 3 => fixed(2, r),
        4..=6 => fixed(4, r),
        10..=12 => fixed(8, r),
        8 => {
            let len = read_u64(r)?;
            fixed(len, r)
        }
        9 if depth < 4 => {
            let inner = read_u32(r)?;
            let n = read_u64(r)?;
            let width = match inner {
                0 | 1 | 7 => Some(1),
                2 | 3 => Some(2),
                4..=6 => Some(4),
                10..=12 => Some(8),
                _ => None,
            };
            match width {
                Some(w) => fixed(n.saturating_mul(w), r),
                None => (0..n).try_for_each(|_| skip_value(r, inner, depth + 1)),
            }
        }
        _ => {
            Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unknown GGUF value type {ty}")))
        }
    }
}

/// llama.cpp's `general.file_type` values for the common quantisations.
fn gguf_file_type_name(t: u32) -> String {
    let known: BTreeMap<u32, &str> = [
        (0, "F32"),
        (1, "F16"),
        (2, "Q4_0"),
        (3, "Q4_1"),
        (7, "Q8_0"),
        (8, "Q5_0"),
        (9, "Q5_1"),
        (10, "Q2_K"),
        (11, "Q3_K_S"),
        (12, "Q3_K_M"),
        (13, "Q3_K_L"),
        (14, "Q4_K_S"),
        (15, "Q4_K_M"),
        (16, "Q5_K_S"),
        (17, "Q5_K_M"),
        (18, "Q6_K"),
        (32, "BF16"),
    ]
    .into_iter()
    .collect();
    known.get(&t).map_or_else(|| format!("gguf_type_{t}"), |s| s.to_string())
}

fn gguf_file_type_bits(t: u32) -> Option<u32> {
    match t {
        0 => Some(32),
        1 | 32 => Some(16),
        2 | 3 | 14 | 15 => Some(4),
        7 => Some(8),
        8 | 9 | 16 | 17 => Some(5),
        10 => Some(2),
        11..=13 => Some(3),
        18 => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn gguf_bytes(arch: &str, file_type: u32) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes()); // tensors
        b.extend(3u64.to_le_bytes()); // kv pairs
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend((t.len() as u64).to_le_bytes());
            b.extend(t.as_bytes());
        };
        // An array first, to prove skipping works.
        s(&mut b, "tokenizer.ggml.scores");
        b.extend(9u32.to_le_bytes());
        b.extend(6u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend([0u8; 8]);
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, arch);
        s(&mut b, "general.file_type");
        b.extend(4u32.to_le_bytes());
        b.extend(file_type.to_le_bytes());
        b
    }

    #[test]
    fn unsupported_layouts_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        write(
            &models.join("mistral-8bit/config.json"),
            r#"{"model_type":"mistral","quantization":{"bits":8,"group_size":64}}"#,
        );
        write(&models.join("mistral-8bit/model.safetensors"), "x");
        write(&models.join("mistral-8bit/tokenizer.json"), "{}");
        std::fs::write(models.join("g.gguf"), gguf_bytes("gemma3", 15)).unwrap();
        std::fs::write(models.join("p.gguf"), gguf_bytes("phi3", 7)).unwrap();
        write(&models.join("notes.txt"), "not a model");
        let roots = ModelRoots { hf_hub_cache: None, hearth_models: models };
        let found = discover(&roots, Some(16 << 30));
        let names: Vec<_> = found.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["g.gguf", "mistral-8bit", "p.gguf"]);
        let m = &found[1];
        assert!(!m.loadable);
        assert_eq!(m.problems.len(), 2, "{:?}", m.problems);
        assert!(m.problems[0].contains("family mistral is not supported"));
        assert!(m.problems[1].contains("8-bit affine quantization is not supported"));
        let g = &found[0];
        assert!(g.loadable, "{:?}", g.problems);
        assert_eq!(g.family.as_deref(), Some("gemma3"));
        assert_eq!(g.quantization.as_ref().unwrap().mode, "Q4_K_M");
        assert_eq!(g.quantization.as_ref().unwrap().bits, Some(4));
        assert!(!found[2].loadable);
        assert!(found[2].problems[0].contains("phi3"));
    }

    #[test]
    fn too_big_for_ram_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("models/big");
        write(&m.join("config.json"), r#"{"model_type":"llama","quantization":{"bits":4,"group_size":64}}"#);
        write(&m.join("tokenizer.json"), "{}");
        std::fs::write(m.join("model.safetensors"), vec![0u8; 1000]).unwrap();
        let roots = ModelRoots { hf_hub_cache: None, hearth_models: dir.path().join("models") };
        let found = discover(&roots, Some(1000));
        assert_eq!(found[0].estimated_memory_bytes, 1200);
        assert!(!found[0].fits_in_memory);
        assert!(found[0].loadable, "loadable, just too big: {:?}", found[0].problems);
        assert!(found[0].problems[0].contains("needs about"));
    }
}
