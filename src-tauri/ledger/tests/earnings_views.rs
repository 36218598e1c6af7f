//! The views "money as people read it" is built on: the 30-day window, earnings by model, and the
//! CSV export compared row for row with the ledger's own rows.

use hearth_ledger::{jobs_csv, JobOutcome, JobRecord, Ledger, CSV_COLUMNS};
use hearth_testkit::ledger_fixtures::{job, JOB_MODEL};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-05-04 00:00:00 UTC (a Monday).
const MIDNIGHT: i64 = 1_777_852_800_000;

fn on(model: &str, mut j: JobRecord) -> JobRecord {
    j.model_id = model.into();
    j
}

#[test]
fn thirty_days_is_a_rolling_half_open_window() {
    let ledger = Ledger::open_in_memory().unwrap();
    let now = MIDNIGHT + 10 * HOUR;
    ledger.record_job(&job("in-7", now - 2 * DAY, JobOutcome::Complete, 41, 1)).unwrap();
    ledger.record_job(&job("in-30", now - 20 * DAY, JobOutcome::Complete, 41, 1)).unwrap();
    // Exactly 30 × 24 h ago: the window's first instant, so inside.
    ledger.record_job(&job("edge", now - 30 * DAY, JobOutcome::Complete, 41, 1)).unwrap();
    ledger.record_job(&job("just-out", now - 30 * DAY - 1, JobOutcome::Complete, 41, 1)).unwrap();
    ledger.record_job(&job("lost", now - 25 * DAY, JobOutcome::Lost, 41, 1)).unwrap();

    let s = ledger.summary(now).unwrap();
    assert_eq!((s.last_7_days.jobs, s.last_7_days.estimated_credits), (1, 20));
    assert_eq!((s.last_30_days.jobs, s.last_30_days.estimated_credits), (4, 60));
    assert_eq!(s.last_30_days.lost_jobs, 1);
    assert_eq!((s.total.jobs, s.total.estimated_credits), (5, 80));
}

#[test]
fn by_model_sums_each_model_and_orders_by_earnings() {
    let ledger = Ledger::open_in_memory().unwrap();
    let now = MIDNIGHT + 10 * HOUR;
    let small = "mlx-community/Qwen2.5-0.5B-Instruct-4bit";
    let odd = "acme/model, \"fast\" edition";
    // JOB_MODEL: 2 complete (20 each), 1 error.
    ledger.record_job(&job("a1", now - HOUR, JobOutcome::Complete, 41, 1)).unwrap();
    ledger.record_job(&job("a2", now - 2 * HOUR, JobOutcome::Complete, 41, 1)).unwrap();
    ledger.record_job(&job("a3", now - 3 * HOUR, JobOutcome::Error("error_internal".into()), 41, 1)).unwrap();
    // small: one big job (450 000) and one lost.
    ledger.record_job(&on(small, job("b1", now - 4 * HOUR, JobOutcome::Complete, 1_000_000, 0))).unwrap();
    ledger.record_job(&on(small, job("b2", now - 5 * HOUR, JobOutcome::Lost, 10, 0))).unwrap();
    // odd: only lost work, still listed.
    ledger.record_job(&on(odd, job("c1", now - 6 * HOUR, JobOutcome::Lost, 5, 5))).unwrap();
    // Outside the range asked for below.
    ledger.record_job(&on(small, job("old", now - 40 * DAY, JobOutcome::Complete, 0, 1_000_000))).unwrap();

    let rows = ledger.by_model(now - 30 * DAY, now + 1).unwrap();
    let ids: Vec<_> = rows.iter().map(|r| r.model_id.as_str()).collect();
    assert_eq!(ids, [small, JOB_MODEL, odd]);
    let t = &rows[0].totals;
    assert_eq!((t.jobs, t.estimated_credits, t.lost_jobs, t.prompt_tokens), (2, 450_000, 1, 1_000_010));
    let t = &rows[1].totals;
    assert_eq!((t.jobs, t.estimated_credits, t.error_jobs, t.completion_tokens), (3, 40, 1, 3));
    let t = &rows[2].totals;
    assert_eq!((t.jobs, t.estimated_credits, t.lost_jobs), (1, 0, 1));

    // The models' sums are the period's totals.
    let period = ledger.summary(now).unwrap().last_30_days;
    assert_eq!(rows.iter().map(|r| r.totals.jobs).sum::<u64>(), period.jobs);
    assert_eq!(rows.iter().map(|r| r.totals.estimated_credits).sum::<i64>(), period.estimated_credits);

    // All time includes the old job; an empty range is empty.
    let all = ledger.by_model(i64::MIN, i64::MAX).unwrap();
    assert_eq!(all[0].totals.estimated_credits, 1_350_000);
    assert!(ledger.by_model(now + 1, now + 2).unwrap().is_empty());

    // The JSON shape the API serves: the model id beside flat totals.
    let v = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!((v["model_id"].as_str(), v["estimated_credits"].as_i64()), (Some(small), Some(450_000)));
}

#[test]
fn the_csv_is_the_ledger_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite3")).unwrap();
    let now = MIDNIGHT + 10 * HOUR;
    let mut expected = Vec::new();
    for (i, (model, outcome)) in [
        (JOB_MODEL, JobOutcome::Complete),
        ("acme/model, \"fast\" edition", JobOutcome::Cancelled),
        ("line\nbreak/model", JobOutcome::Error("provider_timeout".into())),
        (JOB_MODEL, JobOutcome::Lost),
    ]
    .into_iter()
    .enumerate()
    {
        let mut j =
            on(model, job(&format!("req-{i}"), now - (10 - i as i64) * HOUR, outcome, 41 + i as u64, 3));
        if matches!(j.outcome, JobOutcome::Lost) {
            j.reason = Some("session closed: 1006, \"abnormal\"".into());
        }
        ledger.record_job(&j).unwrap();
        expected.push(j);
    }
    // Two jobs ending at the same millisecond keep their insertion order.
    let twin = job("req-twin", now - 7 * HOUR, JobOutcome::Complete, 7, 7);
    ledger.record_job(&twin).unwrap();
    expected.push(twin);
    ledger.record_job(&job("too-old", now - 40 * DAY, JobOutcome::Complete, 1, 1)).unwrap();

    let rows = ledger.jobs_between(now - 30 * DAY, now + 1).unwrap();
    assert_eq!(rows, expected, "oldest first, the range only");
    let csv = jobs_csv(&rows, 1.0).unwrap();

    let mut reader = csv::Reader::from_reader(csv.as_slice());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), CSV_COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), rows.len());
    for (rec, j) in records.iter().zip(&rows) {
        assert_eq!(&rec[column_index("request_id")], j.request_id);
        assert_eq!(&rec[column_index("model_id")], j.model_id);
        assert_eq!(&rec[column_index("outcome")], j.outcome.as_db_string());
        assert_eq!(&rec[column_index("reason")], j.reason.as_deref().unwrap_or(""));
        assert_eq!(rec[column_index("prompt_tokens")].parse::<u64>().unwrap(), j.prompt_tokens);
        assert_eq!(rec[column_index("completion_tokens")].parse::<u64>().unwrap(), j.completion_tokens);
        assert_eq!(rec[column_index("estimated_credits")].parse::<i64>().unwrap(), j.estimated_credits);
        let usd: f64 = rec[column_index("estimated_usd")].parse().unwrap();
        assert!((usd - j.estimated_credits as f64 / 1e6).abs() < 1e-12, "{usd} for {}", j.estimated_credits);
        assert_eq!(&rec[column_index("rate_card_version")], j.rate_card_version);
        assert_eq!(&rec[column_index("assigned_id")], j.assigned_id);
        for (column, ms) in [("started_at", j.started_at), ("ended_at", j.ended_at)] {
            let t = time::OffsetDateTime::parse(
                &rec[column_index(column)],
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert_eq!((t.unix_timestamp_nanos() / 1_000_000) as i64, ms, "{column}");
        }
    }
}

fn column_index(name: &str) -> usize {
    CSV_COLUMNS.iter().position(|c| *c == name).unwrap()
}
