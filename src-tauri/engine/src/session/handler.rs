//! The handler: takes the receiver's frames in order and acts on each. Every action returns quickly
//! (jobs, drains and warm-ups are spawned), so the queue keeps moving; the receiver never waits for
//! the handler in any case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_protocol::{
    decode_coordinator, nak_code, CoordinatorMessage, ErrorBody, HelloAck, Nak, ProviderMessage,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::drain;
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
}

type Writer = JoinHandle<WriterExit>;

impl Handler {
    pub(super) fn new(
        shared: Arc<Shared>,
        flags: Arc<SessionFlags>,
        relay: Arc<Relay>,
        outbox: Outbox,
        probe: Option<Arc<dyn HandlerProbe>>,
    ) -> Self {
        Self { shared, flags, relay, outbox, probe, quitting: false, drain: None }
    }

    /// Waits for the `hello_ack`.
    pub(super) async fn handshake(
        &mut self,
        inbound: &mut mpsc::UnboundedReceiver<Inbound>,
        writer: &mut Writer,
    ) -> Result<HelloAck, SessionEnd> {
        let timeout = self.shared.config.handshake_timeout;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return Err(SessionEnd::ConnectFailed {
                    reason: format!("the coordinator did not answer the hello within {} s", timeout.as_secs_f64()),
                    permanent: false,
                }),
                exit = &mut *writer => return Err(writer_end(exit, false, false)),
                next = inbound.recv() => match next {
                    Some(Inbound::Frame(Message::Text(text))) => {
                        self.frame_received();
                        match decode_coordinator(&text, self.shared.config.max_frame_bytes) {
                            Ok(CoordinatorMessage::HelloAck(ack)) => return Ok(ack),
                            Ok(other) => {
                                tracing::warn!(type_name = other.type_name(), "message before hello_ack");
                                self.outbox.send_priority(&ProviderMessage::Nak(Nak {
                                    in_reply_to: other.type_name().into(),
                                    error: ErrorBody::new(nak_code::UNEXPECTED_MESSAGE, "no session yet: waiting for hello_ack"),
                                }));
                            }
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
                    self.begin_drain("the provider is stopping");
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
                        self.on_frame(frame).await;
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

    async fn on_frame(&mut self, frame: Message) {
        match frame {
            Message::Text(text) => match decode_coordinator(&text, self.shared.config.max_frame_bytes) {
                Ok(message) => {
                    self.dispatch(&message);
                    if let Some(stall) = self.probe.as_ref().and_then(|p| p.handled(&message)) {
                        tokio::time::sleep(stall).await;
                    }
                }
                Err(e) => self.refuse_frame(e),
            },
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
    }

    fn refuse_frame(&self, error: hearth_protocol::DecodeError) {
        tracing::warn!(%error, "refused a frame from the coordinator");
        self.outbox.send_priority(&ProviderMessage::Nak(error.to_nak()));
    }

    fn dispatch(&mut self, message: &CoordinatorMessage) {
        match message {
            CoordinatorMessage::HelloAck(_) => tracing::warn!("hello_ack in an established session ignored"),
            CoordinatorMessage::InferenceRequest(r) => self.relay.start(r.clone()),
            CoordinatorMessage::CancelRequest(c) => self.relay.cancel(c.clone()),
            CoordinatorMessage::Preflight(p) => {
                let ack = self.relay.preflight(p.clone());
                self.outbox.send_priority(&ProviderMessage::PreflightAck(ack));
            }
            CoordinatorMessage::WarmUp {} => self.warm_up(),
            CoordinatorMessage::Drain {} => self.begin_drain("the coordinator asked this provider to drain"),
            CoordinatorMessage::Nak(nak) => {
                tracing::warn!(in_reply_to = %nak.in_reply_to, code = %nak.error.code, "coordinator refused a frame: {}", nak.error.message);
                let text = format!("coordinator refused our {}: {}", nak.in_reply_to, nak.error.message);
                self.shared.status.update(|s| s.connection.last_error = Some(text));
            }
        }
    }

    fn begin_drain(&mut self, why: &str) {
        if self.drain.is_some() {
            return;
        }
        tracing::info!("draining: {why}");
        // Set before the drain task runs, so a request right behind the `drain` frame is refused.
        self.flags.set_draining();
        self.drain = Some(tokio::spawn(
            drain::run(self.shared.clone(), self.flags.clone(), self.relay.clone(), self.outbox.clone())
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
        let engine = self.shared.engine.clone();
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
