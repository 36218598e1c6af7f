//! [`AppState`]: what the supervisor, the backend the clients call, the settings follower and the
//! `App` handle share, and [`Command`], the messages that reach the supervisor.
//! Everything that changes the provider is a `Command`, so the supervisor applies them in order.

use std::sync::Arc;

use hearth_ledger::Ledger;
use hearth_settings::{Settings, SettingsStore};
use tokio::sync::{mpsc, oneshot, watch};

use super::config::Overrides;
use super::recorder::SharedCard;
use crate::models::fetch::Pulls;
use crate::models::ModelRoots;
use crate::status::StatusHub;

/// What the supervisor is asked to do.
pub(super) enum Command {
    Start,
    Stop,
    /// New settings in force (saved through the backend, or an external edit of the file).
    Apply(Box<Settings>),
    /// Stop, flush the ledger, then answer.
    Shutdown(oneshot::Sender<()>),
}

/// State shared by the supervisor, the control backend and the background tasks.
pub(super) struct AppState {
    pub hub: StatusHub,
    pub ledger: Arc<Ledger>,
    pub card: SharedCard,
    pub store: SettingsStore,
    /// The settings in force; only the supervisor replaces them.
    pub settings: watch::Sender<Settings>,
    pub overrides: Overrides,
    pub commands: mpsc::UnboundedSender<Command>,
    pub roots: ModelRoots,
    /// Model pulls running in the background (`POST /api/models/pull`), into `roots`' hub cache.
    pub pulls: Pulls,
}

impl AppState {
    /// Hands `command` to the supervisor. A supervisor that has ended (the app shut down) takes no
    /// more, and there is nothing left to tell.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}
