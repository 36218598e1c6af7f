//! The engine, embedded: the shell starts the same headless [`App`] that `hearth serve` runs and
//! calls it in-process — the status hub for snapshots, and the app's [`ControlBackend`] (the one
//! the control API serves browsers over HTTP) for everything else. One backend behind both, so the
//! shell adds no second code path for validation or reporting, and never talks HTTP to itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_engine::app::{App, AppConfig};
use hearth_engine::backend::ControlBackend;
use hearth_engine::engines::{self, LoadOptions};
use hearth_engine::session::ProviderConfig;
use hearth_engine::status::{Status, StatusHub};
use hearth_settings::HearthPaths;

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
    /// The call itself broke (it panicked), as opposed to the engine refusing it.
    #[error("the engine call failed: {0}")]
    Call(String),
}

/// The engine as the shell holds it.
pub struct EngineLink {
    app: Mutex<Option<App>>,
    hub: StatusHub,
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
        // The same factory as `hearth serve`; the app has no command line, so everything (engine,
        // model, loopback URL) comes from the settings.
        let mut config = AppConfig::new(paths, engines::factory(&LoadOptions::default()));
        config.autostart = serve_now;
        config.tune_provider = Some(Arc::new(|c: &mut ProviderConfig| c.drain_timeout = DRAIN_TIMEOUT));
        let app = App::start(config).await.map_err(|e| LinkError::Start(e.to_string()))?;
        Ok(EngineLink { hub: app.status().clone(), app: Mutex::new(Some(app)) })
    }

    pub fn hub(&self) -> &StatusHub {
        &self.hub
    }

    pub fn snapshot(&self) -> Status {
        self.hub.snapshot()
    }

    /// The app's backend, until the engine is shut down.
    fn backend(&self) -> Result<Arc<dyn ControlBackend>, LinkError> {
        let guard = self.app.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(App::backend).ok_or(LinkError::Gone)
    }

    pub fn start_serving(&self) -> Result<(), LinkError> {
        self.backend()?.start();
        Ok(())
    }

    pub fn stop_serving(&self) -> Result<(), LinkError> {
        self.backend()?.stop();
        Ok(())
    }

    /// One backend call, off the async workers: the settings, the keychain and the ledger's
    /// SQLite all block.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ControlBackend) -> T + Send + 'static,
    ) -> Result<T, LinkError> {
        let backend = self.backend()?;
        tauri::async_runtime::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|e| LinkError::Call(e.to_string()))
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
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use hearth_engine::status::ProviderPhase;

    use super::*;

    /// The shell's calls reach the same backend the control API serves, in-process: a patch is
    /// merged, validated and saved, a bad one is refused field by field, and after quitting
    /// nothing answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settings_calls_go_through_the_backend_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HearthPaths { config_dir: dir.path().join("config"), data_dir: dir.path().join("data") };
        let link = EngineLink::start_with(paths, false).await.unwrap();

        let saved = link.call(|b| b.put_settings(br#"{"slots": 3}"#)).await.unwrap().unwrap();
        assert_eq!(saved.slots, Some(3));
        let view = link.call(|b| b.settings()).await.unwrap();
        assert_eq!((view.settings.slots, view.effective.slots), (Some(3), Some(3)));

        let refused = link.call(|b| b.put_settings(br#"{"slots": 9}"#)).await.unwrap().unwrap_err();
        let hearth_engine::backend::PutSettingsError::Invalid(errors) = refused else {
            panic!("refused field by field: {refused:?}")
        };
        assert_eq!(errors[0].field, "slots");
        assert_eq!(link.call(|b| b.settings()).await.unwrap().settings.slots, Some(3), "nothing saved");

        link.shutdown().await;
        assert!(matches!(link.call(|b| b.settings()).await, Err(LinkError::Gone)));
    }

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
                 engine = \"scripted\"\n[power]\non_battery = \"never\"\nuser_active = \"ignore\"\n"
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
        let body = hearth_testkit::chat::chat("hearth-scripted", "token_delay_ms=50", 40, true);
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
