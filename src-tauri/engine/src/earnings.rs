//! The earnings report the control API serves (`GET /api/earnings?range=…`): the ledger's
//! summary, per-hour history and recent jobs for one range. Estimated and credited figures keep
//! their labels from `hearth-ledger`; nothing here blends them.

use hearth_ledger::{EarningsSummary, HourBucket, JobRecord, Ledger, LedgerError, PeriodTotals};
use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// `range=all` charts this many days of hours (the totals still cover everything).
pub const ALL_RANGE_HOURLY_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EarningsRange {
    /// Since midnight UTC (the coordinator's windows are UTC).
    #[serde(rename = "today")]
    Today,
    /// The rolling last 7 × 24 h.
    #[serde(rename = "7d")]
    SevenDays,
    #[serde(rename = "all")]
    All,
}

impl std::str::FromStr for EarningsRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "today" => Ok(Self::Today),
            "7d" => Ok(Self::SevenDays),
            "all" => Ok(Self::All),
            other => Err(format!("range must be today, 7d or all (got {other:?})")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarningsReport {
    pub range: EarningsRange,
    /// Jobs that ended in `[from_unix_ms, to_unix_ms)`; `from` is 0 for `all`.
    pub from_unix_ms: i64,
    pub to_unix_ms: i64,
    /// Totals for the range (one of the summary's periods).
    pub period: PeriodTotals,
    /// Today, 7 days and all time, with the credited figure and the gap.
    pub summary: EarningsSummary,
    /// Dense per-UTC-hour buckets from `hourly_from_unix_ms` to now.
    pub hourly_from_unix_ms: i64,
    pub hourly: Vec<HourBucket>,
    /// Newest first, at most the requested limit, within the range.
    pub recent_jobs: Vec<JobRecord>,
    /// The rate card new estimates are priced with, and its source (`coordinator` or `builtin`).
    pub rate_card_version: String,
    pub rate_card_source: String,
}

/// Builds the report from the ledger. Blocking (SQLite).
pub fn report(
    ledger: &Ledger,
    range: EarningsRange,
    now_ms: i64,
    limit: usize,
    rate_card: (&str, &str),
) -> Result<EarningsReport, LedgerError> {
    let summary = ledger.summary(now_ms)?;
    let (from, hourly_from, period) = match range {
        EarningsRange::Today => (summary.today_start_unix_ms, summary.today_start_unix_ms, summary.today),
        EarningsRange::SevenDays => (now_ms - 7 * DAY_MS, now_ms - 7 * DAY_MS, summary.last_7_days),
        EarningsRange::All => (0, now_ms - ALL_RANGE_HOURLY_DAYS * DAY_MS, summary.total),
    };
    let hourly = ledger.hourly(hourly_from, now_ms + 1)?;
    // The ledger lists newest first; stop at the range's start.
    let recent_jobs = ledger.recent_jobs(limit)?.into_iter().take_while(|j| j.ended_at >= from).collect();
    Ok(EarningsReport {
        range,
        from_unix_ms: from,
        to_unix_ms: now_ms,
        period,
        summary,
        hourly_from_unix_ms: hourly_from,
        hourly,
        recent_jobs,
        rate_card_version: rate_card.0.to_string(),
        rate_card_source: rate_card.1.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_ledger::JobOutcome;

    /// The kit's fixture job with 41 prompt + 1 completion tokens (20 credits on the built-in card).
    fn job(id: &str, ended_at: i64, outcome: JobOutcome) -> JobRecord {
        hearth_testkit::ledger_fixtures::job(id, ended_at, outcome, 41, 1)
    }

    #[test]
    fn ranges_select_periods_hours_and_jobs() {
        let ledger = Ledger::open_in_memory().unwrap();
        let now = 100 * DAY_MS + 5 * HOUR_MS + 10;
        ledger.record_job(&job("today", now - HOUR_MS, JobOutcome::Complete)).unwrap();
        ledger.record_job(&job("lost", now - 2 * HOUR_MS, JobOutcome::Lost)).unwrap();
        ledger.record_job(&job("week", now - 3 * DAY_MS, JobOutcome::Complete)).unwrap();
        ledger.record_job(&job("old", now - 40 * DAY_MS, JobOutcome::Complete)).unwrap();
        let card = ("v1", "coordinator");

        let r = report(&ledger, EarningsRange::Today, now, 50, card).unwrap();
        assert_eq!((r.period.jobs, r.period.estimated_credits, r.period.lost_jobs), (2, 20, 1));
        assert_eq!(r.hourly.len(), 6, "00:00 to 05:00 UTC");
        assert_eq!(r.hourly[4].jobs, 1);
        assert_eq!(r.hourly[3].jobs, 1);
        let ids: Vec<_> = r.recent_jobs.iter().map(|j| j.request_id.as_str()).collect();
        assert_eq!(ids, ["today", "lost"]);

        let r = report(&ledger, EarningsRange::SevenDays, now, 50, card).unwrap();
        assert_eq!((r.period.jobs, r.period.estimated_credits), (3, 40));
        assert_eq!(r.hourly.len(), 7 * 24 + 1);
        assert_eq!(r.recent_jobs.len(), 3);

        let r = report(&ledger, EarningsRange::All, now, 2, card).unwrap();
        assert_eq!((r.period.jobs, r.period.estimated_credits), (4, 60));
        assert_eq!(r.recent_jobs.len(), 2, "limit applies");
        assert_eq!(r.rate_card_source, "coordinator");
        assert_eq!("7d".parse::<EarningsRange>(), Ok(EarningsRange::SevenDays));
        assert!("week".parse::<EarningsRange>().is_err());
    }
}
