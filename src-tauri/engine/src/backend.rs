//! What the app does for its clients, as one trait: [`ControlBackend`], and the plain types it
//! answers with. The control API (`control`) serves it to browsers and `hearth` over HTTP; the
//! Tauri shell calls the same trait in-process. One implementation (the app's) behind both, so
//! validation and reporting cannot differ between the two.
//!
//! It sits at the bottom of the crate, below both the control API and the app: the app starts the
//! control API, and the control API needs only this trait, never the app.

use std::path::PathBuf;

use hearth_settings::{EngineKind, FieldError, Settings};
use serde::Serialize;

use crate::doctor::DoctorReport;
use crate::earnings::{EarningsRange, EarningsReport};
use crate::log_ring::{LogPage, LogQuery, LogQueryError};
use crate::models::catalog::Onboarding;
use crate::models::fetch::{FetchError, PullRequest, PullView};
use crate::models::LocalModel;

/// What the control API and the shell need from the app beyond the status. Every method may block
/// (disk, keychain, SQLite): call them off the async workers.
pub trait ControlBackend: Send + Sync + 'static {
    /// Start serving (asynchronously; the snapshot shows the progress).
    fn start(&self);
    /// Drain and stop serving (asynchronously).
    fn stop(&self);
    fn settings(&self) -> SettingsView;
    /// Validates, saves and applies a JSON object of settings fields.
    fn put_settings(&self, body: &[u8]) -> Result<Settings, PutSettingsError>;
    /// The models on this machine (well-known folders and the `model_folders` setting), loadable
    /// or not: each entry says which, and why not.
    fn models(&self) -> Vec<LocalModel>;
    /// Starts pulling a model from the Hugging Face hub into its cache, in the background (or
    /// answers the same pull already running). Errors are the ones known at once (a malformed
    /// repository name); the rest end the pull as `failed` with the reason.
    fn pull_model(&self, request: PullRequest) -> Result<PullView, FetchError>;
    /// The pulls since the app started, with their progress, oldest first.
    fn pulls(&self) -> Vec<PullView>;
    /// Cancels a running pull (keeping what it downloaded for a resume), or forgets an ended one;
    /// `None`: no pull has that id.
    fn cancel_pull(&self, id: &str) -> Option<PullView>;
    /// The first-launch view: this machine (RAM, free disk where pulls go, its engine), the models
    /// on it that load, the built-in suggestions judged against it, and whether the provider still
    /// needs a model before it can serve.
    fn onboarding(&self) -> Onboarding;
    fn earnings(&self, range: EarningsRange, limit: usize) -> Result<EarningsReport, String>;
    /// Every job of `range` as CSV (see [`crate::earnings::csv`]), dollars at the card in force.
    fn earnings_csv(&self, range: EarningsRange) -> Result<Vec<u8>, String>;
    /// The recent log lines matching `query`, redacted, newest last. The ring is the process's own
    /// ([`crate::log_ring::global`]), so the default reads it.
    fn logs(&self, query: &LogQuery) -> Result<LogPage, LogQueryError> {
        crate::log_ring::global().query(query)
    }
    /// Runs the doctor's checks as this app sees things: its settings with the command line's
    /// overrides, its token, its live status. Blocks for the network probes (a few seconds at most).
    fn doctor(&self) -> DoctorReport;
}

/// Why a settings update was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PutSettingsError {
    /// Shown field by field (HTTP 422); nothing was saved.
    #[error("invalid settings: {}", FieldError::join(.0))]
    Invalid(Vec<FieldError>),
    /// The file could not be written.
    #[error("{0}")]
    Save(String),
}

/// What `GET /api/settings` (and the shell's `get_settings`) returns.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// The settings in force (the last valid file).
    pub settings: Settings,
    pub path: PathBuf,
    /// The last rejected edit's errors, if the file on disk is currently invalid.
    pub errors: Vec<FieldError>,
    /// Fields the command line overrides.
    pub pinned: Vec<String>,
    /// What the provider actually uses, overrides applied.
    pub effective: EffectiveSettings,
    /// Where the provider token comes from (`keychain`, `env`), or `null` without one. The token
    /// itself is never served.
    pub token_source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveSettings {
    pub coordinator: String,
    pub provider_id: String,
    /// `null`: the engine chooses when it loads (the status's `slots_total` says what it chose).
    pub slots: Option<u32>,
    pub engine: EngineKind,
    pub model_id: Option<String>,
    pub model_path: Option<PathBuf>,
}
