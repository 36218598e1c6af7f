//! The settings file as the app uses it: loaded (or created) at start-up, then followed — each
//! external edit is handed to the supervisor, or its errors are shown while the last good settings
//! stay in force.

use std::path::Path;
use std::sync::Arc;

use hearth_settings::{FieldError, Settings, SettingsError, SettingsEvent, SettingsStore};
use tokio::sync::{broadcast, watch};

use super::state::{AppState, Command};

/// Loads the settings file, creating it on first run. A provider id kept by an older Hearth in
/// `data/provider-id` becomes the file's id, so upgrading keeps the identity.
pub(super) fn load_or_create(store: &SettingsStore, data_dir: &Path) -> Result<Settings, SettingsError> {
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
pub(super) async fn follow(
    state: Arc<AppState>,
    mut events: broadcast::Receiver<SettingsEvent>,
    current: watch::Receiver<Settings>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(SettingsEvent::Applied(s)) => {
                state.hub.update(|st| st.settings.errors.clear());
                state.send(Command::Apply(Box::new(s)));
            }
            Ok(SettingsEvent::Rejected { errors }) => {
                tracing::warn!(errors = %FieldError::join(&errors), "settings edit rejected");
                state.hub.update(|st| st.settings.errors = errors);
            }
            Err(RecvError::Lagged(_)) => {
                let s = current.borrow().clone();
                state.send(Command::Apply(Box::new(s)));
            }
            Err(RecvError::Closed) => return,
        }
    }
}
