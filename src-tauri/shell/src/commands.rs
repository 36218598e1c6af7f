//! The IPC commands the UI calls inside the shell (the browser calls the same operations on the
//! control API). Each one forwards to the engine; none decides anything itself.

use hearth_engine::status::Status;
use hearth_settings::{FieldError, Keychain, ProviderToken};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use tauri::{AppHandle, State};

use crate::engine_link::{EngineLink, LinkError};
use crate::windows::{self, WindowKind};

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

impl From<LinkError> for CommandError {
    fn from(e: LinkError) -> Self {
        if let LinkError::Refused { status: 422, body } = &e {
            if let Ok(errors) = serde_json::from_value::<Vec<FieldError>>(body["errors"].clone()) {
                return CommandError::Invalid { errors };
            }
        }
        let message = match &e {
            LinkError::Refused { body, .. } => {
                body["error"].as_str().map(str::to_string).unwrap_or(e.to_string())
            }
            _ => e.to_string(),
        };
        CommandError::Failed { message }
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
pub async fn get_settings(engine: State<'_, EngineLink>) -> Result<Value> {
    Ok(engine.api(Method::GET, "/api/settings", None).await?)
}

/// Saves a patch of settings fields; the engine validates, saves and applies them. Start at login
/// is the one setting the shell itself carries out (it owns the OS login item).
#[tauri::command]
pub async fn put_settings(app: AppHandle, engine: State<'_, EngineLink>, patch: Value) -> Result<Value> {
    let answer = engine.api(Method::PUT, "/api/settings", Some(&patch)).await?;
    let settings = answer["settings"].clone();
    if let Some(on) = settings["start_at_login"].as_bool() {
        crate::apply_start_at_login(&app, on);
    }
    Ok(settings)
}

#[tauri::command]
pub async fn models(engine: State<'_, EngineLink>) -> Result<Value> {
    let answer = engine.api(Method::GET, "/api/models", None).await?;
    Ok(answer["models"].clone())
}

#[tauri::command]
pub async fn earnings(engine: State<'_, EngineLink>, range: String) -> Result<Value> {
    if !matches!(range.as_str(), "today" | "7d" | "all") {
        return Err(CommandError::Failed { message: format!("unknown range {range:?}") });
    }
    Ok(engine.api(Method::GET, &format!("/api/earnings?range={range}&limit=50"), None).await?)
}

/// Stores (or with `null`, removes) the provider token in the OS keychain, under the provider id
/// in force. A running provider is restarted so the coordinator sees the new token.
#[tauri::command]
pub async fn set_token(engine: State<'_, EngineLink>, token: Option<String>) -> Result<()> {
    let settings = engine.api(Method::GET, "/api/settings", None).await?;
    let provider_id = settings["effective"]["provider_id"].as_str().unwrap_or_default().to_string();
    let failed = |e: &dyn std::fmt::Display| CommandError::Failed { message: e.to_string() };
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
    .map_err(|e| failed(&e))?
    .map_err(|e| failed(&e))?;
    let phase = engine.snapshot().phase;
    use hearth_engine::status::ProviderPhase::*;
    if !matches!(phase, Stopped | Error | Paused) {
        engine.stop_serving()?;
        engine.start_serving()?;
    }
    Ok(())
}

#[tauri::command]
pub fn open_window(app: AppHandle, which: WindowKind) -> Result<()> {
    windows::show(&app, which).map_err(|e| CommandError::Failed { message: e.to_string() })
}

#[tauri::command]
pub fn close_window(app: AppHandle, which: WindowKind) -> Result<()> {
    windows::hide(&app, which);
    Ok(())
}
