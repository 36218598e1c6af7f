//! The pool's half of a v2 session's encrypted leg ([`SessionLeg`]): it opens the provider's sealed
//! chunks and ends strictly in seq order (a stricter peer than production's 4096-frame window; an
//! in-order provider passes both) and runs the in-band rekey from the coordinator's side. The
//! session's writer owns the c2p sealer.
//!
//! Every failure here is a Pillar-B session failure: the caller drops the connection without a
//! close code, as production does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_protocol::v2::{
    open_response, CommitSent, CoordinatorRekey, Leg, OpenedResponse, Opener, RekeyRequest, RekeyResponse,
    SealedProviderFrame, SealedRekey, Sealer, SeqPolicy, SessionIds,
};
use hearth_protocol::{ResponseChunk, ResponseEnd};

use crate::link::SentRequests;

/// What a sealed frame held.
pub(super) enum Opened {
    Chunk(ResponseChunk),
    End(ResponseEnd),
    /// The provider echoed the rekey proof: the new epoch is in force.
    Committed,
}

enum Rekey {
    Idle,
    Requested { pending: Box<CoordinatorRekey>, deadline: Instant },
    Committed { sent: Box<CommitSent>, deadline: Instant },
}

pub(super) struct SessionLeg {
    opener: Opener,
    ids: SessionIds,
    kid: String,
    envelope: bool,
    rekey_negotiated: bool,
    sent: Arc<SentRequests>,
    epoch_started: Instant,
    rekey: Rekey,
    rekeys: u64,
}

impl SessionLeg {
    /// Splits an accepted leg: the sealer for the writer, the rest here.
    pub(super) fn new(leg: &Leg, sent: Arc<SentRequests>) -> (Self, Sealer) {
        let (sealer, opener) = leg.coordinator_halves(SeqPolicy::Strict);
        let this = Self {
            opener,
            ids: leg.ids.clone(),
            kid: leg.keys.kid.clone(),
            envelope: leg.envelope,
            rekey_negotiated: leg.rekey,
            sent,
            epoch_started: Instant::now(),
            rekey: Rekey::Idle,
            rekeys: 0,
        };
        (this, sealer)
    }

    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    pub(super) fn rekeys(&self) -> u64 {
        self.rekeys
    }

    pub(super) fn is_rekeying(&self) -> bool {
        !matches!(self.rekey, Rekey::Idle)
    }

    /// Opens a sealed frame from the provider; the error says why the session must be dropped.
    pub(super) fn open(&mut self, frame: SealedProviderFrame) -> Result<Opened, String> {
        let (response, is_chunk) = match frame {
            SealedProviderFrame::AeadRekeyCommitted(committed) => return self.on_committed(&committed),
            SealedProviderFrame::InferenceResponseChunk(r) => (r, true),
            SealedProviderFrame::InferenceResponseEnd(r) => (r, false),
        };
        let request_id = response.request_id.as_str();
        let Some(stream) = self.sent.stream_of(request_id) else {
            return Err(format!("encrypted frame for unknown request {request_id}"));
        };
        let opened = open_response(&mut self.opener, &response, is_chunk, stream, self.envelope)
            .map_err(|e| format!("sealed frame for {request_id} refused: {e}"))?;
        Ok(match opened {
            OpenedResponse::Chunk(chunk) => Opened::Chunk(chunk),
            OpenedResponse::End(end) => {
                self.sent.ended(request_id);
                Opened::End(end)
            }
        })
    }

    /// Why a rekey is due now, if it is (the production thresholds: requests this epoch, age).
    pub(super) fn rekey_due(&self, after_requests: u64, after: Duration) -> Option<&'static str> {
        if self.is_rekeying() {
            return None;
        }
        if self.sent.this_epoch() >= after_requests {
            Some("request_threshold")
        } else if self.epoch_started.elapsed() >= after {
            Some("age_threshold")
        } else {
            None
        }
    }

    /// Whether the provider can rekey in band at all (without it, the session is closed instead).
    pub(super) fn can_rekey(&self) -> bool {
        self.rekey_negotiated
    }

    /// Starts a rekey: the plaintext request to send.
    pub(super) fn start_rekey(&mut self, reason: &str, timeout: Duration) -> RekeyRequest {
        let expires = time::OffsetDateTime::now_utc() + timeout;
        let expires_at =
            expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| String::new());
        let (pending, request) =
            CoordinatorRekey::start(&self.ids, &self.kid, reason, self.envelope, expires_at);
        self.rekey = Rekey::Requested { pending: Box::new(pending), deadline: Instant::now() + timeout };
        request
    }

    /// The provider's response: the commit to write, and the sealer the writer switches to.
    pub(super) fn on_rekey_response(
        &mut self,
        response: &RekeyResponse,
    ) -> Result<(Sealer, SealedRekey), String> {
        let Rekey::Requested { pending, deadline } = std::mem::replace(&mut self.rekey, Rekey::Idle) else {
            return Err("aead_rekey_response without a rekey in progress".into());
        };
        let (sent, sealer) = pending.on_response(response).map_err(|e| format!("rekey failed: {e}"))?;
        let commit = sent.commit.clone();
        self.rekey = Rekey::Committed { sent: Box::new(sent), deadline };
        Ok((sealer, commit))
    }

    fn on_committed(&mut self, committed: &SealedRekey) -> Result<Opened, String> {
        let Rekey::Committed { sent, .. } = std::mem::replace(&mut self.rekey, Rekey::Idle) else {
            return Err("aead_rekey_committed without a commit".into());
        };
        let (keys, opener) =
            sent.on_committed(committed, SeqPolicy::Strict).map_err(|e| format!("rekey failed: {e}"))?;
        self.opener = opener;
        self.kid = keys.kid;
        self.epoch_started = Instant::now();
        self.sent.new_epoch();
        self.rekeys += 1;
        Ok(Opened::Committed)
    }

    /// A rekey that did not complete in time: the session must end.
    pub(super) fn rekey_timed_out(&self) -> bool {
        match &self.rekey {
            Rekey::Idle => false,
            Rekey::Requested { deadline, .. } | Rekey::Committed { deadline, .. } => {
                Instant::now() > *deadline
            }
        }
    }
}
