//! From an engine choice to a loaded [`Engine`]: what the app asks for ([`EngineChoice`]), the
//! shape of a loader ([`EngineFactory`]) and the one factory that both the `hearth` CLI and the
//! Tauri shell hand to the [`App`](crate::app::App), so the two cannot disagree on how a model is
//! loaded.

use std::path::PathBuf;
use std::sync::Arc;

use hearth_inference::scripted::ScriptedEngine;
use hearth_inference::Engine;
use hearth_settings::EngineKind;

/// Which engine to build, from the settings and the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineChoice {
    pub kind: EngineKind,
    /// The model id to announce, when the command line names one.
    pub model_id: Option<String>,
    pub model_path: Option<PathBuf>,
    /// The local OpenAI-compatible server of the loopback engine (the settings' `loopback_url`).
    pub loopback_url: Option<String>,
    /// Jobs to run together; `None` lets the engine choose (see [`slots_offered`]).
    pub slots: Option<u32>,
}

/// Builds (loads) an engine. Called on the supervisor task each time a provider starts; an `Err` is
/// shown as "model not loaded: …".
pub type EngineFactory = Arc<dyn Fn(&EngineChoice) -> Result<Arc<dyn Engine>, String> + Send + Sync>;

/// The engine to use when nobody said: the platform's real engine for a model, else the scripted
/// one (so a provider without a model still runs, for protocol testing).
pub fn default_kind(has_model: bool) -> EngineKind {
    match has_model {
        true if cfg!(target_os = "macos") => EngineKind::Mlx,
        true => EngineKind::Cpu,
        false => EngineKind::Scripted,
    }
}

/// How the "no model" error begins: the status says it while the settings name no model for an
/// engine that needs one, and the dashboard answers it with its first-launch panel.
pub const NO_MODEL_CHOSEN: &str = "no model chosen yet";

/// What loading needs beyond the app's [`EngineChoice`], from the command line. Each field, when set,
/// wins over what the settings say.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub loopback_url: Option<String>,
    /// Tokens of context each job may use, below the model's own (`--context`).
    pub max_context: Option<usize>,
}

/// Loads an engine. Slow for real models (reads every weight): call it off the async runtime.
pub fn load(choice: &EngineChoice, options: &LoadOptions) -> Result<Arc<dyn Engine>, String> {
    use hearth_inference::Backend;
    let (model, model_id) = (choice.model_path.as_deref(), choice.model_id.as_deref());
    let backend = match choice.kind {
        EngineKind::Scripted => {
            if model.is_none() {
                return Ok(Arc::new(ScriptedEngine::new(model_id.unwrap_or("hearth-scripted"))));
            }
            Backend::Scripted
        }
        EngineKind::Cpu => Backend::Cpu,
        EngineKind::Mlx => Backend::Mlx,
        EngineKind::Gguf => Backend::Gguf,
        EngineKind::Loopback => Backend::Loopback {
            base_url: options.loopback_url.clone().or_else(|| choice.loopback_url.clone()).ok_or(
                "the loopback engine needs a server URL (--loopback-url or the loopback_url setting), \
                 e.g. http://127.0.0.1:8080/v1",
            )?,
            upstream_model: None,
        },
    };
    let path = match (model, &backend) {
        (Some(p), _) => p.to_path_buf(),
        (None, Backend::Loopback { .. }) => PathBuf::new(),
        (None, _) => {
            return Err(format!(
                "{NO_MODEL_CHOSEN}: choose one in Settings, or fetch one there (a model directory or \
                 a .gguf file)"
            ))
        }
    };
    let mut spec = hearth_inference::LoadSpec::new(path, backend);
    spec.model_id = model_id.map(str::to_string);
    spec.slots = choice.slots.map(|n| n as usize);
    spec.max_context = options.max_context;
    spec.ram_bytes = crate::system::total_ram_bytes();
    hearth_inference::load_engine(&spec).map_err(|e| e.to_string())
}

/// The slots to offer the coordinator for a loaded engine: the engine's own number when it has
/// one (the gguf engine's sequences, chosen from RAM unless `asked`), else what was asked, else one.
pub fn slots_offered(engine: &dyn Engine, asked: Option<u32>) -> u32 {
    engine.slots().map(|n| n as u32).or(asked).unwrap_or(1)
}

/// The app's engine factory: the settings' choice (engine, model, loopback URL), with `options`
/// from the command line on top.
pub fn factory(options: &LoadOptions) -> EngineFactory {
    let options = options.clone();
    Arc::new(move |choice: &EngineChoice| load(choice, &options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(kind: EngineKind, loopback_url: Option<&str>) -> EngineChoice {
        EngineChoice {
            kind,
            model_id: None,
            model_path: None,
            loopback_url: loopback_url.map(str::to_string),
            slots: None,
        }
    }

    #[test]
    fn a_model_picks_the_real_engine_and_none_the_scripted_one() {
        assert_eq!(default_kind(false), EngineKind::Scripted);
        let real = if cfg!(target_os = "macos") { EngineKind::Mlx } else { EngineKind::Cpu };
        assert_eq!(default_kind(true), real);
    }

    #[test]
    fn the_factory_builds_the_scripted_engine_and_explains_what_is_missing() {
        let f = factory(&LoadOptions::default());
        let engine = f(&choice(EngineKind::Scripted, None)).expect("scripted needs nothing");
        assert_eq!(engine.descriptor().model_id, "hearth-scripted");
        let err = f(&choice(EngineKind::Cpu, None)).err().expect("cpu without a model");
        assert!(err.contains("no model chosen"), "{err}");
        let err = f(&choice(EngineKind::Loopback, None)).err().expect("loopback without a URL");
        assert!(err.contains("loopback_url"), "{err}");
    }

    #[test]
    fn the_gguf_engine_needs_a_gguf_file() {
        let f = factory(&LoadOptions::default());
        let err = f(&choice(EngineKind::Gguf, None)).err().expect("gguf without a model");
        assert!(err.contains("no model chosen"), "{err}");
        let dir = std::env::temp_dir();
        let folder = EngineChoice { model_path: Some(dir), ..choice(EngineKind::Gguf, None) };
        let err = load(&folder, &LoadOptions::default()).err().expect("a folder");
        assert!(err.contains(".gguf file"), "{err}");
    }

    #[test]
    fn the_settings_loopback_url_is_used_unless_the_command_line_names_one() {
        // Loading a loopback engine asks the server for its models; a closed port makes that fail,
        // and the error says which server was asked.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let from_settings = format!("http://{closed}/v1");
        let err = factory(&LoadOptions::default())(&choice(EngineKind::Loopback, Some(&from_settings)))
            .err()
            .expect("nothing listens there");
        assert!(err.contains(&closed.to_string()), "the settings' URL was asked: {err}");

        let flag = LoadOptions { loopback_url: Some("http://127.0.0.1:1/flag/v1".into()), max_context: None };
        let err =
            factory(&flag)(&choice(EngineKind::Loopback, Some(&from_settings))).err().expect("closed too");
        assert!(!err.contains(&closed.to_string()), "the command line wins: {err}");
    }
}
