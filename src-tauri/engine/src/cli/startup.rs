//! The first start's outcome, for the commands that serve (`serve`, `local`): a model that cannot
//! load at start is a start-up error, so the command exits non-zero with it instead of idling
//! with nothing to serve. No model chosen at all is the exception: that is a first launch, which
//! the dashboard's onboarding answers (choose or fetch one), so the command waits for the choice.
//! (The menu-bar app shows every error and waits for a new choice; it does not use this.)

use std::path::Path;

use hearth_engine::status::{ProviderPhase, Status, StatusHub};

/// Waits for the supervisor's first start and returns the snapshot if it failed. Until it is
/// decided the snapshot keeps its initial phase (stopped, "not started") while the model loads,
/// however long that takes; `Ok` once the engine loaded and the provider is connecting or serving,
/// or when it is paused on battery (it starts when the power comes back).
/// While no model is chosen it keeps waiting (saying so once), until one is and that start decides.
pub async fn first_start(status: &StatusHub) -> Result<(), Status> {
    let mut rx = status.subscribe();
    let mut told = false;
    loop {
        let s = rx.borrow_and_update().clone();
        match s.phase {
            ProviderPhase::Stopped => {}
            ProviderPhase::Error if waiting_for_a_model(&s) => {
                if !told {
                    told = true;
                    tracing::warn!(
                        "no model chosen yet: choose or fetch one in the dashboard (`hearth open`); \
                         the provider starts once one is chosen"
                    );
                }
            }
            ProviderPhase::Error => return Err(s),
            _ => return Ok(()),
        }
        if rx.changed().await.is_err() {
            // The app went away first; its own shutdown says why.
            return std::future::pending().await;
        }
    }
}

fn waiting_for_a_model(s: &Status) -> bool {
    s.reason.contains(hearth_engine::engines::NO_MODEL_CHOSEN)
}

/// Who named the model the app was started with.
#[derive(Debug, Clone, Copy)]
pub enum ModelSource<'a> {
    /// `--model` on the command line.
    Flag,
    /// The settings file (or nothing: no model).
    Settings,
    /// `hearth local`'s default model, provisioned into this folder.
    Default(&'a Path),
}

/// The error a failed first start exits with: the app's reason and, when the model is what failed,
/// what to do about it, which depends on who named the model.
pub fn failure_message(status: &Status, model: ModelSource) -> String {
    let reason = &status.reason;
    if !reason.starts_with("model not loaded") {
        return format!("the provider could not start: {reason}");
    }
    let fix = match model {
        ModelSource::Flag => "check --model: it must name a model directory (config.json, *.safetensors, \
                              tokenizer.json) or a .gguf file, and --engine an engine that runs it"
            .to_string(),
        ModelSource::Settings => format!(
            "pass --model PATH, or choose a model in Settings (model_path and engine in {})",
            status.settings.path
        ),
        ModelSource::Default(dir) => {
            format!("delete {} to fetch the default model again, or pass --model PATH", dir.display())
        }
    };
    format!("the provider could not start: {reason}\n  to fix it: {fix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(reason: &str) -> Status {
        let mut s = Status::new("p", "m", "cpu", 1, "ws://127.0.0.1:1/ws/provider");
        s.settings.path = "/home/u/.config/hearth/settings.toml".into();
        s.set_phase(ProviderPhase::Error, reason);
        s
    }

    #[test]
    fn a_model_that_did_not_load_comes_with_what_to_do() {
        let s = failed("model not loaded: model path /nope does not exist");
        let flag = failure_message(&s, ModelSource::Flag);
        assert!(flag.contains("/nope does not exist") && flag.contains("check --model"), "{flag}");
        let file = failure_message(&s, ModelSource::Settings);
        assert!(file.contains("settings.toml") && file.contains("--model PATH"), "{file}");
        let default = failure_message(&s, ModelSource::Default(Path::new("/d/models/gemma")));
        assert!(default.contains("delete /d/models/gemma"), "{default}");
        let other = failure_message(&failed("cannot start the local pool: in use"), ModelSource::Flag);
        assert_eq!(other, "the provider could not start: cannot start the local pool: in use");
    }

    #[tokio::test]
    async fn the_first_start_waits_for_the_load_and_reports_its_outcome() {
        let hub = StatusHub::new(Status::new("p", "m", "cpu", 1, "ws://x"));
        let waiting = tokio::spawn({
            let hub = hub.clone();
            async move { first_start(&hub).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "still loading: no outcome yet");
        hub.update(|s| s.set_phase(ProviderPhase::Error, "model not loaded: bad"));
        let failed = waiting.await.unwrap().expect_err("the failure is reported");
        assert_eq!(failed.reason, "model not loaded: bad");
        hub.update(|s| s.set_phase(ProviderPhase::Connecting, "connecting"));
        assert!(first_start(&hub).await.is_ok());
        hub.update(|s| s.set_phase(ProviderPhase::Paused, "on battery"));
        assert!(first_start(&hub).await.is_ok(), "paused is no failure");
    }

    #[tokio::test]
    async fn no_model_chosen_waits_for_one_and_that_start_decides() {
        let hub = StatusHub::new(Status::new("p", "m", "cpu", 1, "ws://x"));
        let no_model = format!("model not loaded: {}: choose one", hearth_engine::engines::NO_MODEL_CHOSEN);
        hub.update(|s| s.set_phase(ProviderPhase::Error, &no_model));
        let waiting = tokio::spawn({
            let hub = hub.clone();
            async move { first_start(&hub).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a first launch waits for a model");
        // One is chosen (the provider stops, then loads it) and fails to load: that ends it.
        hub.update(|s| s.set_phase(ProviderPhase::Stopped, "starting"));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        hub.update(|s| s.set_phase(ProviderPhase::Error, "model not loaded: bad"));
        let failed = waiting.await.unwrap().expect_err("the chosen model's failure is reported");
        assert_eq!(failed.reason, "model not loaded: bad");
    }
}
