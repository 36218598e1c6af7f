//! The handler: takes the receiver's frames in order and acts on each. Every action returns quickly
//! (jobs, drains and warm-ups are spawned), so the queue keeps moving; the receiver never waits for
//! the handler in any case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_protocol::v2::{Leg, ProviderHandshake, SealedCoordinatorFrame};
use hearth_protocol::{
    decode_coordinator, decode_coordinator_frame, nak_code, CoordinatorFrame, CoordinatorMessage, ErrorBody,
    HelloAck, Nak, ProviderMessage,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::drain;
use super::encrypted_leg::LegReader;
use super::end::SessionEnd;
use super::receiver::Inbound;
use super::relay::Relay;
use super::shared::{SessionFlags, Shared};
use super::writer::{Outbox, WriterExit};
use crate::status::unix_ms;

/// A window into the handler for tests: called after each message is acted on. Returning a duration
/// stalls the handler that long, which is how a test proves that a stuck handler never stops the
/// socket from being read.
pub trait HandlerProbe: Send + Sync {
    fn handled(&self, message: &CoordinatorMessage) -> Option<Duration>;
}

pub(super) struct Handler {
    shared: Arc<Shared>,
    flags: Arc<SessionFlags>,
    relay: Arc<Relay>,
    outbox: Outbox,
    probe: Option<Arc<dyn HandlerProbe>>,
    quitting: bool,
    drain: Option<JoinHandle<()>>,
    /// The c2p half of a v2 session's encrypted leg, once accepted.
    leg: Option<LegReader>,
    /// Whether a v2 `auth_challenge` arrived (a close before it means the coordinator did not
    /// understand our first frame).
    pub(super) challenge_seen: bool,
}

type Writer = JoinHandle<WriterExit>;

/// WebSocket close code 1008: what the provider closes with when the encrypted leg broke.
const POLICY_VIOLATION: u16 = 1008;

impl Handler {
    pub(super) fn new(
        shared: Arc<Shared>,
        flags: Arc<SessionFlags>,
        relay: Arc<Relay>,
        outbox: Outbox,
        probe: Option<Arc<dyn HandlerProbe>>,
    ) -> Self {
        Self {
            shared,
            flags,
            relay,
            outbox,
            probe,
            quitting: false,
            drain: None,
            leg: None,
            challenge_seen: false,
        }
    }

    /// Waits for the `hello_ack`.
    pub(super) async fn handshake(
        &mut self,
        inbound: &mut mpsc::UnboundedReceiver<Inbound>,
        writer: &mut Writer,
    ) -> Result<HelloAck, SessionEnd> {
        let deadline = tokio::time::Instant::now() + self.shared.config.handshake_timeout;
        loop {
            match self.handshake_message(inbound, writer, deadline, "hello_ack").await? {
                CoordinatorMessage::HelloAck(ack) => return Ok(ack),
                other => self.unexpected_in_handshake(&other, "hello_ack"),
            }
        }
    }

    /// Runs the v2 handshake after the initial `auth_request` was sent: answers the challenge
    /// with the proof, checks the acceptance, and keeps the c2p half of the leg. Returns the
    /// session's terms (as a `hello_ack` would give them) and the leg, whose p2c half the caller
    /// hands to the writer.
    pub(super) async fn handshake_v2(
        &mut self,
        mut handshake: ProviderHandshake,
        inbound: &mut mpsc::UnboundedReceiver<Inbound>,
        writer: &mut Writer,
    ) -> Result<(HelloAck, Leg), SessionEnd> {
        let refused = |e: hearth_protocol::v2::HandshakeError| SessionEnd::Refused { reason: e.to_string() };
        let timeout = self.shared.config.handshake_timeout;
        let mut deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.handshake_message(inbound, writer, deadline, "auth_challenge").await? {
                CoordinatorMessage::AuthChallenge(challenge) => {
                    self.challenge_seen = true;
                    let proof = handshake.on_challenge(&challenge).map_err(refused)?;
                    let frame = ProviderMessage::AuthRequest(hearth_protocol::v2::AuthRequest::Proof(proof));
                    self.outbox.send_priority(&frame);
                    // The coordinator re-arms its deadline for the proof; the acceptance follows.
                    deadline = tokio::time::Instant::now() + timeout;
                    break;
                }
                other => self.unexpected_in_handshake(&other, "auth_challenge"),
            }
        }
        loop {
            match self.handshake_message(inbound, writer, deadline, "auth_response").await? {
                CoordinatorMessage::AuthResponse(response) => {
                    let leg = handshake.on_response(&response).map_err(refused)?;
                    let (_, opener) = leg.provider_halves();
                    self.leg = Some(LegReader::new(opener, leg.ids.clone(), leg.rekey));
                    let mut ack =
                        HelloAck::accepted(leg.ids.assigned_id.clone(), response.heartbeat_interval_s);
                    ack.tier = response.tier.clone();
                    ack.auth_state = response.auth_state.clone();
                    ack.required_binary_version = response.required_binary_version.clone();
                    ack.assigned_provider_token = response.assigned_provider_token.clone();
                    return Ok((ack, leg));
                }
                other => self.unexpected_in_handshake(&other, "auth_response"),
            }
        }
    }

    fn unexpected_in_handshake(&self, message: &CoordinatorMessage, waiting_for: &str) {
        tracing::warn!(type_name = message.type_name(), "message before {waiting_for}");
        self.outbox.send_priority(&ProviderMessage::Nak(Nak {
            in_reply_to: message.type_name().into(),
            error: ErrorBody::new(
                nak_code::UNEXPECTED_MESSAGE,
                format!("no session yet: waiting for {waiting_for}"),
            ),
        }));
    }

    /// The next message of a handshake, or how the handshake ended.
    async fn handshake_message(
        &mut self,
        inbound: &mut mpsc::UnboundedReceiver<Inbound>,
        writer: &mut Writer,
        deadline: tokio::time::Instant,
        waiting_for: &str,
    ) -> Result<CoordinatorMessage, SessionEnd> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Err(SessionEnd::ConnectFailed {
                    reason: format!(
                        "the coordinator sent no {waiting_for} within {} s",
                        self.shared.config.handshake_timeout.as_secs_f64()
                    ),
                    permanent: false,
                }),
                exit = &mut *writer => return Err(writer_end(exit, false, false)),
                next = inbound.recv() => match next {
                    Some(Inbound::Frame(Message::Text(text))) => {
                        self.frame_received();
                        match decode_coordinator(&text, self.shared.config.max_frame_bytes) {
                            Ok(message) => return Ok(message),
                            Err(e) => self.refuse_frame(e),
                        }
                    }
                    Some(Inbound::Frame(Message::Close(frame))) => return Err(closed(frame)),
                    Some(Inbound::Frame(_)) => self.frame_received(),
                    Some(Inbound::Ended(err)) => return Err(SessionEnd::ConnectFailed {
                        reason: err.unwrap_or_else(|| "the coordinator closed the connection during the handshake".into()),
                        permanent: false,
                    }),
                    None => return Err(SessionEnd::Lost { reason: "receiver stopped".into() }),
                },
            }
        }
    }

    /// Serves the session until it ends.
    pub(super) async fn serve(
        &mut self,
        inbound: &mut mpsc::UnboundedReceiver<Inbound>,
        writer: &mut Writer,
        shutdown: &CancellationToken,
    ) -> SessionEnd {
        let silence = self.shared.config.silence_timeout;
        let mut last_frame = Instant::now();
        let mut availability = self.shared.availability_changes();
        availability.mark_changed();
        loop {
            let silence_check = async {
                match silence {
                    Some(limit) => tokio::time::sleep_until((last_frame + limit).into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                exit = &mut *writer => return writer_end(exit, self.flags.is_draining(), self.quitting),
                _ = shutdown.cancelled(), if !self.quitting => {
                    self.quitting = true;
                    if self.drain.is_some() {
                        // A pause's drain lets jobs run long; a stop cuts them at the drain
                        // timeout, as every stop does.
                        let (relay, limit) = (self.relay.clone(), self.shared.config.drain_timeout);
                        tokio::spawn(async move {
                            if relay.wait_idle(limit).await > 0 {
                                relay.cancel_all("the provider is stopping");
                            }
                        }.in_current_span());
                    } else {
                        self.begin_drain("the provider is stopping", self.shared.config.drain_timeout);
                    }
                }
                r = availability.changed(), if self.drain.is_none() => {
                    if r.is_ok() && availability.borrow_and_update().pause {
                        let why = self.shared.availability().reason;
                        self.begin_drain(&format!("paused by the power policy: {why}"), drain::PAUSE_DRAIN_LIMIT);
                    }
                }
                _ = silence_check => return SessionEnd::Lost {
                    reason: format!("nothing heard from the coordinator for {} s", silence.unwrap_or_default().as_secs()),
                },
                next = inbound.recv() => match next {
                    Some(Inbound::Frame(Message::Close(frame))) => {
                        if self.flags.is_draining() && self.drain.as_ref().is_some_and(|d| d.is_finished()) {
                            return SessionEnd::Drained { quitting: self.quitting };
                        }
                        return closed(frame);
                    }
                    Some(Inbound::Frame(frame)) => {
                        last_frame = Instant::now();
                        self.frame_received();
                        if let Some(end) = self.on_frame(frame).await {
                            // The nak that says why, and a close behind it, reach the coordinator
                            // before the connection goes.
                            self.outbox.close(POLICY_VIOLATION, "encrypted leg failure");
                            let _ = tokio::time::timeout(Duration::from_secs(1), &mut *writer).await;
                            return end;
                        }
                    }
                    Some(Inbound::Ended(err)) => return SessionEnd::Lost {
                        reason: err.unwrap_or_else(|| "the coordinator closed the connection".into()),
                    },
                    None => return SessionEnd::Lost { reason: "receiver stopped".into() },
                },
            }
        }
    }

    fn frame_received(&self) {
        self.shared.status.update(|s| s.connection.last_frame_received_ms = Some(unix_ms()));
    }

    /// Acts on one frame; returns how the session ends when the frame ends it (a sealed frame
    /// that does not open leaves the leg's counters unusable).
    async fn on_frame(&mut self, frame: Message) -> Option<SessionEnd> {
        match frame {
            Message::Text(text) => {
                match decode_coordinator_frame(&text, self.shared.config.max_frame_bytes) {
                    Ok(frame) => {
                        let message = match self.unseal(frame) {
                            Ok(Some(message)) => message,
                            Ok(None) => return None,
                            Err(end) => return Some(end),
                        };
                        self.dispatch(&message);
                        if let Some(stall) = self.probe.as_ref().and_then(|p| p.handled(&message)) {
                            tokio::time::sleep(stall).await;
                        }
                    }
                    Err(e) => self.refuse_frame(e),
                }
            }
            Message::Binary(data) => {
                tracing::warn!(
                    bytes = data.len(),
                    "binary frame ignored: the protocol uses text frames only"
                );
                self.outbox.send_priority(&ProviderMessage::Nak(Nak {
                    in_reply_to: "binary".into(),
                    error: ErrorBody::new(
                        nak_code::MALFORMED_FRAME,
                        "binary frames are not part of the protocol",
                    ),
                }));
            }
            // Pings are answered by the WebSocket library; none of these count for anything.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Close(_) => {}
        }
        None
    }

    /// The message a frame carries, opened if it was sealed. Plaintext where the session is
    /// encrypted is refused (the reference provider's nak), and so is a sealed frame on a v1
    /// session; a frame that fails to open ends the session after a nak saying why.
    fn unseal(&mut self, frame: CoordinatorFrame) -> Result<Option<CoordinatorMessage>, SessionEnd> {
        let nak = |in_reply_to: &str, code: &str, message: String| {
            ProviderMessage::Nak(Nak {
                in_reply_to: in_reply_to.into(),
                error: ErrorBody::new(code, message),
            })
        };
        let Some(leg) = self.leg.as_mut() else {
            return match frame {
                CoordinatorFrame::Plain(message) => Ok(Some(message)),
                CoordinatorFrame::Sealed(_) => {
                    tracing::warn!("sealed frame on a v1 session refused");
                    self.outbox.send_priority(&nak(
                        "unknown",
                        nak_code::UNEXPECTED_MESSAGE,
                        "sealed frame on a session without an encrypted leg".into(),
                    ));
                    Ok(None)
                }
            };
        };
        match frame {
            CoordinatorFrame::Plain(CoordinatorMessage::InferenceRequest(r)) => {
                tracing::warn!(request_id = %r.request_id, "plaintext request on an encrypted session refused");
                self.outbox.send_priority(&nak(
                    &r.request_id,
                    nak_code::TIER2_ENCRYPTED_FRAME_REQUIRED,
                    "this session is encrypted: inference_request must be sealed".into(),
                ));
                Ok(None)
            }
            CoordinatorFrame::Plain(CoordinatorMessage::AeadRekeyRequest(request)) => {
                match leg.on_rekey_request(&request) {
                    Ok(response) => {
                        tracing::info!(reason = %request.reason, "rekey requested; new key offered");
                        self.outbox.send_priority(&ProviderMessage::AeadRekeyResponse(response));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "rekey request refused");
                        self.outbox.send_priority(&nak(
                            "aead_rekey_request",
                            nak_code::INVALID_MESSAGE,
                            e.to_string(),
                        ));
                    }
                }
                Ok(None)
            }
            CoordinatorFrame::Plain(message) => Ok(Some(message)),
            CoordinatorFrame::Sealed(SealedCoordinatorFrame::InferenceRequest(sealed)) => match leg
                .open_request(&sealed)
            {
                Ok(request) => Ok(Some(CoordinatorMessage::InferenceRequest(request))),
                Err(e) => {
                    tracing::warn!(request_id = %sealed.request_id, error = %e, "sealed request did not open");
                    self.outbox.send_priority(&nak(
                        &sealed.request_id,
                        nak_code::TIER2_AEAD_DECRYPT_FAILED,
                        format!("cannot open the sealed request: {e}"),
                    ));
                    Err(SessionEnd::Lost { reason: format!("the encrypted leg failed: {e}; reconnecting") })
                }
            },
            CoordinatorFrame::Sealed(SealedCoordinatorFrame::AeadRekeyCommit(commit)) => {
                match leg.on_rekey_commit(&commit) {
                    Ok((sealer, committed)) => {
                        let kid = leg.kid().to_string();
                        tracing::info!(%kid, "rekey committed");
                        self.outbox.switch_epoch(sealer, committed);
                        self.shared.status.update(|s| {
                            s.connection.rekeys += 1;
                            if let Some(l) = s.connection.encrypted_leg.as_mut() {
                                l.kid = kid;
                            }
                        });
                        Ok(None)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "rekey commit refused");
                        self.outbox.send_priority(&nak(
                            "aead_rekey_commit",
                            nak_code::TIER2_AEAD_DECRYPT_FAILED,
                            e.to_string(),
                        ));
                        Err(SessionEnd::Lost { reason: format!("the rekey failed: {e}; reconnecting") })
                    }
                }
            }
        }
    }

    fn refuse_frame(&self, error: hearth_protocol::DecodeError) {
        tracing::warn!(%error, "refused a frame from the coordinator");
        self.outbox.send_priority(&ProviderMessage::Nak(error.to_nak()));
    }

    fn dispatch(&mut self, message: &CoordinatorMessage) {
        match message {
            CoordinatorMessage::HelloAck(_)
            | CoordinatorMessage::AuthChallenge(_)
            | CoordinatorMessage::AuthResponse(_) => {
                tracing::warn!(
                    type_name = message.type_name(),
                    "handshake frame in an established session ignored"
                )
            }
            CoordinatorMessage::AeadRekeyRequest(_) => {
                self.outbox.send_priority(&ProviderMessage::Nak(Nak {
                    in_reply_to: "aead_rekey_request".into(),
                    error: ErrorBody::new(
                        nak_code::UNEXPECTED_MESSAGE,
                        "this session has no encrypted leg to rekey",
                    ),
                }));
            }
            CoordinatorMessage::InferenceRequest(r) => self.relay.start(r.clone()),
            CoordinatorMessage::CancelRequest(c) => self.relay.cancel(c.clone()),
            CoordinatorMessage::Preflight(p) => {
                let ack = self.relay.preflight(p.clone());
                self.outbox.send_priority(&ProviderMessage::PreflightAck(ack));
            }
            CoordinatorMessage::WarmUp {} => self.warm_up(),
            CoordinatorMessage::Drain {} => self.begin_drain(
                "the coordinator asked this provider to drain",
                self.shared.config.drain_timeout,
            ),
            CoordinatorMessage::Nak(nak) => {
                tracing::warn!(in_reply_to = %nak.in_reply_to, code = %nak.error.code, "coordinator refused a frame: {}", nak.error.message);
                let text = format!("coordinator refused our {}: {}", nak.in_reply_to, nak.error.message);
                self.shared.status.update(|s| s.connection.last_error = Some(text));
            }
        }
    }

    fn begin_drain(&mut self, why: &str, deadline: Duration) {
        if self.drain.is_some() {
            return;
        }
        tracing::info!("draining: {why}");
        // Set before the drain task runs, so a request right behind the `drain` frame is refused.
        self.flags.set_draining();
        self.drain = Some(tokio::spawn(
            drain::run(
                self.shared.clone(),
                self.flags.clone(),
                self.relay.clone(),
                self.outbox.clone(),
                deadline,
            )
            .in_current_span(),
        ));
    }

    /// `warm_up` after a long gap: report degraded, check the model answers, report ready. Both
    /// `state_update`s are sent here, not left to the state reporter, which coalesces changes over
    /// 20 ms and would swallow the pair whenever the model answers faster than that: the
    /// coordinator expects to see degraded, then ready.
    fn warm_up(&self) {
        if self.flags.is_degraded() {
            return;
        }
        self.flags.set_degraded(true);
        if !self.shared.announce_state(&self.flags, &self.outbox, Some("coordinator warm_up requested")) {
            return;
        }
        let (flags, shared, outbox) = (self.flags.clone(), self.shared.clone(), self.outbox.clone());
        let engine = self.shared.engine();
        let span = tracing::Span::current();
        let task = async move {
            let probe = tokio::task::spawn_blocking(move || {
                let _entered = span.enter();
                let request = hearth_inference::GenerationRequest {
                    prompt: hearth_inference::Prompt::Raw("warm".into()),
                    max_tokens: 1,
                    sampling: Default::default(),
                    stop: vec![],
                };
                engine.generate(&request, &hearth_inference::CancelToken::new(), &mut |_| {})
            });
            match tokio::time::timeout(Duration::from_secs(90), probe).await {
                Ok(Ok(Ok(_))) => tracing::info!("warm-up probe answered"),
                other => tracing::warn!(?other, "warm-up probe failed; reporting ready anyway"),
            }
            flags.set_degraded(false);
            shared.announce_state(&flags, &outbox, Some("warm_up complete"));
        };
        tokio::spawn(task.in_current_span());
    }
}

fn closed(frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> SessionEnd {
    match frame {
        Some(f) => SessionEnd::Closed { code: Some(u16::from(f.code)), reason: f.reason.to_string() },
        None => SessionEnd::Closed { code: None, reason: "closed without a code".into() },
    }
}

fn writer_end(
    exit: Result<WriterExit, tokio::task::JoinError>,
    draining: bool,
    quitting: bool,
) -> SessionEnd {
    match exit {
        Ok(WriterExit::Closed) if draining => SessionEnd::Drained { quitting },
        Ok(WriterExit::Closed) | Ok(WriterExit::Idle) => {
            SessionEnd::Lost { reason: "the session was closed".into() }
        }
        Ok(WriterExit::Timeout) => {
            SessionEnd::Lost { reason: "a write to the coordinator missed its deadline".into() }
        }
        Ok(WriterExit::Failed(e)) => SessionEnd::Lost { reason: e },
        Err(e) => SessionEnd::Lost { reason: format!("the writer task failed: {e}") },
    }
}
