//! The ledger against real SQLite files.

use hearth_ledger::schema::{self, MIGRATIONS, SCHEMA_VERSION};
use hearth_ledger::{CreditedSnapshot, JobOutcome, Ledger, LedgerError};
use hearth_testkit::ledger_fixtures::job;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-05-04 00:00:00 UTC (a Monday).
const MIDNIGHT: i64 = 1_777_852_800_000;

#[test]
fn open_uses_wal_and_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/ledger.sqlite3");
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.schema_version().unwrap(), SCHEMA_VERSION);
    drop(ledger);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn record_job_is_idempotent_and_first_record_wins() {
    let ledger = Ledger::open_in_memory().unwrap();
    let first = job("req-1", MIDNIGHT + HOUR, JobOutcome::Complete, 41, 1);
    assert_eq!(first.estimated_credits, 20);
    assert!(ledger.record_job(&first).unwrap());

    // Same id again, even with different content: not inserted, nothing double counted.
    let mut again = first.clone();
    again.completion_tokens = 1_000;
    again.estimated_credits = 12345;
    assert!(!ledger.record_job(&again).unwrap());
    assert!(!ledger.record_job(&first).unwrap());

    assert_eq!(ledger.job("req-1").unwrap().unwrap(), first);
    let s = ledger.summary(MIDNIGHT + 2 * HOUR).unwrap();
    assert_eq!(s.total.jobs, 1);
    assert_eq!(s.total.completion_tokens, 1);
    assert_eq!(s.total.estimated_credits, 20);

    assert!(matches!(
        ledger.record_job(&job("", MIDNIGHT, JobOutcome::Complete, 1, 1)),
        Err(LedgerError::InvalidRecord(_))
    ));
}

#[test]
fn summary_splits_periods_counts_lost_and_shows_the_gap() {
    let ledger = Ledger::open_in_memory().unwrap();
    let now = MIDNIGHT + 10 * HOUR;
    // today: complete (20) + cancelled (18) + lost + error
    ledger.record_job(&job("t1", MIDNIGHT + HOUR, JobOutcome::Complete, 41, 1)).unwrap();
    ledger.record_job(&job("t2", MIDNIGHT + 2 * HOUR, JobOutcome::Cancelled, 39, 1)).unwrap();
    let mut lost = job("t3", MIDNIGHT + 3 * HOUR, JobOutcome::Lost, 100, 50);
    lost.reason = Some("connection reset mid-stream".into());
    ledger.record_job(&lost).unwrap();
    ledger
        .record_job(&job("t4", MIDNIGHT + 4 * HOUR, JobOutcome::Error("error_internal".into()), 10, 0))
        .unwrap();
    // yesterday (inside 7 days): 1_000_000 prompt → 450_000
    ledger.record_job(&job("y1", MIDNIGHT - HOUR, JobOutcome::Complete, 1_000_000, 0)).unwrap();
    // 10 days ago (only in total): 1_000_000 completion → 900_000
    ledger.record_job(&job("old", now - 10 * DAY, JobOutcome::Complete, 0, 1_000_000)).unwrap();

    let s = ledger.summary(now).unwrap();
    assert_eq!(s.today_start_unix_ms, MIDNIGHT);
    assert_eq!(s.today.jobs, 4);
    assert_eq!(s.today.lost_jobs, 1);
    assert_eq!(s.today.error_jobs, 1);
    assert_eq!(s.today.prompt_tokens, 41 + 39 + 100 + 10);
    assert_eq!(s.today.completion_tokens, 1 + 1 + 50);
    assert_eq!(s.today.estimated_credits, 20 + 18);
    assert_eq!(s.last_7_days.jobs, 5);
    assert_eq!(s.last_7_days.estimated_credits, 38 + 450_000);
    assert_eq!(s.total.jobs, 6);
    assert_eq!(s.total.estimated_credits, 38 + 450_000 + 900_000);
    assert!(s.credited.is_none(), "no credited figure before the first poll");

    let url = "https://coord.example/providers/studio-m2/earnings";
    ledger
        .record_credited(&CreditedSnapshot {
            fetched_at: now - HOUR,
            total_credits: 1_000_000,
            current_window_credits: 100,
            source_url: url.into(),
        })
        .unwrap();
    ledger
        .record_credited(&CreditedSnapshot {
            fetched_at: now - 60_000,
            total_credits: 1_350_000,
            current_window_credits: 450_000,
            source_url: url.into(),
        })
        .unwrap();
    let s = ledger.summary(now).unwrap();
    let c = s.credited.unwrap();
    assert_eq!(c.latest.total_credits, 1_350_000);
    assert_eq!(c.latest.fetched_at, now - 60_000);
    assert_eq!(c.estimated_minus_credited, 1_350_038 - 1_350_000);
}

#[test]
fn hourly_is_dense_utc_and_half_open() {
    let ledger = Ledger::open_in_memory().unwrap();
    ledger.record_job(&job("a", MIDNIGHT + 5 * 60_000, JobOutcome::Complete, 41, 1)).unwrap(); // hour 0
    ledger.record_job(&job("b", MIDNIGHT + HOUR - 1, JobOutcome::Complete, 39, 1)).unwrap(); // hour 0
    ledger.record_job(&job("c", MIDNIGHT + 2 * HOUR, JobOutcome::Lost, 7, 3)).unwrap(); // hour 2
    ledger.record_job(&job("d", MIDNIGHT + 3 * HOUR, JobOutcome::Complete, 3, 0)).unwrap(); // at `to`: excluded

    // `from` mid-hour snaps down to the hour; `to` is exclusive.
    let buckets = ledger.hourly(MIDNIGHT + 30 * 60_000, MIDNIGHT + 3 * HOUR).unwrap();
    assert_eq!(buckets.len(), 3);
    assert_eq!(
        buckets.iter().map(|b| b.hour_start_unix_ms).collect::<Vec<_>>(),
        vec![MIDNIGHT, MIDNIGHT + HOUR, MIDNIGHT + 2 * HOUR]
    );
    assert_eq!((buckets[0].jobs, buckets[0].tokens, buckets[0].estimated_credits), (2, 82, 38));
    assert_eq!((buckets[1].jobs, buckets[1].tokens, buckets[1].estimated_credits), (0, 0, 0));
    assert_eq!((buckets[2].jobs, buckets[2].tokens, buckets[2].estimated_credits), (1, 10, 0));

    assert!(matches!(ledger.hourly(MIDNIGHT, MIDNIGHT), Err(LedgerError::InvalidQuery(_))));
    assert!(matches!(ledger.hourly(0, 500 * DAY), Err(LedgerError::InvalidQuery(_))));
}

#[test]
fn recent_jobs_newest_first() {
    let ledger = Ledger::open_in_memory().unwrap();
    for i in 0..5 {
        ledger.record_job(&job(&format!("r{i}"), MIDNIGHT + i * 1000, JobOutcome::Complete, 1, 1)).unwrap();
    }
    let ids: Vec<_> = ledger.recent_jobs(3).unwrap().into_iter().map(|j| j.request_id).collect();
    assert_eq!(ids, ["r4", "r3", "r2"]);
    assert_eq!(ledger.recent_jobs(100).unwrap().len(), 5);
}

#[test]
fn rows_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    {
        let ledger = Ledger::open(&path).unwrap();
        ledger.record_job(&job("keep", MIDNIGHT, JobOutcome::Complete, 41, 1)).unwrap();
    }
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.job("keep").unwrap().unwrap().estimated_credits, 20);
    assert!(!ledger.record_job(&job("keep", MIDNIGHT, JobOutcome::Complete, 41, 1)).unwrap());
}

#[test]
fn opening_a_version_1_file_migrates_it_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    {
        // What a build with only migration 1 left on disk.
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        schema::migrate_to(&mut conn, 1).unwrap();
        assert_eq!(schema::current_version(&conn).unwrap(), 1);
        conn.execute(
            "INSERT INTO jobs (request_id, assigned_id, model_id, prompt_tokens, completion_tokens,
                               started_at, ended_at, prefill_ms, decode_ms, outcome, reason,
                               estimated_credits, rate_card_version)
             VALUES ('req-old', 's', 'tiny-llama-4bit', 39, 1, 1, 2, 3, 4, 'error:error_internal',
                     'boom', 0, 'builtin-default')",
            [],
        )
        .unwrap();
        let has_cached: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = 'cached_prompt_tokens'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!has_cached, "version 1 has no cached_prompt_tokens column");
    }
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
    let old = ledger.job("req-old").unwrap().unwrap();
    assert_eq!(old.outcome, JobOutcome::Error("error_internal".into()));
    assert_eq!(old.cached_prompt_tokens, 0);
    assert_eq!(old.reason.as_deref(), Some("boom"));
    // And the migrated file takes new rows.
    assert!(ledger.record_job(&job("req-new", MIDNIGHT, JobOutcome::Complete, 41, 1)).unwrap());
    assert_eq!(ledger.summary(MIDNIGHT).unwrap().total.jobs, 2);
}

#[test]
fn a_file_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    }
    match Ledger::open(&path) {
        Err(LedgerError::FutureSchema { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected FutureSchema, got {other:?}"),
    }
}

#[test]
fn a_malformed_outcome_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite3");
    let ledger = Ledger::open(&path).unwrap();
    ledger.record_job(&job("x", MIDNIGHT, JobOutcome::Complete, 1, 1)).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE jobs SET outcome = 'weird' WHERE request_id = 'x'", [])
        .unwrap();
    assert!(matches!(ledger.job("x"), Err(LedgerError::Malformed(_))));
}

#[test]
fn shared_across_threads() {
    let ledger = std::sync::Arc::new(Ledger::open_in_memory().unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let l = ledger.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    // Overlapping ids across threads: each id must count once.
                    l.record_job(&job(
                        &format!("req-{}", (t * 10 + i) % 50),
                        MIDNIGHT,
                        JobOutcome::Complete,
                        41,
                        1,
                    ))
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = ledger.summary(MIDNIGHT).unwrap();
    assert_eq!(s.total.jobs, 50);
    assert_eq!(s.total.estimated_credits, 50 * 20);
}
