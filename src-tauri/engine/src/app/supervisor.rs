//! The supervisor: the one task that changes the provider. It takes, in order, the commands from
//! the clients, the settings applied, the power policy's verdicts and the provider ending by
//! itself; it starts (loading the engine, reading the token), stops, restarts on a changed
//! [`ProviderChoice`], and hands the power verdict to the running provider (fewer slots, or a
//! pause that finishes the jobs held; never a restart). It also owns the embedded local pool, and
//! tells the background pollers which coordinator it connected to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hearth_settings::{resolve_token, Coordinator, FieldError, Settings};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::choice::ProviderChoice;
use super::config::{AppConfig, ProviderTuning};
use super::power_watch::PowerWatch;
use super::recorder::Recorder;
use super::remote::{gateway_url, Target};
use super::state::{AppState, Command};
use crate::engines::EngineFactory;
use crate::provider::{Provider, ProviderOptions};
use crate::session::ProviderConfig;
use crate::status::ProviderPhase;

pub(super) struct Supervisor {
    state: Arc<AppState>,
    recorder: Recorder,
    factory: EngineFactory,
    tune: Option<ProviderTuning>,
    power: PowerWatch,
    /// Slots the current (or last) provider offers: what the power policy's verdicts limit.
    offered_slots: u32,
    local_pool_addr: SocketAddr,
    /// The embedded pool, once `local_pool` was used.
    local_pool: Option<hearth_pool::Pool>,
    provider: Option<Provider>,
    /// What the current (or last attempted) provider was started with.
    running: Option<ProviderChoice>,
    /// The user wants it serving (autostart, `start`), as opposed to stopped.
    wanted: bool,
    /// A model switch under way: the choice it loads, and the task loading and swapping it.
    switching: Option<(ProviderChoice, JoinHandle<SwitchOutcome>)>,
    target: watch::Sender<Option<Target>>,
    exits: watch::Sender<Option<String>>,
}

impl Supervisor {
    /// A supervisor that, once run, serves at once if `config.autostart`. It publishes the
    /// coordinator it connects to on `target` and a provider's own ending on `exits`.
    pub fn new(
        state: Arc<AppState>,
        recorder: Recorder,
        config: &AppConfig,
        target: watch::Sender<Option<Target>>,
        exits: watch::Sender<Option<String>>,
    ) -> Supervisor {
        Supervisor {
            state,
            recorder,
            factory: config.engine_factory.clone(),
            tune: config.tune_provider.clone(),
            power: PowerWatch::new(config.probes.clone(), config.power_relax_after),
            offered_slots: 1,
            local_pool_addr: config.local_pool_addr,
            local_pool: None,
            provider: None,
            running: None,
            wanted: config.autostart,
            switching: None,
            target,
            exits,
        }
    }

    pub fn spawn(self, commands: mpsc::UnboundedReceiver<Command>, power_poll: Duration) -> JoinHandle<()> {
        tokio::spawn(self.run(commands, power_poll))
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, power_poll: Duration) {
        self.check_power().await;
        if self.wanted {
            self.start().await;
        }
        let mut power = tokio::time::interval(power_poll);
        power.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The provider's phase decides the keep-awake and the power view's mode (pausing while
        // it finishes the jobs it holds, paused after): follow it as it changes, not per poll.
        let mut snapshots = self.state.hub.subscribe();
        let mut phase = snapshots.borrow().phase;
        loop {
            tokio::select! {
                r = snapshots.changed() => {
                    let now = r.ok().map(|_| snapshots.borrow_and_update().phase);
                    if let Some(now) = now.filter(|p| *p != phase) {
                        phase = now;
                        self.follow_phase();
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Start) => {
                        self.wanted = true;
                        // Started while the power policy pauses, the provider loads its model and
                        // waits offline, saying why, until the pause lifts.
                        if self.provider.is_none() {
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
                    let reason = self.state.hub.snapshot().reason;
                    tracing::warn!(%reason, "the provider stopped by itself");
                    self.exits.send_replace(Some(reason));
                }
                _ = power.tick() => self.check_power().await,
                outcome = switch_finished(&mut self.switching) => self.switched(outcome).await,
            }
        }
    }

    fn choice(&self) -> ProviderChoice {
        ProviderChoice::of(&self.state.settings.borrow(), &self.state.overrides)
    }

    async fn apply(&mut self, settings: Settings) {
        self.state.settings.send_replace(settings);
        let new = self.choice();
        self.check_power().await;
        if self.switching.as_ref().is_some_and(|(to, _)| *to == new) {
            return;
        }
        let in_place = self.provider.is_some()
            && !self.provider.as_ref().is_some_and(|p| p.is_finished())
            && self.running.as_ref().is_some_and(|r| r.differs_only_in_engine(&new));
        if self.wanted && in_place {
            self.switch_model(new);
        } else if self.wanted && self.running.as_ref() != Some(&new) {
            tracing::info!("settings changed what the provider serves; restarting it");
            self.stop("restarting with new settings").await;
            self.start().await;
        }
    }

    /// Loads the new model beside the one serving, off this loop, then swaps it in between jobs:
    /// the session stays up and the coordinator hears the new model. A newer choice replaces a
    /// switch still loading.
    fn switch_model(&mut self, choice: ProviderChoice) {
        self.cancel_switch();
        let Some(swapper) = self.provider.as_ref().map(|p| p.swapper()) else { return };
        let (factory, engine_choice) = (self.factory.clone(), choice.engine.clone());
        let serving = swapper.model_id();
        let to = engine_choice.model_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        tracing::info!(from = %serving, to = %to, "loading the new model beside the one serving");
        self.state.hub.update(|s| s.switching_to = Some(to.clone()));
        let slots_wanted = choice.engine.slots;
        let task = tokio::spawn(async move {
            let loaded = tokio::task::spawn_blocking(move || factory(&engine_choice)).await;
            let engine = match loaded {
                Ok(Ok(engine)) => engine,
                Ok(Err(e)) => {
                    return SwitchOutcome::Failed(format!("model not loaded: {e}; still serving {serving}"))
                }
                Err(e) => {
                    return SwitchOutcome::Failed(format!(
                        "model not loaded: the loader failed: {e}; still serving {serving}"
                    ))
                }
            };
            let slots = crate::engines::slots_offered(engine.as_ref(), slots_wanted);
            if swapper.swap(engine, slots, SWAP_WAIT).await {
                SwitchOutcome::Swapped { slots }
            } else {
                SwitchOutcome::Failed(format!(
                    "the jobs in flight did not finish within {} s; still serving {serving}, save again to retry",
                    SWAP_WAIT.as_secs()
                ))
            }
        });
        self.switching = Some((choice, task));
    }

    /// Reads the probes, evaluates the policy, hands a changed verdict to the provider, holds or
    /// releases the keep-awake, and publishes the power view.
    async fn check_power(&mut self) {
        let settings = self.state.settings.borrow().power.clone();
        if self.power.check(&settings, self.offered_slots).await {
            if let Some(p) = &self.provider {
                p.set_availability(self.power.availability());
            }
        }
        self.follow_phase();
    }

    /// Holds the keep-awake while serving (releases it the moment serving stops) and publishes
    /// the power view for the provider's phase.
    fn follow_phase(&mut self) {
        let phase = self.state.hub.snapshot().phase;
        let serving = self.provider.is_some()
            && !matches!(phase, ProviderPhase::Paused | ProviderPhase::Stopped | ProviderPhase::Error);
        self.power.keep_awake(serving);
        let view = self.power.view(self.offered_slots, phase);
        if self.state.hub.snapshot().power.as_ref() != Some(&view) {
            self.state.hub.update(|s| s.power = Some(view));
        }
    }

    /// A switch ended: the new model serves, or the old one still does and the settings window
    /// says why at the model field.
    async fn switched(&mut self, outcome: SwitchOutcome) {
        let Some((choice, _)) = self.switching.take() else { return };
        self.state.hub.update(|s| s.switching_to = None);
        match outcome {
            SwitchOutcome::Swapped { slots } => {
                tracing::info!(slots, "the new model serves");
                self.running = Some(choice);
                if slots != self.offered_slots {
                    self.offered_slots = slots;
                    self.check_power().await;
                }
            }
            SwitchOutcome::Failed(why) => {
                tracing::warn!(%why, "the model switch failed");
                self.state.hub.update(|s| {
                    s.settings.errors.retain(|e| e.field != "model_path");
                    s.settings.errors.push(FieldError::new("model_path", why));
                });
            }
        }
    }

    fn cancel_switch(&mut self) {
        if let Some((_, task)) = self.switching.take() {
            task.abort();
            self.state.hub.update(|s| s.switching_to = None);
        }
    }

    async fn stop(&mut self, why: &str) {
        self.cancel_switch();
        if let Some(p) = self.provider.take() {
            p.stop().await;
        }
        self.running = None;
        let why = why.to_string();
        self.state.hub.update(|s| {
            s.connection.connected = false;
            s.active_jobs.clear();
            s.set_phase(ProviderPhase::Stopped, why);
        });
    }

    async fn start(&mut self) {
        let choice = self.choice();
        self.running = Some(choice.clone());
        self.exits.send_replace(None);
        let url = match &choice.coordinator {
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
        let (factory, engine_choice) = (self.factory.clone(), choice.engine.clone());
        let engine = match tokio::task::spawn_blocking(move || factory(&engine_choice)).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return self.fail(format!("model not loaded: {e}")),
            Err(e) => return self.fail(format!("model not loaded: the loader failed: {e}")),
        };
        let id = choice.provider_id.clone();
        let token = match tokio::task::spawn_blocking(move || resolve_token(&id)).await {
            Ok(Ok(t)) => t.map(|r| {
                // From here on no log line (the ring, stderr) may show it.
                crate::log_ring::add_secret(r.token.expose());
                r.token
            }),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no provider token from the keychain; connecting without one");
                None
            }
            Err(_) => None,
        };
        let mut config = ProviderConfig::new(url.clone(), choice.provider_id.clone());
        config.slots = crate::engines::slots_offered(engine.as_ref(), choice.engine.slots);
        if config.slots != self.offered_slots {
            // The verdict was for the old slot count; evaluate again for this one.
            self.offered_slots = config.slots;
            self.check_power().await;
        }
        config.token = token.as_ref().map(|t| t.expose().to_string());
        config.protocol = choice.protocol;
        if let Some(v) = &choice.binary_version {
            config.binary_version = v.clone();
        }
        if let Some(tune) = &self.tune {
            tune(&mut config);
        }
        let ca_file = config.ca_file.clone();
        let options = ProviderOptions {
            probe: None,
            status: Some(self.state.hub.clone()),
            job_sink: Some(self.recorder.sink()),
            availability: Some(self.power.availability()),
        };
        tracing::info!(coordinator = %url, provider_id = %choice.provider_id, slots = config.slots, "starting the provider");
        self.provider = Some(Provider::start_with(config, engine, options));
        let target = gateway_url(&url).map(|gateway_url| Target {
            gateway_url,
            provider_id: choice.provider_id.clone(),
            token,
            ca_file,
        });
        if *self.target.borrow() != target {
            self.target.send_replace(target);
        }
    }

    fn fail(&mut self, why: String) {
        tracing::error!(%why, "the provider cannot start");
        self.state.hub.update(|s| {
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

/// How long a model swap waits for the jobs in flight before giving up (the old model keeps
/// serving). Long jobs are rare; a stuck one should not hold the new model off forever.
const SWAP_WAIT: Duration = Duration::from_secs(120);

/// How a model switch ended.
enum SwitchOutcome {
    Swapped { slots: u32 },
    Failed(String),
}

async fn switch_finished(
    switching: &mut Option<(ProviderChoice, JoinHandle<SwitchOutcome>)>,
) -> SwitchOutcome {
    match switching {
        Some((_, task)) => match task.await {
            Ok(outcome) => outcome,
            Err(e) => SwitchOutcome::Failed(format!("the model switch stopped: {e}")),
        },
        None => std::future::pending().await,
    }
}

async fn provider_finished(p: &mut Option<Provider>) {
    match p {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}
