//! The one error type at the crate boundary.

use std::path::PathBuf;

/// Anything the ledger can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite said no (I/O, corruption, locked beyond the busy timeout, …).
    #[error("ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The directory for the database file could not be created.
    #[error("cannot create ledger directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },

    /// The file was written by a newer Hearth whose schema this build does not know. We refuse
    /// rather than guess, so a downgrade cannot corrupt it.
    #[error("ledger schema version {found} is newer than this build supports ({supported}); update Hearth")]
    FutureSchema { found: i64, supported: i64 },

    /// A stored value did not parse back (e.g. an outcome string from a hand-edited file).
    #[error("ledger row is malformed: {0}")]
    Malformed(String),

    /// A record the ledger will not store (e.g. an empty request id).
    #[error("invalid job record: {0}")]
    InvalidRecord(String),

    /// Writing the CSV export failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),

    /// The caller asked for something that makes no sense (e.g. an hourly range that is reversed
    /// or too long to chart).
    #[error("invalid ledger query: {0}")]
    InvalidQuery(String),
}
