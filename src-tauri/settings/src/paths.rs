//! Where Hearth keeps its files.
//!
//! Normally the platform's directories (`~/Library/Application Support/dev.hearth.Hearth` on macOS,
//! XDG on Linux) via `directories`. `HEARTH_HOME` overrides both, so tests, CI and a second
//! instance never touch the real home: config = `$HEARTH_HOME/config`, data = `$HEARTH_HOME/data`.

use std::ffi::OsString;
use std::path::PathBuf;

use directories::ProjectDirs;

use crate::error::SettingsError;

/// The environment variable that relocates everything.
pub const HEARTH_HOME_ENV: &str = "HEARTH_HOME";

/// Hearth's config and data directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HearthPaths {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
}

impl HearthPaths {
    /// From the process environment (`HEARTH_HOME`, else the platform dirs).
    pub fn resolve() -> Result<Self, SettingsError> {
        Self::from_home_override(std::env::var_os(HEARTH_HOME_ENV))
    }

    /// As [`HearthPaths::resolve`], with the value of `HEARTH_HOME` passed in (an empty value counts
    /// as unset). Pure apart from the platform lookup, so it is testable without touching the
    /// process environment.
    pub fn from_home_override(hearth_home: Option<OsString>) -> Result<Self, SettingsError> {
        if let Some(home) = hearth_home.filter(|h| !h.is_empty()) {
            let home = PathBuf::from(home);
            return Ok(HearthPaths { config_dir: home.join("config"), data_dir: home.join("data") });
        }
        let dirs = ProjectDirs::from("dev", "hearth", "Hearth").ok_or(SettingsError::NoHome)?;
        Ok(HearthPaths {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
        })
    }

    /// `<config>/settings.toml`.
    pub fn settings_file(&self) -> PathBuf {
        self.config_dir.join("settings.toml")
    }

    /// `<data>/ledger.sqlite3`, for the earnings ledger.
    pub fn ledger_file(&self) -> PathBuf {
        self.data_dir.join("ledger.sqlite3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hearth_home_overrides_everything() {
        let p = HearthPaths::from_home_override(Some("/tmp/hh".into())).unwrap();
        assert_eq!(p.config_dir, PathBuf::from("/tmp/hh/config"));
        assert_eq!(p.data_dir, PathBuf::from("/tmp/hh/data"));
        assert_eq!(p.settings_file(), PathBuf::from("/tmp/hh/config/settings.toml"));
        assert_eq!(p.ledger_file(), PathBuf::from("/tmp/hh/data/ledger.sqlite3"));
    }

    #[test]
    fn without_override_uses_platform_dirs() {
        // Needs a home directory, which every dev machine and CI runner has.
        let p = HearthPaths::from_home_override(Some(OsString::new())).unwrap();
        let s = p.config_dir.to_string_lossy().to_lowercase();
        assert!(s.contains("hearth"), "{s}");
        assert!(!s.starts_with("/tmp/hh"));
    }
}
