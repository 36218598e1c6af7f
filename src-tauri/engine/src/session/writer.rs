//! The writer task: the only owner of the socket's sink. Everyone else hands it frames through an
//! [`Outbox`]. Heartbeats and state updates go in the priority lane so a burst of response chunks
//! never delays liveness; every write and flush has a deadline, and a missed deadline ends the
//! session (the provider reconnects) instead of hanging.
//!
//! On a v2 session the writer also seals: it is the one place p2c frames are put in order, so it
//! owns the p2c [`Sealer`] and numbers chunks and ends exactly as they go on the wire (the local
//! pool, as a strict peer, accepts only the next seq). Sealing a frame costs microseconds; no
//! reader waits on it.

use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hearth_protocol::v2::{seal_response, SealedProviderFrame, SealedRekey, Sealer};
use hearth_protocol::{encode, ProviderMessage};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::connect::Socket;
use super::link_error;

/// Frames written in one go before a flush.
const BATCH: usize = 64;

/// What the writer is handed.
#[derive(Debug)]
enum Outgoing {
    /// A frame ready to write.
    Frame(Message),
    /// A chunk or end of a request with this stream flag: sealed on an encrypted session.
    Response { message: ProviderMessage, stream: bool },
    /// The session's encrypted leg is accepted: seal from now on.
    UseLeg(Box<WriterLeg>),
    /// A rekey committed: write the (already sealed) `aead_rekey_committed`, then seal with the
    /// new epoch's sealer and never the old one.
    SwitchEpoch { sealer: Box<Sealer>, committed: SealedRekey },
}

/// What the writer needs to seal.
#[derive(Debug)]
pub struct WriterLeg {
    pub sealer: Sealer,
    /// Chunks go in the per-request envelope (`response_chunk_plaintext_envelope`).
    pub envelope: bool,
}

/// A frame of the bulk lane, with the place it holds in its request's window of unwritten chunks
/// (given back once the frame is written, see [`Outbox::send_in_window`]).
type Bulk = (Outgoing, Option<OwnedSemaphorePermit>);

/// A cheap, cloneable handle for sending frames to the session's writer.
#[derive(Clone, Debug)]
pub struct Outbox {
    priority: mpsc::UnboundedSender<Message>,
    bulk: mpsc::UnboundedSender<Bulk>,
    encrypted: Arc<AtomicBool>,
}

impl Outbox {
    pub fn new() -> (Self, OutboxReceiver) {
        let (priority, priority_rx) = mpsc::unbounded_channel();
        let (bulk, bulk_rx) = mpsc::unbounded_channel();
        let encrypted = Arc::new(AtomicBool::new(false));
        (Self { priority, bulk, encrypted }, OutboxReceiver { priority: priority_rx, bulk: bulk_rx })
    }

    /// Liveness and state frames. Returns false once the session's writer is gone.
    pub fn send_priority(&self, message: &ProviderMessage) -> bool {
        self.send_priority_text(encode(message))
    }

    /// A frame already serialised (the v2 initial `auth_request`, whose exact text is hashed).
    pub fn send_priority_text(&self, text: String) -> bool {
        self.priority.send(Message::text(text)).is_ok()
    }

    /// Frames that keep their order behind the responses already queued (a drain's status).
    pub fn send(&self, message: &ProviderMessage) -> bool {
        self.bulk.send((Outgoing::Frame(Message::text(encode(message))), None)).is_ok()
    }

    /// A chunk or end of a request whose `stream` flag is given (the AAD binds it on v2).
    pub fn send_response(&self, message: ProviderMessage, stream: bool) -> bool {
        self.send_in_window(message, stream, None)
    }

    /// Like [`Outbox::send_response`], holding `place` (a permit of the request's window) until
    /// the writer has written the frame: a request whose chunks are not being written cannot queue
    /// more than its window, so a coordinator that stops reading slows the job, not the
    /// provider's memory.
    pub fn send_in_window(
        &self,
        message: ProviderMessage,
        stream: bool,
        place: Option<OwnedSemaphorePermit>,
    ) -> bool {
        self.bulk.send((Outgoing::Response { message, stream }, place)).is_ok()
    }

    /// Seal every response from now on. Queued before any request can arrive.
    pub fn use_leg(&self, leg: WriterLeg) {
        self.encrypted.store(true, Ordering::Relaxed);
        let _ = self.bulk.send((Outgoing::UseLeg(Box::new(leg)), None));
    }

    /// Behind everything already queued (sealed under the old keys): the committed echo, then
    /// the new epoch.
    pub fn switch_epoch(&self, sealer: Sealer, committed: SealedRekey) {
        let _ = self.bulk.send((Outgoing::SwitchEpoch { sealer: Box::new(sealer), committed }, None));
    }

    /// Whether this session's responses are sealed.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted.load(Ordering::Relaxed)
    }

    /// Asks the writer to send a close frame after what is already queued in the priority lane,
    /// then stop.
    pub fn close(&self, code: u16, reason: &str) {
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_string().into() };
        let _ = self.priority.send(Message::Close(Some(frame)));
    }

    /// Like [`Outbox::close`], but behind everything already queued in the bulk lane (a drain's
    /// close must follow the end frames of the jobs it waited for).
    pub fn close_after_pending(&self, code: u16, reason: &str) {
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_string().into() };
        let _ = self.bulk.send((Outgoing::Frame(Message::Close(Some(frame))), None));
    }

    pub fn is_closed(&self) -> bool {
        self.bulk.is_closed()
    }
}

pub struct OutboxReceiver {
    priority: mpsc::UnboundedReceiver<Message>,
    bulk: mpsc::UnboundedReceiver<Bulk>,
}

impl OutboxReceiver {
    async fn next(&mut self) -> Option<Bulk> {
        tokio::select! {
            biased;
            Some(m) = self.priority.recv() => Some((Outgoing::Frame(m), None)),
            Some(b) = self.bulk.recv() => Some(b),
            else => None,
        }
    }

    fn try_next(&mut self) -> Option<Bulk> {
        self.priority.try_recv().map(|m| (Outgoing::Frame(m), None)).or_else(|_| self.bulk.try_recv()).ok()
    }
}

/// Why the writer stopped.
#[derive(Debug)]
pub enum WriterExit {
    /// We sent a close frame (drain or shutdown).
    Closed,
    /// Every outbox handle was dropped.
    Idle,
    /// A write or flush missed its deadline.
    Timeout,
    /// The socket failed; the text says how, for the provider's status.
    Failed(String),
}

pub async fn run(
    mut sink: SplitSink<Socket, Message>,
    mut rx: OutboxReceiver,
    write_timeout: Duration,
    user_timeout: Duration,
) -> WriterExit {
    // The window places of the frames fed since the last flush: given back once they are written.
    let mut written = Vec::with_capacity(BATCH);
    let mut leg: Option<WriterLeg> = None;
    loop {
        let Some((first, place)) = rx.next().await else { return WriterExit::Idle };
        let first = match prepare(first, &mut leg) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(exit) => return exit,
        };
        let mut closing = matches!(first, Message::Close(_));
        if let Err(exit) = feed(&mut sink, first, write_timeout, user_timeout).await {
            return exit;
        }
        written.extend(place);
        let mut batched = 1;
        while !closing && batched < BATCH {
            let Some((next, place)) = rx.try_next() else { break };
            let next = match prepare(next, &mut leg) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(exit) => return exit,
            };
            closing = matches!(next, Message::Close(_));
            if let Err(exit) = feed(&mut sink, next, write_timeout, user_timeout).await {
                return exit;
            }
            written.extend(place);
            batched += 1;
        }
        match tokio::time::timeout(write_timeout, sink.flush()).await {
            Err(_) => return WriterExit::Timeout,
            Ok(Err(e)) => return WriterExit::Failed(link_error::describe(&e, "writing to", user_timeout)),
            Ok(Ok(())) => written.clear(),
        }
        if closing {
            return WriterExit::Closed;
        }
    }
}

/// Turns what was queued into the frame to write (sealing it on an encrypted session); `None` for
/// the writer's own bookkeeping items.
fn prepare(item: Outgoing, leg: &mut Option<WriterLeg>) -> Result<Option<Message>, WriterExit> {
    Ok(match item {
        Outgoing::Frame(m) => Some(m),
        Outgoing::UseLeg(l) => {
            *leg = Some(*l);
            None
        }
        Outgoing::SwitchEpoch { sealer, committed } => {
            let text = encode(&SealedProviderFrame::AeadRekeyCommitted(committed));
            if let Some(leg) = leg.as_mut() {
                leg.sealer = *sealer;
            }
            Some(Message::text(text))
        }
        Outgoing::Response { message, stream } => match leg.as_mut() {
            None => Some(Message::text(encode(&message))),
            Some(leg) => Some(Message::text(seal(leg, &message, stream)?)),
        },
    })
}

/// A chunk or end as its sealed frame.
fn seal(leg: &mut WriterLeg, message: &ProviderMessage, stream: bool) -> Result<String, WriterExit> {
    match seal_response(&mut leg.sealer, message, stream, leg.envelope) {
        None => Ok(encode(message)),
        Some(Ok(frame)) => Ok(encode(&frame)),
        Some(Err(e)) => Err(WriterExit::Failed(e.to_string())),
    }
}

async fn feed(
    sink: &mut SplitSink<Socket, Message>,
    message: Message,
    write_timeout: Duration,
    user_timeout: Duration,
) -> Result<(), WriterExit> {
    match tokio::time::timeout(write_timeout, sink.feed(message)).await {
        Err(_) => Err(WriterExit::Timeout),
        Ok(Err(e)) => Err(WriterExit::Failed(link_error::describe(&e, "writing to", user_timeout))),
        Ok(Ok(())) => Ok(()),
    }
}
