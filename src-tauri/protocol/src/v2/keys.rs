//! Pillar-B key agreement (PROTOCOL-V2.md §2.1): X25519, the labelled transcript, HKDF-SHA256 and
//! the kid. Both ends of a session derive the same [`KeySet`] from their own secret and the peer's
//! public key; a rekey derives a fresh one the same way with new key pairs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use super::error::HandshakeError;

/// The only AEAD suite there is.
pub const SUITE: &str = "A256GCM";

const TRANSCRIPT_PREFIX: &[u8] = b"macprovider/spec008/pillar-b/transcript/v1";
const INFO_C2P_KEY: &[u8] = b"macprovider/spec008/c2p/aead/v1";
const INFO_P2C_KEY: &[u8] = b"macprovider/spec008/p2c/aead/v1";
const INFO_C2P_NONCE: &[u8] = b"macprovider/spec008/c2p/nonce/v1";
const INFO_P2C_NONCE: &[u8] = b"macprovider/spec008/p2c/nonce/v1";

/// One X25519 key pair, made fresh for every connect and every rekey.
pub struct KeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl KeyPair {
    pub fn generate() -> Self {
        Self::from_secret(StaticSecret::random())
    }

    /// A fixed pair (test vectors).
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        Self::from_secret(StaticSecret::from(bytes))
    }

    fn from_secret(secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    pub fn public_bytes(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// The public key as the wire carries it: unpadded base64url.
    pub fn public_b64u(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public.as_bytes())
    }

    /// The shared secret with a peer's raw public key.
    pub fn agree(&self, peer: &[u8; 32]) -> Result<[u8; 32], HandshakeError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer));
        // An all-zero result means the peer sent a low-order point: no secret was agreed.
        if !shared.was_contributory() {
            return Err(HandshakeError::KeyExchange("the peer's X25519 key is a low-order point".into()));
        }
        Ok(shared.to_bytes())
    }
}

/// Decodes a peer's X25519 public key: exactly 32 bytes of unpadded base64url (a trailing `=` is
/// refused, as Go's `RawURLEncoding` refuses it).
pub fn parse_public_key(b64u: &str) -> Result<[u8; 32], HandshakeError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64u)
        .map_err(|e| HandshakeError::KeyExchange(format!("X25519 key is not unpadded base64url: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        HandshakeError::KeyExchange(format!("X25519 key has {} bytes, not 32", b.len()))
    })
}

/// Who the session is between: what both sides put into the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIds {
    pub provider_id: String,
    pub assigned_id: String,
}

/// Everything one key epoch uses, in both directions.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySet {
    pub transcript: [u8; 32],
    pub kid: String,
    pub c2p_key: [u8; 32],
    pub p2c_key: [u8; 32],
    pub c2p_nonce_base: [u8; 4],
    pub p2c_nonce_base: [u8; 4],
}

impl std::fmt::Debug for KeySet {
    // Keys never reach a log line; the kid is public.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// The transcript preimage: the prefix, then five `u32be(len) ‖ label ‖ u32be(len) ‖ value` fields.
pub fn transcript_preimage(
    ids: &SessionIds,
    provider_public: &[u8; 32],
    coordinator_public: &[u8; 32],
) -> Vec<u8> {
    let mut out = TRANSCRIPT_PREFIX.to_vec();
    let fields: [(&[u8], &[u8]); 5] = [
        (b"provider_id", ids.provider_id.as_bytes()),
        (b"assigned_id", ids.assigned_id.as_bytes()),
        (b"provider_public", provider_public),
        (b"coordinator_public", coordinator_public),
        (b"selected_aead", SUITE.as_bytes()),
    ];
    for (label, value) in fields {
        put_len_prefixed(&mut out, label);
        put_len_prefixed(&mut out, value);
    }
    out
}

pub(super) fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Derives an epoch's keys from the shared secret and both public keys.
pub fn derive(
    shared: &[u8; 32],
    ids: &SessionIds,
    provider_public: &[u8; 32],
    coordinator_public: &[u8; 32],
) -> KeySet {
    let transcript: [u8; 32] =
        Sha256::digest(transcript_preimage(ids, provider_public, coordinator_public)).into();
    let hk = Hkdf::<Sha256>::new(Some(&transcript), shared);
    let expand = |info: &[u8], out: &mut [u8]| {
        hk.expand(info, out).expect("32 and 4 bytes are far below HKDF's limit");
    };
    let (mut c2p_key, mut p2c_key, mut c2p_nonce_base, mut p2c_nonce_base) =
        ([0; 32], [0; 32], [0; 4], [0; 4]);
    expand(INFO_C2P_KEY, &mut c2p_key);
    expand(INFO_P2C_KEY, &mut p2c_key);
    expand(INFO_C2P_NONCE, &mut c2p_nonce_base);
    expand(INFO_P2C_NONCE, &mut p2c_nonce_base);
    let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(transcript)[..16]);
    KeySet { transcript, kid, c2p_key, p2c_key, c2p_nonce_base, p2c_nonce_base }
}

/// The HKDF pseudo-random key (exposed for the test vectors only).
pub fn prk(shared: &[u8; 32], transcript: &[u8; 32]) -> [u8; 32] {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(transcript), shared);
    prk.into()
}
