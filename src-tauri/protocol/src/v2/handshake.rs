//! The v2 handshake from both ends (PROTOCOL-V2.md §1): `auth_request` (initial) →
//! `auth_challenge` → `auth_request` (proof) → `auth_response`.
//!
//! [`ProviderHandshake`] is what a provider runs; [`CoordinatorHandshake`] what the local pool runs,
//! with the production coordinator's checks in its order and with its close codes ([`Refusal`]).

use serde_json::Value;

use super::error::HandshakeError;
use super::jcs::transcript_sha256_b64;
use super::keys::{self, KeyPair, KeySet, SessionIds, SUITE};
use super::leg::Leg;
use super::messages::*;
use crate::close::{BAD_FIRST_MESSAGE, INVALID_HELLO, TIER2_ATTESTATION_FAILED, TIER2_KEY_EXCHANGE_FAILED};
use crate::messages::ErrorBody;
use crate::ProviderMessage;

/// A provider's side of one handshake. Made per connect: the X25519 key is never reused.
pub struct ProviderHandshake {
    provider_id: String,
    key: KeyPair,
    /// The initial frame exactly as sent.
    initial_text: String,
    derived: Option<(SessionIds, KeySet)>,
}

impl ProviderHandshake {
    /// Fills in a fresh X25519 key and Hearth's capabilities and serialises the initial frame.
    pub fn start(initial: AuthInitial) -> Self {
        Self::start_with_key(initial, KeyPair::generate())
    }

    /// [`ProviderHandshake::start`] with a given key (test vectors).
    pub fn start_with_key(mut initial: AuthInitial, key: KeyPair) -> Self {
        initial.version = AUTH_VERSION;
        initial.provider_ecdh_public_key = key.public_b64u();
        initial.tier2_capabilities = Tier2Capabilities::hearth();
        let provider_id = initial.provider_id.clone();
        let initial_text = crate::encode(&ProviderMessage::AuthRequest(AuthRequest::Initial(initial)));
        Self { provider_id, key, initial_text, derived: None }
    }

    /// The text of the first frame.
    pub fn initial_frame(&self) -> &str {
        &self.initial_text
    }

    /// Checks the challenge (version, suite, our kid against its `key_id`) and answers with the
    /// proof.
    pub fn on_challenge(&mut self, challenge: &AuthChallenge) -> Result<AuthProof, HandshakeError> {
        if challenge.version != AUTH_VERSION {
            return Err(invalid("auth_challenge", format!("version {} is not 2", challenge.version)));
        }
        match challenge.suite() {
            Some(SUITE) => {}
            other => return Err(HandshakeError::Suite(other.unwrap_or("(none)").to_string())),
        }
        if challenge.assigned_id.is_empty() || challenge.auth_attempt_id.is_empty() {
            return Err(invalid(
                "auth_challenge",
                "assigned_id and auth_attempt_id must not be empty".into(),
            ));
        }
        let theirs = keys::parse_public_key(&challenge.coordinator_ecdh_public_key)?;
        let shared = self.key.agree(&theirs)?;
        let ids =
            SessionIds { provider_id: self.provider_id.clone(), assigned_id: challenge.assigned_id.clone() };
        let derived = keys::derive(&shared, &ids, &self.key.public_bytes(), &theirs);
        if derived.kid != challenge.key_id {
            return Err(HandshakeError::KidMismatch { ours: derived.kid, theirs: challenge.key_id.clone() });
        }
        self.derived = Some((ids, derived));
        Ok(AuthProof {
            version: AUTH_VERSION,
            auth_attempt_id: challenge.auth_attempt_id.clone(),
            provider_id: self.provider_id.clone(),
            attestation_token: None,
            identity_signature: None,
            identity_signature_transcript_sha256: None,
            supported_models: None,
        })
    }

    /// Checks `auth_response` as the Swift provider does (§1.7) and returns the accepted leg.
    pub fn on_response(self, response: &AuthResponse) -> Result<Leg, HandshakeError> {
        if response.status != "accepted" {
            let (code, message) = match &response.error {
                Some(e) => (e.code.clone(), e.message.clone()),
                None => (response.status.clone(), "no reason given".to_string()),
            };
            return Err(HandshakeError::Rejected { code, message });
        }
        let (ids, keys) = self
            .derived
            .ok_or_else(|| invalid("auth_response", "it came before the auth_challenge".into()))?;
        if response.assigned_id.as_deref().is_some_and(|a| a != ids.assigned_id) {
            return Err(invalid("auth_response", "its assigned_id differs from the challenge's".into()));
        }
        let leg = response.tier2_session.as_ref().and_then(|t| t.encrypted_leg.as_ref());
        let Some(leg) = leg.filter(|l| l.enabled) else {
            return Err(HandshakeError::LegNotEnabled(
                "tier2_session.encrypted_leg.enabled is not true".into(),
            ));
        };
        if leg.alg != SUITE {
            return Err(HandshakeError::Suite(leg.alg.clone()));
        }
        if leg.kid != keys.kid {
            return Err(HandshakeError::KidMismatch { ours: keys.kid, theirs: leg.kid.clone() });
        }
        Ok(Leg {
            ids,
            keys,
            envelope: leg.response_chunk_plaintext_envelope,
            rekey: leg.in_band_aead_rekey_v1,
        })
    }
}

fn invalid(frame: &'static str, problem: String) -> HandshakeError {
    HandshakeError::Invalid { frame, problem }
}

/// Why a coordinator ends a v2 handshake: the close frame, and the `auth_response` `rejected` it
/// sends first when production does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: String,
    pub rejected: Option<ErrorBody>,
}

impl Refusal {
    fn close(code: u16, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into(), rejected: None }
    }

    fn rejected(code: u16, error_code: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self { code, rejected: Some(ErrorBody::new(error_code, reason.clone())), reason }
    }

    /// The `auth_response` to send before closing, if any.
    pub fn response(&self) -> Option<AuthResponse> {
        self.rejected.clone().map(|error| AuthResponse {
            version: AUTH_VERSION,
            status: "rejected".into(),
            assigned_id: None,
            heartbeat_interval_s: crate::DEFAULT_HEARTBEAT_INTERVAL_S,
            tier: None,
            required_binary_version: None,
            assigned_provider_token: None,
            auth_state: None,
            autoupdate_drain_extensions: None,
            tier2_session: None,
            error: Some(error),
        })
    }
}

/// A coordinator's side of one handshake.
pub struct CoordinatorHandshake {
    initial: AuthInitial,
    challenge: AuthChallenge,
    ids: SessionIds,
    keys: KeySet,
    /// SHA-256 of the canonical initial frame as received (kept for an identity check).
    pub initial_transcript_sha256: String,
}

impl CoordinatorHandshake {
    /// Checks an initial `auth_request` (the received JSON object) in the production order
    /// (§1.8 I1–I7) and builds the challenge for `assigned_id`.
    pub fn accept_initial(
        received: &Value,
        assigned_id: &str,
        expires_at: String,
    ) -> Result<(Self, AuthChallenge), Refusal> {
        Self::accept_initial_with_key(received, assigned_id, expires_at, KeyPair::generate())
    }

    pub fn accept_initial_with_key(
        received: &Value,
        assigned_id: &str,
        expires_at: String,
        key: KeyPair,
    ) -> Result<(Self, AuthChallenge), Refusal> {
        let unrecognized = || Refusal::close(BAD_FIRST_MESSAGE, "unrecognized auth message");
        let initial = match serde_json::from_value::<ProviderMessage>(received.clone()) {
            Ok(ProviderMessage::AuthRequest(AuthRequest::Initial(i))) if i.version == AUTH_VERSION => i,
            _ => return Err(unrecognized()),
        };
        check_supported_models(&initial)?;
        check_fields(&initial)?;
        let initial_transcript_sha256 = transcript_sha256_b64(received);
        let caps = &initial.tier2_capabilities;
        if !(caps.encrypted_leg && caps.aead_suites.iter().any(|s| s == SUITE)) {
            return Err(Refusal::close(INVALID_HELLO, "no_common_aead_suite"));
        }
        let theirs = keys::parse_public_key(&initial.provider_ecdh_public_key)
            .map_err(|_| Refusal::close(TIER2_KEY_EXCHANGE_FAILED, "tier2_key_exchange_failed"))?;
        let shared = key
            .agree(&theirs)
            .map_err(|_| Refusal::close(TIER2_KEY_EXCHANGE_FAILED, "tier2_key_exchange_failed"))?;
        let ids =
            SessionIds { provider_id: initial.provider_id.clone(), assigned_id: assigned_id.to_string() };
        let keys = keys::derive(&shared, &ids, &theirs, &key.public_bytes());
        let challenge = AuthChallenge {
            version: AUTH_VERSION,
            auth_attempt_id: format!("auth-{}", random_uuid()),
            assigned_id: assigned_id.to_string(),
            attestation_challenge: random_b64u(32),
            attestation_formats: vec![
                "apple-managed-device-attestation-acme-v1".into(),
                "macprovider-se-p256-v1".into(),
            ],
            coordinator_ecdh_public_key: key.public_b64u(),
            selected_aead_suite: Some(SUITE.into()),
            selected_aead: Some(SUITE.into()),
            key_id: keys.kid.clone(),
            expires_at,
            admission_identity_public_key: None,
        };
        Ok((Self { initial, challenge: challenge.clone(), ids, keys, initial_transcript_sha256 }, challenge))
    }

    pub fn initial(&self) -> &AuthInitial {
        &self.initial
    }

    /// Checks the proof (§1.8 P1–P5): `proof` is the second frame if it decoded as an
    /// `auth_request` at all; `expired` says whether the challenge's `expires_at` passed.
    pub fn check_proof(self, proof: Option<&AuthRequest>, expired: bool) -> Result<Leg, Refusal> {
        let Some(AuthRequest::Proof(proof)) = proof else {
            return Err(Refusal::rejected(
                INVALID_HELLO,
                "invalid_auth_request",
                "invalid_auth_request: type",
            ));
        };
        if proof.version != AUTH_VERSION {
            return Err(Refusal::rejected(
                INVALID_HELLO,
                "invalid_auth_request",
                "invalid_auth_request: version",
            ));
        }
        if proof.auth_attempt_id != self.challenge.auth_attempt_id
            || proof.provider_id != self.initial.provider_id
            || expired
        {
            return Err(Refusal::rejected(
                TIER2_ATTESTATION_FAILED,
                "attestation_failed",
                "tier2_attestation_failed",
            ));
        }
        if let Some(models) = &proof.supported_models {
            if !same_models(models, self.initial.supported_models.as_deref().unwrap_or_default()) {
                return Err(Refusal::rejected(
                    INVALID_HELLO,
                    "bad_request",
                    "supported_models mismatch between auth_request stages",
                ));
            }
        }
        let caps = &self.initial.tier2_capabilities;
        Ok(Leg {
            ids: self.ids,
            keys: self.keys,
            envelope: caps.response_chunk_plaintext_envelope == Some(true),
            rekey: caps.in_band_aead_rekey_v1 == Some(true),
        })
    }
}

/// I1's `supported_models` rules: 1–64 entries of ≤ 256 bytes, no duplicates after NFC and
/// lower-casing, `model_id` among them.
fn check_supported_models(initial: &AuthInitial) -> Result<(), Refusal> {
    let Some(models) = &initial.supported_models else { return Ok(()) };
    let bad = |why: &str| {
        Refusal::rejected(INVALID_HELLO, "bad_request", format!("invalid supported_models: {why}"))
    };
    if models.is_empty() || models.len() > 64 {
        return Err(bad("1 to 64 entries"));
    }
    let mut seen = std::collections::HashSet::new();
    for m in models {
        if m.is_empty() || m.len() > 256 {
            return Err(bad("each entry 1 to 256 bytes"));
        }
        if !seen.insert(fold(m)) {
            return Err(bad("duplicate entries"));
        }
    }
    if !seen.contains(&fold(&initial.model_id)) {
        return Err(bad("must contain model_id"));
    }
    Ok(())
}

fn fold(model: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    model.nfc().collect::<String>().to_lowercase()
}

fn same_models(a: &[String], b: &[String]) -> bool {
    let set = |v: &[String]| v.iter().map(|m| fold(m)).collect::<std::collections::BTreeSet<_>>();
    set(a) == set(b)
}

/// The hello-equivalent field checks, which are the v1 hello's own ([`Hello::validate`]) on the
/// hello this frame stands for; a failure names the field, as v1's `invalid_hello` does. The
/// model-hash algorithm is left out: v2 names another one (`macprovider.snapshot-manifest.v1`).
fn check_fields(i: &AuthInitial) -> Result<(), Refusal> {
    let hello = crate::Hello { model_hash_algorithm: None, ..i.to_hello() };
    hello.validate().map_err(|e| {
        Refusal::close(INVALID_HELLO, format!("invalid_auth_request: {} ({})", e.field, e.problem))
    })
}

fn random_b64u(n: usize) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rand_core::RngCore;
    let mut bytes = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
