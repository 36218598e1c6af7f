//! How the rest of the pool reaches one live provider session: the [`SessionLink`] and the two
//! kinds of message it carries (frames for the session's writer, a request to end the session).
//!
//! A bottom-level module: the session creates links, the registry keeps them in provider rows, the
//! relay and the pool's drain and shutdown send through them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hearth_protocol::v2::Sealer;
use hearth_protocol::{encode, CoordinatorMessage, InferenceRequest};
use tokio::sync::mpsc;

/// How long a finished request's stream flag is kept: a late sealed frame for it must still be
/// authenticated (PROTOCOL-V2.md §2.7, five minutes).
const RETIRED_KEPT: Duration = Duration::from_secs(300);
/// Retired entries are swept only once the map holds this many, not on every request.
const SWEEP_ABOVE: usize = 1024;

/// What a session's writer task is asked to do; it owns the socket's sink.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    Text(String),
    /// Sealed on an encrypted session, plaintext otherwise.
    Request(InferenceRequest),
    /// Write this (already sealed) `aead_rekey_commit`, then seal with `sealer` from now on.
    SwitchEpoch {
        sealer: Box<Sealer>,
        commit: String,
    },
    Close(u16, String),
}

/// Asks a session task to end (replaced, drain complete, pool shutdown, writer failure).
#[derive(Debug)]
pub(crate) struct EndSession {
    /// `None` drops the connection without a close frame.
    pub close: Option<(u16, String)>,
    pub reason: String,
}

/// What an encrypted session's reader needs to know about the requests sent on it: each one's
/// stream flag (its frames' AAD binds it) and how many were sent this key epoch.
#[derive(Debug, Default)]
pub(crate) struct SentRequests {
    /// Request id → (stream flag, when it ended).
    streams: Mutex<HashMap<String, (bool, Option<Instant>)>>,
    this_epoch: AtomicU64,
}

impl SentRequests {
    fn sent(&self, request: &InferenceRequest) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if streams.len() >= SWEEP_ABOVE {
            streams.retain(|_, (_, ended)| ended.is_none_or(|t| t.elapsed() < RETIRED_KEPT));
        }
        streams.insert(request.request_id.clone(), (request.stream, None));
        self.this_epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The stream flag of a request sent on this session (and not long retired).
    pub(crate) fn stream_of(&self, request_id: &str) -> Option<bool> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner).get(request_id).map(|(s, _)| *s)
    }

    pub(crate) fn ended(&self, request_id: &str) {
        if let Some(entry) = self.streams.lock().unwrap_or_else(PoisonError::into_inner).get_mut(request_id) {
            entry.1 = Some(Instant::now());
        }
    }

    /// Requests dispatched since the last rekey.
    pub(crate) fn this_epoch(&self) -> u64 {
        self.this_epoch.load(Ordering::Relaxed)
    }

    pub(crate) fn new_epoch(&self) {
        self.this_epoch.store(0, Ordering::Relaxed);
    }
}

/// The two queues of one live session.
#[derive(Debug, Clone)]
pub(crate) struct SessionLink {
    pub out: mpsc::UnboundedSender<WriterCmd>,
    pub ctl: mpsc::UnboundedSender<EndSession>,
    pub sent: Arc<SentRequests>,
}

impl SessionLink {
    /// Queues a frame for the writer; false when the session is already gone.
    pub(crate) fn send(&self, message: &CoordinatorMessage) -> bool {
        let cmd = match message {
            CoordinatorMessage::InferenceRequest(request) => {
                self.sent.sent(request);
                WriterCmd::Request(request.clone())
            }
            other => WriterCmd::Text(encode(other)),
        };
        self.out.send(cmd).is_ok()
    }

    pub(crate) fn end(&self, close: Option<(u16, String)>, reason: impl Into<String>) {
        let _ = self.ctl.send(EndSession { close, reason: reason.into() });
    }
}
