//! A writer killed with SIGKILL mid-stream loses no committed row, and re-recording after a restart
//! never double counts.
//!
//! The child is this same test binary, re-run with `LEDGER_CHILD_DB` set so that
//! [`child_writer`] writes jobs as fast as it can and prints `committed <i>` after each
//! `record_job` returns. The parent kills it while it is writing. `child_writer` is a helper-process
//! entry, not a test of its own: a normal run lists it as ignored, and the parent runs it through
//! `--ignored` (see `hearth_testkit::process::rerun_test_binary`).

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hearth_ledger::{JobOutcome, JobRecord, Ledger};
use hearth_testkit::ledger_fixtures;
use hearth_testkit::process::rerun_test_binary;

const CHILD_ENV: &str = "LEDGER_CHILD_DB";

/// The `i`th job the child writes: 41 prompt + 1 completion tokens, 20 estimated credits.
fn job(i: u64) -> JobRecord {
    ledger_fixtures::job(&format!("req-{i}"), 2_000 + i as i64, JobOutcome::Complete, 41, 1)
}

/// The child's body: writes rows until it is killed. Run only by the parent test below.
#[test]
#[ignore = "helper process: the SIGKILL test runs it as its child with LEDGER_CHILD_DB set"]
fn child_writer() {
    let db = std::env::var(CHILD_ENV)
        .unwrap_or_else(|_| panic!("child_writer is the SIGKILL test's child; it needs {CHILD_ENV}"));
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
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.sqlite3");
    let mut child = rerun_test_binary("child_writer")
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
