//! `hearth earnings export`: the ledger as CSV, one row per job.
//!
//! It reads the ledger file itself rather than asking a running provider, so an export works with
//! the app quit too (SQLite in WAL mode lets it read beside a running writer). The CSV is written by
//! the same function the control API's `GET /api/earnings.csv` uses. Dollars are converted at the
//! running provider's rate card when one answers, else at the protocol's 10^6 credits = $1, and the
//! rate used is a column of every row either way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::running_app::RunningApp;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hearth_engine::earnings::{self, EarningsRange};
use hearth_engine::status::{unix_ms, Status};
use hearth_ledger::Ledger;

#[derive(Subcommand)]
pub enum EarningsCommand {
    /// Write the ledger as CSV: one row per job (times, model, outcome, tokens, estimated credits
    /// and dollars, rate card).
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// Which jobs, by when they ended: today (since 00:00 UTC), 7d, 30d or all.
    #[arg(long, default_value = "all", value_parser = parse_range)]
    range: EarningsRange,
    /// The file to write (replaced whole, never left half-written); standard output without it.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_range(s: &str) -> Result<EarningsRange, String> {
    s.parse()
}

pub async fn run(command: EarningsCommand) -> Result<()> {
    match command {
        EarningsCommand::Export(args) => export(args).await,
    }
}

async fn export(args: ExportArgs) -> Result<()> {
    let paths = hearth_settings::HearthPaths::resolve()?;
    let ledger_path = paths.ledger_file();
    if !ledger_path.exists() {
        // Opening would create an empty ledger; an export should not leave files behind.
        bail!("no earnings ledger at {}: nothing has been served on this machine yet", ledger_path.display());
    }
    let rate = match running_rate().await {
        Some(rate) => rate,
        None => {
            eprintln!(
                "no running provider answered: dollars are at $1 per million credits (the protocol's rate)"
            );
            1.0
        }
    };
    let range = args.range;
    let export = tokio::task::spawn_blocking(move || -> Result<earnings::CsvExport> {
        let ledger = Ledger::open(&ledger_path)
            .with_context(|| format!("cannot open the ledger at {}", ledger_path.display()))?;
        Ok(earnings::csv(&ledger, range, unix_ms() as i64, rate)?)
    })
    .await??;
    match &args.out {
        Some(path) => {
            write_whole(path, &export.bytes)?;
            eprintln!("wrote {} job(s) ({}) to {}", export.jobs, range.as_str(), path.display());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&export.bytes).context("cannot write to standard output")?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// The rate card's dollars per million credits, from the provider running on this machine, if any.
async fn running_rate() -> Option<f64> {
    let status: Status =
        RunningApp::find().ok()?.get_json("/api/status", Duration::from_secs(2)).await.ok()?;
    Some(earnings::effective_rate(status.earnings.usd_per_million_credits))
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a failure
/// (a full disk) never leaves a truncated export looking complete.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.partial", name.to_string_lossy()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}
