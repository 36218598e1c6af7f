//! The writer task: the only owner of the socket's sink. Everyone else hands it frames through an
//! [`Outbox`]. Heartbeats and state updates go in the priority lane so a burst of response chunks
//! never delays liveness; every write and flush has a deadline, and a missed deadline ends the
//! session (the provider reconnects) instead of hanging.

use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use hearth_protocol::{encode, ProviderMessage};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::connect::Socket;
use super::link_error;

/// Frames written in one go before a flush.
const BATCH: usize = 64;

/// A frame of the bulk lane, with the place it holds in its request's window of unwritten chunks
/// (given back once the frame is written, see [`Outbox::send_in_window`]).
type Bulk = (Message, Option<OwnedSemaphorePermit>);

/// A cheap, cloneable handle for sending frames to the session's writer.
#[derive(Clone, Debug)]
pub struct Outbox {
    priority: mpsc::UnboundedSender<Message>,
    bulk: mpsc::UnboundedSender<Bulk>,
}

impl Outbox {
    pub fn new() -> (Self, OutboxReceiver) {
        let (priority, priority_rx) = mpsc::unbounded_channel();
        let (bulk, bulk_rx) = mpsc::unbounded_channel();
        (Self { priority, bulk }, OutboxReceiver { priority: priority_rx, bulk: bulk_rx })
    }

    /// Liveness and state frames. Returns false once the session's writer is gone.
    pub fn send_priority(&self, message: &ProviderMessage) -> bool {
        self.priority.send(Message::text(encode(message))).is_ok()
    }

    /// Response chunks and ends, in order.
    pub fn send(&self, message: &ProviderMessage) -> bool {
        self.send_in_window(message, None)
    }

    /// Like [`Outbox::send`], holding `place` (a permit of the request's window) until the writer
    /// has written the frame: a request whose chunks are not being written cannot queue more than
    /// its window, so a coordinator that stops reading slows the job, not the provider's memory.
    pub fn send_in_window(&self, message: &ProviderMessage, place: Option<OwnedSemaphorePermit>) -> bool {
        self.bulk.send((Message::text(encode(message)), place)).is_ok()
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
        let _ = self.bulk.send((Message::Close(Some(frame)), None));
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
            Some(m) = self.priority.recv() => Some((m, None)),
            Some(b) = self.bulk.recv() => Some(b),
            else => None,
        }
    }

    fn try_next(&mut self) -> Option<Bulk> {
        self.priority.try_recv().map(|m| (m, None)).or_else(|_| self.bulk.try_recv()).ok()
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
    loop {
        let Some((first, place)) = rx.next().await else { return WriterExit::Idle };
        let mut closing = matches!(first, Message::Close(_));
        if let Err(exit) = feed(&mut sink, first, write_timeout, user_timeout).await {
            return exit;
        }
        written.extend(place);
        let mut batched = 1;
        while !closing && batched < BATCH {
            let Some((next, place)) = rx.try_next() else { break };
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
