//! Live reload of `settings.toml` edited outside the app (a text editor, `defaults`-style scripts,
//! config management).
//!
//! The parent directory is watched, not the file: editors save by writing a new file and renaming
//! it over the old one, which would silently end a watch on the old inode. Bursts of events (one
//! save is often several) are debounced; then the file is read and validated. A valid file is
//! applied and announced; an invalid one is announced with its field errors and the **last good
//! settings stay in force** — a typo in an editor must not take a running provider down.
//!
//! Delivery is tokio-friendly: [`SettingsWatcher::subscribe`] gives a `broadcast` receiver of
//! [`SettingsEvent`]s (each subscriber sees every event after it subscribed; a receiver that falls
//! more than 16 events behind gets `Lagged` and should re-read [`SettingsWatcher::current`]), and
//! [`SettingsWatcher::watch`] a `watch` receiver that always holds the settings in force. The work
//! itself runs on a plain thread, so no runtime is needed to create one.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::{broadcast, watch};

use crate::error::SettingsError;
use crate::field_error::FieldError;
use crate::model::Settings;
use crate::store::TEMP_PREFIX;

/// Quiet time after the last file event before the file is read.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// What happened to an external edit.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingsEvent {
    /// The file changed and is valid; these settings are now in force.
    Applied(Settings),
    /// The file changed but is unreadable or invalid; the previous settings stay in force.
    Rejected { errors: Vec<FieldError> },
}

/// Watches one settings file until dropped.
pub struct SettingsWatcher {
    path: PathBuf,
    current: watch::Receiver<Settings>,
    events: broadcast::Sender<SettingsEvent>,
    // Dropping it closes the event channel, which ends the worker thread.
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for SettingsWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsWatcher").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SettingsWatcher {
    /// Loads `path` (it must exist and be valid: there is no "last good" yet) and starts watching.
    pub fn start(path: impl Into<PathBuf>) -> Result<Self, SettingsError> {
        Self::start_with_debounce(path, DEFAULT_DEBOUNCE)
    }

    pub fn start_with_debounce(path: impl Into<PathBuf>, debounce: Duration) -> Result<Self, SettingsError> {
        let path: PathBuf = path.into();
        let initial_text = std::fs::read_to_string(&path).map_err(|source| SettingsError::Io {
            action: "cannot read",
            path: path.clone(),
            source,
        })?;
        let initial = Settings::from_toml_str(&initial_text).map_err(SettingsError::Invalid)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();

        let (tx, rx) = mpsc::channel::<notify::Result<Event>>();
        let mut watcher = notify::recommended_watcher(tx)
            .map_err(|source| SettingsError::Watch { path: path.clone(), source })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| SettingsError::Watch { path: path.clone(), source })?;

        let (current_tx, current_rx) = watch::channel(initial);
        let (events_tx, _) = broadcast::channel(16);
        let worker = Worker {
            path: path.clone(),
            file_name,
            debounce,
            last_text: Some(initial_text),
            current: current_tx,
            events: events_tx.clone(),
        };
        std::thread::Builder::new()
            .name("hearth-settings-watch".into())
            .spawn(move || worker.run(rx))
            .map_err(|source| SettingsError::Io {
                action: "cannot start watcher for",
                path: path.clone(),
                source,
            })?;

        Ok(SettingsWatcher { path, current: current_rx, events: events_tx, _watcher: watcher })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings in force (the last valid file).
    pub fn current(&self) -> Settings {
        self.current.borrow().clone()
    }

    /// Every [`SettingsEvent`] from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SettingsEvent> {
        self.events.subscribe()
    }

    /// A receiver that always holds the settings in force; `changed().await` wakes on each apply.
    pub fn watch(&self) -> watch::Receiver<Settings> {
        self.current.clone()
    }
}

struct Worker {
    path: PathBuf,
    file_name: std::ffi::OsString,
    debounce: Duration,
    /// The text last acted on (`None`: the file was unreadable), so a touch that changes nothing —
    /// or our own read — announces nothing.
    last_text: Option<String>,
    current: watch::Sender<Settings>,
    events: broadcast::Sender<SettingsEvent>,
}

impl Worker {
    fn run(mut self, rx: mpsc::Receiver<notify::Result<Event>>) {
        loop {
            // Wait for a relevant event…
            match rx.recv() {
                Ok(ev) if self.relevant(&ev) => {}
                Ok(_) => continue,
                Err(_) => return, // the SettingsWatcher was dropped
            }
            // …then for quiet.
            loop {
                match rx.recv_timeout(self.debounce) {
                    Ok(_) => continue,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            self.reload();
        }
    }

    fn relevant(&self, ev: &notify::Result<Event>) -> bool {
        let ev = match ev {
            Ok(ev) => ev,
            // An overflowed or failed watch: re-read to be safe.
            Err(e) => {
                tracing::warn!(error = %e, "settings watcher error; re-reading the file");
                return true;
            }
        };
        let kind_matters = match ev.kind {
            // Our own reads (and anyone else's) must not trigger a reload.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        };
        kind_matters
            && (ev.need_rescan()
                || ev.paths.iter().any(|p| {
                    p.file_name().is_some_and(|n| {
                        n == self.file_name.as_os_str() && !n.to_string_lossy().starts_with(TEMP_PREFIX)
                    })
                }))
    }

    fn reload(&mut self) {
        let text = std::fs::read_to_string(&self.path);
        let event = match text {
            Ok(text) => {
                if self.last_text.as_deref() == Some(text.as_str()) {
                    return;
                }
                self.last_text = Some(text.clone());
                match Settings::from_toml_str(&text) {
                    Ok(s) => {
                        tracing::info!(path = %self.path.display(), "settings applied");
                        self.current.send_replace(s.clone());
                        SettingsEvent::Applied(s)
                    }
                    Err(errors) => {
                        tracing::warn!(path = %self.path.display(), errors = %FieldError::join(&errors),
                            "settings edit rejected; keeping the last good settings");
                        SettingsEvent::Rejected { errors }
                    }
                }
            }
            Err(e) => {
                if self.last_text.is_none() {
                    return;
                }
                self.last_text = None;
                let err = format!("cannot read {}: {e}", self.path.display());
                tracing::warn!(path = %self.path.display(), error = %err, "settings file unreadable; keeping the last good settings");
                SettingsEvent::Rejected {
                    errors: vec![FieldError::new("file", format!("{err}; keeping the last good settings"))],
                }
            }
        };
        // No subscribers is fine.
        let _ = self.events.send(event);
    }
}
