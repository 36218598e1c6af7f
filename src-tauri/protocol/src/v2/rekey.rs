//! The in-band AEAD rekey (PROTOCOL-V2.md §2.8), both ends:
//!
//! 1. C→P `aead_rekey_request` (plaintext): a fresh coordinator key and the old kid;
//! 2. P→C `aead_rekey_response` (plaintext): a fresh provider key and the new kid;
//! 3. C→P `aead_rekey_commit`: the proof, sealed with the **new** c2p key at seq 0;
//! 4. P→C `aead_rekey_committed`: the same proof bytes, sealed with the new p2c key at seq 0.
//!
//! Then both counters continue at 1 under the new keys; the old ones are never used again.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::aad::Direction;
use super::envelope::{FrameContext, Opener, Sealer, SeqPolicy};
use super::error::{HandshakeError, LegError};
use super::keys::{self, KeyPair, KeySet, SessionIds, SUITE};
use super::messages::{RekeyProof, RekeyRequest, RekeyResponse, SealedRekey, REKEY_VERSION};

const COMMIT: &str = "aead_rekey_commit";
const COMMITTED: &str = "aead_rekey_committed";

fn context<'a>(frame_type: &'static str, rekey_id: &'a str) -> FrameContext<'a> {
    FrameContext { frame_type, request_id: rekey_id, stream: false }
}

fn invalid(frame: &'static str, problem: impl Into<String>) -> HandshakeError {
    HandshakeError::Invalid { frame, problem: problem.into() }
}

/// A new epoch both sides have committed to: its keys, and the two halves that continue at seq 1.
pub struct NewEpoch {
    pub keys: KeySet,
    pub sealer: Sealer,
    pub opener: Opener,
}

/// The provider's side of one rekey, between its response and the coordinator's commit.
pub struct ProviderRekey {
    request: RekeyRequest,
    ids: SessionIds,
    new_kid: String,
    provider_public: String,
    keys: KeySet,
}

impl ProviderRekey {
    /// Checks the request as the Swift provider does and derives the new keys.
    /// `negotiated`: whether `in_band_aead_rekey_v1` was accepted for this session.
    pub fn respond(
        request: &RekeyRequest,
        ids: &SessionIds,
        current_kid: &str,
        negotiated: bool,
        now: OffsetDateTime,
    ) -> Result<(Self, RekeyResponse), HandshakeError> {
        Self::respond_with_key(request, ids, current_kid, negotiated, now, KeyPair::generate())
    }

    pub fn respond_with_key(
        request: &RekeyRequest,
        ids: &SessionIds,
        current_kid: &str,
        negotiated: bool,
        now: OffsetDateTime,
        key: KeyPair,
    ) -> Result<(Self, RekeyResponse), HandshakeError> {
        const FRAME: &str = "aead_rekey_request";
        if !negotiated {
            return Err(invalid(FRAME, "in-band rekey was not negotiated for this session"));
        }
        if request.version != REKEY_VERSION {
            return Err(invalid(FRAME, format!("version {} is not 1", request.version)));
        }
        if request.assigned_id != ids.assigned_id {
            return Err(invalid(FRAME, "assigned_id is not this session's"));
        }
        if !matches!(request.reason.as_str(), "request_threshold" | "age_threshold") {
            return Err(invalid(FRAME, format!("unknown reason {:?}", request.reason)));
        }
        if request.old_kid != current_kid {
            return Err(invalid(FRAME, "old_kid is not the current key"));
        }
        if request.selected_aead != SUITE {
            return Err(HandshakeError::Suite(request.selected_aead.clone()));
        }
        let expires = OffsetDateTime::parse(&request.expires_at, &Rfc3339)
            .map_err(|e| invalid(FRAME, format!("expires_at is not RFC 3339: {e}")))?;
        if now >= expires {
            return Err(invalid(FRAME, "it expired before it arrived"));
        }
        let theirs = keys::parse_public_key(&request.coordinator_ecdh_public_key)?;
        let shared = key.agree(&theirs)?;
        let new_keys = keys::derive(&shared, ids, &key.public_bytes(), &theirs);
        let response = RekeyResponse {
            version: REKEY_VERSION,
            rekey_id: request.rekey_id.clone(),
            assigned_id: ids.assigned_id.clone(),
            old_kid: current_kid.to_string(),
            new_kid: new_keys.kid.clone(),
            provider_ecdh_public_key: key.public_b64u(),
        };
        let pending = Self {
            request: request.clone(),
            ids: ids.clone(),
            new_kid: new_keys.kid.clone(),
            provider_public: key.public_b64u(),
            keys: new_keys,
        };
        Ok((pending, response))
    }

    pub fn rekey_id(&self) -> &str {
        &self.request.rekey_id
    }

    /// Opens the commit with the new keys, checks every proof field, and seals the byte-identical
    /// echo. Returns the `aead_rekey_committed` frame and the new epoch (both counters at 1).
    pub fn commit(self, frame: &SealedRekey) -> Result<(SealedRekey, NewEpoch), RekeyFailure> {
        let mut opener = Opener::new(&self.keys, Direction::C2p, &self.ids, SeqPolicy::Strict);
        let ctx = context(COMMIT, &self.request.rekey_id);
        let proof_bytes = opener.open(&frame.enc, ctx)?;
        let proof: RekeyProof = serde_json::from_slice(&proof_bytes)
            .map_err(|e| LegError::Plaintext { what: "aead_rekey_proof", problem: e.to_string() })?;
        let expected = RekeyProof {
            version: REKEY_VERSION,
            rekey_id: self.request.rekey_id.clone(),
            provider_id: self.ids.provider_id.clone(),
            assigned_id: self.ids.assigned_id.clone(),
            old_kid: self.request.old_kid.clone(),
            new_kid: self.new_kid.clone(),
            provider_ecdh_public_key: self.provider_public.clone(),
            coordinator_ecdh_public_key: self.request.coordinator_ecdh_public_key.clone(),
            selected_aead: SUITE.into(),
            expires_at: self.request.expires_at.clone(),
        };
        if proof != expected || frame.rekey_id != expected.rekey_id || frame.new_kid != self.new_kid {
            return Err(RekeyFailure::Handshake(invalid(
                COMMIT,
                "the proof does not match the rekey agreed",
            )));
        }
        let mut sealer = Sealer::new(&self.keys, Direction::P2c, &self.ids);
        let enc = sealer.seal(context(COMMITTED, &self.request.rekey_id), &proof_bytes)?;
        let committed = SealedRekey {
            version: REKEY_VERSION,
            rekey_id: self.request.rekey_id.clone(),
            assigned_id: self.ids.assigned_id.clone(),
            old_kid: self.request.old_kid.clone(),
            new_kid: self.new_kid.clone(),
            encrypted: true,
            enc,
        };
        Ok((committed, NewEpoch { keys: self.keys, sealer, opener }))
    }
}

/// A rekey that failed after the keys were agreed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RekeyFailure {
    #[error(transparent)]
    Leg(#[from] LegError),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

/// The coordinator's side of one rekey.
pub struct CoordinatorRekey {
    request: RekeyRequest,
    ids: SessionIds,
    key: KeyPair,
}

impl CoordinatorRekey {
    /// Opens a rekey with a fresh key; `expires_at` is RFC 3339 with nanoseconds.
    pub fn start(
        ids: &SessionIds,
        old_kid: &str,
        reason: &str,
        envelope: bool,
        expires_at: String,
    ) -> (Self, RekeyRequest) {
        Self::start_with(
            ids,
            old_kid,
            reason,
            envelope,
            expires_at,
            uuid::Uuid::new_v4().to_string(),
            KeyPair::generate(),
        )
    }

    pub fn start_with(
        ids: &SessionIds,
        old_kid: &str,
        reason: &str,
        envelope: bool,
        expires_at: String,
        rekey_id: String,
        key: KeyPair,
    ) -> (Self, RekeyRequest) {
        let request = RekeyRequest {
            version: REKEY_VERSION,
            rekey_id,
            assigned_id: ids.assigned_id.clone(),
            reason: reason.into(),
            old_kid: old_kid.into(),
            coordinator_ecdh_public_key: key.public_b64u(),
            selected_aead: SUITE.into(),
            expires_at,
            response_chunk_plaintext_envelope: envelope,
        };
        (Self { request: request.clone(), ids: ids.clone(), key }, request)
    }

    /// Re-derives the provider's kid (key confirmation) and seals the commit. Returns the commit
    /// (with what the echo must equal) and the new epoch's c2p sealer, already past seq 0: the
    /// writer takes it right after writing the commit.
    pub fn on_response(self, response: &RekeyResponse) -> Result<(CommitSent, Sealer), HandshakeError> {
        const FRAME: &str = "aead_rekey_response";
        if response.version != REKEY_VERSION
            || response.rekey_id != self.request.rekey_id
            || response.assigned_id != self.ids.assigned_id
            || response.old_kid != self.request.old_kid
        {
            return Err(invalid(
                FRAME,
                "version, rekey_id, assigned_id or old_kid does not match the request",
            ));
        }
        let theirs = keys::parse_public_key(&response.provider_ecdh_public_key)?;
        let shared = self.key.agree(&theirs)?;
        let keys = keys::derive(&shared, &self.ids, &theirs, &self.key.public_bytes());
        if keys.kid != response.new_kid || keys.kid == self.request.old_kid {
            return Err(HandshakeError::KidMismatch { ours: keys.kid, theirs: response.new_kid.clone() });
        }
        let proof = RekeyProof {
            version: REKEY_VERSION,
            rekey_id: self.request.rekey_id.clone(),
            provider_id: self.ids.provider_id.clone(),
            assigned_id: self.ids.assigned_id.clone(),
            old_kid: self.request.old_kid.clone(),
            new_kid: keys.kid.clone(),
            provider_ecdh_public_key: response.provider_ecdh_public_key.clone(),
            coordinator_ecdh_public_key: self.request.coordinator_ecdh_public_key.clone(),
            selected_aead: SUITE.into(),
            expires_at: self.request.expires_at.clone(),
        };
        let proof_bytes = serde_json::to_vec(&proof).expect("a rekey proof always serialises");
        let mut sealer = Sealer::new(&keys, Direction::C2p, &self.ids);
        let enc = sealer
            .seal(context(COMMIT, &self.request.rekey_id), &proof_bytes)
            .map_err(|e| invalid(COMMIT, e.to_string()))?;
        let commit = SealedRekey {
            version: REKEY_VERSION,
            rekey_id: self.request.rekey_id.clone(),
            assigned_id: self.ids.assigned_id.clone(),
            old_kid: self.request.old_kid.clone(),
            new_kid: keys.kid.clone(),
            encrypted: true,
            enc,
        };
        let opener = Opener::new(&keys, Direction::P2c, &self.ids, SeqPolicy::Strict);
        let sent = CommitSent { commit, proof_bytes, rekey_id: self.request.rekey_id, keys, opener };
        Ok((sent, sealer))
    }
}

/// The coordinator between its commit and the provider's committed echo.
pub struct CommitSent {
    pub commit: SealedRekey,
    proof_bytes: Vec<u8>,
    rekey_id: String,
    keys: KeySet,
    opener: Opener,
}

impl CommitSent {
    /// The new epoch's keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Checks the echo and returns the new epoch's keys and p2c opener (past seq 0), which opens
    /// by `policy` from then on.
    pub fn on_committed(
        mut self,
        frame: &SealedRekey,
        policy: SeqPolicy,
    ) -> Result<(KeySet, Opener), RekeyFailure> {
        let echoed = self.opener.open(&frame.enc, context(COMMITTED, &self.rekey_id))?;
        if echoed != self.proof_bytes {
            return Err(RekeyFailure::Handshake(invalid(COMMITTED, "the echo differs from the proof sent")));
        }
        Ok((self.keys, self.opener.with_policy(policy)))
    }
}
