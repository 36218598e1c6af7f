//! The IPC commands the UI calls inside the shell (the browser calls the same operations on the
//! control API). Each one forwards to the engine's backend, in-process; none decides anything
//! itself. What they answer and reject with is what ui/src/transport.ts reads.

use hearth_engine::backend::{PutSettingsError, SettingsView};
use hearth_engine::doctor::DoctorReport;
use hearth_engine::earnings::{EarningsRange, EarningsReport};
use hearth_engine::log_ring::{LogPage, LogQuery};
use hearth_engine::models::catalog::Onboarding;
use hearth_engine::models::fetch::{PullRequest, PullView};
use hearth_engine::models::LocalModel;
use hearth_engine::status::Status;
use hearth_settings::{FieldError, Keychain, ProviderToken, Settings};
use serde::Serialize;
use serde_json::Value;
use tauri::{AppHandle, State};

use crate::engine_link::{EngineLink, LinkError};
use crate::windows::{self, WindowKind};

/// How many jobs the earnings view lists (as the browser UI asks the control API for).
const EARNINGS_LIMIT: usize = 50;

/// What a command rejects with; the UI reads `kind` (see ui/src/transport.ts).
#[derive(Debug, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandError {
    /// Refused field by field; nothing was saved.
    #[error("invalid settings")]
    Invalid { errors: Vec<FieldError> },
    #[error("{message}")]
    Failed { message: String },
}

impl CommandError {
    fn failed(e: impl std::fmt::Display) -> Self {
        CommandError::Failed { message: e.to_string() }
    }
}

impl From<LinkError> for CommandError {
    fn from(e: LinkError) -> Self {
        CommandError::failed(e)
    }
}

impl From<PutSettingsError> for CommandError {
    fn from(e: PutSettingsError) -> Self {
        match e {
            PutSettingsError::Invalid(errors) => CommandError::Invalid { errors },
            PutSettingsError::Save(message) => CommandError::Failed { message },
        }
    }
}

type Result<T> = std::result::Result<T, CommandError>;

#[tauri::command]
pub fn status(engine: State<'_, EngineLink>) -> Status {
    engine.snapshot()
}

#[tauri::command]
pub fn start(engine: State<'_, EngineLink>) -> Result<()> {
    Ok(engine.start_serving()?)
}

#[tauri::command]
pub fn stop(engine: State<'_, EngineLink>) -> Result<()> {
    Ok(engine.stop_serving()?)
}

#[tauri::command]
pub async fn get_settings(engine: State<'_, EngineLink>) -> Result<SettingsView> {
    Ok(engine.call(|b| b.settings()).await?)
}

/// Saves a patch of settings fields; the engine validates, saves and applies them. Start at login
/// is the one setting the shell itself carries out (it owns the OS login item).
#[tauri::command]
pub async fn put_settings(app: AppHandle, engine: State<'_, EngineLink>, patch: Value) -> Result<Settings> {
    // The same bytes a browser's PUT /api/settings carries.
    let body = serde_json::to_vec(&patch).map_err(CommandError::failed)?;
    let settings = engine.call(move |b| b.put_settings(&body)).await??;
    crate::apply_start_at_login(&app, settings.start_at_login);
    Ok(settings)
}

#[tauri::command]
pub async fn models(engine: State<'_, EngineLink>) -> Result<Vec<LocalModel>> {
    Ok(engine.call(|b| b.models()).await?)
}

/// The first-launch view, as `GET /api/onboarding` answers it.
#[tauri::command]
pub async fn onboarding(engine: State<'_, EngineLink>) -> Result<Onboarding> {
    Ok(engine.call(|b| b.onboarding()).await?)
}

/// Starts a pull in the background (`POST /api/models/pull`); a malformed request is refused here,
/// everything found out later ends the pull as `failed` with the reason.
#[tauri::command]
pub async fn pull_model(engine: State<'_, EngineLink>, request: PullRequest) -> Result<PullView> {
    engine.call(move |b| b.pull_model(request)).await?.map_err(CommandError::failed)
}

/// Every pull with its progress (`GET /api/models/pulls`).
#[tauri::command]
pub async fn pulls(engine: State<'_, EngineLink>) -> Result<Vec<PullView>> {
    Ok(engine.call(|b| b.pulls()).await?)
}

/// Cancels a running pull, or forgets an ended one (`DELETE /api/models/pulls/{id}`).
#[tauri::command]
pub async fn cancel_pull(engine: State<'_, EngineLink>, id: String) -> Result<PullView> {
    engine.call(move |b| b.cancel_pull(&id)).await?.ok_or_else(|| CommandError::failed("no such pull"))
}

#[tauri::command]
pub async fn earnings(engine: State<'_, EngineLink>, range: String) -> Result<EarningsReport> {
    let range: EarningsRange =
        range.parse().map_err(|_| CommandError::failed(format!("unknown range {range:?}")))?;
    engine.call(move |b| b.earnings(range, EARNINGS_LIMIT)).await?.map_err(CommandError::failed)
}

/// The range's jobs as CSV text, written by the same function as `GET /api/earnings.csv` and
/// `hearth earnings export`; the page saves it as a download.
#[tauri::command]
pub async fn earnings_csv(engine: State<'_, EngineLink>, range: String) -> Result<String> {
    let range: EarningsRange =
        range.parse().map_err(|_| CommandError::failed(format!("unknown range {range:?}")))?;
    let bytes = engine.call(move |b| b.earnings_csv(range)).await?.map_err(CommandError::failed)?;
    // The writer only ever writes UTF-8 (the ledger's text columns are Rust strings).
    String::from_utf8(bytes).map_err(CommandError::failed)
}

/// The recent log lines (redacted), as `GET /api/logs` answers them.
#[tauri::command]
pub async fn logs(
    engine: State<'_, EngineLink>,
    level: Option<String>,
    limit: Option<usize>,
    after: Option<u64>,
) -> Result<LogPage> {
    let query = LogQuery { level, limit, after };
    engine.call(move |b| b.logs(&query)).await?.map_err(CommandError::failed)
}

/// Runs the doctor's checks in the engine, as `GET /api/doctor` does.
#[tauri::command]
pub async fn doctor(engine: State<'_, EngineLink>) -> Result<DoctorReport> {
    Ok(engine.call(|b| b.doctor()).await?)
}

/// Stores (or with `null`, removes) the provider token in the OS keychain, under the provider id
/// in force. A running provider is restarted so the coordinator sees the new token.
#[tauri::command]
pub async fn set_token(engine: State<'_, EngineLink>, token: Option<String>) -> Result<()> {
    let provider_id = engine.call(|b| b.settings().effective.provider_id).await?;
    let token = token
        .map(ProviderToken::new)
        .transpose()
        .map_err(|e| CommandError::Invalid { errors: vec![FieldError::new("token", e.to_string())] })?;
    tauri::async_runtime::spawn_blocking(move || {
        let keychain = Keychain::new();
        match token {
            Some(t) => keychain.store(&provider_id, &t),
            None => keychain.delete(&provider_id).map(|_| ()),
        }
    })
    .await
    .map_err(CommandError::failed)?
    .map_err(CommandError::failed)?;
    let phase = engine.snapshot().phase;
    use hearth_engine::status::ProviderPhase::*;
    if !matches!(phase, Stopped | Error) {
        engine.stop_serving()?;
        engine.start_serving()?;
    }
    Ok(())
}

#[tauri::command]
pub fn open_window(app: AppHandle, which: WindowKind) -> Result<()> {
    windows::show(&app, which).map_err(CommandError::failed)
}

#[tauri::command]
pub fn close_window(app: AppHandle, which: WindowKind) -> Result<()> {
    windows::hide(&app, which);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Refusals reach the web side in the shape ui/src/transport.ts reads (`kind`, then `errors`
    /// or `message`).
    #[test]
    fn refusals_keep_the_shape_the_ui_reads() {
        let invalid =
            CommandError::from(PutSettingsError::Invalid(vec![FieldError::new("slots", "too many")]));
        assert_eq!(
            serde_json::to_value(&invalid).unwrap(),
            json!({"kind": "invalid", "errors": [{"field": "slots", "message": "too many"}]})
        );
        let failed = CommandError::from(PutSettingsError::Save("cannot write settings.toml".into()));
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"kind": "failed", "message": "cannot write settings.toml"})
        );
        assert_eq!(
            serde_json::to_value(CommandError::from(LinkError::Gone)).unwrap(),
            json!({"kind": "failed", "message": "the engine is shutting down"})
        );
    }
}
