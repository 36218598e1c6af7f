//! The provider side of the pool over real sockets: handshake, admission, liveness, naks, drain,
//! and the strict-mode write-deadline hazard.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_pool::{PoolConfig, PoolEvent};
use hearth_protocol::close::{BAD_FIRST_MESSAGE, INVALID_HELLO, INVALID_TOKEN};
use hearth_protocol::{
    encode, nak_code, CoordinatorMessage, DrainPhase, DrainStatus, ProviderMessage, ProviderState,
};
use hearth_testkit::fake_provider::{await_close, hello, open, FakeProvider};
use hearth_testkit::pool::{start_pool, status_until, test_config};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn handshake_acks_with_the_coordinators_fields() {
    let pool = start_pool(test_config()).await;
    let mut events = pool.events();
    let p = FakeProvider::handshake(pool.local_addr(), hello("studio-1"), None).await;
    let ack = &p.ack;
    assert_eq!(ack.coordinator_version, 1);
    assert!(uuid_like(&ack.assigned_id), "assigned_id {:?}", ack.assigned_id);
    assert_eq!(ack.heartbeat_interval_s, 30);
    assert_eq!(ack.tier.as_deref(), Some("provisional"));
    assert_eq!(ack.auth_state.as_deref(), Some("bearer_validated"));
    assert_eq!(ack.autoupdate_drain_extensions, Some(true));
    assert_eq!(ack.compatibility_policy.as_deref(), Some("unconfigured"));
    match events.recv().await.unwrap() {
        PoolEvent::ProviderConnected { provider_id, assigned_id } => {
            assert_eq!(provider_id, "studio-1");
            assert_eq!(assigned_id, ack.assigned_id);
        }
        other => panic!("unexpected event {other:?}"),
    }
    let status = pool.snapshot();
    assert_eq!(status.pool.total_providers, 1);
    assert_eq!(status.providers[0].state, ProviderState::Ready);
    pool.shutdown().await;
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn invalid_hello_closes_4001_naming_the_field() {
    let pool = start_pool(test_config()).await;
    let mut bad = hello("not a safe id!");
    bad.hostname = "h".into();
    let mut ws = open(pool.local_addr(), None).await;
    ws.send(Message::text(encode(&ProviderMessage::Hello(bad)))).await.unwrap();
    let frame = await_close(&mut ws, Duration::from_secs(5)).await.expect("close frame");
    assert_eq!(u16::from(frame.code), INVALID_HELLO);
    assert!(frame.reason.as_str().starts_with("invalid_hello: provider_id"), "{:?}", frame.reason);

    // A hello missing a required field names that field.
    let mut ws = open(pool.local_addr(), None).await;
    let mut value = serde_json::to_value(ProviderMessage::Hello(hello("p1"))).unwrap();
    value.as_object_mut().unwrap().remove("hostname");
    ws.send(Message::text(value.to_string())).await.unwrap();
    let frame = await_close(&mut ws, Duration::from_secs(5)).await.expect("close frame");
    assert_eq!(u16::from(frame.code), INVALID_HELLO);
    assert_eq!(frame.reason.as_str(), "invalid_hello: hostname");

    // Control characters in a string field are refused too.
    let mut ws = open(pool.local_addr(), None).await;
    let mut bad = hello("p2");
    bad.model_id = "model\u{7}".into();
    ws.send(Message::text(encode(&ProviderMessage::Hello(bad)))).await.unwrap();
    let frame = await_close(&mut ws, Duration::from_secs(5)).await.expect("close frame");
    assert!(frame.reason.as_str().starts_with("invalid_hello: model_id"), "{:?}", frame.reason);
    pool.shutdown().await;
}

#[tokio::test]
async fn first_frame_must_be_a_hello_in_time() {
    let pool =
        start_pool(PoolConfig { handshake_timeout: Duration::from_millis(200), ..test_config() }).await;
    let mut ws = open(pool.local_addr(), None).await;
    let frame = await_close(&mut ws, Duration::from_secs(5)).await.expect("close frame");
    assert_eq!(u16::from(frame.code), BAD_FIRST_MESSAGE);

    let mut ws = open(pool.local_addr(), None).await;
    ws.send(Message::text(r#"{"type":"heartbeat"}"#)).await.unwrap();
    let frame = await_close(&mut ws, Duration::from_secs(5)).await.expect("close frame");
    assert_eq!(u16::from(frame.code), BAD_FIRST_MESSAGE);
    pool.shutdown().await;
}

#[tokio::test]
async fn bad_token_closes_4005_when_tokens_are_configured() {
    let tokens: HashSet<String> = ["good-token".to_string()].into();
    let pool = start_pool(PoolConfig { provider_tokens: Some(tokens), ..test_config() }).await;
    for token in [None, Some("wrong")] {
        let mut ws = open(pool.local_addr(), token).await;
        let frame = await_close(&mut ws, Duration::from_secs(5)).await.expect("close frame");
        assert_eq!(u16::from(frame.code), INVALID_TOKEN);
        assert_eq!(frame.reason.as_str(), "invalid_token");
    }
    let p = FakeProvider::handshake(pool.local_addr(), hello("p1"), Some("good-token")).await;
    assert!(!p.ack.assigned_id.is_empty());
    pool.shutdown().await;
}

#[tokio::test]
async fn liveness_timeout_closes_a_silent_provider() {
    let pool = start_pool(PoolConfig { liveness_timeout: Duration::from_millis(300), ..test_config() }).await;
    let mut events = pool.events();
    let mut p = FakeProvider::handshake(pool.local_addr(), hello("quiet"), None).await;
    let frame = await_close(&mut p.ws, Duration::from_secs(5)).await;
    assert!(frame.is_some(), "a liveness close is a clean close");
    let reason = loop {
        if let PoolEvent::ProviderDisconnected { reason, .. } = events.recv().await.unwrap() {
            break reason;
        }
    };
    assert!(reason.contains("liveness"), "{reason}");
    let s = status_until(&pool, "the provider unavailable", |s| s.pool.unavailable == 1).await;
    assert_eq!(s.pool.ready, 0);
    pool.shutdown().await;
}

#[tokio::test]
async fn heartbeats_keep_a_session_alive_and_disconnect_grace_expires() {
    let pool = start_pool(PoolConfig {
        liveness_timeout: Duration::from_millis(300),
        disconnect_grace: Duration::from_millis(200),
        ..test_config()
    })
    .await;
    let mut events = pool.events();
    let mut p = FakeProvider::handshake(pool.local_addr(), hello("chatty"), None).await;
    for _ in 0..10 {
        p.heartbeat().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pool.snapshot().pool.ready, 1, "alive after 1 s of heartbeats with a 300 ms liveness timeout");
    let beats: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            PoolEvent::FrameReceived { type_name, at, .. } if type_name == "heartbeat" => Some(at),
            _ => None,
        })
        .collect();
    assert_eq!(beats.len(), 10, "every heartbeat is observable with its arrival time");
    assert!(beats.windows(2).all(|w| w[1] > w[0]));

    drop(p);
    status_until(&pool, "the provider unavailable", |s| s.pool.unavailable == 1).await;
    status_until(&pool, "the row gone after the grace", |s| s.pool.total_providers == 0).await;
    pool.shutdown().await;
}

#[tokio::test]
async fn a_reconnect_within_grace_takes_the_row_over() {
    let pool = start_pool(test_config()).await;
    let first = FakeProvider::ready(&pool, "same", 1).await;
    drop(first);
    status_until(&pool, "the provider unavailable", |s| s.pool.unavailable == 1).await;
    let second = FakeProvider::ready(&pool, "same", 1).await;
    let s = pool.snapshot();
    assert_eq!(s.pool.total_providers, 1);
    assert_eq!(s.providers[0].assigned_id, second.ack.assigned_id);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_provider_id_replaces_the_old_session() {
    let pool = start_pool(test_config()).await;
    let mut old = FakeProvider::ready(&pool, "dup", 1).await;
    let new = FakeProvider::ready(&pool, "dup", 1).await;
    assert!(await_close(&mut old.ws, Duration::from_secs(5)).await.is_some());
    let s = status_until(&pool, "one connected row", |s| s.providers.len() == 1 && s.providers[0].connected)
        .await;
    assert_eq!(s.providers[0].assigned_id, new.ack.assigned_id);
    pool.shutdown().await;
}

#[tokio::test]
async fn unknown_types_and_bad_frames_get_a_nak_and_the_session_stays() {
    let pool = start_pool(PoolConfig { max_frame_bytes: 1024, ..test_config() }).await;
    let mut p = FakeProvider::ready(&pool, "naky", 1).await;

    p.send_text(r#"{"type":"ownership_status","x":1}"#.into()).await;
    let CoordinatorMessage::Nak(nak) = p.recv().await else { panic!("expected nak") };
    assert_eq!(nak.in_reply_to, "ownership_status");
    assert_eq!(nak.error.code, nak_code::UNKNOWN_MESSAGE_TYPE);

    p.send_text("this is not json".into()).await;
    let CoordinatorMessage::Nak(nak) = p.recv().await else { panic!("expected nak") };
    assert_eq!(nak.error.code, nak_code::MALFORMED_FRAME);

    p.send_text(r#"{"type":"heartbeat","status":"ready"}"#.into()).await;
    let CoordinatorMessage::Nak(nak) = p.recv().await else { panic!("expected nak") };
    assert_eq!(nak.error.code, nak_code::INVALID_MESSAGE);

    // Over max_frame_bytes but under the transport cap: a nak, not a dead session.
    let big = format!(r#"{{"type":"heartbeat","pad":"{}"}}"#, "x".repeat(2000));
    p.send_text(big).await;
    let CoordinatorMessage::Nak(nak) = p.recv().await else { panic!("expected nak") };
    assert_eq!(nak.error.code, nak_code::FRAME_TOO_LARGE);

    // Still alive and listened to.
    p.state(ProviderState::Busy, 0, 1).await;
    status_until(&pool, "the provider busy and connected", |s| {
        s.providers[0].state == ProviderState::Busy && s.providers[0].connected
    })
    .await;
    pool.shutdown().await;
}

#[tokio::test]
async fn drain_then_drain_complete_closes_the_session() {
    let pool = start_pool(test_config()).await;
    let mut p = FakeProvider::ready(&pool, "drainer", 1).await;
    pool.drain_all().await;
    assert_eq!(p.recv().await, CoordinatorMessage::Drain {});
    let status = |phase| {
        ProviderMessage::DrainStatus(DrainStatus { phase, inflight_requests: 0, estimated_drain_seconds: 0 })
    };
    p.send(status(DrainPhase::Starting)).await;
    status_until(&pool, "the provider draining", |s| s.pool.draining == 1).await;
    p.send(status(DrainPhase::Complete)).await;
    let frame = await_close(&mut p.ws, Duration::from_secs(5)).await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1000);
    pool.shutdown().await;
}

/// Strict mode: a provider that keeps alive with WebSocket pings and is idle past the write timeout
/// loses its session (the auto-pong misses the stale deadline)...
#[tokio::test]
async fn strict_mode_drops_a_ping_keepalive_client_after_write_timeout() {
    let pool =
        start_pool(PoolConfig { strict: true, write_timeout: Duration::from_millis(300), ..test_config() })
            .await;
    let mut events = pool.events();
    let mut p = FakeProvider::handshake(pool.local_addr(), hello("pinger"), None).await;
    let started = tokio::time::Instant::now();
    let mut pongs = 0;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if p.ws.send(Message::Ping(b"hb".to_vec().into())).await.is_err() {
                        return;
                    }
                }
                frame = p.ws.next() => match frame {
                    Some(Ok(Message::Pong(_))) => pongs += 1,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the strict pool should drop a ping-only client");
    assert!(started.elapsed() >= Duration::from_millis(300), "not before the write deadline");
    assert!(pongs >= 1, "pings were answered while the deadline was fresh");
    let reason = loop {
        if let PoolEvent::ProviderDisconnected { reason, .. } = events.recv().await.unwrap() {
            break reason;
        }
    };
    assert!(reason.contains("stale write deadline"), "{reason}");
    pool.shutdown().await;
}

/// ...while one that keeps alive with text heartbeats survives many write timeouts.
#[tokio::test]
async fn strict_mode_keeps_a_text_heartbeat_client() {
    let pool = start_pool(PoolConfig {
        strict: true,
        write_timeout: Duration::from_millis(200),
        liveness_timeout: Duration::from_millis(600),
        ..test_config()
    })
    .await;
    let mut events = pool.events();
    let mut p = FakeProvider::handshake(pool.local_addr(), hello("beater"), None).await;
    for _ in 0..20 {
        p.heartbeat().await;
        tokio::time::sleep(Duration::from_millis(100)).await; // 2 s = 10 write timeouts
    }
    assert!(p.recv_within(Duration::from_millis(50)).await.is_none(), "no frame, no close");
    let s = pool.snapshot();
    assert_eq!(s.pool.ready, 1);
    assert!(s.providers[0].connected);
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, PoolEvent::ProviderDisconnected { .. }), "{e:?}");
    }
    pool.shutdown().await;
}

/// Outside strict mode, pongs keep flowing however long the link has been idle.
#[tokio::test]
async fn normal_mode_answers_pings_after_write_timeout() {
    let pool = start_pool(PoolConfig { write_timeout: Duration::from_millis(100), ..test_config() }).await;
    let mut p = FakeProvider::handshake(pool.local_addr(), hello("pinger"), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.ws.send(Message::Ping(b"x".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match p.ws.next().await {
                Some(Ok(Message::Pong(data))) => return data,
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"x");
    assert_eq!(pool.snapshot().pool.ready, 1);
    pool.shutdown().await;
}
