//! `hearth doctor` and the log view with real processes: the doctor's JSON against a real
//! `hearth pool` (up, then gone), the same checks served by a running `hearth serve` (and asked
//! for by `hearth doctor`), and `GET /api/logs` showing recent lines with a planted secret
//! redacted — in the log view and on stderr alike.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use hearth_testkit::control::Control;
use hearth_testkit::hearth::{Hearth, MODEL};
use hearth_testkit::process::free_port;
use serde_json::Value;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

const CHECKS: [&str; 10] = [
    "settings",
    "coordinator",
    "tls",
    "token",
    "clock",
    "model",
    "memory",
    "disk",
    "competing_servers",
    "power",
];

fn write_settings(home: &Path, coordinator: &str) {
    let file = home.join("config/settings.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        format!("coordinator = \"{coordinator}\"\nprovider_id = \"doctor-1\"\nengine = \"scripted\"\n"),
    )
    .unwrap();
}

/// `hearth doctor --json` in `home`, with a stand-in for Ollama on `ollama_port`.
fn doctor(home: &Path, ollama_port: u16) -> (Output, Value) {
    let out = HEARTH
        .command()
        .env("HEARTH_HOME", home)
        .env("HEARTH_DOCTOR_PORTS", format!("Ollama={ollama_port}"))
        .env_remove("HEARTH_PROVIDER_TOKEN")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out, report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {report:#}"))
}

fn verdict<'a>(report: &'a Value, name: &str) -> &'a str {
    check(report, name)["verdict"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_json_names_every_check_against_a_real_pool_and_fails_when_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    write_settings(&home, &pool.ws_url());
    // Something holding "Ollama's" port (a free one, so the machine's own servers do not count).
    let ollama = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ollama_port = ollama.local_addr().unwrap().port();

    let (out, report) = doctor(&home, ollama_port);
    let names: Vec<&str> =
        report["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    assert_eq!(report["source"], "cli", "no app runs here");
    for name in ["settings", "coordinator", "tls", "token", "clock", "model", "power"] {
        assert_eq!(verdict(&report, name), "ok", "{name}: {:#}", check(&report, name));
    }
    assert!(check(&report, "coordinator")["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("127.0.0.1:{}", pool.port)));
    assert!(check(&report, "tls")["detail"].as_str().unwrap().contains("plain ws://"));
    assert!(check(&report, "token")["detail"].as_str().unwrap().starts_with("not needed"));
    let competing = check(&report, "competing_servers");
    assert_eq!(competing["verdict"], "warn");
    assert!(
        competing["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("Ollama (listening on 127.0.0.1:{ollama_port}")),
        "{competing}"
    );
    assert!(competing["action"].as_str().unwrap().starts_with("Quit Ollama"));
    // Memory and disk depend on this machine; they are judged, each with an action.
    for name in ["memory", "disk"] {
        assert!(["ok", "warn", "fail"].contains(&verdict(&report, name)));
        assert!(!check(&report, name)["action"].as_str().unwrap().is_empty());
    }
    assert_eq!(out.status.success(), report["verdict"] != "fail", "exit status follows the verdict");

    // The pool gone: the coordinator fails, what needs it cannot tell, and the exit says so.
    pool.proc.terminate(Duration::from_secs(10)).await;
    drop(ollama);
    let (out, report) = doctor(&home, ollama_port);
    assert_eq!(verdict(&report, "coordinator"), "fail");
    assert!(check(&report, "coordinator")["action"]
        .as_str()
        .unwrap()
        .contains("coordinator URL in Settings"));
    assert_eq!(verdict(&report, "token"), "warn");
    assert_eq!(verdict(&report, "clock"), "warn");
    assert_eq!(verdict(&report, "competing_servers"), "ok");
    assert_eq!(report["verdict"], "fail");
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_app_serves_the_doctor_and_its_logs_with_secrets_redacted() {
    let secret = format!("hst-doctor-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    // The secret is the provider token, and the user also pasted it into the coordinator URL:
    // the app logs that URL when it starts the provider.
    let coordinator = format!("{}?pool={secret}", pool.ws_url());
    let free = free_port();
    let mut proc = HEARTH.serve(
        &home,
        &["--coordinator", &coordinator, "--model-id", MODEL],
        &[("HEARTH_PROVIDER_TOKEN", secret.as_str()), ("HEARTH_DOCTOR_PORTS", &format!("Ollama={free}"))],
    );
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    control.status_until("ready", Duration::from_secs(15), |s| s["phase"] == "ready").await;

    let page = control.json("/api/logs?limit=2000").await;
    let raw = page.to_string();
    assert!(!raw.contains(&secret), "the secret is in the log view: {raw}");
    let lines = page["lines"].as_array().unwrap();
    let started = lines
        .iter()
        .find(|l| l["message"] == "starting the provider")
        .unwrap_or_else(|| panic!("no start line in {page:#}"));
    let fields = started["fields"].as_array().unwrap();
    let url = fields.iter().find(|f| f[0] == "coordinator").unwrap()[1].as_str().unwrap();
    assert_eq!(url, format!("{}?pool=[redacted]", pool.ws_url()), "logged, with the secret cut out");
    assert!(lines.iter().any(|l| l["message"] == "control API listening"));
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "newest last");

    let warn = control.json("/api/logs?level=warn").await;
    assert!(warn["lines"].as_array().unwrap().iter().all(|l| l["level"] == "warn" || l["level"] == "error"));
    let bad = control.get("/api/logs?level=loud").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let no_token = control.http.get(format!("{}/api/logs", control.url)).send().await.unwrap();
    assert_eq!(no_token.status(), 401, "token-protected like every route");

    let report = control.json("/api/doctor").await;
    assert_eq!(report["source"], "app");
    let names: Vec<&str> =
        report["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    assert_eq!(verdict(&report, "model"), "ok");
    assert!(check(&report, "model")["detail"].as_str().unwrap().contains(MODEL));
    let token = check(&report, "token");
    assert_eq!(token["verdict"], "ok", "{token}");
    assert!(token["detail"].as_str().unwrap().contains("HEARTH_PROVIDER_TOKEN"), "{token}");
    assert_eq!(verdict(&report, "power"), "ok");
    assert!(!report.to_string().contains(&secret));

    // `hearth doctor` asks the running app.
    let out = HEARTH.command().env("HEARTH_HOME", &home).args(["doctor", "--json"]).output().unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["source"], "app");
    let text = HEARTH.command().env("HEARTH_HOME", &home).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Model loads") && text.contains("Coordinator reachable"), "{text}");

    proc.terminate(Duration::from_secs(15)).await;
    let log = proc.log_text();
    assert!(log.contains("starting the provider"), "{log}");
    assert!(!log.contains(&secret), "stderr is redacted too");
}
