//! The settings a user can edit, as they appear in `settings.toml`.
//!
//! There is deliberately no token field: the provider token lives in the keychain
//! ([`crate::keychain`]), so it can never end up in this file, a backup of it, or a log line that
//! prints the settings.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::field_error::FieldError;
use crate::power::PowerSettings;

/// Which coordinator to serve.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Coordinator {
    /// The embedded local pool (no network needed): the default, and the test peer.
    #[default]
    LocalPool,
    /// A remote coordinator's provider endpoint, used exactly as written, e.g.
    /// `wss://host/ws/provider`. Checked by [`Settings::validate`].
    Url(String),
}

impl fmt::Display for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Coordinator::LocalPool => f.write_str("local_pool"),
            Coordinator::Url(u) => f.write_str(u),
        }
    }
}

// In TOML it is one string: `coordinator = "local_pool"` or `coordinator = "wss://…"`.
impl Serialize for Coordinator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Coordinator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s == "local_pool" { Coordinator::LocalPool } else { Coordinator::Url(s) })
    }
}

/// The inference backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// candle on the CPU; any OS.
    Cpu,
    /// mlx on Apple Silicon; the production path on a Mac.
    Mlx,
    /// llama.cpp, for GGUF files: Metal on macOS, the CPU elsewhere. (A GGUF file chosen with
    /// `cpu` or `mlx` runs here too.)
    Gguf,
    /// Forward to a local OpenAI-compatible server at `loopback_url`.
    Loopback,
    /// Canned output, for tests and demos.
    Scripted,
}

impl Default for EngineKind {
    /// `mlx` on Apple Silicon, `cpu` elsewhere.
    fn default() -> Self {
        if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
            EngineKind::Mlx
        } else {
            EngineKind::Cpu
        }
    }
}

/// Everything in `settings.toml`. Unknown keys are refused (a typo such as `slot = 2` should be an
/// error the user sees, not a setting silently ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub coordinator: Coordinator,
    /// The provider's identity towards the coordinator (and the keychain account of its token).
    /// Required in the file: a default here would mint a new identity on every load.
    pub provider_id: String,
    /// The model directory (mlx-community layout) or GGUF file. `None`: the engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_path: Option<PathBuf>,
    /// More folders to look for models in (absolute paths), beside the ones found without asking
    /// (the Hugging Face cache, LM Studio, Ollama, Hearth's own models folder). A folder that does
    /// not exist is not a settings error — a disk may be unplugged — the model list says so instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_folders: Vec<PathBuf>,
    #[serde(default)]
    pub engine: EngineKind,
    /// Base URL of the local OpenAI-compatible server; required when `engine = "loopback"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback_url: Option<String>,
    /// Concurrent jobs offered to the coordinator (1 to 8). Left out, the engine chooses: the gguf
    /// engine as many as fit half the RAM beside the model (at most four), the others one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
    #[serde(default)]
    pub start_at_login: bool,
    /// When to pause or serve with fewer slots: battery, heat, the user at the keyboard, a schedule.
    #[serde(default)]
    pub power: PowerSettings,
    /// Port of the local control API on 127.0.0.1; `None` picks a free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_port: Option<u16>,
    /// The protocol level announced in the hello's `binary_version` (a semver); `None` announces
    /// the reference release Hearth's protocol matches. Only for a coordinator with another floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_version: Option<String>,
    /// How sessions open: `auto` (v2, encrypted; v1 only for a coordinator that refuses v2's first
    /// frame), `v2` (never plaintext) or `v1`.
    #[serde(default)]
    pub protocol: hearth_protocol::ProtocolChoice,
}

impl Default for Settings {
    /// Local pool, a fresh random provider id (a UUID, as the protocol suggests), the platform's
    /// engine, one slot, the default power policy (pause on battery, yield while the user works).
    fn default() -> Self {
        Settings {
            coordinator: Coordinator::LocalPool,
            provider_id: uuid::Uuid::new_v4().to_string(),
            model_path: None,
            model_folders: Vec::new(),
            engine: EngineKind::default(),
            loopback_url: None,
            slots: None,
            start_at_login: false,
            power: PowerSettings::default(),
            control_port: None,
            binary_version: None,
            protocol: hearth_protocol::ProtocolChoice::Auto,
        }
    }
}

impl Settings {
    /// Parses and validates TOML. Parse errors and invalid values both come back as field errors.
    pub fn from_toml_str(src: &str) -> Result<Settings, Vec<FieldError>> {
        let settings: Settings = toml::from_str(src).map_err(|e| vec![FieldError::from_toml(src, &e)])?;
        settings.validate()?;
        Ok(settings)
    }

    /// The TOML text `save` writes.
    pub fn to_toml_string(&self) -> String {
        // Serialising plain scalars and strings cannot fail.
        toml::to_string_pretty(self).expect("settings serialise to TOML")
    }
}
