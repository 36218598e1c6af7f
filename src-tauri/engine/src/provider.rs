//! A running provider: the session loop plus the status it publishes, behind one handle.

use std::sync::Arc;

use hearth_inference::Engine;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::session::{run_provider, Availability, HandlerProbe, JobSink, ProviderConfig, Shared};
use crate::status::{Status, StatusHub};

/// Optional wiring for [`Provider::start_with`].
#[derive(Default, Clone)]
pub struct ProviderOptions {
    /// Watches the handler (tests).
    pub probe: Option<Arc<dyn HandlerProbe>>,
    /// Publish into this hub instead of a new one, so a long-lived app keeps one snapshot stream
    /// (and its history) across provider restarts.
    pub status: Option<StatusHub>,
    /// Told about every job's start and end.
    pub job_sink: Option<Arc<dyn JobSink>>,
    /// What the power policy allows from the start (a provider started while paused does not
    /// connect until the pause lifts).
    pub availability: Option<Availability>,
}

/// See [`Provider::swapper`].
#[derive(Clone)]
pub struct EngineSwapper(Arc<Shared>);

impl EngineSwapper {
    /// As [`Provider::swap_engine`].
    pub async fn swap(&self, engine: Arc<dyn Engine>, slots: u32, wait: std::time::Duration) -> bool {
        self.0.swap_engine(engine, slots, wait).await
    }

    /// The model serving now.
    pub fn model_id(&self) -> String {
        self.0.engine().descriptor().model_id.clone()
    }
}

pub struct Provider {
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Provider {
    /// Starts connecting and serving in the background.
    pub fn start(config: ProviderConfig, engine: Arc<dyn Engine>) -> Self {
        Self::start_with_probe(config, engine, None)
    }

    /// As [`Provider::start`], with a [`HandlerProbe`] watching the handler (tests).
    pub fn start_with_probe(
        config: ProviderConfig,
        engine: Arc<dyn Engine>,
        probe: Option<Arc<dyn HandlerProbe>>,
    ) -> Self {
        Self::start_with(config, engine, ProviderOptions { probe, ..Default::default() })
    }

    /// As [`Provider::start`], with the options' probe, status hub and job sink.
    pub fn start_with(config: ProviderConfig, engine: Arc<dyn Engine>, options: ProviderOptions) -> Self {
        let d = engine.descriptor().clone();
        let status = match options.status {
            Some(hub) => {
                hub.update(|s| {
                    s.reset_for_start(
                        &config.provider_id,
                        &d.model_id,
                        &d.engine,
                        config.slots,
                        &config.coordinator_url,
                    )
                });
                hub
            }
            None => StatusHub::new(Status::new(
                &config.provider_id,
                &d.model_id,
                &d.engine,
                config.slots,
                &config.coordinator_url,
            )),
        };
        let shared = Shared::with_job_sink(config, engine, status, options.job_sink);
        if let Some(a) = options.availability {
            shared.set_availability(a);
        }
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_provider(shared.clone(), options.probe, shutdown.clone()));
        Self { shared, shutdown, task }
    }

    pub fn status(&self) -> &StatusHub {
        &self.shared.status
    }

    /// Follows the power policy: fewer slots, a pause (finish the held jobs, then offline), or
    /// back to full service. Never reconnects for a slot change.
    pub fn set_availability(&self, availability: Availability) {
        self.shared.set_availability(availability);
    }

    /// Switches to `engine` (offering `slots`) without leaving the session: the jobs in flight
    /// finish on the old engine while new work waits, then the new model is announced. False when
    /// the jobs did not finish within `wait` (the old engine keeps serving).
    pub async fn swap_engine(&self, engine: Arc<dyn Engine>, slots: u32, wait: std::time::Duration) -> bool {
        self.shared.swap_engine(engine, slots, wait).await
    }

    /// A handle that can swap this provider's engine from another task (the app's supervisor
    /// loads the new model off its own loop, so commands keep flowing meanwhile).
    pub fn swapper(&self) -> EngineSwapper {
        EngineSwapper(self.shared.clone())
    }

    /// True once the provider stopped by itself (a terminal close code or a bad setting).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Drains in-flight work (bounded by the drain timeout), closes the session and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the provider stops by itself.
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}
