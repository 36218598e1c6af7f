//! The ledger's schema and its versioned migrations.
//!
//! The version lives in SQLite's own header (`PRAGMA user_version`), so it cannot disagree with the
//! tables. Migrations are an ordered list; migration *i* (1-based) takes the file from version
//! *i − 1* to *i*. Each runs in its own transaction together with the version bump, so a crash
//! mid-migration leaves the file at the previous version, and the next open simply retries.
//! Rules for adding one: append, never edit or reorder a released migration.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::LedgerError;

/// One step of the schema's history.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version the file is at after this step.
    pub version: i64,
    /// What the step is for, for the log.
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "jobs and credited snapshots",
        sql: "
            CREATE TABLE jobs (
                request_id        TEXT PRIMARY KEY NOT NULL,
                assigned_id       TEXT NOT NULL,
                model_id          TEXT NOT NULL,
                prompt_tokens     INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                started_at        INTEGER NOT NULL,
                ended_at          INTEGER NOT NULL,
                prefill_ms        INTEGER NOT NULL,
                decode_ms         INTEGER NOT NULL,
                outcome           TEXT NOT NULL,
                reason            TEXT,
                estimated_credits INTEGER NOT NULL,
                rate_card_version TEXT NOT NULL
            );
            CREATE TABLE credited_snapshots (
                id                     INTEGER PRIMARY KEY AUTOINCREMENT,
                fetched_at             INTEGER NOT NULL,
                total_credits          INTEGER NOT NULL,
                current_window_credits INTEGER NOT NULL,
                source_url             TEXT NOT NULL
            );
        ",
    },
    Migration {
        version: 2,
        description: "cached prompt tokens; time indexes for the aggregates",
        sql: "
            ALTER TABLE jobs ADD COLUMN cached_prompt_tokens INTEGER NOT NULL DEFAULT 0;
            CREATE INDEX jobs_ended_at ON jobs (ended_at);
            CREATE INDEX credited_fetched_at ON credited_snapshots (fetched_at);
        ",
    },
];

/// The version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Reads `PRAGMA user_version`.
pub fn current_version(conn: &Connection) -> Result<i64, LedgerError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings the file up to [`SCHEMA_VERSION`]; returns the version it started at.
pub fn migrate(conn: &mut Connection) -> Result<i64, LedgerError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies migrations up to and including `target` (tests use this to build an "old" file the
/// way an older build would have left it).
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<i64, LedgerError> {
    let start = current_version(conn)?;
    if start > SCHEMA_VERSION {
        return Err(LedgerError::FutureSchema { found: start, supported: SCHEMA_VERSION });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > start && m.version <= target) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-check inside the write lock: another process may have migrated meanwhile.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now >= m.version {
            continue;
        }
        tx.execute_batch(m.sql)?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
        tracing::info!(version = m.version, description = m.description, "ledger schema migrated");
    }
    Ok(start)
}
