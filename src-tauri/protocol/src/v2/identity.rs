//! The optional Ed25519 identity signature of the proof stage (PROTOCOL-V2.md §1.5). A coordinator
//! asks for it only once a provider id has enrolled an admission key; Hearth holds none yet, so the
//! session never sends one, but the signed bytes are fixed here so enrolling later is one step.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;

use super::jcs::canonical_json;

/// The five fields that are signed.
#[derive(Debug, Clone, Copy)]
pub struct SignedTuple<'a> {
    pub auth_attempt_id: &'a str,
    pub binary_version: &'a str,
    pub provider_ecdh_public_key: &'a str,
    pub provider_id: &'a str,
    /// The same standard-base64 string the proof carries.
    pub transcript_sha256: &'a str,
}

impl SignedTuple<'_> {
    /// The canonical bytes the signature covers.
    pub fn canonical(&self) -> String {
        canonical_json(&json!({
            "auth_attempt_id": self.auth_attempt_id,
            "binary_version": self.binary_version,
            "provider_ecdh_public_key": self.provider_ecdh_public_key,
            "provider_id": self.provider_id,
            "transcript_sha256": self.transcript_sha256,
        }))
    }

    /// `identity_signature`: standard base64 of the raw Ed25519 signature (no pre-hash).
    pub fn sign(&self, key: &SigningKey) -> String {
        STANDARD.encode(key.sign(self.canonical().as_bytes()).to_bytes())
    }
}
