//! What the app is started with: [`AppConfig`] (paths, the engine factory, timings, the power
//! probes) and the command line's [`Overrides`] of the settings file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hearth_settings::{EngineKind, HearthPaths};

use crate::engines::EngineFactory;
use crate::session::ProviderConfig;

/// Adjusts each provider's session configuration (timings, CA file) after the app filled it in.
pub type ProviderTuning = Arc<dyn Fn(&mut ProviderConfig) + Send + Sync>;

/// Settings given on the command line. They win over the file, and a file edit of a pinned field
/// changes nothing (the snapshot lists them as `settings.pinned`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub coordinator: Option<String>,
    pub provider_id: Option<String>,
    pub slots: Option<u32>,
    pub engine: Option<EngineKind>,
    pub model_id: Option<String>,
    pub model_path: Option<PathBuf>,
}

impl Overrides {
    pub fn pinned(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut pin = |set: bool, name: &str| {
            if set {
                p.push(name.to_string())
            }
        };
        pin(self.coordinator.is_some(), "coordinator");
        pin(self.provider_id.is_some(), "provider_id");
        pin(self.slots.is_some(), "slots");
        pin(self.engine.is_some(), "engine");
        pin(self.model_id.is_some(), "model_id");
        pin(self.model_path.is_some(), "model_path");
        p
    }
}

pub struct AppConfig {
    pub paths: HearthPaths,
    pub overrides: Overrides,
    pub engine_factory: EngineFactory,
    /// Where the control API listens; `None`: 127.0.0.1 on the settings' `control_port`, or any.
    pub control_listen: Option<SocketAddr>,
    pub tune_provider: Option<ProviderTuning>,
    /// How often the gateway's `/v1/status` is read for the pool view.
    pub pool_poll: Duration,
    /// How often `/providers/{id}/earnings` is read (the coordinator allows 60/min; once a minute
    /// is polite).
    pub earnings_poll: Duration,
    pub rate_card_refresh: Duration,
    /// Ready this long without a request and the snapshot says so.
    pub idle_alert: Duration,
    pub settings_debounce: Duration,
    /// Battery, thermal, activity and keep-awake: the OS's own, or fakes in tests.
    pub probes: hearth_power::Probes,
    /// How often the probes are read and the power policy evaluated.
    pub power_poll: Duration,
    /// How long a looser power verdict (a pause lifting, more slots) must hold before it is used.
    pub power_relax_after: Duration,
    /// Start serving as soon as the app starts.
    pub autostart: bool,
    /// Where the embedded pool listens when the settings say `coordinator = "local_pool"`.
    pub local_pool_addr: SocketAddr,
}

impl AppConfig {
    pub fn new(paths: HearthPaths, engine_factory: EngineFactory) -> Self {
        Self {
            paths,
            overrides: Overrides::default(),
            engine_factory,
            control_listen: None,
            tune_provider: None,
            pool_poll: Duration::from_secs(5),
            earnings_poll: Duration::from_secs(60),
            rate_card_refresh: Duration::from_secs(3600),
            idle_alert: Duration::from_secs(crate::status::DEFAULT_IDLE_ALERT_S),
            settings_debounce: hearth_settings::watcher::DEFAULT_DEBOUNCE,
            probes: hearth_power::Probes::system(),
            power_poll: Duration::from_secs(2),
            power_relax_after: hearth_power::policy::DEFAULT_RELAX_AFTER,
            autostart: true,
            local_pool_addr: SocketAddr::from(([127, 0, 0, 1], hearth_pool::config::DEFAULT_PORT)),
        }
    }
}
