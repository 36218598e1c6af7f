//! The coordinator's checks on a v2 opening, in production's order and with its close codes
//! (PROTOCOL-V2.md §1.8), and a whole handshake between the two ends of the protocol crate.

use hearth_protocol::v2::*;
use hearth_protocol::{encode, Hello, ProviderMessage};
use serde_json::Value;

fn hello() -> Hello {
    Hello {
        version: 1,
        tier: 1,
        provider_id: "p-1".into(),
        hostname: "studio.local".into(),
        model_id: "mlx-community/Qwen3-8B-4bit".into(),
        model_params_b: 8.0,
        ram_gb: 64,
        max_context_tokens: 32768,
        max_concurrency: 2,
        throughput_tps_estimate: 45.5,
        binary_version: "1.8.56".into(),
        attestation: None,
        model_hash: None,
        model_hash_algorithm: None,
        runtime_source: Some("hearth/0.1.0 (test)".into()),
    }
}

/// The initial frame a provider sends, as JSON, after `edit`.
fn initial(edit: impl FnOnce(&mut Value)) -> Value {
    let handshake = ProviderHandshake::start(AuthInitial::from_hello(hello()));
    let mut value: Value = serde_json::from_str(handshake.initial_frame()).unwrap();
    edit(&mut value);
    value
}

fn refused(value: &Value) -> Refusal {
    CoordinatorHandshake::accept_initial(value, "session-1", "2099-01-01T00:00:00Z".into())
        .err()
        .expect("must be refused")
}

#[test]
fn openings_are_refused_with_production_codes_and_a_reason() {
    let r = refused(&initial(|v| {
        v.as_object_mut().unwrap().remove("tier2_capabilities");
    }));
    assert_eq!((r.code, r.reason.as_str()), (4000, "unrecognized auth message"));
    let r = refused(&initial(|v| v["version"] = 3.into()));
    assert_eq!(r.code, 4000);
    let r = refused(&initial(|v| v["supported_models"] = serde_json::json!(["another/model"])));
    assert_eq!(r.code, 4001);
    assert_eq!(r.response().unwrap().error.unwrap().code, "bad_request", "rejected before the close");
    let r = refused(&initial(|v| v["provider_id"] = "has spaces".into()));
    assert_eq!(r.code, 4001);
    assert!(r.reason.contains("provider_id"), "{}", r.reason);
    let r = refused(&initial(|v| v["binary_version"] = "1.8".into()));
    assert!(r.reason.contains("binary_version"), "{}", r.reason);
    let r = refused(&initial(|v| v["tier2_capabilities"]["encrypted_leg"] = false.into()));
    assert_eq!((r.code, r.reason.as_str()), (4001, "no_common_aead_suite"));
    let r = refused(&initial(|v| {
        let key = v["provider_ecdh_public_key"].as_str().unwrap().to_string();
        v["provider_ecdh_public_key"] = format!("{key}=").into();
    }));
    assert_eq!((r.code, r.reason.as_str()), (4013, "tier2_key_exchange_failed"));
    // The string "2" is a version too.
    let v = initial(|v| v["version"] = "2".into());
    assert!(CoordinatorHandshake::accept_initial(&v, "s", String::new()).is_ok());
}

#[test]
fn both_ends_agree_and_a_proof_for_another_attempt_is_refused() {
    let mut provider = ProviderHandshake::start(AuthInitial::from_hello(hello()));
    let received: Value = serde_json::from_str(provider.initial_frame()).unwrap();
    let (coordinator, challenge) =
        CoordinatorHandshake::accept_initial(&received, "session-1", "2099-01-01T00:00:00Z".into()).unwrap();
    assert_eq!(coordinator.initial().to_hello(), hello(), "the frame stands for the hello it came from");
    let proof = provider.on_challenge(&challenge).unwrap();
    let wire = encode(&ProviderMessage::AuthRequest(AuthRequest::Proof(proof.clone())));
    let Ok(ProviderMessage::AuthRequest(decoded)) = hearth_protocol::decode_provider(&wire, 1 << 20) else {
        panic!("the proof decodes")
    };
    let leg = coordinator.check_proof(Some(&decoded), false).unwrap();
    let response = leg.accepted_response(30, (10_000, 3600));
    let provider_leg = provider.on_response(&response).unwrap();
    assert_eq!(provider_leg.keys, leg.keys);
    assert!(provider_leg.envelope && provider_leg.rekey);

    // Another attempt's proof, or none at all, is refused with the code production uses.
    let (coordinator, _) =
        CoordinatorHandshake::accept_initial(&received, "session-2", "2099-01-01T00:00:00Z".into()).unwrap();
    let r = coordinator.check_proof(Some(&decoded), false).err().unwrap();
    assert_eq!(r.code, 4012);
    let (coordinator, _) =
        CoordinatorHandshake::accept_initial(&received, "session-3", String::new()).unwrap();
    let r = coordinator.check_proof(None, false).err().unwrap();
    assert_eq!((r.code, r.reason.as_str()), (4001, "invalid_auth_request: type"));
}
