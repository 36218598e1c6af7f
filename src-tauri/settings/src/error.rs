//! The crate-boundary error for settings I/O. Keychain errors have their own type
//! ([`crate::KeychainError`]) because callers handle them differently (a missing token is a
//! state to show, not a broken file).

use std::path::PathBuf;

use crate::field_error::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file (or its directory) could not be read or written.
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },

    /// The file parsed badly or holds invalid values; one entry per field.
    #[error("invalid settings: {}", FieldError::join(.0))]
    Invalid(Vec<FieldError>),

    /// No config directory could be determined (no `HEARTH_HOME` and no home directory).
    #[error("cannot determine Hearth's directories: set HEARTH_HOME or HOME")]
    NoHome,

    /// The file watcher could not be set up.
    #[error("cannot watch {path}: {source}")]
    Watch { path: PathBuf, source: notify::Error },
}

impl SettingsError {
    /// The field errors, if this is an [`SettingsError::Invalid`].
    pub fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            SettingsError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}
