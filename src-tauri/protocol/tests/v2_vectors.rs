//! The v2 handshake and encrypted leg reproduce `shared/fixtures/protocol-v2-vectors.json` byte for
//! byte: the transcript, HKDF outputs and kid, the binary AAD, every sealed frame (sealed by us from
//! its inputs, and opened from its wire frame with receiver state only), the rekey exchange and the
//! canonical-JSON transcript hash and identity signature.

mod support;

use hearth_protocol::v2::*;
use hearth_protocol::{decode_coordinator_frame, decode_provider_frame, CoordinatorFrame, ProviderFrame};
use serde_json::Value;

fn vectors() -> Value {
    let path = support::shared_dir().join("fixtures/protocol-v2-vectors.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn hex4(v: &Value) -> [u8; 4] {
    hex::decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn assert_keys(keys: &KeySet, want: &Value) {
    assert_eq!(hex::encode(keys.transcript), s(&want["transcript_sha256_hex"]));
    assert_eq!(keys.kid, s(&want["kid"]));
    assert_eq!(hex::encode(keys.c2p_key), s(&want["c2p_key_hex"]));
    assert_eq!(hex::encode(keys.p2c_key), s(&want["p2c_key_hex"]));
    assert_eq!(hex::encode(keys.c2p_nonce_base), s(&want["c2p_nonce_base_hex"]));
    assert_eq!(hex::encode(keys.p2c_nonce_base), s(&want["p2c_nonce_base_hex"]));
}

fn worked_ids(w: &Value) -> SessionIds {
    SessionIds {
        provider_id: s(&w["inputs"]["provider_id"]).into(),
        assigned_id: s(&w["inputs"]["assigned_id"]).into(),
    }
}

#[test]
fn key_derivation_matches_the_go_test_inputs() {
    let v = &vectors()["repo_derived"]["go_pillar_b_test_deterministic_inputs"];
    let ids =
        SessionIds { provider_id: s(&v["provider_id"]).into(), assigned_id: s(&v["assigned_id"]).into() };
    let (shared, pp, cp) = (
        hex32(&v["shared_secret_hex"]),
        hex32(&v["provider_public_hex"]),
        hex32(&v["coordinator_public_hex"]),
    );
    assert_eq!(hex::encode(keys::transcript_preimage(&ids, &pp, &cp)), s(&v["transcript_preimage_hex"]));
    let derived = keys::derive(&shared, &ids, &pp, &cp);
    assert_keys(&derived, &v["current_framing_outputs"]);
    assert_eq!(
        hex::encode(keys::prk(&shared, &derived.transcript)),
        s(&v["current_framing_outputs"]["prk_hex"])
    );
    // The legacy framing's kid is what a mismatch with an old coordinator looks like: not ours.
    assert_ne!(derived.kid, s(&v["legacy_bare_concat_outputs_DO_NOT_USE"]["kid"]));
}

#[test]
fn the_worked_example_agrees_from_both_ends() {
    let w = &vectors()["worked_example"];
    let i = &w["inputs"];
    let provider = KeyPair::from_secret_bytes(hex32(&i["provider_x25519_private_hex"]));
    let coordinator = KeyPair::from_secret_bytes(hex32(&i["coordinator_x25519_private_hex"]));
    assert_eq!(provider.public_b64u(), s(&i["provider_ecdh_public_key_b64u"]));
    assert_eq!(coordinator.public_b64u(), s(&i["coordinator_ecdh_public_key_b64u"]));
    let theirs = keys::parse_public_key(s(&i["coordinator_ecdh_public_key_b64u"])).unwrap();
    let shared = provider.agree(&theirs).unwrap();
    assert_eq!(hex::encode(shared), s(&i["x25519_shared_secret_hex"]));
    assert_eq!(coordinator.agree(&provider.public_bytes()).unwrap(), shared);
    let ids = worked_ids(w);
    assert_eq!(
        hex::encode(keys::transcript_preimage(&ids, &provider.public_bytes(), &theirs)),
        s(&w["transcript_preimage_hex"])
    );
    let derived = keys::derive(&shared, &ids, &provider.public_bytes(), &theirs);
    assert_keys(&derived, &w["keys"]);
    assert_eq!(hex::encode(keys::prk(&shared, &derived.transcript)), s(&w["keys"]["prk_hex"]));
}

#[test]
fn public_keys_must_be_unpadded_base64url_of_32_bytes() {
    let w = &vectors()["worked_example"]["inputs"];
    let good = s(&w["provider_ecdh_public_key_b64u"]);
    assert!(keys::parse_public_key(good).is_ok());
    let e = keys::parse_public_key(&format!("{good}=")).unwrap_err().to_string();
    assert!(e.contains("base64url"), "{e}");
    let e = keys::parse_public_key(&good[..20]).unwrap_err().to_string();
    assert!(e.contains("base64url") || e.contains("not 32"), "{e}");
}

fn worked_keys(w: &Value) -> KeySet {
    let i = &w["inputs"];
    let provider = KeyPair::from_secret_bytes(hex32(&i["provider_x25519_private_hex"]));
    let theirs = keys::parse_public_key(s(&i["coordinator_ecdh_public_key_b64u"])).unwrap();
    keys::derive(&provider.agree(&theirs).unwrap(), &worked_ids(w), &provider.public_bytes(), &theirs)
}

fn frame_context<'a>(fields: &'a Value) -> FrameContext<'a> {
    FrameContext {
        frame_type: s(&fields["type"]),
        request_id: s(&fields["request_id"]),
        stream: fields["stream"].as_bool().unwrap(),
    }
}

/// Seals the frame's plaintext at its seq and compares every byte, then opens its wire frame.
fn check_frame(keys: &KeySet, ids: &SessionIds, frame: &Value) {
    let fields = &frame["aad_fields"];
    let direction = if s(&fields["direction"]) == "c2p" { Direction::C2p } else { Direction::P2c };
    let seq = frame["aead_seq"].as_u64().unwrap();
    let aad = AadFields {
        frame_type: s(&fields["type"]),
        direction,
        request_id: s(&fields["request_id"]),
        stream: fields["stream"].as_bool().unwrap(),
        provider_id: s(&fields["provider_id"]),
        assigned_id: s(&fields["assigned_id"]),
        seq,
    };
    assert_eq!(hex::encode(aad.to_bytes()), s(&frame["aad_hex"]));
    let plaintext = hex::decode(s(&frame["plaintext_hex"])).unwrap();

    let mut sealer = Sealer::new(keys, direction, ids);
    for _ in 0..seq {
        sealer.seal(frame_context(fields), b"earlier frame").unwrap();
    }
    let enc = sealer.seal(frame_context(fields), &plaintext).unwrap();
    let want: Enc = serde_json::from_value(frame["enc"].clone()).unwrap();
    assert_eq!(enc, want);
    assert_eq!(hex::encode(base64_url(&enc.ciphertext)), s(&frame["ciphertext_hex"]));
    assert_eq!(hex::encode(base64_url(&enc.tag)), s(&frame["tag_hex"]));
    assert_eq!(hex::encode(base64_url(&enc.nonce)), s(&frame["nonce_hex"]));

    // The receiver: its own keys, ids and expected seq, and the frame as it arrives.
    let wire = s(&frame["wire_frame"]);
    let enc_on_wire = match direction {
        Direction::C2p => match decode_coordinator_frame(wire, 1 << 22).unwrap() {
            CoordinatorFrame::Sealed(SealedCoordinatorFrame::InferenceRequest(r)) => r.enc,
            other => panic!("not a sealed request: {other:?}"),
        },
        Direction::P2c => match decode_provider_frame(wire, 1 << 22).unwrap() {
            ProviderFrame::Sealed(
                SealedProviderFrame::InferenceResponseChunk(r) | SealedProviderFrame::InferenceResponseEnd(r),
            ) => r.enc,
            other => panic!("not a sealed response: {other:?}"),
        },
    };
    let mut opener = Opener::new(keys, direction, ids, SeqPolicy::Window(P2C_REORDER_WINDOW));
    assert_eq!(opener.open(&enc_on_wire, frame_context(fields)).unwrap(), plaintext);
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap()
}

#[test]
fn the_worked_example_frames_seal_and_open_byte_for_byte() {
    let w = &vectors()["worked_example"];
    let keys = worked_keys(w);
    let ids = worked_ids(w);
    for name in ["c2p_inference_request", "p2c_inference_response_chunk", "p2c_inference_response_end"] {
        check_frame(&keys, &ids, &w[name]);
    }
    // The plaintexts parse as the types we read them into.
    let request: RequestPlaintext =
        serde_json::from_str(s(&w["c2p_inference_request"]["plaintext"])).unwrap();
    assert!(request.body.contains("Qwen3-8B-4bit"));
    let chunk: ChunkPlaintext =
        serde_json::from_str(s(&w["p2c_inference_response_chunk"]["plaintext"])).unwrap();
    assert_eq!(chunk.seq, 0);
    let end: hearth_protocol::ResponseEnd =
        serde_json::from_str(s(&w["p2c_inference_response_end"]["plaintext"])).unwrap();
    assert_eq!(end.status, hearth_protocol::EndStatus::Complete);
}

#[test]
fn the_repo_test_frames_seal_byte_for_byte() {
    let v = vectors();
    for name in ["swift_tier2_session_test_request", "go_pillar_b_test_aad_fixture"] {
        let f = &v["repo_derived"][name];
        let key = hex32(f.get("c2p_key_hex").unwrap_or(&f["key_hex"]));
        let base = hex4(f.get("c2p_nonce_base_hex").unwrap_or(&f["nonce_base_hex"]));
        // These fixtures carry their AAD bytes ready-made: run the AEAD on them directly.
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm::Aes256Gcm::new((&key).into());
        let nonce = hex::decode(s(&f["nonce_hex"])).unwrap();
        assert_eq!(&nonce[..4], &base);
        let aad = hex::decode(s(&f["aad_hex"])).unwrap();
        let sealed = cipher
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload { msg: s(&f["plaintext"]).as_bytes(), aad: &aad },
            )
            .unwrap();
        let (ct, tag) = sealed.split_at(sealed.len() - 16);
        assert_eq!(hex::encode(ct), s(&f["ciphertext_hex"]), "{name}");
        assert_eq!(hex::encode(tag), s(&f["tag_hex"]), "{name}");
    }
}

#[test]
fn tampering_with_any_part_of_a_frame_is_refused_with_its_reason() {
    let w = &vectors()["worked_example"];
    let keys = worked_keys(w);
    let ids = worked_ids(w);
    let frame = &w["c2p_inference_request"];
    let fields = frame_context(&frame["aad_fields"]);
    let good: Enc = serde_json::from_value(frame["enc"].clone()).unwrap();
    let open = |enc: &Enc, ctx: FrameContext<'_>| {
        Opener::new(&keys, Direction::C2p, &ids, SeqPolicy::Strict).open(enc, ctx).unwrap_err()
    };
    let mut bad = good.clone();
    bad.kid = "someone-else".into();
    assert!(matches!(open(&bad, fields), LegError::Kid { .. }));
    let mut bad = good.clone();
    bad.alg = "A128GCM".into();
    assert!(matches!(open(&bad, fields), LegError::Alg(_)));
    let mut bad = good.clone();
    bad.seq = 1;
    assert_eq!(open(&bad, fields), LegError::Seq { got: 1, want: 0 });
    let mut bad = good.clone();
    bad.tag = "AAAAAAAAAAAAAAAAAAAAAA".into();
    assert_eq!(open(&bad, fields), LegError::Auth);
    let mut bad = good.clone();
    bad.ciphertext.insert(0, '!');
    assert!(matches!(open(&bad, fields), LegError::Base64 { field: "ciphertext", .. }));
    let mut bad = good.clone();
    bad.tag.push('=');
    assert!(matches!(open(&bad, fields), LegError::Base64 { field: "tag", .. }));
    // The same bytes moved to another request, or to the non-streamed flag, fail the AAD check.
    let other = FrameContext { request_id: "req-other", ..fields };
    assert_eq!(open(&good, other), LegError::Aad);
    let unstreamed = FrameContext { stream: false, ..fields };
    assert_eq!(open(&good, unstreamed), LegError::Aad);
    // Replays: a strict opener after the frame, and a windowed one, both refuse it again.
    let mut strict = Opener::new(&keys, Direction::C2p, &ids, SeqPolicy::Strict);
    strict.open(&good, fields).unwrap();
    assert_eq!(strict.open(&good, fields).unwrap_err(), LegError::Seq { got: 0, want: 1 });
    let mut window = Opener::new(&keys, Direction::C2p, &ids, SeqPolicy::Window(4));
    window.open(&good, fields).unwrap();
    assert_eq!(window.open(&good, fields).unwrap_err(), LegError::Replayed { got: 0 });
}

#[test]
fn a_windowed_opener_takes_frames_out_of_order_but_never_twice_or_too_far_ahead() {
    let w = &vectors()["worked_example"];
    let (keys, ids) = (worked_keys(w), worked_ids(w));
    let ctx = FrameContext { frame_type: "inference_response_chunk", request_id: "r", stream: true };
    let mut sealer = Sealer::new(&keys, Direction::P2c, &ids);
    let frames: Vec<Enc> =
        (0..6).map(|i| sealer.seal(ctx, format!("chunk {i}").as_bytes()).unwrap()).collect();
    let mut opener = Opener::new(&keys, Direction::P2c, &ids, SeqPolicy::Window(4));
    for i in [1, 0, 3, 2] {
        assert_eq!(opener.open(&frames[i], ctx).unwrap(), format!("chunk {i}").into_bytes());
    }
    assert_eq!(opener.expected_seq(), 4);
    assert_eq!(opener.open(&frames[2], ctx).unwrap_err(), LegError::Replayed { got: 2 });
    let mut far = Opener::new(&keys, Direction::P2c, &ids, SeqPolicy::Window(4));
    assert!(matches!(far.open(&frames[5], ctx).unwrap_err(), LegError::OutOfWindow { .. }));
}

#[test]
fn the_rekey_example_runs_from_both_ends() {
    let v = vectors();
    let (w, r) = (&v["worked_example"], &v["rekey_example"]);
    let ids = worked_ids(w);
    let old = worked_keys(w);
    let request: RekeyRequest = serde_json::from_str(s(&r["aead_rekey_request"])).unwrap();
    assert_eq!(request.old_kid, old.kid);
    let before_expiry =
        time::OffsetDateTime::parse("2026-07-14T12:00:00Z", &time::format_description::well_known::Rfc3339)
            .unwrap();
    let provider_key = KeyPair::from_secret_bytes(hex32(&r["new_provider_x25519_private_hex"]));
    let (pending, response) =
        ProviderRekey::respond_with_key(&request, &ids, &old.kid, true, before_expiry, provider_key).unwrap();
    let want_response: RekeyResponse = serde_json::from_str(s(&r["aead_rekey_response"])).unwrap();
    assert_eq!(response, want_response);

    // The coordinator's side, from its own fixed key: the same commit bytes as the vector.
    let coordinator_key = KeyPair::from_secret_bytes(hex32(&r["new_coordinator_x25519_private_hex"]));
    let (coordinator, request_again) = CoordinatorRekey::start_with(
        &ids,
        &old.kid,
        "request_threshold",
        true,
        request.expires_at.clone(),
        request.rekey_id.clone(),
        coordinator_key,
    );
    assert_eq!(request_again, request);
    let (sent, mut coordinator_sealer) = coordinator.on_response(&response).unwrap();
    assert_keys(&sent_keys(&sent), &r["new_keys"]);
    let commit_wire: Value = serde_json::from_str(s(&r["aead_rekey_commit"]["wire_frame"])).unwrap();

    // The provider opens the vector's commit from the wire and echoes the proof.
    let commit = match decode_coordinator_frame(s(&r["aead_rekey_commit"]["wire_frame"]), 1 << 22).unwrap() {
        CoordinatorFrame::Sealed(SealedCoordinatorFrame::AeadRekeyCommit(c)) => c,
        other => panic!("not a commit: {other:?}"),
    };
    let (committed, mut epoch) = pending.commit(&commit).unwrap();
    assert_eq!(epoch.keys.kid, s(&r["new_keys"]["kid"]));
    let committed_wire: Value = serde_json::from_str(s(&r["aead_rekey_committed"]["wire_frame"])).unwrap();
    let framed = SealedProviderFrame::AeadRekeyCommitted(committed.clone());
    assert_eq!(serde_json::to_value(&framed).unwrap(), committed_wire);
    let commit_framed = SealedCoordinatorFrame::AeadRekeyCommit(sent.commit.clone());
    assert_eq!(serde_json::to_value(&commit_framed).unwrap(), commit_wire);
    let plaintext = base64_url(&committed.enc.ciphertext);
    assert_eq!(plaintext.len(), s(&r["proof_plaintext"]).len());

    // Both continue at seq 1 under the new keys.
    let (_, mut coordinator_opener) = sent.on_committed(&committed, SeqPolicy::Strict).unwrap();
    let ctx = FrameContext { frame_type: "inference_request", request_id: "req-after", stream: false };
    let enc = coordinator_sealer.seal(ctx, b"after the rekey").unwrap();
    assert_eq!(enc.seq, 1);
    assert_eq!(epoch.opener.open(&enc, ctx).unwrap(), b"after the rekey");
    let back = FrameContext { frame_type: "inference_response_end", request_id: "req-after", stream: false };
    let enc = epoch.sealer.seal(back, b"end").unwrap();
    assert_eq!(enc.seq, 1);
    assert_eq!(coordinator_opener.open(&enc, back).unwrap(), b"end");
}

fn sent_keys(sent: &CommitSent) -> KeySet {
    sent.keys().clone()
}

#[test]
fn a_rekey_request_that_does_not_fit_the_session_is_refused() {
    let v = vectors();
    let (w, r) = (&v["worked_example"], &v["rekey_example"]);
    let ids = worked_ids(w);
    let old = worked_keys(w);
    let request: RekeyRequest = serde_json::from_str(s(&r["aead_rekey_request"])).unwrap();
    let now =
        time::OffsetDateTime::parse("2026-07-14T12:00:00Z", &time::format_description::well_known::Rfc3339)
            .unwrap();
    let later = now + time::Duration::minutes(1);
    let refuse = |req: &RekeyRequest, kid: &str, negotiated: bool, at| {
        ProviderRekey::respond(req, &ids, kid, negotiated, at).err().expect("must be refused").to_string()
    };
    assert!(refuse(&request, &old.kid, false, now).contains("not negotiated"));
    assert!(refuse(&request, "other-kid", true, now).contains("old_kid"));
    assert!(refuse(&request, &old.kid, true, later).contains("expired"));
    let mut bad = request.clone();
    bad.reason = "because".into();
    assert!(refuse(&bad, &old.kid, true, now).contains("reason"));
}

#[test]
fn canonical_json_and_the_identity_signature_match() {
    let v = vectors();
    let t = &v["repo_derived"]["swift_canonical_json_transcript_test"];
    assert_eq!(jcs::canonical_json(&t["input_object"]), s(&t["expected_canonical_from_repo"]));
    assert_eq!(jcs::transcript_sha256_b64(&t["input_object"]), s(&t["transcript_sha256_b64"]));

    let id = &v["identity_signature_example"];
    let initial: Value = serde_json::from_str(s(&id["initial_frame_wire"])).unwrap();
    assert_eq!(jcs::canonical_json(&initial), s(&id["initial_frame_canonical_jcs"]));
    let transcript = jcs::transcript_sha256_b64(&initial);
    assert_eq!(transcript, s(&id["identity_signature_transcript_sha256"]));
    let proof: Value = serde_json::from_str(s(&id["proof_frame_wire"])).unwrap();
    let tuple = identity::SignedTuple {
        auth_attempt_id: s(&proof["auth_attempt_id"]),
        binary_version: s(&initial["binary_version"]),
        provider_ecdh_public_key: s(&initial["provider_ecdh_public_key"]),
        provider_id: s(&initial["provider_id"]),
        transcript_sha256: &transcript,
    };
    assert_eq!(tuple.canonical(), s(&id["signed_tuple_canonical_jcs"]));
    let key = ed25519_dalek::SigningKey::from_bytes(&hex32(&id["ed25519_seed_hex"]));
    assert_eq!(tuple.sign(&key), s(&id["identity_signature_b64"]));
    assert_eq!(proof["identity_signature"], Value::String(tuple.sign(&key)));
}

#[test]
fn canonical_json_normalises_values_not_keys_and_prints_numbers_like_ecmascript() {
    let value: Value =
        serde_json::from_str(r#"{"b":8.0,"a":"e\u0301","é":1e21,"c":[0.1,-0.0,"<&>/"]}"#).unwrap();
    assert_eq!(jcs::canonical_json(&value), "{\"a\":\"é\",\"b\":8,\"c\":[0.1,0,\"<&>/\"],\"é\":1e+21}");
}
