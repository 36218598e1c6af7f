//! The ledger as CSV: one row per job, for a spreadsheet or an accountant.
//!
//! One writer for every way out (`hearth earnings export` and the control API's
//! `GET /api/earnings.csv`), so a file saved from the dashboard and one written by the CLI are the
//! same bytes for the same jobs. Times are RFC 3339 in UTC with milliseconds
//! (`2026-05-01T12:00:00.123Z`, which is also what JavaScript's `toISOString` prints); money is the
//! stored credit estimate plus its dollar value at the given rate, with the rate in its own column
//! so every figure says where it came from. The ledger keeps no per-job credited figure (the
//! coordinator reports credited totals only), so there is no credited column to fill.

use std::io::Write;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::job::JobRecord;
use crate::money::{effective_rate, usd_for_credits, usd_plain};

/// The header row, in column order.
pub const CSV_COLUMNS: &[&str] = &[
    "request_id",
    "started_at",
    "ended_at",
    "model_id",
    "outcome",
    "reason",
    "prompt_tokens",
    "cached_prompt_tokens",
    "completion_tokens",
    "prefill_ms",
    "decode_ms",
    "estimated_credits",
    "estimated_usd",
    "usd_per_million_credits",
    "rate_card_version",
    "assigned_id",
];

/// The MIME type the control API serves the export with.
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing to the destination failed (a full disk, a closed pipe …).
    #[error("cannot write the CSV: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds. A value outside the calendar the `time`
/// crate knows (only a hand-edited file has one) falls back to the raw number, so the row is still
/// written and still says what was stored.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(RFC3339_MILLIS).ok())
        .unwrap_or_else(|| unix_ms.to_string())
}

/// Writes the header and one row per job, in the order given, with dollars at
/// `usd_per_million_credits` (see [`effective_rate`]).
pub fn write_jobs_csv<'a, W: Write>(
    out: W,
    jobs: impl IntoIterator<Item = &'a JobRecord>,
    usd_per_million_credits: f64,
) -> Result<(), ExportError> {
    let rate = effective_rate(usd_per_million_credits);
    let rate_text = usd_plain(rate);
    // The csv crate quotes a field only when it must (a comma, a quote, a line break), and doubles
    // embedded quotes: model ids and error reasons are free text.
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    for j in jobs {
        w.write_record([
            j.request_id.as_str(),
            &rfc3339_ms(j.started_at),
            &rfc3339_ms(j.ended_at),
            &j.model_id,
            &j.outcome.as_db_string(),
            j.reason.as_deref().unwrap_or(""),
            &j.prompt_tokens.to_string(),
            &j.cached_prompt_tokens.to_string(),
            &j.completion_tokens.to_string(),
            &j.prefill_ms.to_string(),
            &j.decode_ms.to_string(),
            &j.estimated_credits.to_string(),
            &usd_plain(usd_for_credits(j.estimated_credits, rate)),
            &rate_text,
            &j.rate_card_version,
            &j.assigned_id,
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// [`write_jobs_csv`] into memory (what the control API answers with).
pub fn jobs_csv<'a>(
    jobs: impl IntoIterator<Item = &'a JobRecord>,
    usd_per_million_credits: f64,
) -> Result<Vec<u8>, ExportError> {
    let mut buf = Vec::new();
    write_jobs_csv(&mut buf, jobs, usd_per_million_credits)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobOutcome;

    fn job(id: &str, model: &str, ended_at: i64) -> JobRecord {
        JobRecord {
            request_id: id.into(),
            assigned_id: "sess-1".into(),
            model_id: model.into(),
            prompt_tokens: 41,
            cached_prompt_tokens: 0,
            completion_tokens: 1,
            started_at: ended_at - 500,
            ended_at,
            prefill_ms: 40,
            decode_ms: 460,
            outcome: JobOutcome::Complete,
            reason: None,
            estimated_credits: 20,
            rate_card_version: "v1".into(),
        }
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_777_636_800_123), "2026-05-01T12:00:00.123Z");
        assert_eq!(rfc3339_ms(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn odd_model_names_and_reasons_are_quoted_and_read_back_verbatim() {
        let mut odd = job("r-1", "acme/model, \"fast\" edition", 1_000);
        odd.reason = Some("line one\nline \"two\", with comma".into());
        odd.outcome = JobOutcome::Error("error_internal".into());
        odd.estimated_credits = 0;
        let plain = job("r-2", "plain", 2_000);
        let bytes = jobs_csv([&odd, &plain], 1.0).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"acme/model, \"\"fast\"\" edition\""), "{text}");

        let mut r = csv::Reader::from_reader(bytes.as_slice());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), CSV_COLUMNS);
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][3], "acme/model, \"fast\" edition");
        assert_eq!(&rows[0][4], "error:error_internal");
        assert_eq!(&rows[0][5], "line one\nline \"two\", with comma");
        assert_eq!(&rows[1][3], "plain");
        assert_eq!(&rows[1][5], "");
        assert_eq!((&rows[1][11], &rows[1][12], &rows[1][13]), ("20", "0.00002", "1"));
    }

    #[test]
    fn the_rate_converts_and_is_stated_per_row() {
        let bytes = jobs_csv([&job("r", "m", 1)], 2.5).unwrap();
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!((&row[12], &row[13]), ("0.00005", "2.5"));
        // An empty ledger is still a valid file: just the header.
        let empty = jobs_csv(std::iter::empty::<&JobRecord>(), 1.0).unwrap();
        assert_eq!(String::from_utf8(empty).unwrap(), format!("{}\n", CSV_COLUMNS.join(",")));
    }
}
