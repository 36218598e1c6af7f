//! The earnings report the control API serves (`GET /api/earnings?range=…`): the ledger's
//! summary, per-hour history, earnings by model and recent jobs for one range, with dollars beside
//! the credits; and the same range as CSV (`GET /api/earnings.csv`, `hearth earnings export`).
//! Estimated and credited figures keep their labels from `hearth-ledger`; nothing here blends them.

use hearth_ledger::{EarningsSummary, HourBucket, JobRecord, Ledger, LedgerError, ModelTotals, PeriodTotals};

/// Dollars for credits, shared by the CLI and the tray (the web UI has its twin in ui/src/money.ts).
pub use hearth_ledger::money::{effective_rate, format_credits_usd, format_usd, usd_for_credits};
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
    /// The rolling last 30 × 24 h.
    #[serde(rename = "30d")]
    ThirtyDays,
    #[serde(rename = "all")]
    All,
}

impl EarningsRange {
    /// The first instant (unix ms) of the range at `now_ms`; jobs count by `ended_at`.
    pub fn start(self, now_ms: i64) -> i64 {
        match self {
            Self::Today => now_ms.div_euclid(DAY_MS) * DAY_MS,
            Self::SevenDays => now_ms - 7 * DAY_MS,
            Self::ThirtyDays => now_ms - 30 * DAY_MS,
            Self::All => 0,
        }
    }

    /// The name used in URLs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Today => "today",
            Self::SevenDays => "7d",
            Self::ThirtyDays => "30d",
            Self::All => "all",
        }
    }
}

impl std::str::FromStr for EarningsRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "today" => Ok(Self::Today),
            "7d" => Ok(Self::SevenDays),
            "30d" => Ok(Self::ThirtyDays),
            "all" => Ok(Self::All),
            other => Err(format!("range must be today, 7d, 30d or all (got {other:?})")),
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
    /// The range's totals per model, the best-earning first; they sum to `period`.
    pub by_model: Vec<ModelTotals>,
    /// Today, 7 days, 30 days and all time, with the credited figure and the gap.
    pub summary: EarningsSummary,
    /// Dollars per million credits, from the rate card in force (1.0 unless it says otherwise);
    /// the UI converts every credit figure with it.
    pub usd_per_million_credits: f64,
    /// The same periods in dollars at that rate, for clients that do not convert themselves.
    pub estimated_usd: UsdTotals,
    /// Dense per-UTC-hour buckets from `hourly_from_unix_ms` to now.
    pub hourly_from_unix_ms: i64,
    pub hourly: Vec<HourBucket>,
    /// Newest first, at most the requested limit, within the range.
    pub recent_jobs: Vec<JobRecord>,
    /// The rate card new estimates are priced with, and its source (`coordinator` or `builtin`).
    pub rate_card_version: String,
    pub rate_card_source: String,
}

/// The report's periods in dollars (estimated: rate-card estimates converted at the card's rate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsdTotals {
    pub period: f64,
    pub today: f64,
    pub last_7_days: f64,
    pub last_30_days: f64,
    pub total: f64,
    /// `summary.credited.latest.total_credits` in dollars, once known.
    pub credited_total: Option<f64>,
}

/// The rate card in force, as the report needs it.
#[derive(Debug, Clone, Copy)]
pub struct CardInfo<'a> {
    pub version: &'a str,
    /// `coordinator` or `builtin`.
    pub source: &'a str,
    pub usd_per_million_credits: f64,
}

/// Builds the report from the ledger. Blocking (SQLite).
pub fn report(
    ledger: &Ledger,
    range: EarningsRange,
    now_ms: i64,
    limit: usize,
    card: CardInfo<'_>,
) -> Result<EarningsReport, LedgerError> {
    let summary = ledger.summary(now_ms)?;
    let from = range.start(now_ms);
    let (hourly_from, period) = match range {
        EarningsRange::Today => (from, summary.today),
        EarningsRange::SevenDays => (from, summary.last_7_days),
        EarningsRange::ThirtyDays => (from, summary.last_30_days),
        EarningsRange::All => (now_ms - ALL_RANGE_HOURLY_DAYS * DAY_MS, summary.total),
    };
    let hourly = ledger.hourly(hourly_from, now_ms + 1)?;
    // `to` is one past now, as for the hours: a job that ended this very millisecond counts.
    let by_model = ledger.by_model(from, now_ms + 1)?;
    let rate = effective_rate(card.usd_per_million_credits);
    let usd = |credits: i64| usd_for_credits(credits, rate);
    let estimated_usd = UsdTotals {
        period: usd(period.estimated_credits),
        today: usd(summary.today.estimated_credits),
        last_7_days: usd(summary.last_7_days.estimated_credits),
        last_30_days: usd(summary.last_30_days.estimated_credits),
        total: usd(summary.total.estimated_credits),
        credited_total: summary.credited.as_ref().map(|c| usd(c.latest.total_credits)),
    };
    // The ledger lists newest first; stop at the range's start.
    let recent_jobs = ledger.recent_jobs(limit)?.into_iter().take_while(|j| j.ended_at >= from).collect();
    Ok(EarningsReport {
        range,
        from_unix_ms: from,
        to_unix_ms: now_ms,
        period,
        by_model,
        summary,
        usd_per_million_credits: rate,
        estimated_usd,
        hourly_from_unix_ms: hourly_from,
        hourly,
        recent_jobs,
        rate_card_version: card.version.to_string(),
        rate_card_source: card.source.to_string(),
    })
}

/// A CSV export: the file's bytes and how many jobs (rows after the header) it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvExport {
    pub bytes: Vec<u8>,
    pub jobs: usize,
}

/// Every job of `range` as CSV, oldest first, dollars at `usd_per_million_credits`: what
/// `GET /api/earnings.csv` answers and `hearth earnings export` writes. Blocking (SQLite).
pub fn csv(
    ledger: &Ledger,
    range: EarningsRange,
    now_ms: i64,
    usd_per_million_credits: f64,
) -> Result<CsvExport, LedgerError> {
    let jobs = ledger.jobs_between(range.start(now_ms), now_ms.saturating_add(1))?;
    let bytes = hearth_ledger::jobs_csv(&jobs, usd_per_million_credits)?;
    Ok(CsvExport { bytes, jobs: jobs.len() })
}

/// The file name a download of `range` is offered under, e.g. `hearth-earnings-30d.csv`.
pub fn csv_file_name(range: EarningsRange) -> String {
    format!("hearth-earnings-{}.csv", range.as_str())
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
        let card = CardInfo { version: "v1", source: "coordinator", usd_per_million_credits: 2.0 };

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
        assert_eq!(r.estimated_usd.total, 60.0 * 2.0 / 1e6);
        assert_eq!(r.by_model.len(), 1);
        assert_eq!(r.by_model[0].totals, r.period);

        let r = report(&ledger, EarningsRange::ThirtyDays, now, 50, card).unwrap();
        assert_eq!((r.period.jobs, r.period.estimated_credits), (3, 40));
        assert_eq!(r.hourly.len(), 30 * 24 + 1);
        assert_eq!(r.from_unix_ms, now - 30 * DAY_MS);
        assert_eq!(r.estimated_usd.last_30_days, 40.0 * 2.0 / 1e6);
        assert_eq!(r.usd_per_million_credits, 2.0);

        // A card with no usable rate converts at the protocol's 10^6 credits = $1.
        let bad = CardInfo { usd_per_million_credits: 0.0, ..card };
        assert_eq!(report(&ledger, EarningsRange::All, now, 1, bad).unwrap().usd_per_million_credits, 1.0);

        for range in
            [EarningsRange::Today, EarningsRange::SevenDays, EarningsRange::ThirtyDays, EarningsRange::All]
        {
            assert_eq!(range.as_str().parse::<EarningsRange>(), Ok(range));
        }
        assert_eq!("7d".parse::<EarningsRange>(), Ok(EarningsRange::SevenDays));
        assert!("week".parse::<EarningsRange>().is_err());
    }

    #[test]
    fn csv_covers_the_range_oldest_first() {
        let ledger = Ledger::open_in_memory().unwrap();
        let now = 100 * DAY_MS + 5 * HOUR_MS;
        ledger.record_job(&job("new", now - HOUR_MS, JobOutcome::Complete)).unwrap();
        ledger.record_job(&job("older", now - 3 * DAY_MS, JobOutcome::Complete)).unwrap();
        ledger.record_job(&job("old", now - 40 * DAY_MS, JobOutcome::Complete)).unwrap();
        let ids = |range| -> Vec<String> {
            let export = csv(&ledger, range, now, 1.0).unwrap();
            let text = String::from_utf8(export.bytes).unwrap();
            assert_eq!(text.lines().count(), export.jobs + 1);
            text.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect()
        };
        assert_eq!(ids(EarningsRange::Today), ["new"]);
        assert_eq!(ids(EarningsRange::ThirtyDays), ["older", "new"]);
        assert_eq!(ids(EarningsRange::All), ["old", "older", "new"]);
        assert_eq!(csv_file_name(EarningsRange::All), "hearth-earnings-all.csv");
    }
}
