//! Money as people read it, with real processes: `hearth pool` and `hearth serve`, a few buyer
//! completions, then the ledger three ways — the control API's JSON (`/api/earnings`), its CSV
//! (`/api/earnings.csv`) and `hearth earnings export` — which must agree row for row. And the
//! dollars `hearth status` prints beside the credits.

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use hearth_testkit::chat::chat;
use hearth_testkit::control::Control;
use hearth_testkit::hearth::{Hearth, PoolProcess, MODEL};
use hearth_testkit::process::free_port;
use serde_json::Value;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

/// The export's header, in order (the ledger's `CSV_COLUMNS`, spelled out: a renamed column is a
/// change every spreadsheet built on the file notices).
const COLUMNS: &[&str] = &[
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

async fn complete(pool: &PoolProcess, prompt: &str, max_tokens: i64) -> String {
    let r = pool.post_chat(&chat(MODEL, prompt, max_tokens, false)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["id"].as_str().unwrap().strip_prefix("chatcmpl-").unwrap().to_string()
}

/// `hearth <args>` against the provider home `home`, waiting for it to exit.
fn hearth(home: &Path, args: &[&str]) -> Output {
    let out = HEARTH.command().env("HEARTH_HOME", home).env("RUST_LOG", "warn").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "hearth {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn rows(csv_bytes: &[u8]) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_reader(csv_bytes);
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS);
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            COLUMNS.iter().zip(rec.iter()).map(|(k, v)| (k.to_string(), v.to_string())).collect()
        })
        .collect()
}

fn unix_ms_of(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Each CSV row is the JSON report's job with the same request id, field for field, in the order
/// the ledger holds them (oldest first; the report lists newest first).
fn assert_rows_match(csv_rows: &[HashMap<String, String>], report: &Value, rate: f64) {
    let mut jobs: Vec<&Value> = report["recent_jobs"].as_array().unwrap().iter().collect();
    jobs.reverse();
    assert_eq!(csv_rows.len(), jobs.len(), "one CSV row per ledger row");
    for (row, job) in csv_rows.iter().zip(jobs) {
        let s = |k: &str| job[k].as_str().unwrap_or_default().to_string();
        let n = |k: &str| job[k].as_i64().unwrap().to_string();
        assert_eq!(row["request_id"], s("request_id"));
        assert_eq!(row["model_id"], s("model_id"));
        assert_eq!(row["outcome"], s("outcome"));
        assert_eq!(row["reason"], s("reason"));
        assert_eq!(row["assigned_id"], s("assigned_id"));
        assert_eq!(row["rate_card_version"], s("rate_card_version"));
        for k in ["prompt_tokens", "cached_prompt_tokens", "completion_tokens", "prefill_ms", "decode_ms"] {
            assert_eq!(row[k], n(k), "{k}");
        }
        assert_eq!(row["estimated_credits"], n("estimated_credits"));
        let credits = job["estimated_credits"].as_i64().unwrap();
        let usd: f64 = row["estimated_usd"].parse().unwrap();
        assert!((usd - credits as f64 * rate / 1e6).abs() < 1e-12, "{usd} for {credits} credits");
        assert_eq!(row["usd_per_million_credits"].parse::<f64>().unwrap(), rate);
        assert_eq!(unix_ms_of(&row["started_at"]), job["started_at"].as_i64().unwrap());
        assert_eq!(unix_ms_of(&row["ended_at"]), job["ended_at"].as_i64().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_from_the_api_and_the_cli_is_the_ledger_row_for_row_with_dollars() {
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    let ws = pool.ws_url();
    let args = ["--coordinator", &ws, "--model-id", MODEL, "--earnings-poll-interval", "0.3"];
    let mut proc = HEARTH.serve(&home, &args, &[]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    control
        .status_until("ready, with the coordinator's rate card", Duration::from_secs(10), |s| {
            s["phase"] == "ready" && s["earnings"]["rate_card_source"] == "coordinator"
        })
        .await;

    let mut ids = Vec::new();
    for (prompt, max_tokens) in [("hello there", 3), ("one two three", 5), ("a b c d e f g", 2), ("x", 1)] {
        ids.push(complete(&pool, prompt, max_tokens).await);
    }
    let s = control
        .status_until("four jobs recorded", Duration::from_secs(10), |s| s["earnings"]["total_jobs"] == 4)
        .await;
    let rate = s["earnings"]["usd_per_million_credits"].as_f64().unwrap();
    assert!(rate > 0.0, "the snapshot carries the card's rate: {:#}", s["earnings"]);

    // The JSON report: four jobs, one model, 30 days accepted as a range, dollars beside credits.
    let report = control.json("/api/earnings?range=all&limit=1000").await;
    let total = report["period"]["estimated_credits"].as_i64().unwrap();
    assert!(total > 0, "{report:#}");
    assert_eq!(report["usd_per_million_credits"].as_f64(), Some(rate));
    assert!((report["estimated_usd"]["total"].as_f64().unwrap() - total as f64 * rate / 1e6).abs() < 1e-12);
    let by_model = report["by_model"].as_array().unwrap();
    assert_eq!(by_model.len(), 1, "{report:#}");
    assert_eq!(by_model[0]["model_id"], MODEL);
    assert_eq!(by_model[0]["jobs"], 4);
    assert_eq!(by_model[0]["estimated_credits"].as_i64(), Some(total));
    let month = control.json("/api/earnings?range=30d").await;
    assert_eq!(month["range"], "30d");
    assert_eq!(month["period"], report["period"], "every job is from the last 30 days");
    assert_eq!(month["summary"]["last_30_days"], report["period"]);

    // The API's CSV: a download, token-protected like the rest.
    let r = control.get("/api/earnings.csv?range=all").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(r.headers()["content-disposition"], "attachment; filename=\"hearth-earnings-all.csv\"");
    let api_csv = r.bytes().await.unwrap().to_vec();
    let api_rows = rows(&api_csv);
    assert_rows_match(&api_rows, &report, rate);
    let mut csv_ids: Vec<_> = api_rows.iter().map(|r| r["request_id"].clone()).collect();
    csv_ids.sort();
    ids.sort();
    assert_eq!(csv_ids, ids, "exactly the jobs the buyer ran");
    let anonymous =
        reqwest::Client::new().get(format!("{}/api/earnings.csv", control.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let bad = control.get("/api/earnings.csv?range=week").send().await.unwrap();
    assert_eq!(bad.status(), 400);

    // The CLI: the same writer, so the same bytes; to a file and to standard output.
    let out = dir.path().join("export.csv");
    let cli = hearth(&home, &["earnings", "export", "--out", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&cli.stderr).contains("wrote 4 job(s)"), "{cli:?}");
    assert_eq!(std::fs::read(&out).unwrap(), api_csv, "CLI and API write the same file");
    let stdout = hearth(&home, &["earnings", "export", "--range", "today"]).stdout;
    let today = control.json("/api/earnings?range=today&limit=1000").await;
    assert_rows_match(&rows(&stdout), &today, rate);

    // `hearth status` shows dollars beside the credits, in the shared Rust formatting.
    let status = String::from_utf8(hearth(&home, &["status"]).stdout).unwrap();
    let total_usd = hearth_engine::earnings::format_credits_usd(total, rate);
    assert!(status.contains(&format!("total {total_usd} ({total} credits)")), "{status}");

    // With the provider stopped the export still works: it reads the ledger file itself.
    assert!(proc.terminate(Duration::from_secs(10)).await.success());
    let offline = dir.path().join("offline.csv");
    let cli = hearth(&home, &["earnings", "export", "--range", "30d", "--out", offline.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&cli.stderr).contains("no running provider"), "{cli:?}");
    assert_rows_match(&rows(&std::fs::read(&offline).unwrap()), &report, 1.0);
}
