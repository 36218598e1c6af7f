//! One provider's WebSocket session at `/ws/provider`: admission, the read loop, liveness, teardown.
//!
//! Per session there are two tasks: this one reads the socket and acts on each frame (every action is
//! a short, non-blocking table update or channel send), and the [`writer`] owns the sink. The
//! liveness check runs on its own tick inside the read loop's `select!`, so a silent socket cannot
//! keep it from firing. Once `hello` is accepted both tasks run in a `provider_session` span that
//! carries the provider id and the assigned session id, so log lines need not repeat them.

mod encrypted_leg;
mod handshake;
pub(crate) use handshake::bearer_ok;
mod strict;
mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use hearth_protocol::close::{GOING_AWAY, INVALID_TOKEN};
use hearth_protocol::v2::{Leg, SealedCoordinatorFrame};
use hearth_protocol::{
    decode_provider_frame, nak_code, CoordinatorMessage, DecodeError, DrainPhase, ErrorBody, Hello, HelloAck,
    Nak, ProviderFrame, ProviderMessage,
};
use tokio::sync::mpsc;
use tracing::Instrument;

use self::encrypted_leg::{Opened, SessionLeg};
use self::handshake::{Admission, Opening};
use self::strict::{StaleDeadline, PONG_TIMEOUT_REASON};
use crate::events::PoolEvent;
use crate::link::{EndSession, SentRequests, SessionLink, WriterCmd};
use crate::state::PoolState;

/// WebSocket close code 1000.
const NORMAL_CLOSURE: u16 = 1000;

/// `GET /ws/provider`: upgrade, then run the session. The transport cap is a multiple of the frame
/// limit so an oversized-but-sane frame reaches the decoder and earns a `nak` instead of killing the
/// connection.
pub(crate) async fn upgrade(
    State(shared): State<Arc<PoolState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let cap = shared.config.max_frame_bytes.saturating_mul(4);
    let authorized = handshake::bearer_ok(shared.config.provider_tokens.as_ref(), &headers);
    ws.max_message_size(cap).max_frame_size(cap).on_upgrade(move |socket| serve(shared, socket, authorized))
}

async fn serve(shared: Arc<PoolState>, mut socket: WebSocket, authorized: bool) {
    let write_timeout = shared.config.write_timeout;
    if shared.shutting_down.load(Ordering::Relaxed) {
        return handshake::close_with(socket, GOING_AWAY, "pool shutting down", write_timeout).await;
    }
    if !authorized {
        tracing::warn!("provider connect refused: missing or unknown bearer token");
        return handshake::close_with(socket, INVALID_TOKEN, "invalid_token", write_timeout).await;
    }
    let config = &shared.config;
    let assigned_id = uuid::Uuid::new_v4().to_string();
    let rules = Admission {
        timeout: config.handshake_timeout,
        max_frame_bytes: config.max_frame_bytes,
        require_v2: config.require_v2,
        heartbeat_interval_s: config.heartbeat_interval_s,
        rekey_after: (config.rekey_after_requests, config.rekey_after.as_secs()),
    };
    let (hello, leg) = match handshake::admit(&mut socket, &assigned_id, &rules).await {
        Ok(Opening::V1(hello)) => (hello, None),
        Ok(Opening::V2(initial, leg)) => (initial.to_hello(), Some(leg)),
        Err(refusal) => {
            tracing::warn!(reason = %refusal.reason, "provider handshake refused");
            if let Some((code, reason)) = refusal.close {
                handshake::close_with(socket, code, &reason, write_timeout).await;
            }
            return;
        }
    };

    let span = tracing::info_span!("provider_session", provider_id = %hello.provider_id, %assigned_id);
    run(shared, socket, hello, assigned_id, leg).instrument(span).await
}

/// The admitted session, from `hello_ack` (v1) or after `auth_response` (v2) to teardown, in the
/// session's span.
async fn run(shared: Arc<PoolState>, socket: WebSocket, hello: Hello, assigned_id: String, leg: Option<Leg>) {
    let config = &shared.config;
    let write_timeout = config.write_timeout;
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::unbounded_channel();
    let (ctl, mut ctl_rx) = mpsc::unbounded_channel();
    let strict = config.strict.then(|| Arc::new(StaleDeadline::new(write_timeout)));
    let sent = Arc::new(SentRequests::default());
    let (leg, sealer) = match &leg {
        Some(leg) => {
            let (half, sealer) = SessionLeg::new(leg, sent.clone());
            tracing::info!(
                kid = half.kid(),
                envelope = leg.envelope,
                rekey = leg.rekey,
                "encrypted leg accepted"
            );
            (Some(half), Some(sealer))
        }
        None => (None, None),
    };
    let writer = tokio::spawn(
        writer::run(sink, out_rx, ctl.clone(), write_timeout, strict.clone(), sealer).in_current_span(),
    );

    // The ack is queued before the session becomes visible, so it is always the first frame (a v2
    // session's acceptance was written by the handshake already).
    let link = SessionLink { out: out.clone(), ctl, sent };
    if leg.is_none() {
        link.send(&CoordinatorMessage::HelloAck(HelloAck::accepted(
            assigned_id.clone(),
            config.heartbeat_interval_s,
        )));
    }
    if let Some(old) = shared.admit(&hello, &assigned_id, link) {
        old.end(Some((NORMAL_CLOSURE, "replaced by a newer session".into())), "replaced by a newer session");
    }
    tracing::info!(model = %hello.model_id, "provider connected");
    shared.emit(PoolEvent::ProviderConnected {
        provider_id: hello.provider_id.clone(),
        assigned_id: assigned_id.clone(),
    });

    let mut session = Session { shared: Arc::clone(&shared), hello, assigned_id, out, strict, leg };
    let (end, stream_open) = session.read_loop(&mut stream, &mut ctl_rx).await;
    session.teardown(end, writer, stream_open.then_some(stream)).await;
}

struct Session {
    shared: Arc<PoolState>,
    hello: Hello,
    assigned_id: String,
    out: mpsc::UnboundedSender<WriterCmd>,
    strict: Option<Arc<StaleDeadline>>,
    /// The encrypted leg of a v2 session.
    leg: Option<SessionLeg>,
}

impl Session {
    fn provider_id(&self) -> &str {
        &self.hello.provider_id
    }

    /// Reads until the session must end. Returns why, and whether to read on briefly while closing
    /// (false when the link is dead or must be dropped abruptly).
    async fn read_loop(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        ctl: &mut mpsc::UnboundedReceiver<EndSession>,
    ) -> (EndSession, bool) {
        let liveness = self.shared.config.liveness_timeout;
        let mut tick = tokio::time::interval(self.shared.config.liveness_tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_activity = Instant::now();
        loop {
            tokio::select! {
                Some(end) = ctl.recv() => return (end, true),
                frame = stream.next() => {
                    let frame = match frame {
                        None => return (gone("connection closed without a close frame"), false),
                        Some(Err(e)) => return (gone(format!("read error: {e}")), false),
                        Some(Ok(frame)) => frame,
                    };
                    match self.on_frame(frame, &mut last_activity) {
                        Step::Continue => {}
                        Step::End(end, read_on) => return (end, read_on),
                    }
                }
                _ = tick.tick() => {
                    if self.leg.as_ref().is_some_and(SessionLeg::rekey_timed_out) {
                        return (gone("the rekey did not complete in time"), false);
                    }
                    if let Step::End(end, read_on) = self.maybe_rekey() {
                        return (end, read_on);
                    }
                    let idle = last_activity.elapsed();
                    if idle > liveness && !self.shared.has_active(&self.assigned_id) {
                        let reason = format!("liveness timeout: no text frame for {idle:?}");
                        return (EndSession { close: Some((GOING_AWAY, "liveness_timeout".into())), reason }, true);
                    }
                }
            }
        }
    }

    fn on_frame(&mut self, frame: Message, last_activity: &mut Instant) -> Step {
        let control = |kind| PoolEvent::ControlReceived {
            provider_id: self.provider_id().to_string(),
            kind,
            at: Instant::now(),
        };
        match frame {
            Message::Text(text) => return self.on_text(text.as_str(), last_activity),
            Message::Binary(_) => {
                self.shared.emit(control("binary"));
                self.nak(Nak {
                    in_reply_to: "unknown".into(),
                    error: ErrorBody::new(
                        nak_code::MALFORMED_FRAME,
                        "binary frames are not part of the protocol",
                    ),
                });
            }
            Message::Ping(_) => {
                self.shared.emit(control("ping"));
                // The library queues the pong; in strict mode it goes out under the stale deadline.
                if self.strict.as_ref().is_some_and(|d| d.expired()) {
                    return Step::End(gone(PONG_TIMEOUT_REASON), false);
                }
            }
            Message::Pong(_) => self.shared.emit(control("pong")),
            Message::Close(frame) => {
                let (code, reason) =
                    frame.map(|f| (f.code, f.reason.to_string())).unwrap_or((1005, String::new()));
                // Reading on lets the library send its close reply.
                return Step::End(gone(format!("closed by provider ({code} {reason})")), true);
            }
        }
        Step::Continue
    }

    fn on_text(&mut self, text: &str, last_activity: &mut Instant) -> Step {
        let frame = match decode_provider_frame(text, self.shared.config.max_frame_bytes) {
            Ok(frame) => frame,
            Err(e) => {
                // A JSON object with a type is a well-formed frame even when we cannot act on it.
                if matches!(e, DecodeError::UnknownType(_) | DecodeError::Invalid { .. }) {
                    *last_activity = Instant::now();
                }
                tracing::warn!(error = %e, "refusing provider frame");
                self.nak(e.to_nak());
                return Step::Continue;
            }
        };
        *last_activity = Instant::now();
        let encrypted = self.leg.is_some();
        let message = match frame {
            ProviderFrame::Plain(message) if !encrypted => message,
            ProviderFrame::Sealed(_) if !encrypted => {
                self.nak(Nak {
                    in_reply_to: "unknown".into(),
                    error: ErrorBody::new(
                        nak_code::UNEXPECTED_MESSAGE,
                        "sealed frame on a session without an encrypted leg",
                    ),
                });
                return Step::Continue;
            }
            ProviderFrame::Sealed(sealed) => {
                let type_name = sealed.type_name();
                self.shared.emit(PoolEvent::FrameReceived {
                    provider_id: self.provider_id().to_string(),
                    type_name: type_name.to_string(),
                    at: *last_activity,
                });
                let leg = self.leg.as_mut().expect("checked encrypted");
                let opened = leg.open(sealed);
                let (kid, rekeys) = (leg.kid().to_string(), leg.rekeys());
                return match opened {
                    Ok(Opened::Chunk(chunk)) => {
                        self.shared.on_chunk(&self.assigned_id, chunk);
                        Step::Continue
                    }
                    Ok(Opened::End(end)) => {
                        self.shared.on_end(&self.assigned_id, end);
                        self.maybe_rekey()
                    }
                    Ok(Opened::Committed) => {
                        tracing::info!(%kid, rekeys, "rekey committed");
                        self.shared.set_rekeying(&self.hello.provider_id, &self.assigned_id, false);
                        Step::Continue
                    }
                    // A Pillar-B failure: production drops TCP without a close code.
                    Err(reason) => Step::End(gone(reason), false),
                };
            }
            ProviderFrame::Plain(message) => match message {
                ProviderMessage::InferenceResponseChunk(_) | ProviderMessage::InferenceResponseEnd(_) => {
                    let reason = format!("plaintext {} on an encrypted session", message.type_name());
                    return Step::End(gone(reason), false);
                }
                ProviderMessage::Nak(nak)
                    if matches!(
                        nak.error.code.as_str(),
                        nak_code::TIER2_AEAD_DECRYPT_FAILED | nak_code::TIER2_ENCRYPTED_FRAME_REQUIRED
                    ) =>
                {
                    let reason = format!(
                        "provider could not open our frame ({}): {}",
                        nak.error.code, nak.error.message
                    );
                    return Step::End(gone(reason), false);
                }
                ProviderMessage::AeadRekeyResponse(response) => {
                    let leg = self.leg.as_mut().expect("checked encrypted");
                    return match leg.on_rekey_response(&response) {
                        Ok((sealer, commit)) => {
                            let text =
                                hearth_protocol::encode(&SealedCoordinatorFrame::AeadRekeyCommit(commit));
                            let _ = self
                                .out
                                .send(WriterCmd::SwitchEpoch { sealer: Box::new(sealer), commit: text });
                            Step::Continue
                        }
                        Err(reason) => Step::End(gone(reason), false),
                    };
                }
                other => other,
            },
        };
        self.shared.emit(PoolEvent::FrameReceived {
            provider_id: self.provider_id().to_string(),
            type_name: message.type_name().to_string(),
            at: *last_activity,
        });
        let (shared, pid, aid) = (&self.shared, self.hello.provider_id.as_str(), self.assigned_id.as_str());
        match message {
            ProviderMessage::Hello(_) | ProviderMessage::AuthRequest(_) => self.nak(Nak {
                in_reply_to: message.type_name().into(),
                error: ErrorBody::new(nak_code::UNEXPECTED_MESSAGE, "a handshake frame after the handshake"),
            }),
            ProviderMessage::AeadRekeyResponse(_) => self.nak(Nak {
                in_reply_to: "aead_rekey_response".into(),
                error: ErrorBody::new(nak_code::UNEXPECTED_MESSAGE, "no rekey is in progress"),
            }),
            ProviderMessage::StateUpdate(update) => shared.apply_state_update(pid, aid, &update),
            ProviderMessage::Heartbeat(hb) => shared.apply_heartbeat(pid, aid, &hb),
            ProviderMessage::InferenceResponseChunk(chunk) => shared.on_chunk(aid, chunk),
            ProviderMessage::InferenceResponseEnd(end) => shared.on_end(aid, end),
            ProviderMessage::PreflightAck(ack) => shared.on_preflight_ack(aid, ack),
            ProviderMessage::DrainStatus(status) => match status.phase {
                DrainPhase::Complete => {
                    let close = Some((NORMAL_CLOSURE, "drain complete".to_string()));
                    return Step::End(EndSession { close, reason: "drain complete".into() }, true);
                }
                DrainPhase::Starting | DrainPhase::InProgress | DrainPhase::TimeoutSkipped => {
                    shared.set_draining(pid, aid)
                }
            },
            ProviderMessage::Nak(nak) => {
                tracing::warn!(in_reply_to = %nak.in_reply_to, code = %nak.error.code,
                    message = %nak.error.message, "provider refused a frame");
                shared.on_provider_nak(aid, &nak);
                shared.emit(PoolEvent::NakReceived { provider_id: pid.to_string(), nak });
            }
        }
        Step::Continue
    }

    /// Production's rekey rule, checked after a request ends and on the liveness tick: once an
    /// epoch has carried enough requests (or is old enough) and the session is idle, hold new
    /// dispatches and rekey; a provider that cannot rekey in band is closed instead.
    fn maybe_rekey(&mut self) -> Step {
        let config = &self.shared.config;
        let Some(leg) = self.leg.as_mut() else { return Step::Continue };
        let Some(reason) = leg.rekey_due(config.rekey_after_requests, config.rekey_after) else {
            return Step::Continue;
        };
        if !leg.can_rekey() {
            return Step::End(
                gone(format!("rekey due ({reason}) but in_band_aead_rekey_v1 was not negotiated")),
                false,
            );
        }
        self.shared.set_rekeying(&self.hello.provider_id, &self.assigned_id, true);
        if self.shared.has_active(&self.assigned_id) {
            // Dispatches are held; the rekey starts once the last request ends.
            return Step::Continue;
        }
        let request = leg.start_rekey(reason, config.handshake_timeout);
        tracing::info!(reason, "rekeying the encrypted leg");
        let _ = self
            .out
            .send(WriterCmd::Text(hearth_protocol::encode(&CoordinatorMessage::AeadRekeyRequest(request))));
        Step::Continue
    }

    fn nak(&self, nak: Nak) {
        let _ =
            self.out.send(WriterCmd::Text(hearth_protocol::encode(&CoordinatorMessage::Nak(nak.clone()))));
        self.shared.emit(PoolEvent::NakSent { provider_id: self.provider_id().to_string(), nak });
    }

    /// Fails the session's requests and marks its row, then closes (or drops) the connection.
    async fn teardown(
        self,
        end: EndSession,
        writer: tokio::task::JoinHandle<()>,
        stream: Option<SplitStream<WebSocket>>,
    ) {
        tracing::info!(reason = %end.reason, "provider session ended");
        self.shared.session_ended(self.provider_id(), &self.assigned_id, &end.reason);
        match end.close {
            Some((code, reason)) => {
                let _ = self.out.send(WriterCmd::Close(code, reason));
                drop(self.out);
                let wait = self.shared.config.write_timeout + Duration::from_millis(100);
                let _ = tokio::time::timeout(wait, writer).await;
            }
            None => writer.abort(),
        }
        if let Some(mut stream) = stream {
            // Read until the peer answers our close, so it sees the close frame before the TCP close.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
        }
    }
}

enum Step {
    Continue,
    /// End the session; the flag says whether to keep reading briefly while closing.
    End(EndSession, bool),
}

fn gone(reason: impl Into<String>) -> EndSession {
    EndSession { close: None, reason: reason.into() }
}
