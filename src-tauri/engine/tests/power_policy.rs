//! The power policy as the coordinator sees it: a provider told to yield slots or to pause, over a
//! real WebSocket to the fake coordinator. A slot change is a `state_update` and the heartbeat's
//! capacity fields, never a reconnect; a pause finishes the job held, takes no new one, closes with
//! "going away", stays offline, and comes back with a fresh handshake when lifted.

use std::sync::Arc;
use std::time::Duration;

use hearth_engine::provider::Provider;
use hearth_engine::session::{Availability, ProviderConfig};
use hearth_engine::status::{JobOutcome, ProviderPhase};
use hearth_inference::scripted::ScriptedEngine;
use hearth_protocol::{EndStatus, ProtocolChoice, ProviderMessage, ProviderState};
use hearth_testkit::chat::chat;
use hearth_testkit::fake_coordinator::{inference_request, FakeCoordinator, Seen, Session};
use hearth_testkit::hearth::MODEL;
use hearth_testkit::poll::poll_until;

fn config(url: String, slots: u32) -> ProviderConfig {
    let mut c = ProviderConfig::new(url, "power-test");
    c.protocol = ProtocolChoice::V2;
    c.slots = slots;
    c.backoff_base = Duration::from_millis(50);
    c.reconnect_after_drain = Duration::from_millis(200);
    // Shorter than the job below: a pause must not cut at the drain timeout.
    c.drain_timeout = Duration::from_millis(500);
    c
}

/// A provider with `slots`, connected to a fake coordinator with that heartbeat interval, and
/// announced ready.
async fn serving(heartbeat_interval_s: u64, slots: u32) -> (FakeCoordinator, Provider, Session) {
    let fake = FakeCoordinator::bind(heartbeat_interval_s).await;
    let provider = Provider::start(config(fake.url(), slots), Arc::new(ScriptedEngine::new(MODEL)));
    let mut session = fake.accept().await;
    session.expect(Duration::from_secs(5), |m| ready(m).then_some(())).await;
    (fake, provider, session)
}

fn ready(m: &ProviderMessage) -> bool {
    matches!(m, ProviderMessage::StateUpdate(u) if u.state == ProviderState::Ready)
}

fn limited(slots: u32, pause: bool, code: &'static str, reason: &str) -> Availability {
    Availability { slots, pause, code: Some(code), reason: reason.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_slots_go_out_as_a_state_update_and_in_the_heartbeat_never_a_reconnect() {
    let (_fake, provider, mut session) = serving(1, 4).await;

    provider.set_availability(limited(
        1,
        false,
        "user_active",
        "Yielding: you are using this Mac — 1 of 4 slots",
    ));
    let update = session
        .expect(Duration::from_secs(5), |m| match m {
            ProviderMessage::StateUpdate(u) => Some(u.clone()),
            _ => None,
        })
        .await;
    assert_eq!((update.state, update.reason.as_str()), (ProviderState::Ready, "user_active"));
    assert_eq!((update.metrics_snapshot.slots_total, update.metrics_snapshot.slots_free), (1, 1));
    let beat = session
        .expect(Duration::from_secs(5), |m| match m {
            ProviderMessage::Heartbeat(h) => Some(h.clone()),
            _ => None,
        })
        .await;
    assert_eq!((beat.slots_total, beat.slots_free, beat.max_concurrency), (1, 1, 4));
    poll_until(
        "the status to say why",
        Duration::from_secs(5),
        || std::future::ready(provider.status().snapshot()),
        |s| s.reason.starts_with("Yielding"),
    )
    .await;

    // One slot: a second concurrent request is refused as the protocol says, the first runs.
    session.send(&inference_request("req-1", &chat(MODEL, "token_delay_ms=50", 10, false))).await;
    session.send(&inference_request("req-2", &chat(MODEL, "second", 3, false))).await;
    let mut ends = vec![];
    while ends.len() < 2 {
        match session.next(Duration::from_secs(10)).await.expect("both requests end") {
            (_, Seen::Message(ProviderMessage::InferenceResponseEnd(e))) => {
                ends.push((e.request_id.clone(), e.status))
            }
            (_, Seen::Close(_) | Seen::Ended) => panic!("the session must not close for a slot change"),
            _ => {}
        }
    }
    assert!(ends.contains(&("req-2".into(), EndStatus::ErrorQueueFull)), "{ends:?}");
    assert!(ends.contains(&("req-1".into(), EndStatus::Complete)), "{ends:?}");

    // Back to every slot: announced again, on the same connection.
    provider.set_availability(Availability::full());
    let update = session
        .expect(Duration::from_secs(5), |m| match m {
            ProviderMessage::StateUpdate(u) if u.metrics_snapshot.slots_total == 4 => Some(u.clone()),
            _ => None,
        })
        .await;
    assert_eq!(update.reason, "request_capacity_available");
    let s = provider.status().snapshot();
    assert_eq!((s.connection.reconnects, s.connection.connected), (0, true));
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_mid_job_finishes_the_job_takes_no_new_one_and_stays_offline_until_lifted() {
    let (fake, provider, mut session) = serving(30, 2).await;

    // About 1.5 s of work, three times the drain timeout.
    session.send(&inference_request("req-long", &chat(MODEL, "token_delay_ms=100", 15, true))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    provider.set_availability(limited(0, true, "on_battery", "Paused: on battery at 38 %, below 50 %"));
    session.send(&inference_request("req-new", &chat(MODEL, "late", 3, false))).await;

    let mut order = vec![];
    loop {
        match session.next(Duration::from_secs(10)).await.expect("the pause drain completes") {
            (_, Seen::Message(ProviderMessage::StateUpdate(u))) => {
                order.push(format!("state {} {}", u.state.as_str(), u.reason))
            }
            (_, Seen::Message(ProviderMessage::DrainStatus(d))) => order.push(format!("drain {:?}", d.phase)),
            (_, Seen::Message(ProviderMessage::InferenceResponseEnd(e))) => {
                if e.request_id == "req-long" {
                    assert_eq!(e.usage.completion_tokens, 15, "the held job ran to its end");
                } else {
                    assert_eq!(e.error.as_ref().unwrap().code, "draining", "{e:?}");
                }
                order.push(format!("end {} {}", e.request_id, e.status.as_str()));
            }
            (_, Seen::Close(code)) => {
                order.push(format!("close {code:?}"));
                break;
            }
            (_, Seen::Ended) => panic!("ended without a close: {order:?}"),
            _ => {}
        }
    }
    let pos = |s: &str| order.iter().position(|o| o == s).unwrap_or_else(|| panic!("no {s} in {order:?}"));
    // Refused as draining from the moment the pause was asked, even if the handler had not yet
    // announced it.
    pos("state draining on_battery");
    assert!(pos("end req-new error_queue_full") < pos("end req-long complete"), "{order:?}");
    assert!(pos("end req-long complete") < pos("drain Complete"), "{order:?}");
    assert_eq!(order.last().unwrap(), "close Some(1001)");

    let s = poll_until(
        "the provider to sit paused",
        Duration::from_secs(5),
        || std::future::ready(provider.status().snapshot()),
        |s| s.phase == ProviderPhase::Paused,
    )
    .await;
    assert_eq!(s.reason, "Paused: on battery at 38 %, below 50 %");
    let long = s.recent_jobs.iter().find(|j| j.request_id == "req-long").expect("the long job is recorded");
    assert_eq!((long.outcome.clone(), long.completion_tokens), (JobOutcome::Complete, 15));
    // Offline while paused: no reconnect, even well past the reconnect grace.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), fake.accept()).await.is_err(),
        "a paused provider must not reconnect"
    );

    provider.set_availability(Availability::full());
    let mut again =
        tokio::time::timeout(Duration::from_secs(5), fake.accept()).await.expect("reconnects when lifted");
    again.expect(Duration::from_secs(5), |m| ready(m).then_some(())).await;
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_during_a_pause_cuts_the_held_job_at_the_drain_timeout_as_any_stop_does() {
    let (_fake, provider, mut session) = serving(30, 1).await;
    // Ten seconds of work; the pause would wait for all of it, a stop only for the drain timeout.
    session.send(&inference_request("req-long", &chat(MODEL, "token_delay_ms=100", 100, true))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    provider.set_availability(limited(0, true, "user_active", "Paused: you are using this Mac"));
    session
        .expect(Duration::from_secs(5), |m| {
            matches!(m, ProviderMessage::StateUpdate(u) if u.state == ProviderState::Draining).then_some(())
        })
        .await;
    let stopping = tokio::spawn(provider.stop());
    let end = session
        .expect(Duration::from_secs(5), |m| match m {
            ProviderMessage::InferenceResponseEnd(e) => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!(end.status, EndStatus::Cancelled, "cut by the stop, not run to its end");
    assert!(end.usage.completion_tokens < 100);
    tokio::time::timeout(Duration::from_secs(5), stopping).await.expect("the stop returns").unwrap();
}
