//! A writer killed with SIGKILL mid-stream loses no committed row, and re-recording after a restart
//! never double counts.
//!
//! The child is this same test binary, re-run with `LEDGER_CHILD_DB` set so that
//! [`child_writer`] (a no-op in a normal run) writes jobs as fast as it can and prints
//! `committed <i>` after each `record_job` returns. The parent kills it while it is writing.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_ledger::{JobOutcome, JobRecord, Ledger, RateCard};

const CHILD_ENV: &str = "LEDGER_CHILD_DB";

fn job(i: u64) -> JobRecord {
    JobRecord {
        request_id: format!("req-{i}"),
        assigned_id: "sess-kill".into(),
        model_id: "tiny-llama-4bit".into(),
        prompt_tokens: 41,
        cached_prompt_tokens: 0,
        completion_tokens: 1,
        started_at: 1_000 + i as i64,
        ended_at: 2_000 + i as i64,
        prefill_ms: 1,
        decode_ms: 1,
        outcome: JobOutcome::Complete,
        reason: None,
        estimated_credits: 0,
        rate_card_version: String::new(),
    }
    .priced(&RateCard::builtin())
}

/// The child's body; does nothing unless run as the child.
#[test]
fn child_writer() {
    let Ok(db) = std::env::var(CHILD_ENV) else { return };
    let ledger = Ledger::open(db).unwrap();
    let out = std::io::stdout();
    for i in 0.. {
        ledger.record_job(&job(i)).unwrap();
        use std::io::Write;
        let mut o = out.lock();
        writeln!(o, "committed {i}").unwrap();
        o.flush().unwrap();
    }
}

#[test]
fn sigkill_mid_write_loses_no_committed_row_and_rerecord_does_not_double_count() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.sqlite3");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Read acknowledgements until enough rows are committed, then kill without warning while the
    // child is in the middle of its next writes.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last_acked: Option<u64> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while last_acked.is_none_or(|n| n < 150) {
        assert!(Instant::now() < deadline, "child did not commit 150 rows in 30 s");
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            last_acked = Some(n.parse().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL on unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "child must have died from the kill");
    // Anything still in the pipe was acknowledged before the kill, too.
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("committed ") {
            last_acked = Some(n.parse().unwrap());
        }
    }
    let last_acked = last_acked.unwrap();

    // "Restart": reopen the file the killed process left behind (WAL and all).
    let ledger = Ledger::open(&db).unwrap();
    let ok: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    for i in 0..=last_acked {
        assert!(ledger.job(&format!("req-{i}")).unwrap().is_some(), "acknowledged row req-{i} is missing");
    }
    let before = ledger.summary(10_000_000).unwrap().total;
    // The child may have committed one row past the last acknowledgement it managed to print.
    assert!(before.jobs == last_acked + 1 || before.jobs == last_acked + 2, "jobs {}", before.jobs);
    assert_eq!(before.estimated_credits, before.jobs as i64 * 20);

    // A restarted provider re-recording everything it thinks it served counts nothing twice.
    let mut inserted = 0;
    for i in 0..before.jobs + 5 {
        if ledger.record_job(&job(i)).unwrap() {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 5);
    let after = ledger.summary(10_000_000).unwrap().total;
    assert_eq!(after.jobs, before.jobs + 5);
    assert_eq!(after.estimated_credits, (before.jobs as i64 + 5) * 20);
}
