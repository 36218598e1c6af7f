//! The provider session against a scriptable fake coordinator on a real socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_engine::provider::Provider;
use hearth_engine::session::{HandlerProbe, ProviderConfig};
use hearth_engine::status::{JobOutcome, ProviderPhase};
use hearth_inference::scripted::ScriptedEngine;
use hearth_protocol::{
    CancelRequest, CoordinatorMessage, EndStatus, Preflight, PreflightReason, ProtocolChoice,
    ProviderMessage, ProviderState, ResponseEnd,
};
use hearth_testkit::chat::chat;
use hearth_testkit::fake_coordinator::{inference_request, FakeCoordinator, Seen};
use hearth_testkit::hearth::MODEL;
use hearth_testkit::poll::poll_until;

/// A provider that opens with v2 (the default, `auto`) unless a test asks for v1.
fn config(url: String) -> ProviderConfig {
    let mut c = ProviderConfig::new(url, "test-provider");
    c.protocol = ProtocolChoice::V2;
    c.backoff_base = Duration::from_millis(50);
    c.backoff_cap = Duration::from_millis(500);
    c.reconnect_after_drain = Duration::from_millis(200);
    c.drain_timeout = Duration::from_secs(5);
    c
}

fn end_of(id: &'static str) -> impl FnMut(&ProviderMessage) -> Option<ResponseEnd> {
    move |m| match m {
        ProviderMessage::InferenceResponseEnd(e) if e.request_id == id => Some(e.clone()),
        _ => None,
    }
}

/// Records the order in which the handler acted on cancel requests and stalls it once.
struct StallOnce {
    seen: Mutex<Vec<String>>,
    stall: Duration,
}

impl HandlerProbe for StallOnce {
    fn handled(&self, message: &CoordinatorMessage) -> Option<Duration> {
        if let CoordinatorMessage::CancelRequest(c) = message {
            let mut seen = self.seen.lock().unwrap();
            seen.push(c.request_id.clone());
            if seen.len() == 1 {
                return Some(self.stall);
            }
        }
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_during_a_handler_stall_never_backs_up_the_socket() {
    flood_during_a_handler_stall(ProtocolChoice::V2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_during_a_handler_stall_never_backs_up_the_socket_on_v1() {
    flood_during_a_handler_stall(ProtocolChoice::V1).await
}

/// Floods `cancel_request`s for unknown ids while the handler is stalled. On v1 each gets a
/// `cancelled` end; on v2 the reference provider stays silent for an id it never saw (the stream
/// flag its sealed end would bind is unknown), so there the order of handling is what is checked.
async fn flood_during_a_handler_stall(protocol: ProtocolChoice) {
    let fake = FakeCoordinator::bind(30).await;
    let probe = Arc::new(StallOnce { seen: Mutex::new(vec![]), stall: Duration::from_secs(3) });
    let provider = Provider::start_with_probe(
        ProviderConfig { protocol, ..config(fake.url()) },
        Arc::new(ScriptedEngine::new(MODEL)),
        Some(probe.clone()),
    );
    let mut session = fake.accept().await;

    const FRAMES: usize = 10_000;
    let flood_started = Instant::now();
    let mut worst = Duration::ZERO;
    for i in 0..FRAMES {
        let cancel = CoordinatorMessage::CancelRequest(CancelRequest {
            request_id: format!("c-{i}"),
            reason: "buyer_disconnected".into(),
        });
        worst = worst.max(session.send(&cancel).await);
    }
    let flood_time = flood_started.elapsed();
    // The whole flood was written while the handler was still stalled on the first frame.
    assert!(probe.seen.lock().unwrap().len() < FRAMES, "flood outlasted the stall; make the stall longer");
    assert!(worst <= Duration::from_millis(100), "a write waited {worst:?} (flood took {flood_time:?})");

    // Afterwards every frame is handled, in order, and each unknown cancel gets its `cancelled` end.
    poll_until(
        "every flooded frame handled",
        Duration::from_secs(30),
        || std::future::ready(probe.seen.lock().unwrap().len()),
        |handled| *handled == FRAMES,
    )
    .await;
    let seen = probe.seen.lock().unwrap().clone();
    let expected: Vec<String> = (0..FRAMES).map(|i| format!("c-{i}")).collect();
    assert_eq!(seen, expected, "frames were handled out of order");
    assert_eq!(session.v2, protocol == ProtocolChoice::V2);
    if session.v2 {
        let end = session.next(Duration::from_millis(500)).await;
        assert!(
            !matches!(end, Some((_, Seen::Message(ProviderMessage::InferenceResponseEnd(_))))),
            "an unknown cancel got an end on v2: {end:?}"
        );
        provider.stop().await;
        return;
    }
    let mut ends = 0;
    while ends < FRAMES {
        let end = session
            .expect(Duration::from_secs(30), |m| match m {
                ProviderMessage::InferenceResponseEnd(e) => Some(e.clone()),
                _ => None,
            })
            .await;
        assert_eq!(end.request_id, format!("c-{ends}"));
        assert_eq!(end.status, EndStatus::Cancelled);
        assert_eq!(end.chunks_sent, 0);
        ends += 1;
    }
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_their_rhythm_while_a_forward_pass_stalls_and_the_cpu_is_saturated() {
    heartbeats_under_a_stalled_prefill(ProtocolChoice::V2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_their_rhythm_while_a_forward_pass_stalls_on_v1() {
    heartbeats_under_a_stalled_prefill(ProtocolChoice::V1).await
}

async fn heartbeats_under_a_stalled_prefill(protocol: ProtocolChoice) {
    let fake = FakeCoordinator::bind(1).await; // 1 s interval → 1 s tick
    let mut engine = ScriptedEngine::new(MODEL);
    engine.prefill_stall = Duration::from_secs(3); // 3× the period, spinning like a real prefill
    engine.spin = true;
    let provider = Provider::start(ProviderConfig { protocol, ..config(fake.url()) }, Arc::new(engine));
    let mut session = fake.accept().await;

    // Saturate every core for the whole measurement.
    let stop_burners = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burners: Vec<_> = (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
        .map(|_| {
            let stop = stop_burners.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();

    session.send(&inference_request("req-stall", &chat(MODEL, "hello", 4, false))).await;
    let mut beats = vec![];
    let mut busy_seen = false;
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut end = None;
    while Instant::now() < deadline {
        match session.next(deadline - Instant::now()).await {
            Some((at, Seen::Message(ProviderMessage::Heartbeat(h)))) => {
                busy_seen |= h.status == ProviderState::Busy;
                beats.push(at);
            }
            Some((_, Seen::Message(ProviderMessage::InferenceResponseEnd(e)))) => end = Some(e),
            Some((_, Seen::Ping)) => panic!("the provider sent a WebSocket ping"),
            Some(_) => {}
            None => break,
        }
    }
    stop_burners.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
    let gaps: Vec<Duration> = beats.windows(2).map(|w| w[1] - w[0]).collect();
    let max_gap = gaps.iter().max().copied().unwrap_or_default();
    assert!(beats.len() >= 5, "only {} heartbeats in 6 s", beats.len());
    assert!(max_gap <= Duration::from_millis(1500), "heartbeat gap {max_gap:?} > 1.5 × 1 s period: {gaps:?}");
    assert!(busy_seen, "heartbeats during the stalled job should report busy (the only slot is taken)");
    let end = end.expect("the stalled job finished");
    assert_eq!(end.status, EndStatus::Complete);
    assert_eq!(end.usage.completion_tokens, 4);
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_chunks_in_order_and_cancels_within_a_step() {
    let fake = FakeCoordinator::bind(30).await;
    let mut c = config(fake.url());
    c.token = Some("secret-token".into());
    c.slots = 2;
    let provider = Provider::start(c, Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;
    assert_eq!(session.authorization.as_deref(), Some("Bearer secret-token"));
    assert_eq!(session.hello.max_concurrency, 2);
    assert_eq!(session.hello.model_id, MODEL);
    session.hello.validate().expect("our hello passes the coordinator's checks");
    let first = session
        .expect(Duration::from_secs(5), |m| match m {
            ProviderMessage::StateUpdate(u) => Some(u.clone()),
            _ => None,
        })
        .await;
    assert_eq!(first.state, ProviderState::Ready);

    // Streamed: role, 3 content deltas, finish, usage, [DONE]; seq without gaps.
    session.send(&inference_request("req-s", &chat(MODEL, "one two three", 3, true))).await;
    let mut chunks = vec![];
    let end = session
        .expect(Duration::from_secs(10), |m| match m {
            ProviderMessage::InferenceResponseChunk(c) if c.request_id == "req-s" => {
                chunks.push(c.clone());
                None
            }
            ProviderMessage::InferenceResponseEnd(e) if e.request_id == "req-s" => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!(end.status, EndStatus::Complete);
    assert_eq!(end.chunks_sent as usize, chunks.len());
    assert_eq!(
        chunks.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (0..chunks.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(chunks.len(), 7);
    assert!(chunks[0].data.contains(r#""role":"assistant""#));
    let text: String = chunks[1..4]
        .iter()
        .map(|c| {
            let v: serde_json::Value =
                serde_json::from_str(c.data.strip_prefix("data: ").unwrap().trim()).unwrap();
            v["choices"][0]["delta"]["content"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "t0 t1 t2 ");
    assert!(chunks[4].data.contains(r#""finish_reason":"length""#));
    assert!(
        chunks[5].data.contains(r#""completion_tokens":3"#) && chunks[5].data.contains(r#""choices":[]"#)
    );
    assert_eq!(chunks[6].data, "data: [DONE]\n\n");
    assert_eq!((end.usage.prompt_tokens, end.usage.completion_tokens, end.usage.total_tokens), (3, 3, 6));

    // Non-streamed: one chunk holding the whole completion.
    session.send(&inference_request("req-n", &chat(MODEL, "hi", 2, false))).await;
    let mut data = None;
    let end = session
        .expect(Duration::from_secs(10), |m| match m {
            ProviderMessage::InferenceResponseChunk(c) if c.request_id == "req-n" => {
                assert_eq!(c.seq, 0);
                data = Some(c.data.clone());
                None
            }
            ProviderMessage::InferenceResponseEnd(e) if e.request_id == "req-n" => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!(end.chunks_sent, 1);
    let completion: serde_json::Value = serde_json::from_str(&data.unwrap()).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["content"], "t0 t1 ");
    assert_eq!(completion["usage"]["completion_tokens"], 2);

    // A long job cancelled mid-decode ends `cancelled` with the usage so far, promptly.
    session.send(&inference_request("req-c", &chat(MODEL, "long token_delay_ms=20", 10_000, true))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled_at = Instant::now();
    session
        .send(&CoordinatorMessage::CancelRequest(CancelRequest {
            request_id: "req-c".into(),
            reason: "buyer_disconnected".into(),
        }))
        .await;
    let end = session.expect(Duration::from_secs(5), end_of("req-c")).await;
    assert!(cancelled_at.elapsed() < Duration::from_secs(1), "cancel took {:?}", cancelled_at.elapsed());
    assert_eq!(end.status, EndStatus::Cancelled);
    assert!(end.usage.completion_tokens > 0 && end.usage.completion_tokens < 10_000);
    let status = provider.status().snapshot();
    let job = status.recent_jobs.iter().find(|j| j.request_id == "req-c").unwrap();
    assert_eq!(job.outcome, JobOutcome::Cancelled);
    assert!(job.reason.as_deref().unwrap().contains("buyer_disconnected"));
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_work_refuses_new_work_and_keeps_reading() {
    let fake = FakeCoordinator::bind(30).await;
    let mut c = config(fake.url());
    c.slots = 2;
    let provider = Provider::start(c, Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;

    // ~1 s of work in flight.
    session.send(&inference_request("req-1", &chat(MODEL, "token_delay_ms=100", 10, false))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    session.send(&CoordinatorMessage::Drain {}).await;
    session.send(&inference_request("req-2", &chat(MODEL, "late", 3, false))).await;
    session
        .send(&CoordinatorMessage::Preflight(Preflight {
            request_id: "req-3".into(),
            estimated_tokens: 5000,
        }))
        .await;
    // The reader keeps draining the socket while the drain waits.
    let mut worst = Duration::ZERO;
    for i in 0..2000 {
        worst = worst.max(
            session
                .send_text(format!(
                    r#"{{"type":"nak","in_reply_to":"x{i}","error":{{"code":"c","message":"m"}}}}"#
                ))
                .await,
        );
    }
    assert!(worst <= Duration::from_millis(100), "a write waited {worst:?} during the drain");

    let mut order = vec![];
    loop {
        match session.next(Duration::from_secs(10)).await.expect("drain did not complete") {
            (_, Seen::Message(ProviderMessage::StateUpdate(u))) if u.state == ProviderState::Draining => {
                order.push("state_update draining".to_string())
            }
            (_, Seen::Message(ProviderMessage::DrainStatus(d))) => order.push(format!("drain {:?}", d.phase)),
            (_, Seen::Message(ProviderMessage::InferenceResponseEnd(e))) => {
                order.push(format!("end {} {}", e.request_id, e.status.as_str()));
                if e.request_id == "req-2" {
                    assert_eq!(e.error.as_ref().unwrap().code, "draining");
                    assert_eq!(e.retryable, Some(true));
                }
            }
            (_, Seen::Message(ProviderMessage::PreflightAck(a))) => {
                assert!(!a.accepted);
                assert_eq!(a.reason, Some(PreflightReason::Draining));
                order.push("preflight refused".into());
            }
            (_, Seen::Close(code)) => {
                order.push(format!("close {code:?}"));
                break;
            }
            (_, Seen::Ended) => panic!("connection ended without a close frame: {order:?}"),
            _ => {}
        }
    }
    let pos =
        |s: &str| order.iter().position(|o| o == s).unwrap_or_else(|| panic!("missing {s} in {order:?}"));
    assert!(pos("state_update draining") < pos("drain Starting"));
    assert!(pos("drain Starting") < pos("drain InProgress"));
    assert!(pos("end req-2 error_queue_full") < pos("end req-1 complete"), "{order:?}");
    assert!(pos("end req-1 complete") < pos("drain Complete"), "{order:?}");
    assert_eq!(order.last().unwrap(), "close Some(1001)");
    pos("preflight refused");

    // And it comes back after the fixed grace, with a fresh handshake.
    let mut again = fake.accept().await;
    again
        .expect(Duration::from_secs(5), |m| match m {
            ProviderMessage::StateUpdate(u) if u.state == ProviderState::Ready => Some(()),
            _ => None,
        })
        .await;
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_answer_and_the_session_survives() {
    let fake = FakeCoordinator::bind(30).await;
    let mut c = config(fake.url());
    c.max_frame_bytes = 64 * 1024;
    let provider = Provider::start(c, Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;

    let naks: Vec<(String, &str, &str)> = vec![
        ("{not json".into(), "unknown", "malformed_frame"),
        (r#"{"no_type":1}"#.into(), "unknown", "malformed_frame"),
        (r#"{"type":"ownership_event","owner":"x"}"#.into(), "ownership_event", "unknown_message_type"),
        (
            r#"{"type":"inference_request","request_id":"r","stream":false}"#.into(),
            "inference_request",
            "invalid_message",
        ),
        (
            r#"{"type":"preflight","request_id":"p","estimated_tokens":"many"}"#.into(),
            "preflight",
            "invalid_message",
        ),
        (
            format!(
                r#"{{"type":"nak","in_reply_to":"{}","error":{{"code":"c","message":"m"}}}}"#,
                "x".repeat(100 * 1024)
            ),
            "unknown",
            "frame_too_large",
        ),
    ];
    for (frame, in_reply_to, code) in naks {
        session.send_text(frame).await;
        let nak = session
            .expect(Duration::from_secs(5), |m| match m {
                ProviderMessage::Nak(n) => Some(n.clone()),
                _ => None,
            })
            .await;
        assert_eq!(
            (nak.in_reply_to.as_str(), nak.error.code.as_str()),
            (in_reply_to, code),
            "{}",
            nak.error.message
        );
        assert!(!nak.error.message.is_empty());
    }

    session.send(&inference_request("neg", &chat(MODEL, "hi", -5, false))).await;
    let end = session.expect(Duration::from_secs(5), end_of("neg")).await;
    assert_eq!(end.status, EndStatus::ErrorInternal);
    let err = end.error.unwrap();
    assert_eq!(err.code, "invalid_request");
    assert!(err.message.contains("max_tokens") && err.message.contains("-5"), "{}", err.message);

    session.send(&inference_request("other", &chat("some-other-model", "hi", 5, false))).await;
    let end = session.expect(Duration::from_secs(5), end_of("other")).await;
    assert_eq!(end.status, EndStatus::ErrorModelNotLoaded);
    assert!(end.error.unwrap().message.contains("some-other-model"));

    session.send(&inference_request("dup", &chat(MODEL, "token_delay_ms=50", 20, false))).await;
    session.send(&inference_request("dup", &chat(MODEL, "again", 2, false))).await;
    let nak = session
        .expect(Duration::from_secs(5), |m| match m {
            ProviderMessage::Nak(n) => Some(n.clone()),
            _ => None,
        })
        .await;
    assert_eq!(nak.error.code, "duplicate_request_id");

    // Still the same session, still serving.
    let end = session.expect(Duration::from_secs(10), end_of("dup")).await;
    assert_eq!(end.status, EndStatus::Complete);
    session.send(&inference_request("ok", &chat(MODEL, "fine", 2, false))).await;
    let end = session.expect(Duration::from_secs(5), end_of("ok")).await;
    assert_eq!(end.status, EndStatus::Complete);
    assert_eq!(provider.status().snapshot().connection.reconnects, 0);
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_decide_between_retrying_and_stopping() {
    // A retryable close: the provider comes back with a new handshake.
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(config(fake.url()), Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;
    session.close(4007, "provisional pool full").await;
    let _again = fake.accept().await;
    poll_until(
        "one reconnect after the retryable close",
        Duration::from_secs(5),
        || std::future::ready(provider.status().snapshot().connection.reconnects),
        |reconnects| *reconnects == 1,
    )
    .await;
    provider.stop().await;

    // 4004 is terminal: stop reconnecting and tell the user to update.
    let fake = FakeCoordinator::bind(30).await;
    let mut provider = Provider::start(config(fake.url()), Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept_raw().await;
    session.close(4004, "version_unsupported: binary_version 0.1.0 below required 9.0.0").await;
    tokio::time::timeout(Duration::from_secs(5), provider.wait())
        .await
        .expect("provider should stop on 4004");
    let status = provider.status().snapshot();
    assert_eq!(status.phase, ProviderPhase::Error);
    assert!(status.reason.contains("update Hearth"), "{}", status.reason);
    assert!(status.reason.contains("9.0.0"), "{}", status.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_coordinator_ends_jobs_as_lost_and_the_provider_reconnects() {
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(config(fake.url()), Arc::new(ScriptedEngine::new(MODEL)));
    let session = fake.accept().await;
    let mut session = session;
    session.send(&inference_request("req-x", &chat(MODEL, "token_delay_ms=50", 1000, true))).await;
    session
        .expect(Duration::from_secs(5), |m| {
            matches!(m, ProviderMessage::InferenceResponseChunk(_)).then_some(())
        })
        .await;
    drop(session); // the coordinator vanishes mid-stream
    let _again = fake.accept().await;
    poll_until(
        "the cut job req-x among the recent jobs",
        Duration::from_secs(5),
        || std::future::ready(provider.status().snapshot().recent_jobs),
        |jobs| jobs.iter().any(|j| j.request_id == "req-x"),
    )
    .await;
    let status = provider.status().snapshot();
    let job = status.recent_jobs.iter().find(|j| j.request_id == "req-x").unwrap();
    assert_eq!(job.outcome, JobOutcome::Lost);
    assert!(job.reason.as_deref().unwrap().contains("lost mid-request"), "{:?}", job.reason);
    assert_eq!(status.jobs_lost, 1);
    let _ = HashMap::<(), ()>::new();
    provider.stop().await;
}

/// `warm_up` is answered with `state_update` degraded, then ready once the model answered: both,
/// in that order, even when the model answers well inside the state reporter's 20 ms coalescing
/// window (the scripted engine answers in microseconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_is_answered_degraded_then_ready_even_when_the_model_is_quick() {
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(config(fake.url()), Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;
    session
        .expect(Duration::from_secs(5), |m| match m {
            ProviderMessage::StateUpdate(u) if u.state == ProviderState::Ready => Some(()),
            _ => None,
        })
        .await;
    for round in 0..2 {
        session.send(&CoordinatorMessage::WarmUp {}).await;
        let mut states = Vec::new();
        while states.len() < 2 {
            let (state, reason) = session
                .expect(Duration::from_secs(5), |m| match m {
                    ProviderMessage::StateUpdate(u) => Some((u.state, u.reason.clone())),
                    _ => None,
                })
                .await;
            states.push((state, reason));
        }
        assert_eq!(
            states,
            [
                (ProviderState::Degraded, "coordinator warm_up requested".to_string()),
                (ProviderState::Ready, "warm_up complete".to_string()),
            ],
            "round {round}"
        );
        // Nothing more: the reporter does not repeat what was announced.
        let quiet_until = Instant::now() + Duration::from_millis(300);
        while let Some((_, seen)) = session.next(quiet_until.saturating_duration_since(Instant::now())).await
        {
            if let Seen::Message(ProviderMessage::StateUpdate(u)) = seen {
                panic!("an extra state_update: {u:?}");
            }
        }
    }
    provider.stop().await;
}

/// A request naming the served model in another letter case, or by its catalog key, is served
/// (the production coordinator routes both here), and its chunks echo the name the body used;
/// another model, another quantisation of this one included, is `error_model_not_loaded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_is_matched_as_the_coordinator_routes_it() {
    const SERVED: &str = "mlx-community/Hearth-Scripted-4bit";
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(config(fake.url()), Arc::new(ScriptedEngine::new(SERVED)));
    let mut session = fake.accept().await;
    // Admitted: the protocol level, not Hearth's own version, which goes in runtime_source.
    assert_eq!(session.hello.binary_version, hearth_protocol::REFERENCE_BINARY_VERSION);
    let runtime = session.hello.runtime_source.clone().unwrap_or_default();
    assert!(runtime.starts_with(&format!("hearth/{} (", env!("CARGO_PKG_VERSION"))), "{runtime}");
    for (i, (asked, served)) in [
        ("MLX-COMMUNITY/hearth-scripted-4BIT", true),
        ("hearth-scripted", true),
        (SERVED, true),
        ("mlx-community/Hearth-Scripted-8bit", false),
        ("someone-else/other-model", false),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("req-{i}");
        session.send(&inference_request(&id, &chat(asked, "one two", 2, true))).await;
        let mut models = vec![];
        let end = session
            .expect(Duration::from_secs(10), |m| match m {
                ProviderMessage::InferenceResponseChunk(c) if c.request_id == id => {
                    let json = c
                        .data
                        .strip_prefix("data: ")
                        .and_then(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok());
                    if let Some(model) = json.as_ref().and_then(|j| j["model"].as_str()) {
                        models.push(model.to_string());
                    }
                    None
                }
                ProviderMessage::InferenceResponseEnd(e) if e.request_id == id => Some(e.clone()),
                _ => None,
            })
            .await;
        if served {
            assert_eq!(end.status, EndStatus::Complete, "{asked}: {end:?}");
            assert!(
                !models.is_empty() && models.iter().all(|m| m == asked),
                "{asked}: chunks said {models:?}"
            );
        } else {
            assert_eq!(end.status, EndStatus::ErrorModelNotLoaded, "{asked}: {end:?}");
        }
    }
    provider.stop().await;
}

/// Each request may have at most `CHUNK_WINDOW` chunks queued but unwritten; the writer gives the
/// places back as it writes, so a stream several windows long flows through whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_longer_than_its_chunk_window_flows_through_whole() {
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(config(fake.url()), Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;
    let tokens = 4 * hearth_engine::session::CHUNK_WINDOW + 17;
    session.send(&inference_request("long", &chat(MODEL, "go", tokens as i64, true))).await;
    let mut seqs = vec![];
    let end = session
        .expect(Duration::from_secs(30), |m| match m {
            ProviderMessage::InferenceResponseChunk(c) if c.request_id == "long" => {
                seqs.push(c.seq);
                None
            }
            ProviderMessage::InferenceResponseEnd(e) if e.request_id == "long" => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!(end.status, EndStatus::Complete, "{end:?}");
    // role + one per token + finish + usage + [DONE]
    assert_eq!(seqs.len(), tokens + 4);
    assert!(seqs.iter().enumerate().all(|(i, &s)| s == i as u64), "chunks out of order");
    provider.stop().await;
}

/// A coordinator that stops reading: the provider's writes back up in TCP, the request's chunk
/// window fills and the job waits (its token count stops), instead of the provider queueing the
/// rest of the answer in memory. Reading again, the stream completes whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_stops_reading_holds_the_job_not_the_memory() {
    const TOKENS: u64 = 40_000;
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(config(fake.url()), Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;
    let body = serde_json::json!({
        "model": MODEL, "stream": true, "max_tokens": TOKENS,
        "messages": [{"role": "user", "content": "go"}],
    });
    session.pause_reading(true);
    session.send(&inference_request("req-held", &body)).await;
    let stalled = |s: &hearth_engine::status::Status| s.active_jobs.first().map(|j| j.completion_tokens);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let first = stalled(&provider.status().snapshot());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = stalled(&provider.status().snapshot());
    let held = first.expect("the job is still running while nobody reads");
    assert!(held < TOKENS, "the whole answer was generated with nobody reading");
    assert_eq!(second, first, "the job kept generating with nobody reading");
    session.pause_reading(false);
    let mut chunks = 0u64;
    let end = loop {
        match session.next(Duration::from_secs(30)).await {
            Some((_, Seen::Message(ProviderMessage::InferenceResponseChunk(c)))) => {
                assert_eq!(c.seq, chunks, "chunks arrive in order without gaps");
                chunks += 1;
            }
            Some((_, Seen::Message(ProviderMessage::InferenceResponseEnd(e)))) => break e,
            Some((_, Seen::Ended)) | None => panic!("the session ended before the stream did"),
            Some(_) => {}
        }
    };
    assert_eq!(end.status, EndStatus::Complete, "{end:?}");
    assert_eq!(end.chunks_sent, chunks);
    assert_eq!(end.usage.completion_tokens, TOKENS);
    println!("held at {held} of {TOKENS} tokens while the coordinator did not read");
    provider.stop().await;
}
