//! The long-lived headless service: what `hearth serve` runs and what the Tauri shell embeds.
//!
//! It owns the settings (file + watcher), the earnings ledger (with its writer thread), the one
//! [`StatusHub`], the local control API, and the [`Provider`](crate::provider::Provider) session,
//! which it starts and stops on command, restarts when the settings that shape it change, and
//! follows the power policy (pause, fewer slots). Its clients — the control API over HTTP, the shell in-process — reach it
//! through one [`ControlBackend`].
//!
//! Everything that changes the provider goes through one **supervisor** task, in order: commands
//! from the clients, applied settings, the power policy, and the provider ending by itself.
//! Background pollers (pool view, rate card, credited earnings) follow the coordinator the
//! supervisor last connected to.
//!
//! The rooms: [`App`] itself (here: start-up and the handle), `config` (what it is started with),
//! `choice` (settings + overrides → what the provider serves with), `state` (what the tasks
//! share), `settings_file` (load and follow the file), `supervisor`, `control_backend` (the
//! [`ControlBackend`] impl), [`recorder`] (jobs into the ledger), [`remote`] (what the coordinator
//! tells us over HTTP) and `power_watch` (the probes and the power policy).

mod choice;
mod config;
mod control_backend;
mod power_watch;
pub mod recorder;
pub mod remote;
mod settings_file;
mod state;
mod supervisor;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hearth_ledger::{Ledger, LedgerError, RateCard};
use hearth_settings::{HearthPaths, Settings, SettingsError, SettingsStore, SettingsWatcher};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::choice::ProviderChoice;
pub use self::config::{AppConfig, Overrides, ProviderTuning};
use self::recorder::{CardInForce, Recorder, SharedCard};
use self::remote::Target;
use self::state::{AppState, Command};
use self::supervisor::Supervisor;
use crate::backend::ControlBackend;
use crate::control::{ControlError, ControlServer};
use crate::models::fetch::Pulls;
use crate::models::ModelRoots;
use crate::status::{ProviderPhase, Status, StatusHub};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("cannot prepare {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a start-up task failed: {0}")]
    Startup(String),
}

/// The running service. Dropping it without [`App::shutdown`] aborts its tasks without draining.
pub struct App {
    state: Arc<AppState>,
    control: ControlServer,
    supervisor: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    exits: watch::Receiver<Option<String>>,
    _watcher: SettingsWatcher,
}

impl App {
    /// Loads (or creates) the settings, opens the ledger (recording jobs a crash cut as lost),
    /// starts the control API and, with `autostart`, the provider.
    pub async fn start(config: AppConfig) -> Result<App, AppError> {
        let data_dir = create_data_dir(&config.paths)?;
        let store = SettingsStore::new(config.paths.settings_file());
        let settings = settings_file::load_or_create(&store, &data_dir)?;
        let watcher = SettingsWatcher::start_with_debounce(store.path(), config.settings_debounce)?;
        let hub = StatusHub::new(initial_status(&settings, &config, store.path()));
        let card: SharedCard =
            Arc::new(RwLock::new(CardInForce { card: RateCard::builtin(), source: "builtin" }));
        let (ledger, recorder) = open_ledger(&config.paths, &data_dir, &card, &hub).await?;

        let (commands, command_rx) = mpsc::unbounded_channel();
        let roots = ModelRoots::from_env(&data_dir);
        let state = Arc::new(AppState {
            hub,
            ledger,
            card,
            store,
            settings: watch::channel(settings).0,
            overrides: config.overrides.clone(),
            commands,
            pulls: Pulls::new(roots.hf_hub_cache.clone()),
            roots,
        });
        let control = start_control_api(&state, config.control_listen, &data_dir).await?;

        let (target_tx, target_rx) = watch::channel(None);
        let tasks = spawn_background_tasks(&state, &recorder, &watcher, target_rx, &config);
        let (exits_tx, exits) = watch::channel(None);
        let supervisor = Supervisor::new(state.clone(), recorder, &config, target_tx, exits_tx)
            .spawn(command_rx, config.power_poll);
        Ok(App { state, control, supervisor: Some(supervisor), tasks, exits, _watcher: watcher })
    }

    pub fn status(&self) -> &StatusHub {
        &self.state.hub
    }

    /// What the control API serves, for a client in the same process (the shell): start, stop,
    /// settings, models, earnings. Its methods may block; call them off the async workers.
    pub fn backend(&self) -> Arc<dyn ControlBackend> {
        self.state.clone()
    }

    pub fn control_addr(&self) -> SocketAddr {
        self.control.addr
    }

    /// A URL that, opened once in a browser, sets the control cookie and lands on the UI.
    pub fn one_time_url(&self) -> String {
        self.control.one_time_url()
    }

    /// Resolves when a provider stops by itself (a terminal close code, a permanent connect error),
    /// with the reason. Stops the user asked for do not count.
    pub async fn provider_exited(&mut self) -> String {
        match self.exits.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Drains and stops the provider (bounded by its drain timeout), flushes the ledger, stops.
    pub async fn shutdown(mut self) {
        let (tx, rx) = oneshot::channel();
        if self.state.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(s) = self.supervisor.take() {
            let _ = s.await;
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(s) = &self.supervisor {
            s.abort();
        }
    }
}

/// The data directory (ledger, journal, control files), created if missing.
fn create_data_dir(paths: &HearthPaths) -> Result<PathBuf, AppError> {
    let data_dir = paths.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| AppError::Io { path: data_dir.clone(), source })?;
    Ok(data_dir)
}

/// The first snapshot: who we are and what we would serve, stopped, with the built-in rate card.
fn initial_status(settings: &Settings, config: &AppConfig, settings_path: &Path) -> Status {
    let choice = ProviderChoice::of(settings, &config.overrides);
    let mut initial = Status::new(
        &choice.provider_id,
        choice.engine.model_id.as_deref().unwrap_or(""),
        &format!("{:?}", choice.engine.kind).to_lowercase(),
        choice.engine.slots.unwrap_or(1),
        &choice.coordinator.to_string(),
    );
    initial.idle_alert_after_s = config.idle_alert.as_secs();
    initial.settings.path = settings_path.display().to_string();
    initial.settings.pinned = config.overrides.pinned();
    initial.earnings.rate_card_version = hearth_ledger::BUILTIN_RATE_CARD_VERSION.into();
    initial.earnings.rate_card_source = "builtin".into();
    initial.earnings.usd_per_million_credits = hearth_ledger::RateCard::builtin().usd_per_million_credits;
    initial.set_phase(ProviderPhase::Stopped, "not started");
    initial
}

/// Opens the ledger and starts its recorder, off the async workers (SQLite and the journal are
/// disk work). Jobs the journal shows a crash cut are recorded as lost on the way.
async fn open_ledger(
    paths: &HearthPaths,
    data_dir: &Path,
    card: &SharedCard,
    hub: &StatusHub,
) -> Result<(Arc<Ledger>, Recorder), AppError> {
    let ledger_path = paths.ledger_file();
    let journal = data_dir.join("inflight");
    let (card, hub) = (card.clone(), hub.clone());
    let (ledger, recorder, recovered) = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        let ledger = Arc::new(Ledger::open(&ledger_path)?);
        let (recorder, recovered) = Recorder::start(ledger.clone(), journal.clone(), card, hub)
            .map_err(|source| AppError::Io { path: journal, source })?;
        Ok((ledger, recorder, recovered))
    })
    .await
    .map_err(|e| AppError::Startup(e.to_string()))??;
    if recovered > 0 {
        tracing::warn!(recovered, "jobs cut by the previous shutdown were recorded as lost");
    }
    Ok((ledger, recorder))
}

/// The control API on `listen`, or else 127.0.0.1 on the settings' `control_port` (any port
/// without one), serving `state` as the backend.
async fn start_control_api(
    state: &Arc<AppState>,
    listen: Option<SocketAddr>,
    data_dir: &Path,
) -> Result<ControlServer, AppError> {
    let listen = listen.unwrap_or_else(|| {
        let port = state.settings.borrow().control_port.unwrap_or(0);
        SocketAddr::from(([127, 0, 0, 1], port))
    });
    let backend: Arc<dyn ControlBackend> = state.clone();
    let control =
        ControlServer::start_with_backend(listen, data_dir, state.hub.clone(), Some(backend)).await?;
    tracing::info!(control = %control.addr, "control API listening");
    Ok(control)
}

/// The tasks beside the supervisor: the pollers that follow the coordinator on `target`, the
/// settings follower and the clock.
fn spawn_background_tasks(
    state: &Arc<AppState>,
    recorder: &Recorder,
    watcher: &SettingsWatcher,
    target: watch::Receiver<Option<Target>>,
    config: &AppConfig,
) -> Vec<JoinHandle<()>> {
    let hub = &state.hub;
    vec![
        tokio::spawn(remote::poll_pool(hub.clone(), target.clone(), config.pool_poll)),
        tokio::spawn(remote::poll_rate_card(
            hub.clone(),
            state.card.clone(),
            recorder.clone(),
            target.clone(),
            config.rate_card_refresh,
        )),
        tokio::spawn(remote::poll_credited(hub.clone(), recorder.clone(), target, config.earnings_poll)),
        tokio::spawn(settings_file::follow(state.clone(), watcher.subscribe(), watcher.watch())),
        tokio::spawn(tick(hub.clone(), recorder.clone())),
    ]
}

/// Time-driven refreshes: "no requests for N minutes" and the day's totals at midnight.
async fn tick(hub: StatusHub, recorder: Recorder) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    let mut totals = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = every.tick() => { hub.refresh(); }
            _ = totals.tick() => recorder.refresh(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::{EngineChoice, EngineFactory};
    use hearth_inference::Engine;
    use hearth_power::fake::FakeProbes;
    use hearth_power::{PowerReading, PowerSource, Readings};
    use hearth_settings::EngineKind;

    fn on(source: PowerSource, charge: u8) -> Readings {
        Readings { power: PowerReading { source, charge_percent: Some(charge) }, ..Readings::UNKNOWN }
    }

    async fn phase_becomes(hub: &StatusHub, phase: ProviderPhase) -> Status {
        let mut rx = hub.subscribe();
        let s = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.phase == phase))
            .await
            .unwrap_or_else(|_| panic!("never {phase:?}: {:#?}", hub.snapshot()))
            .unwrap()
            .clone();
        s
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn battery_pauses_and_external_power_resumes_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let pool_config =
            hearth_pool::PoolConfig { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
        let pool = hearth_pool::Pool::start(pool_config).await.unwrap();
        let paths = HearthPaths::from_home_override(Some(dir.path().as_os_str().to_owned())).unwrap();
        let factory: EngineFactory = Arc::new(|choice: &EngineChoice| {
            let id = choice.model_id.clone().unwrap_or_else(|| "m".into());
            Ok(Arc::new(hearth_inference::scripted::ScriptedEngine::new(id)) as Arc<dyn Engine>)
        });
        let mut config = AppConfig::new(paths, factory);
        config.overrides = Overrides {
            coordinator: Some(format!("ws://{}/ws/provider", pool.local_addr())),
            engine: Some(EngineKind::Scripted),
            ..Default::default()
        };
        let probes = FakeProbes::default();
        probes.set(on(PowerSource::External, 100));
        config.probes = probes.probes();
        config.power_poll = Duration::from_millis(50);
        config.power_relax_after = Duration::from_millis(200);
        let app = App::start(config).await.unwrap();
        phase_becomes(app.status(), ProviderPhase::Ready).await;
        let holds = |want: usize, what: &'static str| {
            let probes = probes.clone();
            async move {
                hearth_testkit::poll::poll_until(
                    what,
                    Duration::from_secs(5),
                    || std::future::ready(probes.holds()),
                    |n| *n == want,
                )
                .await
            }
        };
        holds(1, "the machine to be kept awake while serving").await;

        probes.set(on(PowerSource::Battery, 38));
        let s = phase_becomes(app.status(), ProviderPhase::Paused).await;
        assert_eq!(
            s.not_earning.as_deref(),
            Some("Paused: on battery at 38 %; serving resumes on the charger")
        );
        let power = s.power.clone().unwrap();
        assert_eq!((power.rule.as_str(), power.mode.as_str(), power.slots_allowed), ("battery", "paused", 0));
        // The pool learns of the pause from the provider's own frames, which
        // may land a moment after the provider's local state flips.
        hearth_testkit::poll::poll_until(
            "the pool to stop counting the paused provider ready",
            Duration::from_secs(10),
            || std::future::ready(pool.snapshot().pool),
            |p| p.ready == 0,
        )
        .await;

        holds(0, "the keep-awake to be released once paused").await;

        probes.set(on(PowerSource::External, 90));
        let s = phase_becomes(app.status(), ProviderPhase::Ready).await;
        assert_eq!(s.power.unwrap().rule, "none");
        holds(1, "the keep-awake to be held again once serving again").await;
        assert_eq!(probes.holds_taken(), 2);
        app.shutdown().await;
        pool.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_engine_that_cannot_load_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HearthPaths::from_home_override(Some(dir.path().as_os_str().to_owned())).unwrap();
        let factory: EngineFactory = Arc::new(|_: &EngineChoice| Err("no such model directory".to_string()));
        let mut config = AppConfig::new(paths, factory);
        config.overrides.coordinator = Some("ws://127.0.0.1:9/ws/provider".into());
        let app = App::start(config).await.unwrap();
        let s = phase_becomes(app.status(), ProviderPhase::Error).await;
        assert_eq!(s.not_earning.as_deref(), Some("model not loaded: no such model directory"));
        app.shutdown().await;
    }
}
