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
        Self::start_with(paths, serve_now).await
    }

    /// As [`EngineLink::start`], with the config and data directories given.
    pub async fn start_with(paths: HearthPaths, serve_now: bool) -> Result<EngineLink, LinkError> {
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use hearth_engine::status::ProviderPhase;

    use super::*;

    /// Quit from the tray: a buyer's streamed answer in progress is finished, not cut, and the
    /// engine is gone afterwards — within the bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quitting_lets_an_in_flight_job_finish_then_stops_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let pool = hearth_pool::Pool::start(hearth_pool::PoolConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        })
        .await
        .unwrap();
        let addr = pool.local_addr();
        let paths = HearthPaths { config_dir: dir.path().join("config"), data_dir: dir.path().join("data") };
        std::fs::create_dir_all(&paths.config_dir).unwrap();
        std::fs::write(
            paths.config_dir.join("settings.toml"),
            format!(
                "coordinator = \"ws://{addr}/ws/provider\"\nprovider_id = \"quit-test\"\n\
                 engine = \"scripted\"\npause_on_battery = false\n"
            ),
        )
        .unwrap();
        let link = EngineLink::start_with(paths, true).await.unwrap();
        let mut rx = link.hub().subscribe();
        tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|s| s.phase == ProviderPhase::Ready))
            .await
            .expect("ready in time")
            .unwrap();

        // About 2 s of tokens (the scripted engine reads its pace from the prompt).
        let body = serde_json::json!({
            "model": "hearth-scripted",
            "messages": [{"role": "user", "content": "token_delay_ms=50"}],
            "max_tokens": 40,
            "stream": true,
        });
        let mut answer = reqwest::Client::new()
            .post(format!("http://{addr}/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let mut text = String::from_utf8(answer.chunk().await.unwrap().unwrap().to_vec()).unwrap();

        let started = Instant::now();
        let link = Arc::new(link);
        let quitting = tokio::spawn({
            let link = link.clone();
            async move { link.shutdown().await }
        });
        while let Some(chunk) = answer.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(text.trim_end().ends_with("data: [DONE]"), "the answer was cut: {text}");
        quitting.await.unwrap();
        assert!(started.elapsed() < QUIT_LIMIT, "{:?}", started.elapsed());
        assert!(matches!(link.start_serving(), Err(LinkError::Gone)), "the engine is stopped");
        pool.shutdown().await;
    }
}
