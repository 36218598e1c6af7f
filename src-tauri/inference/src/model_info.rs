//! What a model is, read without loading its weights: [`ModelInfo`] and its [`ModelFormat`]. The
//! loader's `inspect_model` fills it for model directories, the gguf backend for GGUF files.

use std::path::{Path, PathBuf};

use crate::spec::Backend;

/// Whether `path` is a GGUF model file (as opposed to a model directory): named `.gguf`, or a
/// file that starts with GGUF's magic (Ollama's blobs have no extension).
pub(crate) fn is_gguf(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && &magic == b"GGUF"
}

/// Model storage format. Serialized as the model picker shows it (`safetensors` for a directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    /// mlx-community directory (config.json + safetensors).
    #[serde(rename = "safetensors")]
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
    /// A GGUF file's quantization as llama.cpp names it (`Q4_K_M`, `Q8_0`, …).
    pub gguf_type: Option<String>,
    pub params: u64,
    pub size_on_disk: u64,
    pub max_context: usize,
    /// KV-cache bytes per token of context at f32 (halve for f16 caches).
    pub kv_bytes_per_token: u64,
    pub has_chat_template: bool,
    /// Whether it runs without a GPU: the cpu engine for a directory (and if not, why), llama.cpp
    /// for a GGUF file.
    pub cpu_supported: Result<(), String>,
}

impl ModelInfo {
    /// Memory the given backend needs for the weights plus a KV cache of `context` tokens.
    pub fn estimated_memory(&self, backend: &Backend, context: usize) -> u64 {
        let kv = self.kv_bytes_per_token * context as u64;
        match (backend, &self.format) {
            // The cpu engine dequantizes MLX weights to f32.
            (Backend::Cpu, ModelFormat::MlxDir) => self.params * 4 + kv,
            // llama.cpp maps the file and keeps an f16 cache, whichever engine was named.
            (Backend::Cpu | Backend::Mlx | Backend::Gguf, ModelFormat::Gguf) => self.size_on_disk + kv / 2,
            (Backend::Mlx, _) => self.size_on_disk + kv / 2,
            _ => 0,
        }
    }
}
