//! The one task that owns a session's sink. Everyone else queues frames through a channel, so writes
//! never interleave and a stuck socket cannot stall the reader or a buyer.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::mpsc;

use super::strict::StaleDeadline;
use crate::link::{EndSession, WriterCmd};

/// Writes until told to close, the queue ends, or a write fails or times out (then the session is
/// asked to end, without a close frame: the link is presumed dead).
pub(crate) async fn run(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::UnboundedReceiver<WriterCmd>,
    ctl: mpsc::UnboundedSender<EndSession>,
    write_timeout: Duration,
    strict: Option<Arc<StaleDeadline>>,
) {
    while let Some(cmd) = queue.recv().await {
        let (message, closing) = match cmd {
            WriterCmd::Text(text) => {
                if let Some(deadline) = &strict {
                    deadline.arm();
                }
                (Message::Text(text.into()), false)
            }
            WriterCmd::Close(code, reason) => {
                (Message::Close(Some(CloseFrame { code, reason: close_reason(&reason).into() })), true)
            }
        };
        let failure = match tokio::time::timeout(write_timeout, sink.send(message)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("write failed: {e}")),
            Err(_) => Some(format!("write timed out after {write_timeout:?}")),
        };
        if closing {
            return;
        }
        if let Some(reason) = failure {
            let _ = ctl.send(EndSession { close: None, reason });
            return;
        }
    }
}

/// Close reasons are limited to 123 bytes by RFC 6455; cut on a character boundary.
pub(crate) fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
