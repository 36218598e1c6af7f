//! The writer task: the only owner of the socket's sink. Everyone else hands it frames through an
//! [`Outbox`]. Heartbeats and state updates go in the priority lane so a burst of response chunks
//! never delays liveness; every write and flush has a deadline, and a missed deadline ends the
//! session (the provider reconnects) instead of hanging.

use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use hearth_protocol::{encode, ProviderMessage};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::connect::Socket;
use super::link_error;

/// Frames written in one go before a flush.
const BATCH: usize = 64;

/// A cheap, cloneable handle for sending frames to the session's writer.
#[derive(Clone, Debug)]
pub struct Outbox {
    priority: mpsc::UnboundedSender<Message>,
    bulk: mpsc::UnboundedSender<Message>,
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
        self.bulk.send(Message::text(encode(message))).is_ok()
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
        let _ = self.bulk.send(Message::Close(Some(frame)));
    }

    pub fn is_closed(&self) -> bool {
        self.bulk.is_closed()
    }
}

pub struct OutboxReceiver {
    priority: mpsc::UnboundedReceiver<Message>,
    bulk: mpsc::UnboundedReceiver<Message>,
}

impl OutboxReceiver {
    async fn next(&mut self) -> Option<Message> {
        tokio::select! {
            biased;
            Some(m) = self.priority.recv() => Some(m),
            Some(m) = self.bulk.recv() => Some(m),
            else => None,
        }
    }

    fn try_next(&mut self) -> Option<Message> {
        self.priority.try_recv().or_else(|_| self.bulk.try_recv()).ok()
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
    loop {
        let Some(first) = rx.next().await else { return WriterExit::Idle };
        let mut closing = matches!(first, Message::Close(_));
        if let Err(exit) = feed(&mut sink, first, write_timeout, user_timeout).await {
            return exit;
        }
        let mut batched = 1;
        while !closing && batched < BATCH {
            let Some(next) = rx.try_next() else { break };
            closing = matches!(next, Message::Close(_));
            if let Err(exit) = feed(&mut sink, next, write_timeout, user_timeout).await {
                return exit;
            }
            batched += 1;
        }
        match tokio::time::timeout(write_timeout, sink.flush()).await {
            Err(_) => return WriterExit::Timeout,
            Ok(Err(e)) => return WriterExit::Failed(link_error::describe(&e, "writing to", user_timeout)),
            Ok(Ok(())) => {}
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
