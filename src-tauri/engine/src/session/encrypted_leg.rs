//! The handler's half of a v2 session's encrypted leg ([`LegReader`]): it opens the coordinator's
//! sealed frames in the order they were read, strictly by seq as the reference provider does, and
//! answers the in-band rekey. The writer owns the other half (the p2c sealer, see `writer`).

use hearth_protocol::v2::{
    open_request, HandshakeError, LegError, Opener, ProviderRekey, RekeyFailure, RekeyRequest, RekeyResponse,
    SealedRekey, SealedRequest, Sealer, SessionIds,
};
use hearth_protocol::InferenceRequest;

pub(super) struct LegReader {
    opener: Opener,
    ids: SessionIds,
    kid: String,
    rekey_negotiated: bool,
    pending: Option<ProviderRekey>,
}

impl LegReader {
    pub(super) fn new(opener: Opener, ids: SessionIds, rekey_negotiated: bool) -> Self {
        let kid = opener.kid().to_string();
        Self { opener, ids, kid, rekey_negotiated, pending: None }
    }

    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    /// Opens a sealed `inference_request` into the request the relay serves.
    pub(super) fn open_request(&mut self, sealed: &SealedRequest) -> Result<InferenceRequest, LegError> {
        open_request(&mut self.opener, sealed)
    }

    /// `aead_rekey_request`: a fresh key pair and the new kid, or why not.
    pub(super) fn on_rekey_request(
        &mut self,
        request: &RekeyRequest,
    ) -> Result<RekeyResponse, HandshakeError> {
        if self.pending.is_some() {
            return Err(HandshakeError::Invalid {
                frame: "aead_rekey_request",
                problem: "a rekey is already in progress".into(),
            });
        }
        let now = time::OffsetDateTime::now_utc();
        let (pending, response) =
            ProviderRekey::respond(request, &self.ids, &self.kid, self.rekey_negotiated, now)?;
        self.pending = Some(pending);
        Ok(response)
    }

    /// `aead_rekey_commit`: switches this half to the new epoch and returns the writer's new sealer
    /// with the committed echo it must write first.
    pub(super) fn on_rekey_commit(
        &mut self,
        commit: &SealedRekey,
    ) -> Result<(Sealer, SealedRekey), RekeyFailure> {
        let pending = self.pending.take().ok_or_else(|| {
            RekeyFailure::Handshake(HandshakeError::Invalid {
                frame: "aead_rekey_commit",
                problem: "no rekey was requested".into(),
            })
        })?;
        if pending.rekey_id() != commit.rekey_id {
            return Err(RekeyFailure::Handshake(HandshakeError::Invalid {
                frame: "aead_rekey_commit",
                problem: "its rekey_id is not the one in progress".into(),
            }));
        }
        let (committed, epoch) = pending.commit(commit)?;
        self.opener = epoch.opener;
        self.kid = epoch.keys.kid.clone();
        Ok((epoch.sealer, committed))
    }
}
