//! How the rest of the pool reaches one live provider session: the [`SessionLink`] and the two
//! kinds of message it carries (frames for the session's writer, a request to end the session).
//!
//! A bottom-level module: the session creates links, the registry keeps them in provider rows, the
//! relay and the pool's drain and shutdown send through them.

use hearth_protocol::{encode, CoordinatorMessage};
use tokio::sync::mpsc;

/// What a session's writer task is asked to do; it owns the socket's sink.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    Text(String),
    Close(u16, String),
}

/// Asks a session task to end (replaced, drain complete, pool shutdown, writer failure).
#[derive(Debug)]
pub(crate) struct EndSession {
    /// `None` drops the connection without a close frame.
    pub close: Option<(u16, String)>,
    pub reason: String,
}

/// The two queues of one live session.
#[derive(Debug, Clone)]
pub(crate) struct SessionLink {
    pub out: mpsc::UnboundedSender<WriterCmd>,
    pub ctl: mpsc::UnboundedSender<EndSession>,
}

impl SessionLink {
    /// Queues a frame for the writer; false when the session is already gone.
    pub(crate) fn send(&self, message: &CoordinatorMessage) -> bool {
        self.out.send(WriterCmd::Text(encode(message))).is_ok()
    }

    pub(crate) fn end(&self, close: Option<(u16, String)>, reason: impl Into<String>) {
        let _ = self.ctl.send(EndSession { close, reason: reason.into() });
    }
}
