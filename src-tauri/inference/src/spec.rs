//! What to load: the [`Backend`] that runs a model and the [`LoadSpec`] that `load_engine` turns
//! into a running engine. Plain data at the bottom of the crate, so the loader and every backend
//! can read a spec without importing one another.

use std::path::PathBuf;

/// Which backend runs the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// candle on the CPU (any OS): model directories. A `.gguf` file given with it runs on
    /// [`Backend::Gguf`].
    Cpu,
    /// mlx-rs on Apple Silicon (macOS; other OSes only with the `mlx` feature, on MLX's CPU build):
    /// model directories. A `.gguf` file given with it runs on [`Backend::Gguf`].
    Mlx,
    /// llama.cpp (the `gguf` feature): GGUF files, on Metal on macOS, on the CPU elsewhere.
    Gguf,
    /// A local OpenAI-compatible server at `base_url` (e.g. `http://127.0.0.1:8080/v1`).
    /// `upstream_model` is the server's name for the model; by default the first it lists.
    Loopback { base_url: String, upstream_model: Option<String> },
    /// The deterministic test double.
    Scripted,
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Mlx => "mlx",
            Backend::Gguf => "gguf",
            Backend::Loopback { .. } => "loopback",
            Backend::Scripted => "scripted",
        }
    }
}

/// One model to load, and on which backend.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// A model directory, or a GGUF file. Ignored by loopback/scripted except for naming.
    pub model_path: PathBuf,
    pub backend: Backend,
    /// The id announced to buyers; defaults to the directory (or file stem) name.
    pub model_id: Option<String>,
    /// Caps prompt + completion tokens below the model's own limit (per job).
    pub max_context: Option<usize>,
    /// Jobs the gguf engine decodes together; `None` chooses from `ram_bytes` and the model's
    /// size. Other backends run any number side by side and ignore it.
    pub slots: Option<usize>,
    /// This machine's memory, for that choice (the caller knows the OS; unknown means one slot).
    pub ram_bytes: Option<u64>,
}

impl LoadSpec {
    pub fn new(model_path: impl Into<PathBuf>, backend: Backend) -> Self {
        Self {
            model_path: model_path.into(),
            backend,
            model_id: None,
            max_context: None,
            slots: None,
            ram_bytes: None,
        }
    }

    pub(crate) fn id_or(&self, default: impl FnOnce() -> String) -> String {
        self.model_id.clone().unwrap_or_else(default)
    }
}
