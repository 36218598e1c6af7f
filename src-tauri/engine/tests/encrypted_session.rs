//! Protocol v2 end to end: a provider and the local pool (both in process, over real sockets) run
//! the v2 handshake and the encrypted leg; the pool rekeys at a lowered threshold between requests;
//! a pool that requires v2 refuses a v1 provider; `auto` falls back to v1 for a coordinator that does
//! not know `auth_request`; and bad input on the encrypted leg ends the session cleanly and the
//! provider reconnects with a fresh handshake.

use std::sync::Arc;
use std::time::Duration;

use hearth_engine::provider::Provider;
use hearth_engine::session::ProviderConfig;
use hearth_engine::status::{JobOutcome, Status};
use hearth_inference::scripted::ScriptedEngine;
use hearth_protocol::v2::{Enc, SealedCoordinatorFrame};
use hearth_protocol::{encode, nak_code, ProtocolChoice, ProviderMessage};
use hearth_testkit::buyer::parse_buyer;
use hearth_testkit::chat::chat;
use hearth_testkit::fake_coordinator::{inference_request, FakeCoordinator, Session};
use hearth_testkit::hearth::MODEL;
use hearth_testkit::poll::poll_until;
use hearth_testkit::pool::{http_url, start_pool, status_until, test_config};

fn provider_config(url: String, protocol: ProtocolChoice) -> ProviderConfig {
    let mut c = ProviderConfig::new(url, "v2-provider");
    c.protocol = protocol;
    c.backoff_base = Duration::from_millis(50);
    c.backoff_cap = Duration::from_millis(300);
    c.handshake_timeout = Duration::from_secs(2);
    c
}

async fn status_until_(provider: &Provider, what: &str, check: impl FnMut(&Status) -> bool) -> Status {
    poll_until(what, Duration::from_secs(10), || std::future::ready(provider.status().snapshot()), check)
        .await
}

async fn buy(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    stream: bool,
) -> hearth_testkit::buyer::BuyerResult {
    let response = client.post(url).json(&chat(model, "hello there", 6, stream)).send().await.unwrap();
    let status = response.status().as_u16();
    parse_buyer(status, response.text().await.unwrap())
}

/// A model name with a namespace and a quantisation suffix, so its catalog key differs from it.
const SERVED: &str = "mlx-community/Hearth-Scripted-4bit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_pool_serves_an_encrypted_session_and_rekeys_it_between_requests() {
    let pool =
        start_pool(hearth_pool::PoolConfig { rekey_after_requests: 3, require_v2: true, ..test_config() })
            .await;
    let ws = format!("ws://{}/ws/provider", pool.local_addr());
    let mut config = provider_config(ws, ProtocolChoice::Auto);
    config.reconnect_after_drain = Duration::from_millis(100);
    let provider = Provider::start(config, Arc::new(ScriptedEngine::new(SERVED)));
    let accepted = status_until_(&provider, "an encrypted session", |s| s.connection.connected).await;
    assert_eq!(accepted.connection.protocol.as_deref(), Some("v2"));
    let leg = accepted.connection.encrypted_leg.clone().expect("the leg is on");
    assert_eq!(leg.alg, "A256GCM");
    assert_eq!(leg.kid.len(), 22, "the kid is 16 bytes of base64url");
    assert!(leg.chunk_envelope && leg.in_band_rekey);
    status_until(&pool, "the provider ready", |s| s.pool.ready == 1).await;

    // Streamed and whole answers, naming the model in upper case and by its catalog key too,
    // across two rekeys (every 3 requests).
    let client = reqwest::Client::new();
    let url = http_url(pool.local_addr(), "/v1/chat/completions");
    let upper = SERVED.to_uppercase();
    let key = hearth_protocol::model_key(SERVED);
    assert_eq!(key, "hearth-scripted");
    let asks = [
        (SERVED, false),
        (SERVED, true),
        (upper.as_str(), true),
        (key.as_str(), false),
        (SERVED, true),
        (key.as_str(), true),
        (SERVED, false),
    ];
    for (i, (model, stream)) in asks.into_iter().enumerate() {
        let result = buy(&client, &url, model, stream).await;
        assert!(result.complete, "request {i} ({model}, stream {stream}) did not complete: {}", result.body);
    }
    let after = status_until_(&provider, "two rekeys", |s| s.connection.rekeys >= 2).await;
    let new_kid = after.connection.encrypted_leg.clone().unwrap().kid;
    assert_ne!(new_kid, leg.kid, "a rekey changes the kid");
    assert_eq!(after.connection.assigned_id, accepted.connection.assigned_id, "a rekey keeps the session");
    let served = after.recent_jobs.iter().filter(|j| j.outcome == JobOutcome::Complete).count();
    assert_eq!(served, asks.len());

    // A buyer who leaves mid-stream: the pool cancels in plaintext, the provider's `cancelled` end
    // comes back sealed, and the session carries on.
    let long = serde_json::json!({
        "model": SERVED, "stream": true, "max_tokens": 400,
        "messages": [{"role": "user", "content": "token_delay_ms=20 go on"}],
    });
    let job = hearth_testkit::buyer::start_stream(client.clone(), url.clone(), long).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    job.abort();
    let cancelled = status_until_(&provider, "the cancelled job recorded", |s| {
        s.recent_jobs.iter().any(|j| j.outcome == JobOutcome::Cancelled)
    })
    .await;
    assert_eq!(
        cancelled.connection.assigned_id, accepted.connection.assigned_id,
        "a cancel keeps the session"
    );
    assert!(buy(&client, &url, SERVED, true).await.complete, "served after the cancel");

    // A drain ends the session; the provider comes back with a whole new handshake.
    pool.drain_all().await;
    let drained = status_until_(&provider, "a new session after the drain", |s| {
        s.connection.connected && s.connection.assigned_id != accepted.connection.assigned_id
    })
    .await;
    let after_drain = drained.connection.encrypted_leg.clone().unwrap();
    assert_ne!(after_drain.kid, new_kid);
    assert_eq!(drained.connection.rekeys, 0);
    status_until(&pool, "the provider ready after the drain", |s| s.pool.ready == 1).await;
    assert!(buy(&client, &url, SERVED, false).await.complete);

    // A reconnect after the pool restarts is a whole new handshake too: new session id, new kid.
    let addr = pool.local_addr();
    pool.shutdown().await;
    let pool = start_pool(hearth_pool::PoolConfig { listen: addr, ..test_config() }).await;
    let again = status_until_(&provider, "a fresh encrypted session", |s| {
        s.connection.connected && s.connection.assigned_id != drained.connection.assigned_id
    })
    .await;
    let fresh = again.connection.encrypted_leg.clone().unwrap();
    assert_ne!(fresh.kid, after_drain.kid);
    status_until(&pool, "the provider ready again", |s| s.pool.ready == 1).await;
    assert!(buy(&client, &url, SERVED, true).await.complete);
    provider.stop().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_requires_v2_refuses_a_v1_provider_with_4013() {
    let pool = start_pool(hearth_pool::PoolConfig { require_v2: true, ..test_config() }).await;
    let ws = format!("ws://{}/ws/provider", pool.local_addr());
    let provider =
        Provider::start(provider_config(ws, ProtocolChoice::V1), Arc::new(ScriptedEngine::new(MODEL)));
    let refused = status_until_(&provider, "a 4013 close", |s| s.connection.last_close_code.is_some()).await;
    assert_eq!(refused.connection.last_close_code, Some(4013));
    assert_eq!(refused.connection.last_close_reason.as_deref(), Some("tier2_encrypted_leg_required"));
    let error = refused.connection.last_error.clone().unwrap_or_default();
    assert!(error.contains("protocol"), "the user is told what to change: {error}");
    assert_eq!(pool.snapshot().pool.total_providers, 0);
    provider.stop().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_v1_only_for_a_coordinator_that_does_not_know_auth_request() {
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(
        provider_config(fake.url(), ProtocolChoice::Auto),
        Arc::new(ScriptedEngine::new(MODEL)),
    );
    // A v1-only coordinator closes the unknown first message with 4000.
    let mut first = fake.accept_raw().await;
    assert!(first.v2, "auto opens with v2");
    first.close(4000, "first message must be hello").await;
    let mut second = fake.accept().await;
    assert!(!second.v2, "after a 4000 to auth_request, auto speaks v1 to this coordinator");
    let status = status_until_(&provider, "a v1 session", |s| s.connection.connected).await;
    assert_eq!(status.connection.protocol.as_deref(), Some("v1"));
    assert!(status.connection.v1_fallback);
    assert!(status.connection.encrypted_leg.is_none());
    second.send(&inference_request("req-v1", &chat(MODEL, "hi", 2, false))).await;
    let end = next_end(&mut second).await;
    assert_eq!(end.status, hearth_protocol::EndStatus::Complete);
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_only_never_falls_back_to_plaintext() {
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(
        provider_config(fake.url(), ProtocolChoice::V2),
        Arc::new(ScriptedEngine::new(MODEL)),
    );
    for _ in 0..2 {
        let mut session = fake.accept_raw().await;
        assert!(session.v2, "v2 opens with auth_request every time");
        session.close(4000, "first message must be hello").await;
    }
    let status = status_until_(&provider, "an error after repeated refusals", |s| {
        s.connection.last_close_code == Some(4000) && !s.connection.v1_fallback
    })
    .await;
    assert_ne!(status.connection.protocol.as_deref(), Some("v1"));
    provider.stop().await;
}

/// The provider's next `nak`.
async fn next_nak(session: &mut Session) -> hearth_protocol::Nak {
    session
        .expect(Duration::from_secs(10), |m| match m {
            ProviderMessage::Nak(n) => Some(n.clone()),
            _ => None,
        })
        .await
}

/// The provider's next `inference_response_end`.
async fn next_end(session: &mut Session) -> hearth_protocol::ResponseEnd {
    session
        .expect(Duration::from_secs(10), |m| match m {
            ProviderMessage::InferenceResponseEnd(e) => Some(e.clone()),
            _ => None,
        })
        .await
}

/// Waits for the provider's nak with `code`, then for its next session (a fresh handshake).
async fn expect_nak_and_reconnect(fake: &FakeCoordinator, session: &mut Session, code: &str) -> Session {
    let nak = next_nak(session).await;
    assert_eq!(nak.error.code, code, "{nak:?}");
    assert!(!nak.error.message.is_empty());
    let next = fake.accept().await;
    assert!(next.v2);
    assert_ne!(next.kid, session.kid, "a reconnect derives new keys");
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_encrypted_leg_ends_the_session_cleanly_and_the_provider_reconnects() {
    let fake = FakeCoordinator::bind(30).await;
    let config =
        ProviderConfig { max_frame_bytes: 64 * 1024, ..provider_config(fake.url(), ProtocolChoice::V2) };
    let provider = Provider::start(config, Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;
    let body = chat(MODEL, "hi", 2, false);

    // A plaintext request on an encrypted session: refused, the session stays.
    session.send_text(encode(&inference_request("req-plain", &body))).await;
    let nak = next_nak(&mut session).await;
    assert_eq!(nak.error.code, nak_code::TIER2_ENCRYPTED_FRAME_REQUIRED);

    // Each tampering below breaks the leg: a nak saying so, then a clean reconnect. The oversized
    // frame is refused before any crypto and the session stays; its seq is then never opened, so
    // the frame after it is a skipped seq.
    type Tamper = fn(&mut Enc);
    let tampers: [(&str, Tamper); 6] = [
        ("oversized ciphertext", |e| e.ciphertext = "A".repeat(100 * 1024)),
        ("skipped seq", |_| {}),
        ("skipped seq, farther", |e| e.seq += 5),
        ("wrong tag", |e| e.tag = "AAAAAAAAAAAAAAAAAAAAAA".into()),
        ("bad base64", |e| e.ciphertext.push('*')),
        ("wrong kid", |e| e.kid = "not-the-session-kid-00".into()),
    ];
    for (what, tamper) in tampers {
        let mut sealed = session.seal(&inference_request(&format!("req-{what}"), &body));
        tamper(&mut sealed.enc);
        session.send_text(encode(&SealedCoordinatorFrame::InferenceRequest(sealed))).await;
        let code = if what == "oversized ciphertext" {
            nak_code::FRAME_TOO_LARGE
        } else {
            nak_code::TIER2_AEAD_DECRYPT_FAILED
        };
        if code == nak_code::FRAME_TOO_LARGE {
            // Over the frame limit: refused before any crypto, the session stays.
            let nak = next_nak(&mut session).await;
            assert_eq!(nak.error.code, code, "{what}");
            continue;
        }
        session = expect_nak_and_reconnect(&fake, &mut session, code).await;
    }

    // A replayed frame: the genuine one is served, its copy breaks the leg.
    let sealed = session.seal(&inference_request("req-once", &body));
    let text = encode(&SealedCoordinatorFrame::InferenceRequest(sealed));
    session.send_text(text.clone()).await;
    let end = next_end(&mut session).await;
    assert_eq!(end.request_id, "req-once");
    session.send_text(text).await;
    session = expect_nak_and_reconnect(&fake, &mut session, nak_code::TIER2_AEAD_DECRYPT_FAILED).await;

    // A rekey commit out of order (no rekey was requested) breaks the leg too.
    let sealed = session.seal(&inference_request("req-commit", &body));
    let commit = serde_json::json!({
        "type": "aead_rekey_commit", "version": 1, "rekey_id": "rk-1", "assigned_id": "x",
        "old_kid": session.kid.clone().unwrap(), "new_kid": "y", "encrypted": true, "enc": sealed.enc,
    });
    session.send_text(commit.to_string()).await;
    session = expect_nak_and_reconnect(&fake, &mut session, nak_code::TIER2_AEAD_DECRYPT_FAILED).await;

    // And after all that, the provider still serves.
    session.send(&inference_request("req-after", &body)).await;
    let end = next_end(&mut session).await;
    assert_eq!(end.status, hearth_protocol::EndStatus::Complete);
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_challenge_that_never_comes_times_out_and_the_provider_retries() {
    let fake = FakeCoordinator::bind(30).await;
    let provider = Provider::start(
        provider_config(fake.url(), ProtocolChoice::V2),
        Arc::new(ScriptedEngine::new(MODEL)),
    );
    let _silent = fake.accept_raw().await;
    let status =
        status_until_(&provider, "the handshake timing out", |s| s.connection.last_error.is_some()).await;
    let error = status.connection.last_error.unwrap();
    assert!(error.contains("auth_challenge"), "{error}");
    let next = fake.accept().await;
    assert!(next.v2);
    status_until_(&provider, "connected after the retry", |s| s.connection.connected).await;
    provider.stop().await;
}
