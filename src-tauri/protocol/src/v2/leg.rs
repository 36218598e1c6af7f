//! An accepted encrypted leg: who it is between, the epoch's keys and what was negotiated. Each
//! side splits it into the halves its tasks own ([`Leg::provider_halves`],
//! [`Leg::coordinator_halves`]).

use super::aad::Direction;
use super::envelope::{Opener, Sealer, SeqPolicy};
use super::keys::{KeySet, SessionIds};

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
}
