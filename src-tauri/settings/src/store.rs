//! Reading and writing `settings.toml`.
//!
//! Saves are atomic (write a temp file in the same directory, fsync, rename over the old file), so
//! a crash or a concurrent reader — the live-reload watcher included — sees either the old file or
//! the new one, never half of one. The file is owner-only (0600) on unix: it holds no secret, but
//! it does say which coordinator and identity this Mac uses.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::SettingsError;
use crate::model::Settings;
use crate::paths::HearthPaths;

/// Temp files start with this so the watcher can ignore them.
pub(crate) const TEMP_PREFIX: &str = ".settings-";

/// One settings file.
#[derive(Debug, Clone)]
pub struct SettingsStore {
    path: PathBuf,
}

impl SettingsStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SettingsStore { path: path.into() }
    }

    /// The store at `HearthPaths::resolve()?.settings_file()`.
    pub fn at_default_location() -> Result<Self, SettingsError> {
        Ok(SettingsStore::new(HearthPaths::resolve()?.settings_file()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads, parses and validates the file.
    pub fn load(&self) -> Result<Settings, SettingsError> {
        read_settings(&self.path)
    }

    /// [`SettingsStore::load`], but a missing file is created with [`Settings::default`] (which mints
    /// the provider id once, here, and then keeps it).
    pub fn load_or_init(&self) -> Result<Settings, SettingsError> {
        match read_settings(&self.path) {
            Err(SettingsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let s = Settings::default();
                self.save(&s)?;
                Ok(s)
            }
            other => other,
        }
    }

    /// Validates, then writes atomically with mode 0600 (creating the directory, 0700, if needed).
    /// An invalid `settings` is refused with its field errors and the file is left untouched.
    pub fn save(&self, settings: &Settings) -> Result<(), SettingsError> {
        settings.validate().map_err(SettingsError::Invalid)?;
        let text = settings.to_toml_string();
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SettingsError::Io { action, path, source }
        };
        create_private_dir(&dir).map_err(io("cannot create directory", &dir))?;
        // tempfile creates the file 0600 on unix.
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(io("cannot create a temp file in", &dir))?;
        tmp.write_all(text.as_bytes()).map_err(io("cannot write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(io("cannot sync", &self.path))?;
        tmp.persist(&self.path).map_err(|e| SettingsError::Io {
            action: "cannot replace",
            path: self.path.clone(),
            source: e.error,
        })?;
        sync_dir(&dir);
        Ok(())
    }
}

/// Reads and validates one file; shared with the watcher.
pub(crate) fn read_settings(path: &Path) -> Result<Settings, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })?;
    Settings::from_toml_str(&text).map_err(SettingsError::Invalid)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Makes the rename itself durable. Best effort: not every platform lets a directory be fsynced.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
