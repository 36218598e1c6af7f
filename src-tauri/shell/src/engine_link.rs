//! The engine, embedded: the shell starts the same headless [`App`] that `hearth serve` runs and
//! talks to it in two ways: the status hub and start/stop directly, and the few calls the `App`
//! does not expose as methods (settings, models, earnings) through its own loopback control API,
//! with the per-install token. The API is the one contract both the browser UI and the shell use,
//! so the shell adds no second code path for validation or reporting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_engine::app::{App, AppConfig};
use hearth_engine::control;
use hearth_engine::engines::{self, LoadOptions};
use hearth_engine::session::ProviderConfig;
use hearth_engine::status::{Status, StatusHub};
use hearth_settings::HearthPaths;
use serde_json::Value;

/// In-flight jobs get this long to finish when the user stops or quits.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Quitting waits at most this long for the drain and the ledger flush, then exits anyway.
pub const QUIT_LIMIT: Duration = Duration::from_secs(25);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the engine did not start: {0}")]
    Start(String),
    #[error("the engine is shutting down")]
    Gone,
    #[error("cannot reach the engine's control API: {0}")]
    Unreachable(String),
    /// The API refused the request; `body` is its JSON answer (e.g. 422 field errors).
    #[error("the engine answered {status}")]
    Refused { status: u16, body: Value },
}

/// The engine as the shell holds it.
pub struct EngineLink {
    app: Mutex<Option<App>>,
    hub: StatusHub,
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl EngineLink {
    /// Starts the engine: settings, ledger, control API; serving only if `serve_now` (launched at
    /// login with `--start`), otherwise it waits for the user's click.
    pub async fn start(serve_now: bool) -> Result<EngineLink, LinkError> {
        let paths = HearthPaths::resolve().map_err(|e| LinkError::Start(e.to_string()))?;
        let data_dir = paths.data_dir.clone();
        // The same factory as `hearth serve`; the app has no command line, so everything (engine,
        // model, loopback URL) comes from the settings.
        let mut config = AppConfig::new(paths, engines::factory(&LoadOptions::default()));
        config.autostart = serve_now;
        config.tune_provider = Some(Arc::new(|c: &mut ProviderConfig| c.drain_timeout = DRAIN_TIMEOUT));
        let app = App::start(config).await.map_err(|e| LinkError::Start(e.to_string()))?;
        let endpoint = control::find_endpoint(&data_dir).map_err(|e| LinkError::Start(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| LinkError::Start(e.to_string()))?;
        Ok(EngineLink {
            hub: app.status().clone(),
            base_url: format!("http://{}", app.control_addr()),
            token: endpoint.token,
            http,
            app: Mutex::new(Some(app)),
        })
    }

    pub fn hub(&self) -> &StatusHub {
        &self.hub
    }

    pub fn snapshot(&self) -> Status {
        self.hub.snapshot()
    }

    fn with_app(&self, f: impl FnOnce(&App)) -> Result<(), LinkError> {
        let guard = self.app.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(f).ok_or(LinkError::Gone)
    }

    pub fn start_serving(&self) -> Result<(), LinkError> {
        self.with_app(App::start_provider)
    }

    pub fn stop_serving(&self) -> Result<(), LinkError> {
        self.with_app(App::stop_provider)
    }

    /// Drains in-flight jobs (bounded by [`QUIT_LIMIT`]) and stops the engine. Later calls find
    /// nothing to stop.
    pub async fn shutdown(&self) {
        let app = self.app.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(app) = app {
            if tokio::time::timeout(QUIT_LIMIT, app.shutdown()).await.is_err() {
                tracing::warn!("in-flight jobs did not finish in time; quitting anyway");
            }
        }
    }

    /// One control API call; a non-2xx answer comes back as [`LinkError::Refused`] with its body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, LinkError> {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base_url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| LinkError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(LinkError::Refused { status: status.as_u16(), body })
        }
    }
}
