//! Choosing and loading a backend: [`load_engine`] turns a [`LoadSpec`] into a running
//! [`Engine`]; [`inspect_model`] reads what a model is ([`ModelInfo`]) without loading it (for
//! discovery and the UI's model picker).

use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "cpu")]
pub use crate::cpu::{load_cpu, CpuEngine};
use crate::error::LoadError;
#[cfg(feature = "gguf")]
pub use crate::gguf::{load as load_gguf, GgufEngine};
use crate::job::{Engine, ModelDescriptor};
use crate::loopback::LoopbackEngine;
use crate::model_dir::{dir_name, ModelDir};
use crate::model_info::{is_gguf, ModelFormat, ModelInfo};
use crate::scripted::ScriptedEngine;
use crate::spec::{Backend, LoadSpec};

/// Loads the model and returns a ready engine. Slow (reads all weights): call it off the async
/// runtime.
pub fn load_engine(spec: &LoadSpec) -> Result<Arc<dyn Engine>, LoadError> {
    // A GGUF file runs on llama.cpp whichever local engine was named: candle's GGUF decoding is
    // gone, and mlx reads only model directories.
    if matches!(spec.backend, Backend::Cpu | Backend::Mlx) && is_gguf(&spec.model_path) {
        return Ok(load_gguf(spec)?);
    }
    match &spec.backend {
        Backend::Scripted => {
            // Canned output, but a model path named is a path that must be there: otherwise a
            // scripted provider would "load" any typo and hide what a real engine would refuse.
            if !spec.model_path.as_os_str().is_empty() && !spec.model_path.exists() {
                return Err(LoadError::NotFound(spec.model_path.clone()));
            }
            let mut e = ScriptedEngine::new(spec.id_or(|| dir_name(&spec.model_path)));
            if let Some(c) = spec.max_context {
                e = e.with_max_context(c as u64);
            }
            Ok(Arc::new(e))
        }
        Backend::Cpu => Ok(load_cpu(spec)?),
        Backend::Mlx => load_mlx(spec),
        Backend::Gguf if spec.model_path.is_dir() => Err(LoadError::invalid(
            &spec.model_path,
            "the gguf engine loads a .gguf file, and this is a folder; choose the file, or the cpu \
             or mlx engine for a model directory",
        )),
        Backend::Gguf => Ok(load_gguf(spec)?),
        Backend::Loopback { base_url, upstream_model } => {
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
/// the cpu engine says so instead of failing to compile.
#[cfg(not(feature = "cpu"))]
mod no_cpu {
    use super::*;

    pub(super) fn load_cpu(_spec: &LoadSpec) -> Result<Arc<dyn Engine>, LoadError> {
        Err(LoadError::BackendNotBuilt("cpu"))
    }
}
#[cfg(not(feature = "cpu"))]
use no_cpu::load_cpu;

/// Stand-ins for a build without llama.cpp (the `gguf` feature off, as in the fuzz targets, which
/// must build without cmake): a GGUF file is refused with the reason.
#[cfg(not(feature = "gguf"))]
mod no_gguf {
    use super::*;

    pub(super) fn load_gguf(_spec: &LoadSpec) -> Result<Arc<dyn Engine>, LoadError> {
        Err(LoadError::BackendNotBuilt("gguf"))
    }

    pub(super) fn inspect_gguf(_path: &Path) -> Result<ModelInfo, LoadError> {
        Err(LoadError::BackendNotBuilt("gguf"))
    }
}
#[cfg(feature = "gguf")]
use crate::gguf::inspect as inspect_gguf;
#[cfg(not(feature = "gguf"))]
use no_gguf::{inspect_gguf, load_gguf};

#[cfg(any(target_os = "macos", feature = "mlx"))]
fn load_mlx(spec: &LoadSpec) -> Result<Arc<dyn Engine>, LoadError> {
    crate::mlx::load(spec)
}

#[cfg(not(any(target_os = "macos", feature = "mlx")))]
fn load_mlx(_spec: &LoadSpec) -> Result<Arc<dyn Engine>, LoadError> {
    Err(LoadError::EngineUnavailable {
        engine: "mlx".into(),
        reason: "MLX runs only on macOS with Apple Silicon; use the cpu engine here".into(),
    })
}

/// Reads a model directory's or GGUF file's metadata, failing as loading it would fail.
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
