//! Canonical JSON as the coordinator computes it (PROTOCOL-V2.md §1.5): RFC 8785 (keys sorted by
//! UTF-16 code units, ECMAScript number forms, minimal escapes), with string *values* NFC-normalised
//! first. `serde_json_canonicalizer` does the RFC 8785 part; only the NFC step is ours.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// The canonical text of `value`.
pub fn canonical_json(value: &Value) -> String {
    serde_json_canonicalizer::to_string(&nfc_values(value))
        .expect("a serde_json::Value always canonicalises (its numbers are finite)")
}

/// Standard base64 of SHA-256 over the canonical text: `identity_signature_transcript_sha256`, and
/// the hash a coordinator keeps of the initial `auth_request` it received.
pub fn transcript_sha256_b64(value: &Value) -> String {
    STANDARD.encode(Sha256::digest(canonical_json(value).as_bytes()))
}

fn nfc_values(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.nfc().collect()),
        Value::Array(items) => Value::Array(items.iter().map(nfc_values).collect()),
        // Keys are not normalised: the coordinator's canonicaliser leaves them as sent.
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), nfc_values(v))).collect()),
        other => other.clone(),
    }
}
