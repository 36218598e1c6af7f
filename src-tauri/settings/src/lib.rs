//! Hearth's settings.
//!
//! * [`field_error`]: [`FieldError`], one human message about one field: what every check and
//!   parse error below is reported in.
//! * [`model`]: the [`Settings`] a user can edit (TOML), with sensible defaults.
//! * [`validate`]: the checks on values, one message per bad field.
//! * [`patch`]: a JSON object of fields laid over the settings in force (the control API's and
//!   the settings window's way of changing them).
//! * [`power`]: the `[power]` table: battery, thermal, user-activity and schedule rules.
//! * [`paths`]: where the config and data live (platform dirs, or `HEARTH_HOME` for tests and CI).
//! * [`store`]: load and atomic, owner-only save.
//! * [`watcher`]: live reload of external edits; an invalid edit is rejected and the last good
//!   settings stay in force.
//! * [`keychain`]: the provider token in the OS keychain (never in the settings file or logs), with
//!   a `HEARTH_PROVIDER_TOKEN` override for headless use.

pub mod error;
pub mod field_error;
pub mod keychain;
pub mod model;
pub mod patch;
pub mod paths;
pub mod power;
pub mod store;
pub mod validate;
pub mod watcher;

pub use error::SettingsError;
pub use field_error::FieldError;
pub use keychain::{
    resolve_token, resolve_token_with, Keychain, KeychainError, ProviderToken, ResolvedToken, TokenSource,
    PROVIDER_TOKEN_ENV, PROVIDER_TOKEN_SERVICE,
};
pub use model::{Coordinator, EngineKind, Settings};
pub use paths::{HearthPaths, HEARTH_HOME_ENV};
pub use power::{Day, OnBattery, OnThermal, OnUserActive, PowerSettings, ScheduleWindow};
pub use store::SettingsStore;
pub use validate::is_safe_provider_id;
pub use watcher::{SettingsEvent, SettingsWatcher};
