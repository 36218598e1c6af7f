//! One provider's WebSocket session at `/ws/provider`: admission, the read loop, liveness, teardown.
//!
//! Per session there are two tasks: this one reads the socket and acts on each frame (every action is
//! a short, non-blocking table update or channel send), and the [`writer`] owns the sink. The
//! liveness check runs on its own tick inside the read loop's `select!`, so a silent socket cannot
//! keep it from firing. Once `hello` is accepted both tasks run in a `provider_session` span that
//! carries the provider id and the assigned session id, so log lines need not repeat them.

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
use hearth_protocol::{
    decode_provider, nak_code, CoordinatorMessage, DecodeError, DrainPhase, ErrorBody, Hello, HelloAck, Nak,
    ProviderMessage,
};
use tokio::sync::mpsc;
use tracing::Instrument;

use self::strict::{StaleDeadline, PONG_TIMEOUT_REASON};
use crate::events::PoolEvent;
use crate::link::{EndSession, SessionLink, WriterCmd};
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
    let hello =
        match handshake::await_hello(&mut socket, config.handshake_timeout, config.max_frame_bytes).await {
            Ok(hello) => hello,
            Err(refusal) => {
                tracing::warn!(reason = %refusal.reason, "provider handshake refused");
                if let Some((code, reason)) = refusal.close {
                    handshake::close_with(socket, code, &reason, write_timeout).await;
                }
                return;
            }
        };

    let assigned_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("provider_session", provider_id = %hello.provider_id, %assigned_id);
    run(shared, socket, hello, assigned_id).instrument(span).await
}

/// The admitted session, from `hello_ack` to teardown (in the session's span).
async fn run(shared: Arc<PoolState>, socket: WebSocket, hello: Hello, assigned_id: String) {
    let config = &shared.config;
    let write_timeout = config.write_timeout;
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::unbounded_channel();
    let (ctl, mut ctl_rx) = mpsc::unbounded_channel();
    let strict = config.strict.then(|| Arc::new(StaleDeadline::new(write_timeout)));
    let writer =
        tokio::spawn(writer::run(sink, out_rx, ctl.clone(), write_timeout, strict.clone()).in_current_span());

    // The ack is queued before the session becomes visible, so it is always the first frame.
    let link = SessionLink { out: out.clone(), ctl };
    link.send(&CoordinatorMessage::HelloAck(HelloAck::accepted(
        assigned_id.clone(),
        config.heartbeat_interval_s,
    )));
    if let Some(old) = shared.admit(&hello, &assigned_id, link) {
        old.end(Some((NORMAL_CLOSURE, "replaced by a newer session".into())), "replaced by a newer session");
    }
    tracing::info!(model = %hello.model_id, "provider connected");
    shared.emit(PoolEvent::ProviderConnected {
        provider_id: hello.provider_id.clone(),
        assigned_id: assigned_id.clone(),
    });

    let mut session = Session { shared: Arc::clone(&shared), hello, assigned_id, out, strict };
    let (end, stream_open) = session.read_loop(&mut stream, &mut ctl_rx).await;
    session.teardown(end, writer, stream_open.then_some(stream)).await;
}

struct Session {
    shared: Arc<PoolState>,
    hello: Hello,
    assigned_id: String,
    out: mpsc::UnboundedSender<WriterCmd>,
    strict: Option<Arc<StaleDeadline>>,
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
        let message = match decode_provider(text, self.shared.config.max_frame_bytes) {
            Ok(message) => message,
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
        self.shared.emit(PoolEvent::FrameReceived {
            provider_id: self.provider_id().to_string(),
            type_name: message.type_name().to_string(),
            at: *last_activity,
        });
        let (shared, pid, aid) = (&self.shared, self.hello.provider_id.as_str(), self.assigned_id.as_str());
        match message {
            ProviderMessage::Hello(_) => self.nak(Nak {
                in_reply_to: "hello".into(),
                error: ErrorBody::new(nak_code::UNEXPECTED_MESSAGE, "hello after the handshake"),
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
