//! The `--engine` flag. Loading itself lives in the library ([`hearth_engine::engines`]), shared
//! with the Tauri shell.

pub use hearth_engine::engines::{factory, load, EngineChoice, LoadOptions};
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

/// The engine the flag names, else the platform's default for whether there is a model.
pub fn resolve_kind(engine: Option<CliEngine>, has_model: bool) -> EngineKind {
    match engine {
        Some(CliEngine::Scripted) => EngineKind::Scripted,
        Some(CliEngine::Cpu) => EngineKind::Cpu,
        Some(CliEngine::Mlx) => EngineKind::Mlx,
        Some(CliEngine::Loopback) => EngineKind::Loopback,
        None => hearth_engine::engines::default_kind(has_model),
    }
}
