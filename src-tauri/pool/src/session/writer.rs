//! The one task that owns a session's sink. Everyone else queues frames through a channel, so writes
//! never interleave and a stuck socket cannot stall the reader or a buyer.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use hearth_protocol::v2::{seal_request, SealedCoordinatorFrame, Sealer};
use hearth_protocol::{encode, CoordinatorMessage, InferenceRequest};
use tokio::sync::mpsc;

use super::strict::StaleDeadline;
use crate::link::{EndSession, WriterCmd};

/// Writes until told to close, the queue ends, or a write fails or times out (then the session is
/// asked to end, without a close frame: the link is presumed dead). On an encrypted session
/// (`sealer`) it seals each request as it writes it, so c2p seqs follow the wire order.
pub(crate) async fn run(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::UnboundedReceiver<WriterCmd>,
    ctl: mpsc::UnboundedSender<EndSession>,
    write_timeout: Duration,
    strict: Option<Arc<StaleDeadline>>,
    mut sealer: Option<Sealer>,
) {
    while let Some(cmd) = queue.recv().await {
        let text = match cmd {
            WriterCmd::Text(text) => text,
            WriterCmd::Request(request) => match seal(sealer.as_mut(), request) {
                Ok(text) => text,
                Err(reason) => {
                    let _ = ctl.send(EndSession { close: None, reason });
                    return;
                }
            },
            WriterCmd::SwitchEpoch { sealer: next, commit } => {
                sealer = Some(*next);
                commit
            }
            WriterCmd::Close(code, reason) => {
                let frame = Message::Close(Some(CloseFrame { code, reason: close_reason(&reason).into() }));
                let _ = tokio::time::timeout(write_timeout, sink.send(frame)).await;
                return;
            }
        };
        if let Some(deadline) = &strict {
            deadline.arm();
        }
        let failure = match tokio::time::timeout(write_timeout, sink.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("write failed: {e}")),
            Err(_) => Some(format!("write timed out after {write_timeout:?}")),
        };
        if let Some(reason) = failure {
            let _ = ctl.send(EndSession { close: None, reason });
            return;
        }
    }
}

/// A request as its frame: sealed under the session's c2p key when there is one.
fn seal(sealer: Option<&mut Sealer>, request: InferenceRequest) -> Result<String, String> {
    let Some(sealer) = sealer else { return Ok(encode(&CoordinatorMessage::InferenceRequest(request))) };
    let sealed = seal_request(sealer, &request).map_err(|e| format!("cannot seal a request: {e}"))?;
    Ok(encode(&SealedCoordinatorFrame::InferenceRequest(sealed)))
}

/// Close reasons are limited to 123 bytes by RFC 6455; cut on a character boundary.
pub(crate) fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
