//! The provider's session with a coordinator, exactly as ARCHITECTURE.md "The session, precisely"
//! describes it:
//!
//! * one **receiver** task reads the socket and only enqueues frames ([`receiver`]);
//! * one **handler** loop takes them in order and acts, never waiting on slow work ([`handler`]);
//! * one **writer** task owns the sink, with a deadline on every write ([`writer`]);
//! * one **heartbeat ticker** on its own wall-clock timer ([`heartbeat`]);
//! * a **state reporter** that tells the coordinator about capacity changes (`reporter`);
//! * the **relay**, which turns requests into inference jobs and their frames (`relay`);
//! * and around them, [`run_provider`]: connect, handshake, serve, and on any failure reconnect with
//!   capped exponential backoff and full jitter ([`backoff`]).
//!
//! What the parts share sits below them all: [`Shared`] and [`SessionFlags`] (`shared`), the
//! metrics window (`metrics`), the [`JobSink`] the app's ledger implements (`job_sink`) and
//! [`SessionEnd`] (`end`). This file owns only the loop that wires the parts together; no part
//! reaches back into it.
//!
//! Logging: each connection runs inside one `session` span (`coordinator`, `provider_id`, and
//! `assigned_id` once the `hello_ack` names it) that every task of the connection enters; each
//! request runs inside a `job` span (`request_id`) below it, entered by the job's task, its
//! inference thread and the ledger thread's write. Log lines inside them do not repeat those ids.

mod availability;
pub mod backoff;
pub mod config;
pub mod connect;
mod drain;
mod encrypted_leg;
mod end;
mod fallback;
mod handler;
pub mod heartbeat;
mod job_sink;
mod link_error;
mod metrics;
pub mod receiver;
mod relay;
mod reporter;
mod shared;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hearth_protocol::close::{
    advice, AfterClose, BAD_FIRST_MESSAGE, INVALID_HELLO, TIER2_ATTESTATION_FAILED,
    TIER2_KEY_EXCHANGE_FAILED, VERSION_UNSUPPORTED,
};
use hearth_protocol::v2::{ProviderHandshake, SUITE};
use hearth_protocol::{ProtocolChoice, ProviderMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use self::availability::Availability;
pub use self::backoff::Backoff;
pub use self::config::ProviderConfig;
pub use self::end::SessionEnd;
pub use self::handler::HandlerProbe;
use self::heartbeat::HeartbeatTicker;
pub use self::job_sink::{JobSink, StartedJob};
use self::relay::Relay;
pub use self::relay::CHUNK_WINDOW;
pub use self::shared::{SessionFlags, Shared};
use self::writer::{Outbox, WriterLeg};
use crate::status::{unix_ms, EncryptedLegStatus, ProviderPhase};

/// Handshake failures in a row (ours or the coordinator's 4000/4001/4012/4013) after which the
/// provider stops and asks the user: retrying a protocol mismatch cannot help.
const HANDSHAKE_FAILURES_BEFORE_STOP: u32 = 3;

/// Runs a provider until `shutdown` is cancelled: connects, serves, reconnects. When `shutdown`
/// fires during a session, the provider drains (bounded by `drain_timeout`) before returning.
pub async fn run_provider(
    shared: Arc<Shared>,
    probe: Option<Arc<dyn HandlerProbe>>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(shared.config.backoff_base, shared.config.backoff_cap);
    let mut first = true;
    let mut handshake_failures = 0;
    loop {
        if shutdown.is_cancelled() || !wait_while_paused(&shared, &shutdown).await {
            break;
        }
        shared.status.update(|s| {
            if !first {
                s.connection.reconnects += 1;
            }
            s.set_phase(ProviderPhase::Connecting, format!("connecting to {}", s.connection.coordinator_url));
        });
        first = false;
        // Opened at connect, when only the coordinator is known; the hello_ack's `assigned_id` is
        // recorded into it. The receiver and writer start before the hello is sent, so they must
        // be given the span then. Error level, like the job span, so no `RUST_LOG` level that lets
        // a line through strips the ids it is about.
        let span = tracing::error_span!(
            "session",
            coordinator = %shared.config.coordinator_url,
            provider_id = %shared.config.provider_id,
            assigned_id = tracing::field::Empty,
        );
        let (end, accepted) = run_session(&shared, probe.clone(), &shutdown).instrument(span.clone()).await;
        if accepted {
            backoff.reset();
        }
        let protocol_mismatch = match &end {
            SessionEnd::Refused { .. } => true,
            SessionEnd::Closed { code: Some(code), .. } => {
                !accepted
                    && matches!(
                        *code,
                        BAD_FIRST_MESSAGE
                            | INVALID_HELLO
                            | TIER2_ATTESTATION_FAILED
                            | TIER2_KEY_EXCHANGE_FAILED
                    )
            }
            _ => false,
        };
        handshake_failures = if protocol_mismatch { handshake_failures + 1 } else { 0 };
        if handshake_failures >= HANDSHAKE_FAILURES_BEFORE_STOP {
            let text = format!(
                "the handshake failed {handshake_failures} times in a row ({}); check the coordinator URL and \
                 the `protocol` setting (auto, v2 or v1), then start again",
                describe(&end)
            );
            shared.status.update(|s| {
                s.connection.last_error = Some(text.clone());
                s.set_phase(ProviderPhase::Error, text);
            });
            return;
        }
        span.in_scope(|| tracing::info!(?end, "session ended"));
        if let SessionEnd::Closed { code, reason } = &end {
            shared.status.update(|s| {
                s.connection.last_close_code = *code;
                s.connection.last_close_reason = Some(reason.clone());
            });
        }
        let wait = match &end {
            SessionEnd::Drained { quitting: true } => break,
            // Drained for a pause: offline until the policy lifts it (the loop's top waits).
            SessionEnd::Drained { quitting: false } if shared.availability().pause => Duration::ZERO,
            SessionEnd::Drained { quitting: false } => shared.config.reconnect_after_drain,
            SessionEnd::ConnectFailed { reason, permanent: true } => {
                shared.status.update(|s| {
                    s.set_phase(ProviderPhase::Error, reason.clone());
                    s.connection.last_error = Some(reason.clone());
                });
                return;
            }
            SessionEnd::Closed { code: Some(code), reason } if advice(*code).0 == AfterClose::Stop => {
                let (_, why) = advice(*code);
                let text = if *code == VERSION_UNSUPPORTED {
                    format!("{why} (coordinator said: {reason})")
                } else {
                    format!("{why} (close {code}: {reason})")
                };
                shared.status.update(|s| s.set_phase(ProviderPhase::Error, text));
                return;
            }
            _ => backoff.next_delay(),
        };
        let why = describe(&end);
        shared.status.update(|s| {
            s.connection.connected = false;
            s.connection.last_error = Some(why.clone());
            s.set_phase(ProviderPhase::Offline, format!("{why}; retrying in {:.1} s", wait.as_secs_f64()));
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    shared.status.update(|s| {
        s.connection.connected = false;
        s.set_phase(ProviderPhase::Stopped, "stopped");
    });
}

/// While the power policy pauses the provider, stays offline (the status says why) until the
/// pause lifts. False when `shutdown` came first.
async fn wait_while_paused(shared: &Shared, shutdown: &CancellationToken) -> bool {
    let mut changes = shared.availability_changes();
    loop {
        let availability = changes.borrow_and_update().clone();
        if !availability.pause {
            return true;
        }
        shared.status.update(|s| {
            s.connection.connected = false;
            s.active_jobs.clear();
            // Nothing runs; no slot is busy (the power view says none is open either).
            s.slots_free = s.slots_total;
            s.set_phase(ProviderPhase::Paused, availability.reason.clone());
        });
        tokio::select! {
            r = changes.changed() => if r.is_err() { return false },
            _ = shutdown.cancelled() => return false,
        }
    }
}

/// How a session ended, in words for the status.
fn describe(end: &SessionEnd) -> String {
    match end {
        SessionEnd::ConnectFailed { reason, .. } | SessionEnd::Lost { reason } => reason.clone(),
        SessionEnd::Refused { reason } => format!("the encrypted handshake failed: {reason}"),
        SessionEnd::Closed { code, reason } => match code {
            Some(c) => format!("{} (close {c}: {reason})", advice(*c).1),
            None => format!("the coordinator closed the session: {reason}"),
        },
        SessionEnd::Drained { .. } => "drained; reconnecting shortly".to_string(),
    }
}

/// Whether this connection opens with v2.
fn opens_with_v2(shared: &Shared) -> bool {
    match shared.config.protocol {
        ProtocolChoice::V1 => false,
        ProtocolChoice::V2 => true,
        ProtocolChoice::Auto => !fallback::speaks_v1_only(&shared.config.coordinator_url),
    }
}

/// One connection, from connect to close, inside its `session` span (each task it spawns is given
/// that span). Returns how it ended and whether the hello was accepted.
async fn run_session(
    shared: &Arc<Shared>,
    probe: Option<Arc<dyn HandlerProbe>>,
    shutdown: &CancellationToken,
) -> (SessionEnd, bool) {
    let connected = tokio::select! {
        c = connect::connect(&shared.config) => c,
        _ = shutdown.cancelled() => return (SessionEnd::Drained { quitting: true }, false),
    };
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            let permanent = e.is_permanent();
            return (SessionEnd::ConnectFailed { reason: e.to_string(), permanent }, false);
        }
    };
    let fd = connected.fd;
    let (sink, stream) = connected.socket.split();
    let (inbound_tx, mut inbound) = mpsc::unbounded_channel();
    let receiver =
        tokio::spawn(receiver::run(stream, inbound_tx, shared.config.tcp_user_timeout).in_current_span());
    let (outbox, outbox_rx) = Outbox::new();
    let mut writer = tokio::spawn(
        writer::run(sink, outbox_rx, shared.config.write_timeout, shared.config.tcp_user_timeout)
            .in_current_span(),
    );
    let flags = Arc::new(SessionFlags::default());
    let relay = Relay::new(shared.clone(), flags.clone(), outbox.clone());
    let mut ctx = handler::Handler::new(shared.clone(), flags.clone(), relay.clone(), outbox.clone(), probe);

    let v2 = opens_with_v2(shared);
    let handshake = if v2 {
        let handshake = ProviderHandshake::start(shared.auth_initial());
        outbox.send_priority_text(handshake.initial_frame().to_string());
        ctx.handshake_v2(handshake, &mut inbound, &mut writer).await.map(|(ack, leg)| (ack, Some(leg)))
    } else {
        outbox.send_priority(&ProviderMessage::Hello(shared.hello()));
        ctx.handshake(&mut inbound, &mut writer).await.map(|ack| (ack, None))
    };
    let (ack, leg) = match handshake {
        Ok(accepted) => accepted,
        Err(end) => {
            receiver.abort();
            writer.abort();
            // A coordinator that closes our v2 opening as an unknown first message speaks only v1.
            let unknown_first = matches!(end, SessionEnd::Closed { code: Some(BAD_FIRST_MESSAGE), .. });
            if v2 && unknown_first && !ctx.challenge_seen && shared.config.protocol == ProtocolChoice::Auto {
                tracing::warn!("the coordinator does not speak v2; falling back to v1 for it");
                fallback::remember_v1_only(&shared.config.coordinator_url);
                shared.status.update(|s| s.connection.v1_fallback = true);
            }
            return (end, false);
        }
    };
    let leg_status = leg.as_ref().map(|leg| EncryptedLegStatus {
        alg: SUITE.to_string(),
        kid: leg.keys.kid.clone(),
        chunk_envelope: leg.envelope,
        in_band_rekey: leg.rekey,
    });
    if let Some(leg) = leg {
        let (sealer, _) = leg.provider_halves();
        outbox.use_leg(WriterLeg { sealer, envelope: leg.envelope });
    }
    let ticker = HeartbeatTicker::new(ack.heartbeat_interval_s, shared.config.heartbeat_cap);
    tracing::Span::current().record("assigned_id", tracing::field::display(&ack.assigned_id));
    tracing::info!(
        tier = ack.tier.as_deref().unwrap_or("?"),
        heartbeat_tick_ms = ticker.tick.as_millis() as u64,
        "session accepted"
    );
    relay.set_assigned_id(&ack.assigned_id);
    shared.status.update(|s| {
        let c = &mut s.connection;
        c.connected = true;
        c.assigned_id = Some(ack.assigned_id.clone());
        c.heartbeat_interval_s = Some(ack.heartbeat_interval_s);
        c.heartbeat_tick_ms = Some(ticker.tick.as_millis() as u64);
        c.session_started_ms = Some(unix_ms());
        c.last_error = None;
        c.rtt_ms = connect::kernel_rtt(fd).map(|d| d.as_secs_f64() * 1000.0);
        c.protocol = Some(if v2 { "v2" } else { "v1" }.to_string());
        c.encrypted_leg = leg_status;
        c.rekeys = 0;
        c.v1_fallback = !v2 && fallback::speaks_v1_only(&c.coordinator_url);
    });
    shared.announce_state(&flags, &outbox, Some("model_loaded"));
    let heartbeat_interval = ticker.interval;
    let heartbeat = tokio::spawn(ticker.run(shared.clone(), flags.clone(), outbox.clone()).in_current_span());
    let reporter = tokio::spawn(
        reporter::run(shared.clone(), flags.clone(), outbox.clone(), heartbeat_interval).in_current_span(),
    );
    let rtt = tokio::spawn(sample_rtt(shared.clone(), fd).in_current_span());

    let end = ctx.serve(&mut inbound, &mut writer, shutdown).await;

    relay.connection_lost(&match &end {
        SessionEnd::Closed { reason, .. } | SessionEnd::Lost { reason } => reason.clone(),
        SessionEnd::ConnectFailed { reason, .. } | SessionEnd::Refused { reason } => reason.clone(),
        SessionEnd::Drained { .. } => "session closed after a drain".into(),
    });
    for task in [heartbeat, reporter, rtt] {
        task.abort();
    }
    receiver.abort();
    writer.abort();
    shared.status.update(|s| {
        s.connection.connected = false;
        if let SessionEnd::Closed { code, reason } = &end {
            s.connection.last_close_code = *code;
            s.connection.last_close_reason = Some(reason.clone());
        }
    });
    (end, true)
}

/// Refreshes the kernel's RTT figure for the UI every few seconds.
async fn sample_rtt(shared: Arc<Shared>, fd: std::os::fd::RawFd) {
    let mut timer = tokio::time::interval(Duration::from_secs(2));
    loop {
        timer.tick().await;
        let rtt = connect::kernel_rtt(fd).map(|d| d.as_secs_f64() * 1000.0);
        shared.status.update(|s| s.connection.rtt_ms = rtt);
    }
}
