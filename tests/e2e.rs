//! End to end with real processes: `hearth pool` and `hearth serve` on loopback, driven over HTTP
//! and WebSocket the way buyers, providers and users do.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hearth_testkit::buyer::start_stream;
use hearth_testkit::chat::chat;
use hearth_testkit::fake_provider::{hello, FakeProvider};
use hearth_testkit::hearth::{Hearth, MODEL};
use hearth_testkit::process::free_port;
use hearth_testkit::sse::{read_sse, sse_text};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_flow_through_pool_and_provider_processes_with_usage_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let provider = HEARTH.provider(&dir.path().join("p1"), &pool.ws_url(), &[]);
    pool.wait_ready(1, Duration::from_secs(10)).await;

    // Non-streamed.
    let r = pool.post_chat(&chat(MODEL, "hello there", 3, false)).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-macprovider-provider"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "t0 t1 t2 ");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["usage"]["prompt_tokens"], 2);

    // Streamed, with usage.
    let mut req = chat(MODEL, "stream please", 4, true);
    req["stream_options"] = serde_json::json!({"include_usage": true});
    let r = pool.post_chat(&req).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = read_sse(r).await;
    assert_eq!(sse_text(&events), "t0 t1 t2 t3 ");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|v| v["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 4);

    // Bad requests get the OpenAI envelope.
    let r = pool.post_chat(&chat(MODEL, "x", -1, false)).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "max_tokens");
    let r = pool.post_chat(&chat("no-such-model", "x", 1, false)).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "model_not_found");

    // The pool counted usage; the provider's own status agrees.
    let usage: Value = reqwest::get(pool.url("/v1/usage")).await.unwrap().json().await.unwrap();
    assert_eq!(usage["completion_tokens"], 7, "{usage}");
    let s = provider
        .status_eventually("both jobs completed", Duration::from_secs(5), |s| s["jobs_completed"] == 2)
        .await;
    assert_eq!(s["jobs_completed"], 2, "{s}");
    assert_eq!(s["phase"], "ready");
    assert_eq!(s["connection"]["connected"], true);
    assert!(s["connection"]["rtt_ms"].is_number(), "RTT from TCP_INFO: {s}");

    // Stopping drains and exits cleanly; the pool sees the provider leave.
    let mut provider = provider;
    let exit = provider.proc.terminate(Duration::from_secs(10)).await;
    assert!(exit.success(), "{}", provider.proc.log_text());
    pool.wait_ready(0, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_holds_ready_against_the_strict_pool_while_a_ping_keepalive_client_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH
        .pool(dir.path(), free_port(), &["--strict", "--heartbeat-interval", "1", "--write-timeout", "1"])
        .await;
    let provider = HEARTH.provider(&dir.path().join("p1"), &pool.ws_url(), &[]);
    pool.wait_ready(1, Duration::from_secs(10)).await;

    // A client that keeps alive with WebSocket pings, as the strict pool's hazard punishes. (The
    // handshake fails the test unless the pool answers with a hello_ack.)
    let mut pinger_hello = hello("pinger");
    pinger_hello.model_id = "ping-model".into();
    let FakeProvider { mut ws, .. } = FakeProvider::handshake(pool.addr(), pinger_hello, None).await;
    let pinger = tokio::spawn(async move {
        let started = Instant::now();
        let mut ping = tokio::time::interval(Duration::from_millis(300));
        loop {
            tokio::select! {
                _ = ping.tick() => if ws.send(Message::Ping(vec![1].into())).await.is_err() { return started.elapsed() },
                frame = ws.next() => match frame {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return started.elapsed(),
                    _ => {}
                },
            }
            if started.elapsed() > Duration::from_secs(15) {
                panic!("the ping-only client was never dropped");
            }
        }
    });

    // 20 heartbeat periods: the provider stays ready the whole time, with no reconnect.
    let started = Instant::now();
    let mut polls = 0;
    while started.elapsed() < Duration::from_secs(20) {
        let s = pool.status().await;
        let models = s["models"].as_array().unwrap();
        let ours = models.iter().find(|m| m["id"] == MODEL).expect("our model listed");
        assert_eq!(ours["ready_provider_count"], 1, "provider left ready after {:?}: {s}", started.elapsed());
        polls += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(polls > 40);
    let dropped_after = pinger.await.unwrap();
    assert!(dropped_after < Duration::from_secs(10), "ping client dropped after {dropped_after:?}");
    let s = provider.status();
    assert_eq!(s["connection"]["reconnects"], 0, "{s}");
    assert_eq!(s["phase"], "ready");
    assert!(!provider.proc.log_text().contains("session ended"), "{}", provider.proc.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_pool_crash_the_provider_is_back_within_the_backoff_bound_and_the_cut_job_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut pool = HEARTH.pool(dir.path(), port, &[]).await;
    let provider = HEARTH.provider(&dir.path().join("p1"), &pool.ws_url(), &[]);
    pool.wait_ready(1, Duration::from_secs(10)).await;

    // A long streamed job in flight at the kill: the buyer has its first event and the provider
    // lists the job as active, so "no [DONE]" below is about a job that really started.
    let long_stream = chat(MODEL, "token_delay_ms=50", 1000, true);
    let buyer = start_stream(pool.http.clone(), pool.chat_url(), long_stream).await;
    provider
        .status_eventually("the streamed job active at the provider", Duration::from_secs(5), |s| {
            s["active_jobs"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    pool.proc.kill9();
    let killed_at = Instant::now();
    let received = buyer.await.unwrap().body;
    assert!(!received.contains("[DONE]"), "the buyer cannot have a complete answer");

    let pool2 = HEARTH.pool(dir.path(), port, &[]).await;
    pool2.wait_ready(1, Duration::from_secs(15)).await;
    let back_after = killed_at.elapsed();
    // Backoff after an accepted session: ≤1 s, then ≤2 s, ≤4 s while the pool is down.
    assert!(back_after < Duration::from_secs(7), "ready again only after {back_after:?}");

    let s = provider
        .status_eventually("the cut job recorded lost", Duration::from_secs(5), |s| s["jobs_lost"] == 1)
        .await;
    let job = s["recent_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["outcome"] == "lost")
        .expect("lost job listed");
    assert!(job["reason"].as_str().unwrap().contains("lost mid-request"), "{job}");
    assert!(s["connection"]["reconnects"].as_u64().unwrap() >= 1);
    assert_eq!(s["phase"], "ready");

    // And it serves again.
    let r = pool2.post_chat(&chat(MODEL, "again", 2, false)).await;
    assert_eq!(r.status(), 200);
}
