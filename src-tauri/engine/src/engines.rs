//! From command-line flags to a loaded [`Engine`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_engine::app::{EngineFactory, EngineSpec};
use hearth_inference::scripted::ScriptedEngine;
use hearth_inference::Engine;
use hearth_settings::EngineKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CliEngine {
    /// A deterministic test engine: no model, predictable tokens.
    Scripted,
    /// candle on the CPU (mlx-community directories and GGUF files).
    Cpu,
    /// MLX on Apple Silicon (macOS only).
    Mlx,
    /// Forward to a local OpenAI-compatible server (--loopback-url).
    Loopback,
}

/// The engine to use when the user did not say: the platform's real engine for a model, else the
/// scripted one (so `hearth serve` without a model still runs for protocol testing).
pub fn resolve_kind(engine: Option<CliEngine>, has_model: bool) -> EngineKind {
    match engine {
        Some(CliEngine::Scripted) => EngineKind::Scripted,
        Some(CliEngine::Cpu) => EngineKind::Cpu,
        Some(CliEngine::Mlx) => EngineKind::Mlx,
        Some(CliEngine::Loopback) => EngineKind::Loopback,
        None if has_model && cfg!(target_os = "macos") => EngineKind::Mlx,
        None if has_model => EngineKind::Cpu,
        None => EngineKind::Scripted,
    }
}

/// What loading needs beyond the app's [`EngineSpec`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub loopback_url: Option<String>,
    pub tokenizer_dir: Option<PathBuf>,
}

/// Loads an engine. Slow for real models (reads every weight): call it off the async runtime.
pub fn load(
    kind: EngineKind,
    model: Option<&Path>,
    model_id: Option<&str>,
    options: &LoadOptions,
) -> Result<Arc<dyn Engine>, String> {
    use hearth_inference::EngineKind as Backend;
    let backend = match kind {
        EngineKind::Scripted => {
            if model.is_none() {
                return Ok(Arc::new(ScriptedEngine::new(model_id.unwrap_or("hearth-scripted"))));
            }
            Backend::Scripted
        }
        EngineKind::Cpu => Backend::Cpu,
        EngineKind::Mlx => Backend::Mlx,
        EngineKind::Loopback => Backend::Loopback {
            base_url: options
                .loopback_url
                .clone()
                .ok_or("the loopback engine needs --loopback-url, e.g. http://127.0.0.1:8080/v1")?,
            upstream_model: None,
        },
    };
    let path = match (model, &backend) {
        (Some(p), _) => p.to_path_buf(),
        (None, Backend::Loopback { .. }) => PathBuf::new(),
        (None, _) => return Err("no model given: pass --model with a model directory or a .gguf file".into()),
    };
    let mut spec = hearth_inference::EngineSpec::new(path, backend);
    spec.model_id = model_id.map(str::to_string);
    spec.tokenizer_dir = options.tokenizer_dir.clone();
    hearth_inference::load_engine(&spec).map_err(|e| e.to_string())
}

/// The app's engine factory for these options.
pub fn factory(options: &LoadOptions) -> EngineFactory {
    let options = options.clone();
    Arc::new(move |spec: &EngineSpec| {
        load(spec.kind, spec.model_path.as_deref(), spec.model_id.as_deref(), &options)
    })
}
