//! `hearth doctor [--json]`: the doctor's checks ([`hearth_engine::doctor`]), printed. With an app
//! running on this machine (its `control.json` answers), the app runs them — it knows its
//! command-line overrides, its token and its live status; otherwise this process runs the same
//! checks from the settings file. Exits non-zero when a check fails.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::running_app::RunningApp;
use anyhow::Result;
use clap::Args;
use hearth_engine::doctor::{self, DoctorReport, Verdict};

#[derive(Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Check this coordinator instead of the settings' (runs the checks here, not in the app).
    #[arg(long)]
    coordinator: Option<String>,
    /// Extra certificate authorities (PEM) to trust for wss://, as `hearth serve --ca-file`.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

pub async fn run(args: DoctorArgs) -> Result<()> {
    let from_app = if args.coordinator.is_none() && args.ca_file.is_none() { ask_app().await } else { None };
    let report = match from_app {
        Some(report) => report,
        None => {
            let paths = hearth_settings::HearthPaths::resolve()?;
            let inputs = tokio::task::spawn_blocking(move || {
                doctor::cli_inputs(&paths, args.coordinator, args.ca_file)
            })
            .await?;
            doctor::run(inputs).await
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    if report.verdict == Verdict::Fail {
        // The report has said what failed and what to do; an error message would only repeat it.
        std::io::stdout().flush()?;
        std::process::exit(1);
    }
    Ok(())
}

/// The running app's report, or `None` when no app answers (then this process runs the checks).
async fn ask_app() -> Option<DoctorReport> {
    // The app's probes each take at most a few seconds, concurrently.
    RunningApp::find().ok()?.get_json("/api/doctor", Duration::from_secs(30)).await.ok()
}
