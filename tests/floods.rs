//! Floods and limits against real processes: a coordinator that sends 100k frames and oversized
//! frames to `hearth serve`; a buyer that opens 500 concurrent SSE streams on `hearth pool`; buyers
//! that never read their streams. Memory is read from /proc (VmHWM = peak RSS) and printed.
//! (session.rs already floods 10k frames during a handler stall in-process; this adds the process,
//! the 100k volume, frames past the 4 MiB limit and the pool side.)

use std::io::Write;
use std::time::{Duration, Instant};

use hearth_protocol::{EndStatus, ProviderMessage};
use hearth_testkit::chat::chat;
use hearth_testkit::control::Control;
use hearth_testkit::fake_coordinator::{inference_request, FakeCoordinator, Seen, Session};
use hearth_testkit::hearth::{Hearth, MODEL};
use hearth_testkit::process::{free_port, memory_kib};

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

const MIB: u64 = 1024;

/// Reads what the provider sends until `pred` has matched `want` times; fails on a session end.
async fn count_until(
    session: &mut Session,
    want: usize,
    timeout: Duration,
    mut pred: impl FnMut(&ProviderMessage) -> bool,
) -> (usize, usize) {
    let deadline = Instant::now() + timeout;
    let (mut matched, mut heartbeats) = (0, 0);
    while matched < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match session.next(left).await {
            Some((_, Seen::Message(m))) => {
                if matches!(m, ProviderMessage::Heartbeat(_)) {
                    heartbeats += 1;
                }
                if pred(&m) {
                    matched += 1;
                }
            }
            Some((_, Seen::Ended)) | Some((_, Seen::Close(_))) => panic!("the session ended after {matched}"),
            Some(_) => {}
            None => panic!("only {matched} of {want} within {timeout:?}"),
        }
    }
    (matched, heartbeats)
}

async fn one_request_completes(session: &mut Session, id: &str) {
    session.send(&inference_request(id, &chat(MODEL, "still there?", 3, false))).await;
    let end = session
        .expect(Duration::from_secs(10), |m| match m {
            ProviderMessage::InferenceResponseEnd(e) if e.request_id == id => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!(end.status, EndStatus::Complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_coordinator_and_huge_frames_leave_the_provider_up_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeCoordinator::bind(1).await; // 1 s heartbeats: liveness stays visible
    let proc = HEARTH.serve(&dir.path().join("p"), &["--coordinator", &fake.url(), "--model-id", MODEL], &[]);
    let pid = proc.id();
    let mut session = fake.accept().await;
    one_request_completes(&mut session, "warm").await;
    let (base_hwm, base_rss) = memory_kib(pid);

    // 100,000 frames of a type the provider does not know: each gets a nak, in order, while the
    // heartbeat keeps ticking.
    const FRAMES: usize = 100_000;
    let started = Instant::now();
    let frame = r#"{"type":"ownership_event","owner":"flood","seq":0}"#.to_string();
    for _ in 0..FRAMES {
        session.send_text(frame.clone()).await;
    }
    let sent_in = started.elapsed();
    let (naks, heartbeats) = count_until(
        &mut session,
        FRAMES,
        Duration::from_secs(180),
        |m| matches!(m, ProviderMessage::Nak(n) if n.error.code == "unknown_message_type"),
    )
    .await;
    let flood_took = started.elapsed();
    assert_eq!(naks, FRAMES);
    let (flood_hwm, flood_rss) = memory_kib(pid);
    one_request_completes(&mut session, "after-flood").await;

    // One frame over the 4 MiB protocol limit: refused with a nak, the session stays.
    let big = format!(
        r#"{{"type":"nak","in_reply_to":"x","error":{{"code":"c","message":"{}"}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    session.send_text(big).await;
    count_until(
        &mut session,
        1,
        Duration::from_secs(30),
        |m| matches!(m, ProviderMessage::Nak(n) if n.error.code == "frame_too_large"),
    )
    .await;
    one_request_completes(&mut session, "after-5mib").await;
    let (big_hwm, _) = memory_kib(pid);

    // A 64 MiB frame, past even the transport cap (16 MiB): the provider refuses to buffer it and
    // drops the connection, then reconnects with a new handshake; the process lives on.
    let huge = format!(r#"{{"type":"nak","message":"{}"}}"#, "y".repeat(64 * 1024 * 1024));
    let _ = tokio::time::timeout(Duration::from_secs(30), session.try_send_text(huge)).await;
    let mut session = fake.accept().await;
    one_request_completes(&mut session, "after-64mib").await;
    let (huge_hwm, huge_rss) = memory_kib(pid);
    let control = Control::wait(&dir.path().join("p"), &proc, Duration::from_secs(5)).await;
    let s = control.status().await;
    assert_eq!(s["connection"]["reconnects"], 1, "{s:#}");
    let why = s["connection"]["last_error"].as_str().unwrap_or_default().to_string();
    let log = std::fs::read_to_string(&proc.log).unwrap();
    assert!(log.to_lowercase().contains("too long") || log.contains("too large"), "the reason is logged");

    println!(
        "provider under a coordinator flood: baseline VmHWM {} MiB (RSS {}); 100k frames written in {:.1} s, \
         all 100k naks back in {:.1} s with {heartbeats} heartbeats meanwhile, VmHWM {} MiB (RSS {}); \
         after a 5 MiB frame (nak frame_too_large) VmHWM {} MiB; after a 64 MiB frame (session dropped, \
         reconnected: {why:?}) VmHWM {} MiB (RSS {})",
        base_hwm / MIB,
        base_rss / MIB,
        sent_in.as_secs_f64(),
        flood_took.as_secs_f64(),
        flood_hwm / MIB,
        flood_rss / MIB,
        big_hwm / MIB,
        huge_hwm / MIB,
        huge_rss / MIB
    );
    assert!(heartbeats >= 1, "the heartbeat kept ticking through the flood");
    // Bounded: a flood of small frames and a refused huge one cost tens of MiB, not hundreds.
    assert!(huge_hwm < 512 * MIB, "provider peak RSS {} MiB", huge_hwm / MIB);
}

/// A POST whose SSE response is never read: the socket stays open, nothing is consumed.
fn never_reading_buyer(port: u16, body: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A tiny receive window so the pool's writes back up at once.
    socket2::SockRef::from(&s).set_recv_buffer_size(4096).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_answers_500_concurrent_streams_and_shrugs_off_buyers_that_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let pool_pid = pool.proc.id();
    let _provider = HEARTH.provider(&dir.path().join("p1"), &pool.ws_url(), &["--slots", "8"]);
    pool.wait_ready(1, Duration::from_secs(15)).await;
    let (base_hwm, _) = memory_kib(pool_pid);

    // 500 streams at once: each gets a complete stream or a clear 503 / 429, nothing else.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let (http, url) = (http.clone(), pool.chat_url());
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .json(&chat(MODEL, "token_delay_ms=5", 20, true))
                    .timeout(Duration::from_secs(120))
                    .send()
                    .await
                    .expect("every stream gets an answer");
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                (status, body)
            })
        })
        .collect();
    let (mut complete, mut refused, mut refused_in_stream) = (0, 0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            // The pool may route to a slot the provider has just filled: the provider ends it
            // with `error_queue_full`, and the buyer gets that as a clear error event.
            200 if body.contains(r#""code":"no_provider_available""#) => refused_in_stream += 1,
            200 => {
                assert!(body.contains("data: [DONE]") && !body.contains("\"error\""), "{body}");
                complete += 1;
            }
            503 | 429 => {
                let v: serde_json::Value = serde_json::from_str(&body).expect("an OpenAI error envelope");
                assert!(v["error"]["code"].is_string(), "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let burst_took = started.elapsed();
    let (burst_hwm, burst_rss) = memory_kib(pool_pid);
    assert_eq!(complete + refused + refused_in_stream, 500);
    assert!(complete >= 8, "at least one slot's worth completed: {complete}");

    // Eight buyers that never read a long stream (all eight slots), then more buyers. Limit of
    // this check: a scripted 8000-token stream is ~1.8 MB, which the kernel's loopback send buffer
    // (tcp_wmem max 4 MB) absorbs, so the pool's own per-request relay queue (unbounded) is not
    // what is measured here; what is shown is that stuck buyers cost others nothing.
    let body = chat(MODEL, "never read", 8000, true).to_string();
    let stuck: Vec<_> = (0..8).map(|_| never_reading_buyer(pool.port, &body)).collect();
    // The provider finishes generating (its slots free again); the pool holds what it could not
    // deliver. Others are served meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut served = 0;
    while served < 20 {
        assert!(Instant::now() < deadline, "others were starved: {served} served");
        let r = http.post(pool.chat_url()).json(&chat(MODEL, "other", 3, false)).send().await;
        if let Ok(r) = r {
            if r.status() == 200 {
                served += 1;
                continue;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give the provider time to generate all 8 × 8000 tokens into the pool.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (stuck_hwm, stuck_rss) = memory_kib(pool_pid);
    // The stuck buyers really were being streamed to (not refused): their first bytes are a 200.
    let mut streamed = 0;
    for mut s in stuck.iter() {
        let mut head = [0u8; 12];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if std::io::Read::read_exact(&mut s, &mut head).is_ok() && head.starts_with(b"HTTP/1.1 200") {
            streamed += 1;
        }
    }
    assert!(streamed >= 1, "no never-reading buyer was actually streamed to");
    drop(stuck);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, after_rss) = memory_kib(pool_pid);
    let s = pool.status().await;
    assert_eq!(s["pool"]["ready"], 1, "{s}");
    println!(
        "pool: baseline VmHWM {} MiB; 500 concurrent SSE streams in {:.1} s: {complete} complete, {refused} \
         refused with 503/429, {refused_in_stream} ended by a no_provider_available event; VmHWM {} MiB (RSS {}); 8 never-reading 8000-token streams ({streamed} got 200) + 20 \
         other requests served: VmHWM {} MiB (RSS {}), RSS {} MiB after they hung up",
        base_hwm / MIB,
        burst_took.as_secs_f64(),
        burst_hwm / MIB,
        burst_rss / MIB,
        stuck_hwm / MIB,
        stuck_rss / MIB,
        after_rss / MIB
    );
    assert!(stuck_hwm < 1024 * MIB, "pool peak RSS {} MiB", stuck_hwm / MIB);
}
