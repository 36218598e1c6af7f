//! The receiver task: the only reader of the socket. It does nothing but move each frame onto an
//! unbounded queue and read the next one, so no slow handler can ever back TCP up and get the
//! provider dropped by the coordinator.

use std::time::Duration;

use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::connect::Socket;
use super::link_error;

/// What the receiver hands the handler.
#[derive(Debug)]
pub enum Inbound {
    Frame(Message),
    /// The stream ended: the peer closed, or the transport failed (with the error).
    Ended(Option<String>),
}

/// `user_timeout` (the socket's `TCP_USER_TIMEOUT`) only words the error when the link dies.
pub async fn run(
    mut stream: SplitStream<Socket>,
    queue: mpsc::UnboundedSender<Inbound>,
    user_timeout: Duration,
) {
    while let Some(next) = stream.next().await {
        match next {
            Ok(frame) => {
                if queue.send(Inbound::Frame(frame)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ =
                    queue.send(Inbound::Ended(Some(link_error::describe(&e, "reading from", user_timeout))));
                return;
            }
        }
    }
    let _ = queue.send(Inbound::Ended(None));
}
