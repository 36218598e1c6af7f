//! The long-lived headless service: what `hearth serve` runs and what the Tauri shell will embed.
//!
//! It owns the settings (file + watcher), the earnings ledger (with its writer thread), the one
//! [`StatusHub`], the local control API, and the [`Provider`] session, which it starts and stops
//! on command, restarts when the settings that shape it change, and pauses on battery.
//!
//! Everything that changes the provider goes through one **supervisor** task, in order: commands
//! from the control API, applied settings, the power probe, and the provider ending by itself.
//! Background pollers (pool view, rate card, credited earnings) follow the coordinator the
//! supervisor last connected to.

pub mod power;
pub mod recorder;
pub mod remote;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hearth_inference::Engine;
use hearth_ledger::{Ledger, LedgerError, RateCard};
use hearth_settings::{
    resolve_token, Coordinator, EngineKind, FieldError, HearthPaths, Settings, SettingsError, SettingsEvent,
    SettingsStore, SettingsWatcher,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use self::power::{PowerSource, SystemPower};
use self::recorder::{CardInForce, Recorder, SharedCard};
use self::remote::{gateway_url, Target};
use crate::control::{ControlBackend, ControlError, ControlServer, PutSettingsError};
use crate::earnings::{EarningsRange, EarningsReport};
use crate::models::{LocalModel, ModelRoots};
use crate::provider::{Provider, ProviderOptions};
use crate::session::ProviderConfig;
use crate::status::{unix_ms, ProviderPhase, Status, StatusHub};

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

/// Which engine to build, from the settings and the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSpec {
    pub kind: EngineKind,
    /// The model id to announce, when the command line names one.
    pub model_id: Option<String>,
    pub model_path: Option<PathBuf>,
    /// The local OpenAI-compatible server of the loopback engine (the settings' `loopback_url`).
    pub loopback_url: Option<String>,
}

/// Builds (loads) an engine. Called on the supervisor task each time a provider starts; an `Err` is
/// shown as "model not loaded: …".
pub type EngineFactory = Arc<dyn Fn(&EngineSpec) -> Result<Arc<dyn Engine>, String> + Send + Sync>;

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
    pub power: Arc<dyn PowerSource>,
    pub power_poll: Duration,
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
            power: Arc::new(SystemPower),
            power_poll: Duration::from_secs(30),
            autostart: true,
            local_pool_addr: SocketAddr::from(([127, 0, 0, 1], hearth_pool::config::DEFAULT_PORT)),
        }
    }
}

/// What `GET /api/settings` returns.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// The settings in force (the last valid file).
    pub settings: Settings,
    pub path: PathBuf,
    /// The last rejected edit's errors, if the file on disk is currently invalid.
    pub errors: Vec<FieldError>,
    /// Fields the command line overrides.
    pub pinned: Vec<String>,
    /// What the provider actually uses, overrides applied.
    pub effective: EffectiveSettings,
    /// Where the provider token comes from (`keychain`, `env`), or `null` without one. The token
    /// itself is never served.
    pub token_source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveSettings {
    pub coordinator: String,
    pub provider_id: String,
    pub slots: u32,
    pub engine: EngineKind,
    pub model_id: Option<String>,
    pub model_path: Option<PathBuf>,
}

/// Everything that, when it changes, needs a new provider session.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    coordinator: Coordinator,
    provider_id: String,
    slots: u32,
    engine: EngineSpec,
}

fn spec(s: &Settings, o: &Overrides) -> Spec {
    Spec {
        coordinator: o.coordinator.clone().map(Coordinator::Url).unwrap_or_else(|| s.coordinator.clone()),
        provider_id: o.provider_id.clone().unwrap_or_else(|| s.provider_id.clone()),
        slots: o.slots.unwrap_or(s.slots),
        engine: EngineSpec {
            kind: o.engine.unwrap_or(s.engine),
            model_id: o.model_id.clone(),
            model_path: o.model_path.clone().or_else(|| s.model_path.clone()),
            loopback_url: s.loopback_url.clone(),
        },
    }
}

enum Command {
    Start,
    Stop,
    Apply(Box<Settings>),
    Shutdown(oneshot::Sender<()>),
}

/// State shared by the supervisor, the control API and the background tasks.
struct Inner {
    hub: StatusHub,
    ledger: Arc<Ledger>,
    card: SharedCard,
    store: SettingsStore,
    settings: watch::Sender<Settings>,
    overrides: Overrides,
    commands: mpsc::UnboundedSender<Command>,
    roots: ModelRoots,
}

/// The running service. Dropping it without [`App::shutdown`] aborts its tasks without draining.
pub struct App {
    inner: Arc<Inner>,
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
        let paths = config.paths.clone();
        let data_dir = paths.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .map_err(|source| AppError::Io { path: data_dir.clone(), source })?;
        let store = SettingsStore::new(paths.settings_file());
        let settings = load_settings(&store, &data_dir)?;
        let watcher = SettingsWatcher::start_with_debounce(store.path(), config.settings_debounce)?;

        let s = spec(&settings, &config.overrides);
        let mut initial = Status::new(
            &s.provider_id,
            s.engine.model_id.as_deref().unwrap_or(""),
            &format!("{:?}", s.engine.kind).to_lowercase(),
            s.slots,
            &s.coordinator.to_string(),
        );
        initial.idle_alert_after_s = config.idle_alert.as_secs();
        initial.settings.path = store.path().display().to_string();
        initial.settings.pinned = config.overrides.pinned();
        initial.earnings.rate_card_version = hearth_ledger::BUILTIN_RATE_CARD_VERSION.into();
        initial.earnings.rate_card_source = "builtin".into();
        initial.set_phase(ProviderPhase::Stopped, "not started");
        let hub = StatusHub::new(initial);

        let card: SharedCard =
            Arc::new(RwLock::new(CardInForce { card: RateCard::builtin(), source: "builtin" }));
        let ledger_path = paths.ledger_file();
        let journal = data_dir.join("inflight");
        let (ledger, recorder, recovered) = {
            let (card, hub) = (card.clone(), hub.clone());
            tokio::task::spawn_blocking(move || -> Result<_, AppError> {
                let ledger = Arc::new(Ledger::open(&ledger_path)?);
                let (recorder, recovered) = Recorder::start(ledger.clone(), journal.clone(), card, hub)
                    .map_err(|source| AppError::Io { path: journal, source })?;
                Ok((ledger, recorder, recovered))
            })
            .await
            .map_err(|e| AppError::Startup(e.to_string()))??
        };
        if recovered > 0 {
            tracing::warn!(recovered, "jobs cut by the previous shutdown were recorded as lost");
        }

        let (commands, command_rx) = mpsc::unbounded_channel();
        let (settings_tx, _) = watch::channel(settings);
        let inner = Arc::new(Inner {
            hub: hub.clone(),
            ledger,
            card: card.clone(),
            store,
            settings: settings_tx,
            overrides: config.overrides.clone(),
            commands,
            roots: ModelRoots::from_env(&data_dir),
        });

        let listen = config.control_listen.unwrap_or_else(|| {
            let port = inner.settings.borrow().control_port.unwrap_or(0);
            SocketAddr::from(([127, 0, 0, 1], port))
        });
        let backend: Arc<dyn ControlBackend> = inner.clone();
        let control =
            ControlServer::start_with_backend(listen, &data_dir, hub.clone(), Some(backend)).await?;
        tracing::info!(control = %control.addr, "control API listening");

        let (target_tx, target_rx) = watch::channel(None);
        let (exits_tx, exits) = watch::channel(None);
        let mut tasks = vec![
            tokio::spawn(remote::poll_pool(hub.clone(), target_rx.clone(), config.pool_poll)),
            tokio::spawn(remote::poll_rate_card(
                hub.clone(),
                card,
                recorder.clone(),
                target_rx.clone(),
                config.rate_card_refresh,
            )),
            tokio::spawn(remote::poll_credited(
                hub.clone(),
                recorder.clone(),
                target_rx,
                config.earnings_poll,
            )),
            tokio::spawn(follow_settings(inner.clone(), watcher.subscribe(), watcher.watch())),
        ];
        tasks.push(tokio::spawn(tick(hub.clone(), recorder.clone())));

        let supervisor = Supervisor {
            inner: inner.clone(),
            recorder,
            factory: config.engine_factory,
            tune: config.tune_provider,
            power: config.power,
            local_pool_addr: config.local_pool_addr,
            local_pool: None,
            provider: None,
            running: None,
            wanted: config.autostart,
            paused: false,
            target: target_tx,
            exits: exits_tx,
        };
        let supervisor = tokio::spawn(supervisor.run(command_rx, config.power_poll));
        Ok(App { inner, control, supervisor: Some(supervisor), tasks, exits, _watcher: watcher })
    }

    pub fn status(&self) -> &StatusHub {
        &self.inner.hub
    }

    pub fn control_addr(&self) -> SocketAddr {
        self.control.addr
    }

    /// A URL that, opened once in a browser, sets the control cookie and lands on the UI.
    pub fn one_time_url(&self) -> String {
        self.control.one_time_url()
    }

    pub fn start_provider(&self) {
        let _ = self.inner.commands.send(Command::Start);
    }

    pub fn stop_provider(&self) {
        let _ = self.inner.commands.send(Command::Stop);
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
        if self.inner.commands.send(Command::Shutdown(tx)).is_ok() {
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

/// Loads the settings file, creating it on first run. A provider id kept by an older Hearth in
/// `data/provider-id` becomes the file's id, so upgrading keeps the identity.
fn load_settings(store: &SettingsStore, data_dir: &std::path::Path) -> Result<Settings, SettingsError> {
    if store.path().exists() {
        return store.load();
    }
    let mut s = Settings::default();
    if let Ok(id) = std::fs::read_to_string(data_dir.join("provider-id")) {
        let id = id.trim();
        if hearth_settings::is_safe_provider_id(id) {
            s.provider_id = id.to_string();
        }
    }
    store.save(&s)?;
    Ok(s)
}

/// Applies external edits of the settings file, or shows why one was rejected.
async fn follow_settings(
    inner: Arc<Inner>,
    mut events: tokio::sync::broadcast::Receiver<SettingsEvent>,
    current: watch::Receiver<Settings>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(SettingsEvent::Applied(s)) => {
                inner.hub.update(|st| st.settings.errors.clear());
                let _ = inner.commands.send(Command::Apply(Box::new(s)));
            }
            Ok(SettingsEvent::Rejected { errors }) => {
                tracing::warn!(errors = %FieldError::join(&errors), "settings edit rejected");
                inner.hub.update(|st| st.settings.errors = errors);
            }
            Err(RecvError::Lagged(_)) => {
                let s = current.borrow().clone();
                let _ = inner.commands.send(Command::Apply(Box::new(s)));
            }
            Err(RecvError::Closed) => return,
        }
    }
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

struct Supervisor {
    inner: Arc<Inner>,
    recorder: Recorder,
    factory: EngineFactory,
    tune: Option<ProviderTuning>,
    power: Arc<dyn PowerSource>,
    local_pool_addr: SocketAddr,
    /// The embedded pool, once `local_pool` was used.
    local_pool: Option<hearth_pool::Pool>,
    provider: Option<Provider>,
    /// What the current (or last attempted) provider was started with.
    running: Option<Spec>,
    /// The user wants it serving (autostart, `start`), as opposed to stopped.
    wanted: bool,
    paused: bool,
    target: watch::Sender<Option<Target>>,
    exits: watch::Sender<Option<String>>,
}

impl Supervisor {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, power_poll: Duration) {
        self.check_power().await;
        if self.wanted && !self.paused {
            self.start().await;
        }
        let mut power = tokio::time::interval(power_poll);
        power.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Start) => {
                        self.wanted = true;
                        if self.paused {
                            self.inner.hub.update(|s| s.reason = format!("{} (start asked; it resumes on external power)", pause_reason()));
                        } else if self.provider.is_none() {
                            self.start().await;
                        }
                    }
                    Some(Command::Stop) => {
                        self.wanted = false;
                        self.stop("stopped by the user").await;
                    }
                    Some(Command::Apply(s)) => self.apply(*s).await,
                    Some(Command::Shutdown(done)) => {
                        self.stop("the app is shutting down").await;
                        if let Some(pool) = self.local_pool.take() {
                            pool.shutdown().await;
                        }
                        let recorder = self.recorder.clone();
                        let _ = tokio::task::spawn_blocking(move || recorder.flush()).await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                _ = provider_finished(&mut self.provider) => {
                    // Only a terminal close or a permanent error ends a provider by itself.
                    self.provider = None;
                    let reason = self.inner.hub.snapshot().reason;
                    tracing::warn!(%reason, "the provider stopped by itself");
                    self.exits.send_replace(Some(reason));
                }
                _ = power.tick() => self.check_power().await,
            }
        }
    }

    async fn apply(&mut self, settings: Settings) {
        self.inner.settings.send_replace(settings);
        let new = spec(&self.inner.settings.borrow(), &self.inner.overrides);
        self.check_power().await;
        if self.wanted && !self.paused && self.running.as_ref() != Some(&new) {
            tracing::info!("settings changed what the provider serves; restarting it");
            self.stop("restarting with new settings").await;
            self.start().await;
        }
    }

    async fn check_power(&mut self) {
        let pause = self.inner.settings.borrow().pause_on_battery && self.power.on_battery() == Some(true);
        if pause && !self.paused {
            self.paused = true;
            self.stop(&pause_reason()).await;
            self.inner.hub.update(|s| s.set_phase(ProviderPhase::Paused, pause_reason()));
        } else if !pause && self.paused {
            self.paused = false;
            if self.wanted {
                self.start().await;
            } else {
                self.inner.hub.update(|s| s.set_phase(ProviderPhase::Stopped, "stopped by the user"));
            }
        }
    }

    async fn stop(&mut self, why: &str) {
        if let Some(p) = self.provider.take() {
            p.stop().await;
        }
        self.running = None;
        let why = why.to_string();
        self.inner.hub.update(|s| {
            s.connection.connected = false;
            s.active_jobs.clear();
            s.set_phase(ProviderPhase::Stopped, why);
        });
    }

    async fn start(&mut self) {
        let spec = spec(&self.inner.settings.borrow(), &self.inner.overrides);
        self.running = Some(spec.clone());
        self.exits.send_replace(None);
        let url = match &spec.coordinator {
            Coordinator::Url(u) => u.clone(),
            Coordinator::LocalPool => match self.ensure_local_pool().await {
                Ok(url) => url,
                Err(e) => return self.fail(e),
            },
        };
        if let Err(e) = crate::session::connect::validate_url(&url) {
            return self.fail(e.to_string());
        }
        // Loading reads every weight (seconds), and the loopback engine asks its server with a
        // blocking client, which must not run on an async worker: off to the blocking pool.
        let (factory, engine_spec) = (self.factory.clone(), spec.engine.clone());
        let engine = match tokio::task::spawn_blocking(move || factory(&engine_spec)).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return self.fail(format!("model not loaded: {e}")),
            Err(e) => return self.fail(format!("model not loaded: the loader failed: {e}")),
        };
        let id = spec.provider_id.clone();
        let token = match tokio::task::spawn_blocking(move || resolve_token(&id)).await {
            Ok(Ok(t)) => t.map(|r| r.token),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no provider token from the keychain; connecting without one");
                None
            }
            Err(_) => None,
        };
        let mut config = ProviderConfig::new(url.clone(), spec.provider_id.clone());
        config.slots = spec.slots;
        config.token = token.as_ref().map(|t| t.expose().to_string());
        if let Some(tune) = &self.tune {
            tune(&mut config);
        }
        let ca_file = config.ca_file.clone();
        let options = ProviderOptions {
            probe: None,
            status: Some(self.inner.hub.clone()),
            job_sink: Some(self.recorder.sink()),
        };
        tracing::info!(coordinator = %url, provider_id = %spec.provider_id, slots = spec.slots, "starting the provider");
        self.provider = Some(Provider::start_with(config, engine, options));
        let target = gateway_url(&url).map(|gateway_url| Target {
            gateway_url,
            provider_id: spec.provider_id.clone(),
            token,
            ca_file,
        });
        if *self.target.borrow() != target {
            self.target.send_replace(target);
        }
    }

    fn fail(&mut self, why: String) {
        tracing::error!(%why, "the provider cannot start");
        self.inner.hub.update(|s| {
            s.connection.last_error = Some(why.clone());
            s.set_phase(ProviderPhase::Error, why);
        });
    }

    /// Starts the embedded pool on first use. If its port is taken, another local pool (e.g.
    /// `hearth pool`) is assumed to serve there and is used instead.
    async fn ensure_local_pool(&mut self) -> Result<String, String> {
        let url = format!("ws://{}/ws/provider", self.local_pool_addr);
        if self.local_pool.is_some() {
            return Ok(url);
        }
        let config = hearth_pool::PoolConfig { listen: self.local_pool_addr, ..Default::default() };
        match hearth_pool::Pool::start(config).await {
            Ok(pool) => {
                self.local_pool = Some(pool);
                Ok(url)
            }
            Err(hearth_pool::PoolError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                tracing::info!(%url, "a local pool already listens there; using it");
                Ok(url)
            }
            Err(e) => Err(format!("cannot start the local pool: {e}")),
        }
    }
}

fn pause_reason() -> String {
    "paused: this machine is running on battery and pause_on_battery is on; it resumes on external power"
        .to_string()
}

async fn provider_finished(p: &mut Option<Provider>) {
    match p {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}

impl ControlBackend for Inner {
    fn start(&self) {
        let _ = self.commands.send(Command::Start);
    }

    fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    fn settings(&self) -> SettingsView {
        let settings = self.settings.borrow().clone();
        let s = spec(&settings, &self.overrides);
        let token_source = match resolve_token(&s.provider_id) {
            Ok(Some(t)) => Some(format!("{:?}", t.source).to_lowercase()),
            _ => None,
        };
        SettingsView {
            path: self.store.path().to_path_buf(),
            errors: self.hub.snapshot().settings.errors,
            pinned: self.overrides.pinned(),
            effective: EffectiveSettings {
                coordinator: s.coordinator.to_string(),
                provider_id: s.provider_id,
                slots: s.slots,
                engine: s.engine.kind,
                model_id: s.engine.model_id,
                model_path: s.engine.model_path,
            },
            settings,
            token_source,
        }
    }

    fn put_settings(&self, body: &[u8]) -> Result<Settings, PutSettingsError> {
        let current = self.settings.borrow().clone();
        let settings = merge_settings(&current, body).map_err(PutSettingsError::Invalid)?;
        settings.validate().map_err(PutSettingsError::Invalid)?;
        self.store.save(&settings).map_err(|e| match e {
            SettingsError::Invalid(errors) => PutSettingsError::Invalid(errors),
            other => PutSettingsError::Save(other.to_string()),
        })?;
        // The watcher will see the file too; applying here makes the answer reflect it at once,
        // and applying the same settings twice changes nothing.
        self.hub.update(|s| s.settings.errors.clear());
        let _ = self.commands.send(Command::Apply(Box::new(settings.clone())));
        Ok(settings)
    }

    fn models(&self) -> Vec<LocalModel> {
        crate::models::discover(&self.roots, crate::system::total_ram_bytes())
    }

    fn earnings(&self, range: EarningsRange, limit: usize) -> Result<EarningsReport, String> {
        let (version, source) = {
            let c = self.card.read().unwrap_or_else(|e| e.into_inner());
            (c.card.version.clone(), c.source)
        };
        crate::earnings::report(&self.ledger, range, unix_ms() as i64, limit, (&version, source))
            .map_err(|e| e.to_string())
    }
}

/// Applies a JSON object of settings fields onto `current` (`null` clears an optional field) and
/// parses the result, naming the offending field on error.
fn merge_settings(current: &Settings, body: &[u8]) -> Result<Settings, Vec<FieldError>> {
    let patch: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| vec![FieldError::new("body", format!("is not valid JSON: {e}"))])?;
    let serde_json::Value::Object(patch) = patch else {
        return Err(vec![FieldError::new("body", "must be a JSON object of settings fields")]);
    };
    let mut merged = match serde_json::to_value(current) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    let de = serde_json::Value::Object(merged);
    serde_path_to_error::deserialize::<_, Settings>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| inner.split(p).nth(1).and_then(|rest| rest.split('`').next()))
            .map(str::to_string)
            .unwrap_or_else(|| if path == "." { "body".into() } else { path });
        vec![FieldError::new(field, inner)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct FakePower(AtomicBool);

    impl PowerSource for FakePower {
        fn on_battery(&self) -> Option<bool> {
            Some(self.0.load(Ordering::SeqCst))
        }
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
        let factory: EngineFactory = Arc::new(|spec: &EngineSpec| {
            let id = spec.model_id.clone().unwrap_or_else(|| "m".into());
            Ok(Arc::new(hearth_inference::scripted::ScriptedEngine::new(id)) as Arc<dyn Engine>)
        });
        let mut config = AppConfig::new(paths, factory);
        config.overrides = Overrides {
            coordinator: Some(format!("ws://{}/ws/provider", pool.local_addr())),
            engine: Some(EngineKind::Scripted),
            ..Default::default()
        };
        let power = Arc::new(FakePower(AtomicBool::new(false)));
        config.power = power.clone();
        config.power_poll = Duration::from_millis(50);
        let app = App::start(config).await.unwrap();
        phase_becomes(app.status(), ProviderPhase::Ready).await;

        power.0.store(true, Ordering::SeqCst);
        let s = phase_becomes(app.status(), ProviderPhase::Paused).await;
        assert!(s.not_earning.unwrap().contains("running on battery"));
        // The pool learns of the pause from the provider's own frames, which
        // may land a moment after the provider's local state flips.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pool.snapshot().pool.ready != 0 {
            assert!(tokio::time::Instant::now() < deadline, "pool still counts the paused provider ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        power.0.store(false, Ordering::SeqCst);
        phase_becomes(app.status(), ProviderPhase::Ready).await;
        app.shutdown().await;
        pool.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_engine_that_cannot_load_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HearthPaths::from_home_override(Some(dir.path().as_os_str().to_owned())).unwrap();
        let factory: EngineFactory = Arc::new(|_: &EngineSpec| Err("no such model directory".to_string()));
        let mut config = AppConfig::new(paths, factory);
        config.overrides.coordinator = Some("ws://127.0.0.1:9/ws/provider".into());
        let app = App::start(config).await.unwrap();
        let s = phase_becomes(app.status(), ProviderPhase::Error).await;
        assert_eq!(s.not_earning.as_deref(), Some("model not loaded: no such model directory"));
        app.shutdown().await;
    }

    #[test]
    fn put_bodies_merge_and_name_the_bad_field() {
        let current = Settings { provider_id: "p1".into(), ..Settings::default() };
        let s = merge_settings(&current, br#"{"slots": 3}"#).unwrap();
        assert_eq!((s.slots, s.provider_id.as_str()), (3, "p1"));
        let e = merge_settings(&current, br#"{"slots": "two"}"#).unwrap_err();
        assert_eq!(e[0].field, "slots");
        let e = merge_settings(&current, br#"{"slot": 2}"#).unwrap_err();
        assert_eq!(e[0].field, "slot");
        assert!(e[0].message.contains("unknown field"), "{}", e[0].message);
        let e = merge_settings(&current, b"[1]").unwrap_err();
        assert_eq!(e[0].field, "body");
        let s = merge_settings(&current, br#"{"coordinator": "ws://127.0.0.1:9/ws/provider"}"#).unwrap();
        assert_eq!(s.coordinator, Coordinator::Url("ws://127.0.0.1:9/ws/provider".into()));
    }

    #[test]
    fn overrides_win_and_are_listed() {
        let s = Settings { provider_id: "file-id".into(), slots: 2, ..Settings::default() };
        let o = Overrides { slots: Some(4), engine: Some(EngineKind::Scripted), ..Default::default() };
        let sp = spec(&s, &o);
        assert_eq!((sp.slots, sp.provider_id.as_str(), sp.engine.kind), (4, "file-id", EngineKind::Scripted));
        assert_eq!(o.pinned(), ["slots", "engine"]);
    }
}
