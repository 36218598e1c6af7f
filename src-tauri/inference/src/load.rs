//! Choosing and loading a backend: [`load_engine`] turns an [`EngineSpec`] into a running
//! [`Engine`]; [`inspect_model`] reads what a model is without loading it (for discovery and the
//! UI's model picker).

use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(feature = "cpu")]
pub use crate::cpu::{inspect_gguf, load_cpu, CpuEngine};
use crate::error::LoadError;
use crate::job::{Engine, ModelDescriptor};
use crate::loopback::LoopbackEngine;
use crate::model_dir::{dir_name, ModelDir};
use crate::scripted::ScriptedEngine;

/// Which backend runs the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineKind {
    /// candle on the CPU (any OS): model directories and GGUF files.
    Cpu,
    /// mlx-rs on Apple Silicon (macOS; other OSes only with the `mlx` feature, on MLX's CPU build).
    Mlx,
    /// A local OpenAI-compatible server at `base_url` (e.g. `http://127.0.0.1:8080/v1`).
    /// `upstream_model` is the server's name for the model; by default the first it lists.
    Loopback { base_url: String, upstream_model: Option<String> },
    /// The deterministic test double.
    Scripted,
}

impl EngineKind {
    pub fn name(&self) -> &'static str {
        match self {
            EngineKind::Cpu => "cpu",
            EngineKind::Mlx => "mlx",
            EngineKind::Loopback { .. } => "loopback",
            EngineKind::Scripted => "scripted",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineSpec {
    /// A model directory, or a `.gguf` file (cpu). Ignored by loopback/scripted except for naming.
    pub model_path: PathBuf,
    pub engine: EngineKind,
    /// The id announced to buyers; defaults to the directory (or file stem) name.
    pub model_id: Option<String>,
    /// Caps prompt + completion tokens below the model's own limit.
    pub max_context: Option<usize>,
    /// Where a GGUF model's tokenizer.json(.xz)/tokenizer_config.json are; defaults to its folder.
    pub tokenizer_dir: Option<PathBuf>,
}

impl EngineSpec {
    pub fn new(model_path: impl Into<PathBuf>, engine: EngineKind) -> Self {
        Self { model_path: model_path.into(), engine, model_id: None, max_context: None, tokenizer_dir: None }
    }

    pub(crate) fn id_or(&self, default: impl FnOnce() -> String) -> String {
        self.model_id.clone().unwrap_or_else(default)
    }
}

/// Loads the model and returns a ready engine. Slow (reads all weights): call it off the async
/// runtime.
pub fn load_engine(spec: &EngineSpec) -> Result<Arc<dyn Engine>, LoadError> {
    match &spec.engine {
        EngineKind::Scripted => {
            let mut e = ScriptedEngine::new(spec.id_or(|| dir_name(&spec.model_path)));
            if let Some(c) = spec.max_context {
                e = e.with_max_context(c as u64);
            }
            Ok(Arc::new(e))
        }
        EngineKind::Cpu => Ok(load_cpu(spec)?),
        EngineKind::Mlx => load_mlx(spec),
        EngineKind::Loopback { base_url, upstream_model } => {
            let upstream = match upstream_model {
                Some(m) => m.clone(),
                None => LoopbackEngine::list_models(base_url)
                    .map_err(|e| LoadError::EngineUnavailable {
                        engine: "loopback".into(),
                        reason: e.to_string(),
                    })?
                    .into_iter()
                    .next()
                    .ok_or_else(|| LoadError::EngineUnavailable {
                        engine: "loopback".into(),
                        reason: format!("{base_url}/models lists no model; name one explicitly"),
                    })?,
            };
            let model_id = spec.id_or(|| {
                if spec.model_path.as_os_str().is_empty() {
                    upstream.rsplit('/').next().unwrap_or(&upstream).to_string()
                } else {
                    dir_name(&spec.model_path)
                }
            });
            let descriptor = ModelDescriptor {
                model_id,
                params_b: 0.0,
                max_context_tokens: spec.max_context.unwrap_or(8192) as u64,
                engine: "loopback".into(),
                throughput_tps_estimate: 20.0,
            };
            Ok(Arc::new(LoopbackEngine::new(base_url, &upstream, descriptor)))
        }
    }
}

/// Stand-ins for a build without candle (the `cpu` feature off, as in the fuzz targets): asking for
/// the cpu engine or a GGUF file says so instead of failing to compile or misreading the file.
#[cfg(not(feature = "cpu"))]
mod no_cpu {
    use super::*;

    pub(super) fn load_cpu(_spec: &EngineSpec) -> Result<Arc<dyn Engine>, LoadError> {
        Err(LoadError::BackendNotBuilt("cpu"))
    }

    pub(super) fn inspect_gguf(_path: &Path) -> Result<ModelInfo, LoadError> {
        Err(LoadError::BackendNotBuilt("cpu"))
    }
}
#[cfg(not(feature = "cpu"))]
use no_cpu::{inspect_gguf, load_cpu};

#[cfg(any(target_os = "macos", feature = "mlx"))]
fn load_mlx(spec: &EngineSpec) -> Result<Arc<dyn Engine>, LoadError> {
    crate::mlx::load(spec)
}

#[cfg(not(any(target_os = "macos", feature = "mlx")))]
fn load_mlx(_spec: &EngineSpec) -> Result<Arc<dyn Engine>, LoadError> {
    Err(LoadError::EngineUnavailable {
        engine: "mlx".into(),
        reason: "MLX runs only on macOS with Apple Silicon; use the cpu engine here".into(),
    })
}

pub(crate) fn is_gguf(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Model storage format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFormat {
    /// mlx-community directory (safetensors).
    MlxDir,
    Gguf,
}

/// What a model is, read without loading its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub model_id: String,
    pub path: PathBuf,
    pub format: ModelFormat,
    /// `llama`, `qwen2`, `gemma3_text`, or the GGUF architecture.
    pub family: String,
    /// MLX affine bits and group size, when quantized that way.
    pub quant_bits: Option<u32>,
    pub quant_group_size: Option<usize>,
    /// GGUF's dominant tensor type (`Q4K`, …).
    pub gguf_type: Option<String>,
    pub params: u64,
    pub size_on_disk: u64,
    pub max_context: usize,
    /// KV-cache bytes per token of context at f32 (halve for f16 caches).
    pub kv_bytes_per_token: u64,
    pub has_chat_template: bool,
    /// Whether the cpu engine can run it (and if not, why).
    pub cpu_supported: Result<(), String>,
}

impl ModelInfo {
    /// Memory the given engine needs for the weights plus a KV cache of `context` tokens.
    pub fn estimated_memory(&self, engine: &EngineKind, context: usize) -> u64 {
        let kv = self.kv_bytes_per_token * context as u64;
        match (engine, &self.format) {
            // The cpu engine dequantizes MLX weights to f32.
            (EngineKind::Cpu, ModelFormat::MlxDir) => self.params * 4 + kv,
            (EngineKind::Cpu, ModelFormat::Gguf) => self.size_on_disk + kv,
            (EngineKind::Mlx, _) => self.size_on_disk + kv / 2,
            _ => 0,
        }
    }
}

/// Reads a model directory's or GGUF file's metadata.
pub fn inspect_model(path: &Path) -> Result<ModelInfo, LoadError> {
    if is_gguf(path) {
        return inspect_gguf(path);
    }
    let dir = ModelDir::open(path)?;
    let c = &dir.config;
    Ok(ModelInfo {
        model_id: dir.name(),
        path: path.to_path_buf(),
        format: ModelFormat::MlxDir,
        family: c.model_type.clone(),
        quant_bits: c.quantization.as_ref().map(|q| q.bits),
        quant_group_size: c.quantization.as_ref().map(|q| q.group_size),
        gguf_type: None,
        params: c.params_estimate(),
        size_on_disk: dir.weights_size(),
        max_context: c.max_position_embeddings,
        kv_bytes_per_token: (2 * c.num_layers * c.num_kv_heads * c.head_dim * 4) as u64,
        has_chat_template: dir.chat_template.is_some(),
        cpu_supported: dir.check_supported("cpu").map_err(|e| e.to_string()),
    })
}
