//! Secrets review, as a test: the provider token (from HEARTH_PROVIDER_TOKEN) reaches the
//! coordinator and nothing else — not the debug logs of the provider or the pool, not the control
//! API's answers, not the settings file, the ledger or any other file under HEARTH_HOME, not the
//! output of a crash or of a refused-token exit. And the control API will not listen off loopback.
//! (Token, Host and Origin checks of the control API are in app.rs.)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hearth_testkit::chat::chat;
use hearth_testkit::control::Control;
use hearth_testkit::fake_coordinator::FakeCoordinator;
use hearth_testkit::hearth::{Hearth, MODEL};
use hearth_testkit::poll::poll_until;
use hearth_testkit::process::{free_port, Proc};
use hearth_testkit::sse::SseReader;
use serde_json::Value;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

fn provider_cmd(home: &Path, coordinator: &str, token: &str) -> Command {
    let mut cmd = HEARTH.command();
    cmd.env("HEARTH_HOME", home)
        .env("HEARTH_PROVIDER_TOKEN", token)
        .env("RUST_LOG", "debug")
        .env("RUST_BACKTRACE", "1")
        .args(["serve", "--coordinator", coordinator, "--model-id", MODEL])
        .args(["--pool-poll-interval", "0.3", "--earnings-poll-interval", "0.3"]);
    cmd
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Where in `haystack` the token (or a 16-byte piece of it, for truncated leaks) occurs.
fn leaks(haystack: &[u8], token: &str) -> bool {
    let t = token.as_bytes();
    t.windows(16).step_by(8).any(|piece| haystack.windows(piece.len()).any(|w| w == piece))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_token_never_leaks_into_logs_status_files_or_crash_output() {
    let token = format!("hst-{}-{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut artifacts: Vec<(String, Vec<u8>)> = Vec::new();

    // The pool at debug level: it sees the token on every upgrade.
    let port = free_port();
    let mut pool = HEARTH.start_pool(&logs, port, &[], &[("RUST_LOG", "debug")], None).await;
    let pool_logs = pool.proc.log_files();
    let ws = pool.ws_url();

    // A provider at debug level, serving, polling earnings (with the token) and status.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut serve1 = Proc::spawn(provider_cmd(&home, &ws, &token), &logs, "serve-1");
    let run1 = serve1.log_files();
    let control = Control::wait(&home, &serve1, Duration::from_secs(15)).await;
    control.status_until("ready", Duration::from_secs(15), |s| s["phase"] == "ready").await;
    for stream in [false, true] {
        let r = pool.post_chat(&chat(MODEL, "secret review", 3, stream)).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // The earnings poll ran with the token (credited figures arrived).
    control
        .status_until("the credited figure from the pool", Duration::from_secs(10), |s| {
            s["earnings"]["credited_total_credits"].is_number()
        })
        .await;

    // Everything the control API shows.
    for path in ["/api/status", "/api/settings", "/api/earnings?range=all", "/api/models"] {
        let body = control.get(path).send().await.unwrap().bytes().await.unwrap();
        artifacts.push((format!("GET {path}"), body.to_vec()));
    }
    let mut events = SseReader::new(control.get("/api/events").send().await.unwrap());
    let first = events.next_status(Duration::from_secs(5)).await.expect("a status event");
    artifacts.push(("GET /api/events".into(), first.to_string().into_bytes()));
    let out = HEARTH.command().env("HEARTH_HOME", &home).args(["status", "--json"]).output().unwrap();
    artifacts.push(("hearth status --json".into(), [out.stdout, out.stderr].concat()));

    // Saving settings through the API writes settings.toml.
    let settings: Value = control.json("/api/settings").await;
    let mut edited = settings["settings"].clone();
    edited["slots"] = serde_json::json!(2);
    let r = control.put("/api/settings").json(&edited).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert!(home.join("config/settings.toml").exists(), "settings were saved");
    // A new slot count is a new hello: wait until the pool routes to the new session.
    poll_until(
        "the pool to see the new slots",
        Duration::from_secs(15),
        || pool.status(),
        |s| s["pool"]["ready"] == 1 && s["models"][0]["total_slots"] == 2,
    )
    .await;

    // A crash mid-job (kill -9), then a restart that recovers the journal and exits cleanly.
    let url = pool.chat_url();
    let buyer = tokio::spawn(async move {
        let r =
            reqwest::Client::new().post(url).json(&chat(MODEL, "token_delay_ms=50", 500, true)).send().await;
        let mut got = String::new();
        if let Ok(mut r) = r {
            got.push_str(&format!("{} ", r.status()));
            while let Ok(Some(c)) = r.chunk().await {
                got.push_str(&String::from_utf8_lossy(&c));
            }
        }
        got
    });
    let running = |s: &Value| s["active_jobs"].as_array().is_some_and(|a| !a.is_empty());
    poll_until(
        "the job to start (or its buyer to give up)",
        Duration::from_secs(10),
        || control.status(),
        |s| running(s) || buyer.is_finished(),
    )
    .await;
    if buyer.is_finished() {
        panic!("the job never started: {}", buyer.await.unwrap());
    }
    serve1.kill9();
    let got = buyer.await.unwrap();
    assert!(got.contains("provider_disconnected"), "the crash cut the job: {got}");
    let mut serve2 = Proc::spawn(provider_cmd(&home, &ws, &token), &logs, "serve-2");
    let run2 = serve2.log_files();
    let control = Control::wait(&home, &serve2, Duration::from_secs(15)).await;
    control.status_until("ready after the crash", Duration::from_secs(15), |s| s["phase"] == "ready").await;
    let recovered = control.json("/api/earnings?range=all").await;
    assert_eq!(recovered["period"]["lost_jobs"], 1, "the crash was recovered from the journal");
    assert!(serve2.terminate(Duration::from_secs(30)).await.success());

    // A coordinator that refuses the token: the provider exits with an error. The fake proves the
    // token really was sent (so the greps below are not vacuous).
    let fake = FakeCoordinator::bind(30).await;
    let fake_url = fake.url();
    let refuser = tokio::spawn(async move {
        // (The provider also polls the gateway on this address; the fake skips those requests.)
        let mut session = fake.accept_raw().await;
        session.close(4005, "invalid_token").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        session.authorization
    });
    let home2 = dir.path().join("home-refused");
    std::fs::create_dir_all(&home2).unwrap();
    let mut refused = Proc::spawn(provider_cmd(&home2, &fake_url, &token), &logs, "serve-refused");
    let run3 = refused.log_files();
    let exit = refused.wait_exit("the provider to stop after 4005", Duration::from_secs(20)).await;
    let seen_auth = refuser.await.unwrap();
    assert!(!exit.success(), "a refused token is a failed run");
    assert_eq!(seen_auth.as_deref(), Some(format!("Bearer {token}").as_str()));
    let refused_err = refused.log_text();
    assert!(refused_err.contains("token was refused"), "the exit explains itself: {refused_err}");

    pool.proc.kill9();

    // Now grep everything.
    let mut files = Vec::new();
    files_under(&home, &mut files);
    files_under(&home2, &mut files);
    let n_home_files = files.len();
    assert!(files.iter().any(|f| f.ends_with("settings.toml")));
    assert!(files.iter().any(|f| f.ends_with("data/ledger.sqlite3")), "{files:?}");
    files.extend(pool_logs.iter().chain(&run1).chain(&run2).chain(&run3).cloned());
    for f in &files {
        artifacts.push((f.display().to_string(), std::fs::read(f).unwrap_or_default()));
    }
    let debug_lines = std::fs::read_to_string(&run1[1]).unwrap();
    assert!(debug_lines.contains("DEBUG"), "the provider really logged at debug level");
    let leaked: Vec<&str> =
        artifacts.iter().filter(|(_, bytes)| leaks(bytes, &token)).map(|(name, _)| name.as_str()).collect();
    assert!(leaked.is_empty(), "the provider token leaked into: {leaked:#?}");
    println!(
        "secrets review: {} artifacts ({} files under HEARTH_HOME, {} log files, {} API answers) hold no trace of the token",
        artifacts.len(),
        n_home_files,
        pool_logs.len() + run1.len() + run2.len() + run3.len(),
        artifacts.len() - files.len()
    );
}

#[test]
fn the_control_api_refuses_to_listen_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    for addr in ["0.0.0.0", "[::]"] {
        let port = free_port();
        let out = HEARTH
            .command()
            .env("HEARTH_HOME", dir.path())
            .env("RUST_LOG", "info")
            .args(["serve", "--coordinator", "ws://127.0.0.1:9/ws/provider", "--model-id", MODEL])
            .args(["--control-listen", &format!("{addr}:{port}")])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "serve accepted a control API on {addr}: {err}");
        assert!(err.contains("must listen on a loopback address"), "{err}");
        // Nothing was left listening there.
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
