//! The ledger itself: one SQLite file in WAL mode, written once per job.
//!
//! Durability: `synchronous = FULL` in WAL mode, so a `record_job` that returned `Ok` survives a
//! process kill *and* a power cut; a kill mid-write loses at most the uncommitted row, which the
//! caller never saw acknowledged. Idempotency: `request_id` is the primary key and inserts are
//! `ON CONFLICT DO NOTHING`, so recording the same job twice (a retry after a crash, an end frame
//! for an id already marked lost) never counts it twice — the first record wins.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::LedgerError;
use crate::job::{JobOutcome, JobRecord};
use crate::schema;
use crate::summary::{
    CreditedSnapshot, CreditedView, EarningsSummary, HourBucket, ModelTotals, PeriodTotals,
};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Longest range [`Ledger::hourly`] fills densely (a bit over a year of hours).
pub const MAX_HOURLY_BUCKETS: i64 = 24 * 400;

/// The earnings ledger. Blocking; `Send + Sync`. See the crate docs on threading.
#[derive(Debug)]
pub struct Ledger {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Ledger {
    /// Opens (creating if needed, with its directory) the ledger at `path`, switches it to WAL and
    /// migrates it to the current schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Ledger, LedgerError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| LedgerError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let conn = Connection::open(path)?;
        // WAL: readers (the UI's queries) never block the writer, and a commit is one append.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "ledger could not switch to WAL; continuing in this journal mode");
        }
        Self::init(conn, Some(path.to_path_buf()))
    }

    /// A private in-memory ledger, for tests.
    pub fn open_in_memory() -> Result<Ledger, LedgerError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Ledger, LedgerError> {
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        Ok(Ledger { conn: Mutex::new(conn), path })
    }

    /// The file backing this ledger (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, LedgerError> {
        schema::current_version(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock leaves no half-done transaction behind
        // (rusqlite rolls back on drop), so the connection is still fine to use.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a job. Returns `true` if it was new, `false` if `request_id` was already recorded
    /// (the stored row is left exactly as it was). Returns only after the row is durable.
    pub fn record_job(&self, job: &JobRecord) -> Result<bool, LedgerError> {
        if job.request_id.is_empty() {
            return Err(LedgerError::InvalidRecord("request_id is empty".into()));
        }
        let conn = self.lock();
        let n = conn.execute(
            "INSERT INTO jobs (request_id, assigned_id, model_id, prompt_tokens, cached_prompt_tokens,
                               completion_tokens, started_at, ended_at, prefill_ms, decode_ms,
                               outcome, reason, estimated_credits, rate_card_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (request_id) DO NOTHING",
            params![
                job.request_id,
                job.assigned_id,
                job.model_id,
                to_i64(job.prompt_tokens),
                to_i64(job.cached_prompt_tokens),
                to_i64(job.completion_tokens),
                job.started_at,
                job.ended_at,
                to_i64(job.prefill_ms),
                to_i64(job.decode_ms),
                job.outcome.as_db_string(),
                job.reason,
                job.estimated_credits,
                job.rate_card_version,
            ],
        )?;
        Ok(n == 1)
    }

    /// One job by `request_id`.
    pub fn job(&self, request_id: &str) -> Result<Option<JobRecord>, LedgerError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = ?1"))?;
        stmt.query_row([request_id], row_to_job).optional()?.transpose()
    }

    /// The newest `limit` jobs, newest first (by `ended_at`, then insertion order).
    pub fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, LedgerError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs ORDER BY ended_at DESC, rowid DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([to_i64(limit as u64)], row_to_job)?;
        rows.map(|r| r?).collect()
    }

    /// Stores one reading of the coordinator's earnings endpoint.
    pub fn record_credited(&self, snap: &CreditedSnapshot) -> Result<(), LedgerError> {
        self.lock().execute(
            "INSERT INTO credited_snapshots (fetched_at, total_credits, current_window_credits, source_url)
             VALUES (?1, ?2, ?3, ?4)",
            params![snap.fetched_at, snap.total_credits, snap.current_window_credits, snap.source_url],
        )?;
        Ok(())
    }

    /// The newest credited snapshot (by `fetched_at`, then insertion order).
    pub fn latest_credited(&self) -> Result<Option<CreditedSnapshot>, LedgerError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT fetched_at, total_credits, current_window_credits, source_url
                 FROM credited_snapshots ORDER BY fetched_at DESC, id DESC LIMIT 1",
                [],
                |r| {
                    Ok(CreditedSnapshot {
                        fetched_at: r.get(0)?,
                        total_credits: r.get(1)?,
                        current_window_credits: r.get(2)?,
                        source_url: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Today (UTC), the rolling last 7 and 30 days and all time, with the credited figure and the
    /// gap.
    pub fn summary(&self, now_unix_ms: i64) -> Result<EarningsSummary, LedgerError> {
        let today_start = now_unix_ms.div_euclid(DAY_MS) * DAY_MS;
        let (today, last_7_days, last_30_days, total) = {
            let conn = self.lock();
            (
                totals_since(&conn, today_start)?,
                totals_since(&conn, now_unix_ms.saturating_sub(7 * DAY_MS))?,
                totals_since(&conn, now_unix_ms.saturating_sub(30 * DAY_MS))?,
                totals_since(&conn, i64::MIN)?,
            )
        };
        let credited = self.latest_credited()?.map(|latest| CreditedView {
            estimated_minus_credited: total.estimated_credits.saturating_sub(latest.total_credits),
            latest,
        });
        Ok(EarningsSummary {
            now_unix_ms,
            today_start_unix_ms: today_start,
            today,
            last_7_days,
            last_30_days,
            total,
            credited,
        })
    }

    /// Totals per model for the jobs that ended in `[from, to)`, the best-earning model first (then
    /// by most jobs, then by id, so the order is stable). Every model that ran appears, even one
    /// whose jobs all failed: work done for nothing is worth seeing.
    pub fn by_model(&self, from_unix_ms: i64, to_unix_ms: i64) -> Result<Vec<ModelTotals>, LedgerError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT model_id, COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
                    COALESCE(SUM(estimated_credits), 0),
                    COALESCE(SUM(outcome = 'lost'), 0), COALESCE(SUM(outcome LIKE 'error:%'), 0)
             FROM jobs WHERE ended_at >= ?1 AND ended_at < ?2
             GROUP BY model_id
             ORDER BY SUM(estimated_credits) DESC, COUNT(*) DESC, model_id ASC",
        )?;
        let rows = stmt.query_map([from_unix_ms, to_unix_ms], |r| {
            Ok(ModelTotals {
                model_id: r.get(0)?,
                totals: PeriodTotals {
                    jobs: to_u64(r.get(1)?),
                    prompt_tokens: to_u64(r.get(2)?),
                    completion_tokens: to_u64(r.get(3)?),
                    estimated_credits: r.get(4)?,
                    lost_jobs: to_u64(r.get(5)?),
                    error_jobs: to_u64(r.get(6)?),
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every job that ended in `[from, to)`, oldest first (by `ended_at`, then insertion order):
    /// the rows of the CSV export. Unbounded on purpose: an export is the whole range.
    pub fn jobs_between(&self, from_unix_ms: i64, to_unix_ms: i64) -> Result<Vec<JobRecord>, LedgerError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ended_at >= ?1 AND ended_at < ?2 ORDER BY ended_at ASC, rowid ASC"
        ))?;
        let rows = stmt.query_map([from_unix_ms, to_unix_ms], row_to_job)?;
        rows.map(|r| r?).collect()
    }

    /// Per-UTC-hour totals for charts, **dense**: one bucket for every hour from the hour
    /// containing `from` up to the hour containing `to − 1`, empty hours included (so a chart can
    /// plot the vector as-is). Jobs count by `ended_at` in `[hour_of(from), to)`.
    pub fn hourly(&self, from_unix_ms: i64, to_unix_ms: i64) -> Result<Vec<HourBucket>, LedgerError> {
        if to_unix_ms <= from_unix_ms {
            return Err(LedgerError::InvalidQuery(format!(
                "hourly range is empty or reversed: from {from_unix_ms} to {to_unix_ms}"
            )));
        }
        let first = from_unix_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let last = (to_unix_ms - 1).div_euclid(HOUR_MS) * HOUR_MS;
        let n = (last - first) / HOUR_MS + 1;
        if n > MAX_HOURLY_BUCKETS {
            return Err(LedgerError::InvalidQuery(format!(
                "hourly range spans {n} hours; at most {MAX_HOURLY_BUCKETS}"
            )));
        }
        let mut out: Vec<HourBucket> = (0..n)
            .map(|i| HourBucket { hour_start_unix_ms: first + i * HOUR_MS, ..HourBucket::default() })
            .collect();
        let conn = self.lock();
        // Bucket index computed relative to `first` (non-negative), so SQLite's truncating
        // division is exact.
        let mut stmt = conn.prepare_cached(
            "SELECT (ended_at - ?1) / 3600000 AS idx, COUNT(*),
                    COALESCE(SUM(prompt_tokens + completion_tokens), 0), COALESCE(SUM(estimated_credits), 0)
             FROM jobs WHERE ended_at >= ?1 AND ended_at < ?2 GROUP BY idx",
        )?;
        let rows = stmt.query_map([first, to_unix_ms], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
        })?;
        for row in rows {
            let (idx, jobs, tokens, credits) = row?;
            if let Some(b) = usize::try_from(idx).ok().and_then(|i| out.get_mut(i)) {
                b.jobs = to_u64(jobs);
                b.tokens = to_u64(tokens);
                b.estimated_credits = credits;
            }
        }
        Ok(out)
    }
}

fn totals_since(conn: &Connection, since: i64) -> Result<PeriodTotals, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
                COALESCE(SUM(estimated_credits), 0),
                COALESCE(SUM(outcome = 'lost'), 0), COALESCE(SUM(outcome LIKE 'error:%'), 0)
         FROM jobs WHERE ended_at >= ?1",
    )?;
    Ok(stmt.query_row([since], |r| {
        Ok(PeriodTotals {
            jobs: to_u64(r.get(0)?),
            prompt_tokens: to_u64(r.get(1)?),
            completion_tokens: to_u64(r.get(2)?),
            estimated_credits: r.get(3)?,
            lost_jobs: to_u64(r.get(4)?),
            error_jobs: to_u64(r.get(5)?),
        })
    })?)
}

const JOB_COLUMNS: &str = "request_id, assigned_id, model_id, prompt_tokens, cached_prompt_tokens,
    completion_tokens, started_at, ended_at, prefill_ms, decode_ms, outcome, reason,
    estimated_credits, rate_card_version";

/// Row → record; the outer `Result` is SQLite's, the inner one ours (an unknown outcome string).
fn row_to_job(r: &Row<'_>) -> rusqlite::Result<Result<JobRecord, LedgerError>> {
    let outcome_text: String = r.get(10)?;
    let Some(outcome) = JobOutcome::parse(&outcome_text) else {
        return Ok(Err(LedgerError::Malformed(format!("unknown outcome {outcome_text:?}"))));
    };
    Ok(Ok(JobRecord {
        request_id: r.get(0)?,
        assigned_id: r.get(1)?,
        model_id: r.get(2)?,
        prompt_tokens: to_u64(r.get(3)?),
        cached_prompt_tokens: to_u64(r.get(4)?),
        completion_tokens: to_u64(r.get(5)?),
        started_at: r.get(6)?,
        ended_at: r.get(7)?,
        prefill_ms: to_u64(r.get(8)?),
        decode_ms: to_u64(r.get(9)?),
        outcome,
        reason: r.get(11)?,
        estimated_credits: r.get(12)?,
        rate_card_version: r.get(13)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn ledger_is_send_and_sync() {
        assert_send_sync::<Ledger>();
    }
}
