//! Choosing and loading a backend: [`load_engine`] turns an [`EngineSpec`] into a running
//! [`Engine`]; [`inspect_model`] reads what a model is without loading it (for discovery and the
//! UI's model picker).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cpu;
use crate::error::LoadError;
use crate::generate::{GenerateOptions, LocalEngine, DEFAULT_PREFILL_CHUNK};
use crate::job::{Engine, ModelDescriptor};
use crate::loopback::LoopbackEngine;
use crate::model_dir::{dir_name, ModelDir};
use crate::scripted::ScriptedEngine;
use crate::text::{read_tokenizer_file, TextCodec};

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

    fn id_or(&self, default: impl FnOnce() -> String) -> String {
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

/// The CPU engine, concretely typed (tests and the bench reach its runner).
pub type CpuEngine = LocalEngine<cpu::decoder::Decoder>;

/// Loads a model directory or GGUF file on the CPU backend.
pub fn load_cpu(spec: &EngineSpec) -> Result<Arc<CpuEngine>, LoadError> {
    let path = &spec.model_path;
    if is_gguf(path) {
        let model = cpu::gguf::load(path)?;
        let tok_dir = cpu::gguf::tokenizer_dir(path, spec.tokenizer_dir.as_deref());
        let codec = codec_from_dir(&tok_dir, &model.info.architecture, model.info.eos_token_id)?;
        let max_context =
            spec.max_context.unwrap_or(model.info.context_length).min(model.info.context_length);
        let descriptor = ModelDescriptor {
            model_id: spec.id_or(|| dir_name(path)),
            params_b: model.info.params as f64 / 1e9,
            max_context_tokens: max_context as u64,
            engine: "cpu".into(),
            throughput_tps_estimate: cpu_tps_estimate(model.info.params, 0.6),
        };
        let options = GenerateOptions { prefill_chunk: DEFAULT_PREFILL_CHUNK, max_context };
        return Ok(Arc::new(LocalEngine::new(descriptor, codec, model.decoder, options)));
    }
    let dir = ModelDir::open(path)?;
    dir.check_supported("cpu")?;
    let codec = TextCodec::from_model_dir(&dir)?;
    let decoder = cpu::load_mlx_dir(&dir)?;
    let model_max = dir.config.max_position_embeddings;
    let max_context = spec.max_context.unwrap_or(model_max).min(model_max);
    let params = dir.config.params_estimate();
    let descriptor = ModelDescriptor {
        model_id: spec.id_or(|| dir.name()),
        params_b: params as f64 / 1e9,
        max_context_tokens: max_context as u64,
        engine: "cpu".into(),
        throughput_tps_estimate: cpu_tps_estimate(params, 4.0),
    };
    let options = GenerateOptions { prefill_chunk: DEFAULT_PREFILL_CHUNK, max_context };
    Ok(Arc::new(LocalEngine::new(descriptor, codec, decoder, options)))
}

fn is_gguf(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Decode is memory-bound: ~10 GB/s of effective bandwidth over the weights' bytes per token.
fn cpu_tps_estimate(params: u64, bytes_per_param: f64) -> f64 {
    (10e9 / (params.max(1) as f64 * bytes_per_param)).clamp(0.1, 1000.0)
}

/// A tokenizer directory that is not a full model directory (GGUF companions).
fn codec_from_dir(dir: &Path, model_type: &str, eos: Option<u32>) -> Result<TextCodec, LoadError> {
    let plain = dir.join("tokenizer.json");
    let xz = dir.join("tokenizer.json.xz");
    let tok_path = if plain.is_file() {
        plain
    } else if xz.is_file() {
        xz
    } else {
        return Err(LoadError::MissingFile {
            path: plain,
            hint: "a GGUF model needs its Hugging Face tokenizer.json (or tokenizer.json.xz) and tokenizer_config.json beside it, or in the spec's tokenizer_dir".into(),
        });
    };
    let bytes = read_tokenizer_file(&tok_path)?;
    let tc_path = dir.join("tokenizer_config.json");
    let config = match std::fs::read_to_string(&tc_path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| LoadError::invalid(&tc_path, e))?,
        Err(_) => serde_json::Value::Null,
    };
    let template = std::fs::read_to_string(dir.join("chat_template.jinja")).ok();
    let family = if model_type == "gemma3" { "gemma3_text" } else { model_type };
    TextCodec::from_parts(
        &bytes,
        &tok_path,
        &config,
        template.as_deref(),
        family,
        &eos.into_iter().collect::<Vec<_>>(),
    )
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
        let info = cpu::gguf::inspect(path)?;
        let size = std::fs::metadata(path).map_err(|e| LoadError::io(path, e))?.len();
        let tok_dir = cpu::gguf::tokenizer_dir(path, None);
        return Ok(ModelInfo {
            model_id: dir_name(path),
            path: path.to_path_buf(),
            format: ModelFormat::Gguf,
            cpu_supported: if cpu::gguf::SUPPORTED_GGUF_ARCHS.contains(&info.architecture.as_str()) {
                Ok(())
            } else {
                Err(format!("GGUF architecture `{}` is not supported", info.architecture))
            },
            family: info.architecture,
            quant_bits: None,
            quant_group_size: None,
            gguf_type: Some(info.main_dtype),
            params: info.params,
            size_on_disk: size,
            max_context: info.context_length,
            kv_bytes_per_token: 0,
            has_chat_template: tok_dir.join("tokenizer_config.json").is_file(),
        });
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
