//! An accepted encrypted leg: who it is between, the epoch's keys and what was negotiated. Each
//! side splits it into the halves its tasks own ([`Leg::provider_halves`],
//! [`Leg::coordinator_halves`]).

use super::aad::Direction;
use super::envelope::{Opener, Sealer, SeqPolicy};
use super::keys::{KeySet, SessionIds, SUITE};
use super::messages::{AuthResponse, EncryptedLegInfo, Tier2Session, AUTH_VERSION};

#[derive(Debug, Clone)]
pub struct Leg {
    pub ids: SessionIds,
    pub keys: KeySet,
    /// Chunks carry the per-request envelope (`response_chunk_plaintext_envelope`).
    pub envelope: bool,
    /// In-band rekey was negotiated (`in_band_aead_rekey_v1`).
    pub rekey: bool,
}

impl Leg {
    /// The provider seals p2c and opens c2p strictly in order, as the Swift provider does.
    pub fn provider_halves(&self) -> (Sealer, Opener) {
        (
            Sealer::new(&self.keys, Direction::P2c, &self.ids),
            Opener::new(&self.keys, Direction::C2p, &self.ids, SeqPolicy::Strict),
        )
    }

    /// The coordinator seals c2p and opens p2c with `policy`.
    pub fn coordinator_halves(&self, policy: SeqPolicy) -> (Sealer, Opener) {
        (
            Sealer::new(&self.keys, Direction::C2p, &self.ids),
            Opener::new(&self.keys, Direction::P2c, &self.ids, policy),
        )
    }

    /// The `auth_response` that accepts this leg, echoing both negotiated flags.
    pub fn accepted_response(&self, heartbeat_interval_s: u64, rekey_after: (u64, u64)) -> AuthResponse {
        AuthResponse {
            version: AUTH_VERSION,
            status: "accepted".into(),
            assigned_id: Some(self.ids.assigned_id.clone()),
            heartbeat_interval_s,
            tier: Some("provisional".into()),
            required_binary_version: None,
            assigned_provider_token: None,
            auth_state: Some("bearer_validated".into()),
            autoupdate_drain_extensions: Some(true),
            tier2_session: Some(Tier2Session {
                encrypted_leg: Some(EncryptedLegInfo {
                    enabled: true,
                    alg: SUITE.into(),
                    kid: self.keys.kid.clone(),
                    rekey_after_requests: Some(rekey_after.0),
                    rekey_after_seconds: Some(rekey_after.1),
                    response_chunk_plaintext_envelope: self.envelope,
                    in_band_aead_rekey_v1: self.rekey,
                }),
                attestation: Some(serde_json::json!({"status": "not_required", "ram_tier_attested": false})),
            }),
            error: None,
        }
    }
}
