//! The buyer side over real sockets: a reqwest buyer, the pool, and a fake provider.

use std::time::Duration;

use hearth_pool::PoolConfig;
use hearth_protocol::openai::{ChunkBuilder, FinishReason, SSE_DONE};
use hearth_protocol::{
    CoordinatorMessage, EndStatus, InferenceRequest, PreflightAck, PreflightReason, ProviderMessage,
    ProviderState, ResponseChunk, ResponseEnd, Usage,
};
use hearth_testkit::chat::chat;
use hearth_testkit::fake_provider::{FakeProvider, MODEL};
use hearth_testkit::pool::{http_url, start_pool, status_until, test_config};
use serde_json::Value;

/// The minimal valid request these tests send (the fake provider answers it however a test says).
fn say_ok(stream: bool) -> String {
    chat(MODEL, "say ok", 8, stream).to_string()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post_chat(addr: std::net::SocketAddr, body: String) -> reqwest::Response {
    client()
        .post(http_url(addr, "/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    client().get(http_url(addr, path)).send().await.unwrap().json().await.unwrap()
}

/// The pool's error envelope: status plus `error.code`.
async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"].clone())
}

async fn expect_request(p: &mut FakeProvider) -> InferenceRequest {
    match p.recv().await {
        CoordinatorMessage::InferenceRequest(r) => r,
        other => panic!("expected inference_request, got {other:?}"),
    }
}

fn chunk(request_id: &str, seq: u64, data: String) -> ProviderMessage {
    ProviderMessage::InferenceResponseChunk(ResponseChunk { request_id: request_id.into(), seq, data })
}

fn end(request_id: &str, status: EndStatus, chunks_sent: u64, usage: Usage) -> ProviderMessage {
    ProviderMessage::InferenceResponseEnd(ResponseEnd {
        request_id: request_id.into(),
        status,
        chunks_sent,
        usage,
        error: None,
        retryable: None,
        terminal_state_ts_unix_ms: None,
    })
}

/// The streamed events a provider sends for "ok".
fn stream_events() -> Vec<String> {
    let b = ChunkBuilder::new("chatcmpl-1", 1_764_000_000, MODEL);
    vec![
        b.role(),
        b.content("ok"),
        b.finish(FinishReason::Stop),
        b.usage(&Usage::new(39, 1)),
        SSE_DONE.into(),
    ]
}

#[tokio::test]
async fn non_streaming_completion_end_to_end_with_usage_and_earnings() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "prov-a", 1).await;
    let body = say_ok(false);
    let buyer = tokio::spawn(post_chat(addr, body.clone()));

    let req = expect_request(&mut p).await;
    assert!(req.request_id.starts_with("req-"));
    assert!(!req.stream);
    assert_eq!(req.body, body, "the buyer's body is forwarded unchanged");
    let completion =
        ChunkBuilder::new("chatcmpl-1", 1, MODEL).completion("ok", FinishReason::Stop, &Usage::new(39, 1));
    p.send(chunk(&req.request_id, 0, completion.clone())).await;
    p.send(end(&req.request_id, EndStatus::Complete, 1, Usage::new(39, 1))).await;

    let resp = buyer.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-macprovider-provider"], "prov-a");
    assert_eq!(resp.headers()["x-macprovider-route"], p.ack.assigned_id.as_str());
    assert_eq!(resp.text().await.unwrap(), completion);

    let usage = get_json(addr, "/v1/usage").await;
    assert_eq!(usage["requests"], 1);
    assert_eq!(usage["prompt_tokens"], 39);
    assert_eq!(usage["completion_tokens"], 1);
    assert_eq!(usage["by_provider"]["prov-a"]["requests"], 1);

    // 39 prompt + 1 completion = 20.5 credits gross -> 20 (half-even); provider 90 % = 18.
    let earnings = get_json(addr, "/providers/prov-a/earnings").await;
    assert_eq!(earnings["total_credits"], 18);
    assert_eq!(earnings["current_window_credits"], 18);
    assert_eq!(earnings["provider_share_bps"], 9000);
    assert_eq!(earnings["fault_count"], 0);
    assert_eq!(earnings["models_served"][0], MODEL);

    let card = get_json(addr, "/v1/rate-card").await;
    let row = &card["rows"]["tiny-model"];
    assert_eq!(row["prompt_rate_per_mtok"], 500000);
    assert_eq!(row["completion_rate_per_mtok"], 1000000);
    assert_eq!(row["provider_share_bps"], 9000);
    assert_eq!(row["global_multiplier_ppm"], 1000000);
    assert_eq!(card["usd_per_million_credits"], 1.0);

    // The slot came back: a second request routes to the same provider.
    let buyer = tokio::spawn(post_chat(addr, say_ok(false)));
    let req = expect_request(&mut p).await;
    p.send(chunk(&req.request_id, 0, completion)).await;
    p.send(end(&req.request_id, EndStatus::Complete, 1, Usage::new(39, 1))).await;
    assert_eq!(buyer.await.unwrap().status(), 200);
    assert_eq!(pool.usage().requests, 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn streaming_completion_passes_events_verbatim() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "prov-s", 1).await;
    let buyer = tokio::spawn(async move {
        let resp = post_chat(addr, say_ok(true)).await;
        let headers = resp.headers().clone();
        (resp.status(), headers, resp.text().await.unwrap())
    });
    let req = expect_request(&mut p).await;
    assert!(req.stream);
    let events = stream_events();
    for (seq, data) in events.iter().enumerate() {
        p.send(chunk(&req.request_id, seq as u64, data.clone())).await;
    }
    p.send(end(&req.request_id, EndStatus::Complete, events.len() as u64, Usage::new(39, 1))).await;

    let (status, headers, text) = buyer.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert_eq!(headers["x-macprovider-provider"], "prov-s");
    assert_eq!(text, events.concat());
    let usage = pool.usage();
    assert_eq!((usage.requests, usage.prompt_tokens, usage.completion_tokens), (1, 39, 1));
    pool.shutdown().await;
}

#[tokio::test]
async fn keepalive_comments_flow_while_waiting_for_the_first_chunk() {
    let pool = start_pool(PoolConfig { sse_keepalive: Duration::from_millis(50), ..test_config() }).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "slow", 1).await;
    let buyer = tokio::spawn(async move { post_chat(addr, say_ok(true)).await.text().await.unwrap() });
    let req = expect_request(&mut p).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // a long prefill
    let events = stream_events();
    for (seq, data) in events.iter().enumerate() {
        p.send(chunk(&req.request_id, seq as u64, data.clone())).await;
    }
    p.send(end(&req.request_id, EndStatus::Complete, events.len() as u64, Usage::new(39, 1))).await;
    let text = buyer.await.unwrap();
    let (before, after) = text.split_at(text.find("data: ").expect("events"));
    assert!(before.matches(": keepalive\n\n").count() >= 2, "keepalives before the first event: {before:?}");
    assert_eq!(before.replace(": keepalive\n\n", ""), "");
    assert_eq!(after, events.concat(), "no keepalive once events flow");
    pool.shutdown().await;
}

#[tokio::test]
async fn busy_provider_gives_503_no_provider_available() {
    let pool = start_pool(test_config()).await;
    let mut p = FakeProvider::ready(&pool, "busy-one", 1).await;
    p.state(ProviderState::Busy, 0, 1).await;
    status_until(&pool, "the provider degraded", |s| s.pool.degraded == 1).await;
    let (status, error) = error_of(post_chat(pool.local_addr(), say_ok(false)).await).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "no_provider_available");
    assert!(error["message"].as_str().unwrap().contains("(1 busy, 0 ready)"), "{error}");
    assert!(error.get("type").is_some() && error.get("param").is_some());
    pool.shutdown().await;
}

#[tokio::test]
async fn unknown_model_is_404_and_bad_requests_are_400() {
    let pool = start_pool(test_config()).await;
    let _p = FakeProvider::ready(&pool, "p", 1).await;
    let addr = pool.local_addr();
    let body = serde_json::json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]});
    let (status, error) = error_of(post_chat(addr, body.to_string()).await).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "model_not_found");

    let body = serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": -5});
    let (status, error) = error_of(post_chat(addr, body.to_string()).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalid_request");
    assert_eq!(error["param"], "max_tokens");
    assert_eq!(error["type"], "invalid_request_error");

    let (status, error) = error_of(post_chat(addr, "{not json".into()).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalid_request");
    pool.shutdown().await;
}

#[tokio::test]
async fn buyer_disconnect_sends_cancel_request() {
    let pool = start_pool(PoolConfig { sse_keepalive: Duration::from_millis(30), ..test_config() }).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "p", 1).await;
    let (got_first, first) = tokio::sync::oneshot::channel();
    let buyer = tokio::spawn(async move {
        let mut resp = post_chat(addr, say_ok(true)).await;
        let bytes = resp.chunk().await.unwrap().unwrap();
        let _ = got_first.send(bytes);
        // Dropping the response closes the connection.
    });
    let req = expect_request(&mut p).await;
    assert_eq!(&first.await.unwrap()[..], b": keepalive\n\n");
    buyer.await.unwrap();
    match p.recv().await {
        CoordinatorMessage::CancelRequest(c) => {
            assert_eq!(c.request_id, req.request_id);
            assert_eq!(c.reason, "buyer_disconnected");
        }
        other => panic!("expected cancel_request, got {other:?}"),
    }
    // The provider's cancelled end is still recorded (usage so far).
    p.send(end(&req.request_id, EndStatus::Cancelled, 0, Usage::new(10, 0))).await;
    status_until(&pool, "no active request", |s| s.providers[0].active_requests == 0).await;
    assert_eq!(pool.usage().requests, 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn provider_disconnect_mid_stream_ends_with_an_sse_error_then_done() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "flaky", 1).await;
    let buyer = tokio::spawn(async move { post_chat(addr, say_ok(true)).await.text().await.unwrap() });
    let req = expect_request(&mut p).await;
    let events = stream_events();
    p.send(chunk(&req.request_id, 0, events[0].clone())).await;
    p.send(chunk(&req.request_id, 1, events[1].clone())).await;
    drop(p);
    let text = buyer.await.unwrap();
    let prefix = format!("{}{}", events[0], events[1]);
    assert!(text.starts_with(&prefix), "{text}");
    let rest: Vec<&str> = text[prefix.len()..].split("\n\n").filter(|s| !s.is_empty()).collect();
    assert_eq!(rest.len(), 2, "{rest:?}");
    let error: Value = serde_json::from_str(rest[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "provider_disconnected");
    assert_eq!(rest[1], "data: [DONE]");
    pool.shutdown().await;
}

#[tokio::test]
async fn provider_disconnect_fails_a_non_streaming_request_with_502() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "flaky", 1).await;
    let buyer = tokio::spawn(post_chat(addr, say_ok(false)));
    expect_request(&mut p).await;
    drop(p);
    let (status, error) = error_of(buyer.await.unwrap()).await;
    assert_eq!(status, 502);
    assert_eq!(error["code"], "provider_error");
    pool.shutdown().await;
}

#[tokio::test]
async fn request_timeout_cancels_and_answers_504() {
    let pool = start_pool(PoolConfig { request_timeout: Duration::from_millis(300), ..test_config() }).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "stuck", 1).await;
    let buyer = tokio::spawn(post_chat(addr, say_ok(false)));
    let req = expect_request(&mut p).await;
    match p.recv().await {
        CoordinatorMessage::CancelRequest(c) => {
            assert_eq!(c.request_id, req.request_id);
            assert_eq!(c.reason, "timeout");
        }
        other => panic!("expected cancel_request, got {other:?}"),
    }
    let (status, error) = error_of(buyer.await.unwrap()).await;
    assert_eq!(status, 504);
    assert_eq!(error["code"], "provider_timeout");
    pool.shutdown().await;
}

#[tokio::test]
async fn error_end_statuses_map_to_openai_errors() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "erring", 1).await;
    for (end_status, http, code) in [
        (EndStatus::ErrorInternal, 502, "provider_error"),
        (EndStatus::ErrorQueueFull, 503, "no_provider_available"),
        (EndStatus::ErrorContextExceeded, 400, "invalid_request"),
    ] {
        let buyer = tokio::spawn(post_chat(addr, say_ok(false)));
        let req = expect_request(&mut p).await;
        p.send(end(&req.request_id, end_status, 0, Usage::default())).await;
        let (status, error) = error_of(buyer.await.unwrap()).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (http, code));
    }
    let earnings = get_json(addr, "/providers/erring/earnings").await;
    assert_eq!(earnings["total_credits"], 0);
    assert_eq!(earnings["fault_count"], 3);
    pool.shutdown().await;
}

#[tokio::test]
async fn duplicate_request_id_nak_fails_the_request_with_502() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "naky", 1).await;
    let buyer = tokio::spawn(post_chat(addr, say_ok(false)));
    let req = expect_request(&mut p).await;
    p.send(ProviderMessage::Nak(hearth_protocol::Nak {
        in_reply_to: "inference_request".into(),
        error: hearth_protocol::ErrorBody::new(
            hearth_protocol::nak_code::DUPLICATE_REQUEST_ID,
            format!("request {} is already active", req.request_id),
        ),
    }))
    .await;
    let (status, error) = error_of(buyer.await.unwrap()).await;
    assert_eq!(status, 502);
    assert_eq!(error["code"], "provider_error");
    pool.shutdown().await;
}

#[tokio::test]
async fn long_prompts_get_a_preflight_and_a_rejection_is_503() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "small-ctx", 1).await;
    let long = "word ".repeat(5000); // ~25 KB: over 4096 estimated tokens
    let body =
        serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": long}]}).to_string();
    let buyer = tokio::spawn(post_chat(addr, body.clone()));
    let CoordinatorMessage::Preflight(pf) = p.recv().await else { panic!("expected preflight") };
    assert_eq!(pf.estimated_tokens, (body.len() / 4) as u64);
    p.send(ProviderMessage::PreflightAck(PreflightAck {
        request_id: pf.request_id,
        accepted: false,
        estimated_wait_ms: 0,
        reason: Some(PreflightReason::ContextExceedsCapacity),
        max_context_tokens: 4096,
    }))
    .await;
    let (status, error) = error_of(buyer.await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "preflight_rejected");
    assert!(error["message"].as_str().unwrap().contains("context_exceeds_capacity"));

    // An accepted preflight is followed by the request itself.
    let buyer = tokio::spawn(post_chat(addr, body));
    let CoordinatorMessage::Preflight(pf) = p.recv().await else { panic!("expected preflight") };
    p.send(ProviderMessage::PreflightAck(PreflightAck {
        request_id: pf.request_id.clone(),
        accepted: true,
        estimated_wait_ms: 0,
        reason: None,
        max_context_tokens: 8192,
    }))
    .await;
    let req = expect_request(&mut p).await;
    assert_eq!(req.request_id, pf.request_id);
    p.send(chunk(&req.request_id, 0, "{}".into())).await;
    p.send(end(&req.request_id, EndStatus::Complete, 1, Usage::new(6000, 1))).await;
    assert_eq!(buyer.await.unwrap().status(), 200);
    pool.shutdown().await;
}

#[tokio::test]
async fn status_models_and_health_report_availability() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let status = get_json(addr, "/v1/status").await;
    assert_eq!(status["status"], "idle");
    assert_eq!(status["models"], serde_json::json!([]));

    let mut p = FakeProvider::ready(&pool, "p1", 2).await;
    let status = get_json(addr, "/v1/status").await;
    assert_eq!(status["status"], "up");
    assert_eq!(
        status["pool"],
        serde_json::json!({"total_providers": 1, "ready": 1, "degraded": 0, "draining": 0, "unavailable": 0})
    );
    let model = &status["models"][0];
    assert_eq!(model["id"], MODEL);
    assert_eq!(model["availability"], "available");
    assert_eq!(model["available"], true);
    assert_eq!(model["provider_count"], 1);
    assert_eq!(model["ready_provider_count"], 1);
    assert_eq!(model["total_slots"], 2);
    assert_eq!(model["slots_free"], 2);
    assert_eq!(model["max_context_tokens"], 8192);

    p.state(ProviderState::Busy, 0, 2).await;
    status_until(&pool, "the provider degraded", |s| s.pool.degraded == 1).await;
    let status = get_json(addr, "/v1/status").await;
    assert_eq!(status["models"][0]["availability"], "no_free_slots");
    assert_eq!(status["status"], "degraded");

    p.state(ProviderState::Draining, 0, 2).await;
    status_until(&pool, "the provider draining", |s| s.pool.draining == 1).await;
    let status = get_json(addr, "/v1/status").await;
    assert_eq!(status["models"][0]["availability"], "no_awake_provider");
    assert_eq!(status["models"][0]["available"], false);

    let models = get_json(addr, "/v1/models").await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"][0]["owned_by"], "hearth-pool");

    let health = get_json(addr, "/healthz").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["pool_size"], 1);
    assert_eq!(health["pool_ready"], 0);
    assert!(health["version"].is_string() && health["uptime_s"].is_u64());
    pool.shutdown().await;
}

#[tokio::test]
async fn routing_prefers_the_least_loaded_provider() {
    let pool = start_pool(test_config()).await;
    let addr = pool.local_addr();
    let mut a = FakeProvider::ready(&pool, "a", 1).await;
    let mut b = FakeProvider::ready(&pool, "b", 3).await;
    let first = tokio::spawn(post_chat(addr, say_ok(false)));
    let req = expect_request(&mut b).await;
    assert!(a.recv_within(Duration::from_millis(100)).await.is_none());
    b.send(chunk(&req.request_id, 0, "{}".into())).await;
    b.send(end(&req.request_id, EndStatus::Complete, 1, Usage::new(1, 1))).await;
    assert_eq!(first.await.unwrap().headers()["x-macprovider-provider"], "b");
    pool.shutdown().await;
}

#[tokio::test]
async fn bind_conflict_is_a_clear_error() {
    let pool = start_pool(test_config()).await;
    let err = hearth_pool::Pool::start(PoolConfig { listen: pool.local_addr(), ..test_config() })
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains(&pool.local_addr().to_string()), "{err}");
    let run =
        hearth_pool::run(PoolConfig { listen: pool.local_addr(), ..test_config() }, std::future::pending())
            .await;
    assert!(matches!(run, Err(hearth_pool::PoolError::Bind { .. })));
    pool.shutdown().await;
}

/// One SSE event of about `bytes` bytes, numbered so order and completeness can be checked.
fn big_event(seq: u64, bytes: usize) -> String {
    format!("data: {seq:08} {}\n\n", "x".repeat(bytes - 17))
}

#[tokio::test]
async fn a_buyer_that_stops_reading_is_cut_off_at_the_relay_buffer() {
    const LIMIT: usize = 256 * 1024;
    const EVENT: usize = 32 * 1024;
    let pool = start_pool(PoolConfig { relay_buffer_bytes: LIMIT, ..test_config() }).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "p", 1).await;
    // The buyer takes the response head, then reads nothing until told to.
    let (read_now, go) = tokio::sync::oneshot::channel::<()>();
    let buyer = tokio::spawn(async move {
        let resp = post_chat(addr, say_ok(true)).await;
        assert_eq!(resp.status(), 200);
        go.await.unwrap();
        resp.text().await.unwrap()
    });
    let req = expect_request(&mut p).await;
    // Stream until the pool gives up on the buyer; kernel socket buffers absorb several MiB first,
    // so the cut comes after far more than LIMIT, but it must come.
    let mut sent = 0u64;
    let cancel = loop {
        assert!(
            sent < 2048,
            "no cancel_request after {} MiB streamed to a buyer that does not read",
            sent / 32
        );
        p.send(chunk(&req.request_id, sent, big_event(sent, EVENT))).await;
        sent += 1;
        if let Some(message) = p.recv_within(Duration::from_millis(1)).await {
            break message;
        }
    };
    match cancel {
        CoordinatorMessage::CancelRequest(c) => {
            assert_eq!(c.request_id, req.request_id);
            assert_eq!(c.reason, "relay_buffer_exceeded");
        }
        other => panic!("expected cancel_request, got {other:?}"),
    }
    p.send(end(&req.request_id, EndStatus::Cancelled, sent, Usage::new(10, sent))).await;
    status_until(&pool, "the slot free again", |s| {
        s.providers[0].active_requests == 0 && s.providers[0].slots_free == 1
    })
    .await;
    assert_eq!(pool.usage().requests, 1, "the cancelled job is still in the ledger");

    // Reading now: the events that were relayed, in order and whole, then why the stream ended.
    read_now.send(()).unwrap();
    let text = buyer.await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let (relayed, tail) = events.split_last_chunk::<2>().unwrap();
    assert!(!relayed.is_empty() && (relayed.len() as u64) < sent, "{} of {sent} relayed", relayed.len());
    for (i, event) in relayed.iter().enumerate() {
        assert!(format!("{event}\n\n") == big_event(i as u64, EVENT), "event {i} is {:.40}", event);
    }
    let error: Value = serde_json::from_str(relayed_tail_data(tail[0])).unwrap();
    assert_eq!(error["error"]["code"], "relay_buffer_exceeded");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("256 KiB") && message.contains("read the stream"), "{message}");
    assert_eq!(tail[1], "data: [DONE]");
    pool.shutdown().await;
}

fn relayed_tail_data(event: &str) -> &str {
    event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {event:.80}"))
}

#[tokio::test]
async fn a_buyer_that_reads_gets_a_response_far_larger_than_the_relay_buffer() {
    const LIMIT: usize = 256 * 1024;
    const EVENT: usize = 8 * 1024;
    const EVENTS: u64 = 1024; // 8 MiB
    let pool = start_pool(PoolConfig { relay_buffer_bytes: LIMIT, ..test_config() }).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "p", 1).await;
    let buyer = tokio::spawn(async move { post_chat(addr, say_ok(true)).await.text().await.unwrap() });
    let req = expect_request(&mut p).await;
    for seq in 0..EVENTS {
        p.send(chunk(&req.request_id, seq, big_event(seq, EVENT))).await;
        // Paced at 64 KiB per millisecond: far faster than any model streams, slow enough that
        // this single-threaded test lets the buyer's task run between bursts.
        if seq % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    p.send(chunk(&req.request_id, EVENTS, SSE_DONE.into())).await;
    p.send(end(&req.request_id, EndStatus::Complete, EVENTS + 1, Usage::new(10, EVENTS))).await;
    let text = buyer.await.unwrap();
    let expected: String =
        (0..EVENTS).map(|seq| big_event(seq, EVENT)).chain([SSE_DONE.to_string()]).collect();
    assert!(text == expected, "got {} bytes, expected {}", text.len(), expected.len());
    assert!(p.recv_within(Duration::from_millis(200)).await.is_none(), "nothing is cancelled");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_non_streamed_answer_larger_than_the_relay_buffer_is_a_clear_502() {
    let pool = start_pool(PoolConfig { relay_buffer_bytes: 64 * 1024, ..test_config() }).await;
    let addr = pool.local_addr();
    let mut p = FakeProvider::ready(&pool, "p", 1).await;
    let buyer = tokio::spawn(post_chat(addr, say_ok(false)));
    let req = expect_request(&mut p).await;
    p.send(chunk(&req.request_id, 0, "y".repeat(100 * 1024))).await;
    match p.recv().await {
        CoordinatorMessage::CancelRequest(c) => assert_eq!(c.reason, "relay_buffer_exceeded"),
        other => panic!("expected cancel_request, got {other:?}"),
    }
    let (status, error) = error_of(buyer.await.unwrap()).await;
    assert_eq!(status, 502);
    assert_eq!(error["code"], "relay_buffer_exceeded");
    assert!(error["message"].as_str().unwrap().contains("stream it"), "{error}");
    p.send(end(&req.request_id, EndStatus::Cancelled, 1, Usage::new(10, 0))).await;
    status_until(&pool, "no active request", |s| s.providers[0].active_requests == 0).await;
    pool.shutdown().await;
}
