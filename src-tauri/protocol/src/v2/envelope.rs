//! Sealing and opening frames on the encrypted leg (PROTOCOL-V2.md §2.2–2.7): AES-256-GCM with a
//! nonce of `nonce base ‖ u64be(seq)`, one counter per direction per key epoch shared by every
//! request, and the binary AAD.
//!
//! A [`Sealer`] belongs to whoever writes a direction's frames in order (the writer task of either
//! side); an [`Opener`] to whoever reads them in order (the provider's handler, the pool's session
//! loop). Neither locks: each direction has exactly one owner.

use std::collections::BTreeSet;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::aad::{AadFields, Direction};
use super::error::LegError;
use super::keys::{KeySet, SessionIds, SUITE};

/// How far ahead of its lowest unseen seq the production coordinator accepts a p2c frame.
pub const P2C_REORDER_WINDOW: u64 = 4096;

const TAG_BYTES: usize = 16;

/// The `enc` object of a sealed frame, field for field as the wire carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enc {
    pub alg: String,
    pub seq: u64,
    pub nonce: String,
    pub aad: String,
    pub ciphertext: String,
    pub tag: String,
    pub kid: String,
}

/// The parts of a frame the AAD binds, besides the session's ids and the seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameContext<'a> {
    pub frame_type: &'a str,
    pub request_id: &'a str,
    pub stream: bool,
}

/// One direction's key, as both its sealer and its opener need it.
#[derive(Clone)]
struct DirectionKey {
    cipher: Aes256Gcm,
    nonce_base: [u8; 4],
    kid: String,
    direction: Direction,
    ids: SessionIds,
}

impl DirectionKey {
    fn new(keys: &KeySet, direction: Direction, ids: &SessionIds) -> Self {
        let (key, nonce_base) = match direction {
            Direction::C2p => (&keys.c2p_key, keys.c2p_nonce_base),
            Direction::P2c => (&keys.p2c_key, keys.p2c_nonce_base),
        };
        Self {
            cipher: Aes256Gcm::new(key.into()),
            nonce_base,
            kid: keys.kid.clone(),
            direction,
            ids: ids.clone(),
        }
    }

    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&self.nonce_base);
        nonce[4..].copy_from_slice(&seq.to_be_bytes());
        nonce
    }

    fn aad(&self, frame: FrameContext<'_>, seq: u64) -> Vec<u8> {
        AadFields {
            frame_type: frame.frame_type,
            direction: self.direction,
            request_id: frame.request_id,
            stream: frame.stream,
            provider_id: &self.ids.provider_id,
            assigned_id: &self.ids.assigned_id,
            seq,
        }
        .to_bytes()
    }
}

impl std::fmt::Debug for DirectionKey {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectionKey").field("kid", &self.kid).field("direction", &self.direction).finish()
    }
}

/// Seals one direction's frames, numbering them from the epoch's first seq.
#[derive(Clone, Debug)]
pub struct Sealer {
    key: DirectionKey,
    next: u64,
}

impl Sealer {
    pub fn new(keys: &KeySet, direction: Direction, ids: &SessionIds) -> Self {
        Self { key: DirectionKey::new(keys, direction, ids), next: 0 }
    }

    pub fn kid(&self) -> &str {
        &self.key.kid
    }

    /// The seq the next sealed frame will carry.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Seals `plaintext` for `frame` at the next seq.
    pub fn seal(&mut self, frame: FrameContext<'_>, plaintext: &[u8]) -> Result<Enc, LegError> {
        let seq = self.next;
        // u64::MAX is never used, so a counter cannot wrap into a nonce already used.
        if seq == u64::MAX {
            return Err(LegError::Exhausted);
        }
        let nonce = self.key.nonce(seq);
        let aad = self.key.aad(frame, seq);
        let mut sealed = self
            .key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| LegError::Auth)?;
        let tag = sealed.split_off(sealed.len() - TAG_BYTES);
        self.next += 1;
        Ok(Enc {
            alg: SUITE.to_string(),
            seq,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            aad: URL_SAFE_NO_PAD.encode(&aad),
            ciphertext: URL_SAFE_NO_PAD.encode(&sealed),
            tag: URL_SAFE_NO_PAD.encode(&tag),
            kid: self.key.kid.clone(),
        })
    }
}

/// Which seqs an opener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqPolicy {
    /// Exactly the next one (the Swift provider on c2p; the local pool as a strict test peer).
    Strict,
    /// Anything not seen, up to this far ahead of the lowest unseen (the production coordinator on
    /// p2c, [`P2C_REORDER_WINDOW`]).
    Window(u64),
}

/// Opens one direction's frames and keeps its counter.
#[derive(Clone, Debug)]
pub struct Opener {
    key: DirectionKey,
    policy: SeqPolicy,
    /// The lowest seq not yet opened.
    lowest_unseen: u64,
    /// Seqs above `lowest_unseen` already opened (window policy only).
    seen: BTreeSet<u64>,
    max_ciphertext_bytes: usize,
}

impl Opener {
    pub fn new(keys: &KeySet, direction: Direction, ids: &SessionIds, policy: SeqPolicy) -> Self {
        Self {
            key: DirectionKey::new(keys, direction, ids),
            policy,
            lowest_unseen: 0,
            seen: BTreeSet::new(),
            max_ciphertext_bytes: crate::DEFAULT_MAX_FRAME_BYTES,
        }
    }

    /// Refuses ciphertexts longer than this (the frame limit bounds them anyway).
    pub fn with_max_ciphertext(mut self, bytes: usize) -> Self {
        self.max_ciphertext_bytes = bytes;
        self
    }

    /// The same opener, counters kept, accepting seqs by `policy` from now on.
    pub fn with_policy(mut self, policy: SeqPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn kid(&self) -> &str {
        &self.key.kid
    }

    /// The seq a strict opener expects next.
    pub fn expected_seq(&self) -> u64 {
        self.lowest_unseen
    }

    /// Checks and opens `enc` as `frame`. The counter moves only when the frame opened, so a
    /// forged frame cannot burn a seq the genuine one needs.
    pub fn open(&mut self, enc: &Enc, frame: FrameContext<'_>) -> Result<Vec<u8>, LegError> {
        if enc.alg != SUITE {
            return Err(LegError::Alg(enc.alg.clone()));
        }
        if enc.kid != self.key.kid {
            return Err(LegError::Kid { got: enc.kid.clone(), want: self.key.kid.clone() });
        }
        self.check_seq(enc.seq)?;
        let decode = |field: &'static str, text: &str| {
            URL_SAFE_NO_PAD.decode(text).map_err(|e| LegError::Base64 { field, problem: e.to_string() })
        };
        // Length before decoding: base64 is 4/3 of the bytes.
        if enc.ciphertext.len() / 4 * 3 > self.max_ciphertext_bytes {
            return Err(LegError::TooLarge {
                size: enc.ciphertext.len() / 4 * 3,
                max: self.max_ciphertext_bytes,
            });
        }
        let nonce = decode("nonce", &enc.nonce)?;
        let aad = decode("aad", &enc.aad)?;
        let mut sealed = decode("ciphertext", &enc.ciphertext)?;
        let tag = decode("tag", &enc.tag)?;
        if tag.len() != TAG_BYTES {
            return Err(LegError::TagLength(tag.len()));
        }
        if nonce != self.key.nonce(enc.seq) {
            return Err(LegError::Nonce(enc.seq));
        }
        let expected_aad = self.key.aad(frame, enc.seq);
        if aad != expected_aad {
            return Err(LegError::Aad);
        }
        sealed.extend_from_slice(&tag);
        let plaintext = self
            .key
            .cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &sealed, aad: &expected_aad })
            .map_err(|_| LegError::Auth)?;
        self.mark_seen(enc.seq);
        Ok(plaintext)
    }

    fn check_seq(&self, seq: u64) -> Result<(), LegError> {
        if seq == u64::MAX {
            return Err(LegError::Exhausted);
        }
        match self.policy {
            SeqPolicy::Strict if seq != self.lowest_unseen => {
                Err(LegError::Seq { got: seq, want: self.lowest_unseen })
            }
            SeqPolicy::Strict => Ok(()),
            SeqPolicy::Window(_) if seq < self.lowest_unseen || self.seen.contains(&seq) => {
                Err(LegError::Replayed { got: seq })
            }
            SeqPolicy::Window(window) if seq - self.lowest_unseen >= window => {
                Err(LegError::OutOfWindow { got: seq, want: self.lowest_unseen, window })
            }
            SeqPolicy::Window(_) => Ok(()),
        }
    }

    fn mark_seen(&mut self, seq: u64) {
        if seq == self.lowest_unseen {
            self.lowest_unseen += 1;
            while self.seen.remove(&self.lowest_unseen) {
                self.lowest_unseen += 1;
            }
        } else {
            self.seen.insert(seq);
        }
    }
}
