//! Every message type round-trips, the example frames in PROTOCOL.md decode verbatim, and bad
//! frames get errors that say what was wrong.

use hearth_protocol::openai::{ChatCompletionRequest, ChunkBuilder, FinishReason};
use hearth_protocol::*;
use serde_json::Value;

mod support;
use support::shared_dir;

/// The JSON lines of the "Example frames" block of PROTOCOL.md.
fn protocol_examples() -> Vec<String> {
    let path = shared_dir().join("design/PROTOCOL.md");
    let doc =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let section = doc.split("## Example frames").nth(1).expect("PROTOCOL.md has an Example frames section");
    let block = section.split("```json").nth(1).unwrap().split("```").next().unwrap();
    block.lines().map(str::trim).filter(|l| l.starts_with('{')).map(str::to_string).collect()
}

const PROVIDER_TYPES: &[&str] = &[
    "hello",
    "state_update",
    "heartbeat",
    "inference_response_chunk",
    "inference_response_end",
    "preflight_ack",
    "drain_status",
];

#[test]
fn protocol_md_examples_decode_and_reencode_to_the_same_json() {
    let examples = protocol_examples();
    assert!(examples.len() >= 13, "found only {} examples", examples.len());
    let mut types = std::collections::BTreeSet::new();
    for line in &examples {
        let original: Value = serde_json::from_str(line).unwrap();
        let type_name = original["type"].as_str().unwrap().to_string();
        types.insert(type_name.clone());
        let reencoded: Value = if type_name == "nak" {
            // Either side may send a nak; decode it from both directions.
            let p = decode_provider(line, DEFAULT_MAX_FRAME_BYTES).unwrap();
            let c = decode_coordinator(line, DEFAULT_MAX_FRAME_BYTES).unwrap();
            assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::to_value(&c).unwrap());
            serde_json::from_str(&encode(&p)).unwrap()
        } else if PROVIDER_TYPES.contains(&type_name.as_str()) {
            let m = decode_provider(line, DEFAULT_MAX_FRAME_BYTES).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(m.type_name(), type_name);
            serde_json::from_str(&encode(&m)).unwrap()
        } else {
            let m =
                decode_coordinator(line, DEFAULT_MAX_FRAME_BYTES).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(m.type_name(), type_name);
            serde_json::from_str(&encode(&m)).unwrap()
        };
        // Everything we type survives; fields we do not model are allowed to drop out.
        for (key, value) in original.as_object().unwrap() {
            if let Some(ours) = reencoded.get(key) {
                assert_eq!(ours, value, "field {key} of {type_name} changed");
            } else {
                panic!("field {key} of {type_name} was lost in the round trip");
            }
        }
    }
    for t in [
        "hello",
        "hello_ack",
        "state_update",
        "heartbeat",
        "inference_request",
        "inference_response_chunk",
        "inference_response_end",
        "cancel_request",
        "preflight",
        "preflight_ack",
        "drain_status",
        "nak",
    ] {
        assert!(types.contains(t), "no example of {t}");
    }
}

#[test]
fn every_message_round_trips() {
    let provider = vec![
        ProviderMessage::Hello(Hello {
            version: 1,
            tier: 1,
            provider_id: "p-1".into(),
            hostname: "mac.local".into(),
            model_id: "m".into(),
            model_params_b: 0.5,
            ram_gb: 16,
            max_context_tokens: 4096,
            max_concurrency: 2,
            throughput_tps_estimate: 40.0,
            binary_version: "0.1.0".into(),
            attestation: None,
            model_hash: Some("ab".into()),
            model_hash_algorithm: Some("sha256".into()),
            runtime_source: Some("hearth/cpu".into()),
        }),
        ProviderMessage::StateUpdate(StateUpdate {
            state: ProviderState::Busy,
            reason: "request_capacity_full".into(),
            since: "2026-11-24T10:00:00Z".into(),
            metrics_snapshot: MetricsSnapshot {
                slots_free: 0,
                slots_total: 1,
                window: MetricsWindow {
                    requests_served_since_last: 3,
                    avg_latency_ms_since_last: Some(12.5),
                    throughput_tps_since_last: None,
                },
            },
        }),
        ProviderMessage::Heartbeat(Heartbeat {
            status: ProviderState::Draining,
            model_id: "m".into(),
            model_params_b: 1.0,
            ram_gb: 8,
            max_context_tokens: 2048,
            max_concurrency: 1,
            slots_free: 1,
            slots_total: 1,
            throughput_tps_estimate: 1.0,
            window: MetricsWindow::default(),
            loading: Some(false),
        }),
        ProviderMessage::InferenceResponseChunk(ResponseChunk {
            request_id: "r".into(),
            seq: 7,
            data: "data: x\n\n".into(),
        }),
        ProviderMessage::InferenceResponseEnd(ResponseEnd {
            request_id: "r".into(),
            status: EndStatus::ErrorQueueFull,
            chunks_sent: 0,
            usage: Usage::new(1, 2),
            error: Some(ErrorBody::new("queue_full", "busy")),
            retryable: Some(true),
            terminal_state_ts_unix_ms: Some(1),
        }),
        ProviderMessage::PreflightAck(PreflightAck {
            request_id: "r".into(),
            accepted: false,
            estimated_wait_ms: 0,
            reason: Some(PreflightReason::ContextExceedsCapacity),
            max_context_tokens: 4096,
        }),
        ProviderMessage::DrainStatus(DrainStatus {
            phase: DrainPhase::InProgress,
            inflight_requests: 2,
            estimated_drain_seconds: 30,
        }),
        ProviderMessage::Nak(Nak {
            in_reply_to: "ownership_event".into(),
            error: ErrorBody::new("unknown_message_type", "no"),
        }),
    ];
    for m in provider {
        let text = encode(&m);
        assert_eq!(decode_provider(&text, DEFAULT_MAX_FRAME_BYTES).unwrap(), m, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], m.type_name());
    }
    let coordinator = vec![
        CoordinatorMessage::HelloAck(HelloAck {
            coordinator_version: 1,
            assigned_id: "a".into(),
            heartbeat_interval_s: 30,
            tier: Some("pinned".into()),
            recommended_binary_version: None,
            required_binary_version: Some("0.1.0".into()),
            assigned_provider_token: None,
            auth_state: Some("bearer_validated".into()),
            autoupdate_drain_extensions: Some(true),
            compatibility_policy: None,
        }),
        CoordinatorMessage::InferenceRequest(InferenceRequest {
            request_id: "req-1".into(),
            stream: true,
            body: "{}".into(),
            settlement: None,
            conversation_key: Some("k".into()),
            body_encoding: None,
        }),
        CoordinatorMessage::CancelRequest(CancelRequest {
            request_id: "req-1".into(),
            reason: "timeout".into(),
        }),
        CoordinatorMessage::Preflight(Preflight { request_id: "req-1".into(), estimated_tokens: 6000 }),
        CoordinatorMessage::WarmUp {},
        CoordinatorMessage::Drain {},
        CoordinatorMessage::Nak(Nak { in_reply_to: "heartbeat".into(), error: ErrorBody::new("x", "y") }),
    ];
    for m in coordinator {
        let text = encode(&m);
        assert_eq!(decode_coordinator(&text, DEFAULT_MAX_FRAME_BYTES).unwrap(), m, "{text}");
    }
    assert_eq!(encode(&CoordinatorMessage::WarmUp {}), r#"{"type":"warm_up"}"#);
}

#[test]
fn unknown_fields_are_ignored_and_unit_messages_accept_extras() {
    let m = decode_coordinator(r#"{"type":"drain","reason":"operator","future":{"x":1}}"#, 1024).unwrap();
    assert_eq!(m, CoordinatorMessage::Drain {});
    let m = decode_coordinator(
        r#"{"type":"hello_ack","assigned_id":"a","heartbeat_interval_s":30,"tier":"provisional","catalog_compatible":true,"new_field":[1,2]}"#,
        1024,
    )
    .unwrap();
    let CoordinatorMessage::HelloAck(ack) = m else { panic!() };
    assert_eq!(ack.tier.as_deref(), Some("provisional"));
    assert_eq!(ack.coordinator_version, 1);
}

#[test]
fn bad_frames_get_typed_errors_and_the_right_nak() {
    let e = decode_coordinator("[1,2]", 1024).unwrap_err();
    assert!(matches!(e, DecodeError::Malformed(_)));
    assert_eq!(e.to_nak().error.code, nak_code::MALFORMED_FRAME);
    assert_eq!(decode_coordinator("{}", 1024).unwrap_err(), DecodeError::MissingType);
    let e = decode_coordinator(r#"{"type":"se_liveness_challenge"}"#, 1024).unwrap_err();
    assert_eq!(e, DecodeError::UnknownType("se_liveness_challenge".into()));
    let nak = e.to_nak();
    assert_eq!(
        (nak.in_reply_to.as_str(), nak.error.code.as_str()),
        ("se_liveness_challenge", "unknown_message_type")
    );
    let e = decode_coordinator(r#"{"type":"cancel_request"}"#, 1024).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Invalid { type_name, detail } if type_name == "cancel_request" && detail.contains("request_id")),
        "{e}"
    );
    let e = decode_coordinator(r#"{"type":"preflight","request_id":"r","estimated_tokens":-1}"#, 1024)
        .unwrap_err();
    assert!(matches!(e, DecodeError::Invalid { .. }));
    let big = format!(r#"{{"type":"drain","pad":"{}"}}"#, "x".repeat(2000));
    let e = decode_coordinator(&big, 1024).unwrap_err();
    assert!(matches!(e, DecodeError::TooLarge { max: 1024, .. }));
    assert!(e.to_string().contains("1024"));
    // A provider type sent by a coordinator is unknown in that direction.
    assert!(matches!(decode_coordinator(r#"{"type":"heartbeat"}"#, 1024), Err(DecodeError::UnknownType(_))));
}

#[test]
fn hello_validation_names_the_field() {
    let examples = protocol_examples();
    let hello_line = examples.iter().find(|l| l.contains(r#""type":"hello""#)).unwrap();
    let ProviderMessage::Hello(hello) = decode_provider(hello_line, DEFAULT_MAX_FRAME_BYTES).unwrap() else {
        panic!()
    };
    hello.validate().unwrap();
    let mut h = hello.clone();
    h.provider_id = "bad id/with slash".into();
    assert_eq!(h.validate().unwrap_err().field, "provider_id");
    let mut h = hello.clone();
    h.hostname = "a\u{7}b".into();
    assert_eq!(h.validate().unwrap_err().field, "hostname");
    let mut h = hello.clone();
    h.model_id = "m".repeat(257);
    assert_eq!(h.validate().unwrap_err().field, "model_id");
    let mut h = hello;
    h.binary_version = "latest".into();
    let e = h.validate().unwrap_err();
    assert_eq!(e.field, "binary_version");
    assert!(e.to_string().starts_with("invalid_hello: binary_version"));
}

#[test]
fn chat_requests_are_validated_with_the_parameter_named() {
    let ok = ChatCompletionRequest::parse(
        r#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
            "max_tokens":5,"temperature":0.7,"top_p":0.9,"seed":42,"stop":"\n","stream":true,"stream_options":{"include_usage":true},"tools":[]}"#,
    )
    .unwrap();
    assert_eq!(ok.messages[1].content, "ab");
    assert_eq!((ok.max_tokens, ok.seed, ok.stream, ok.include_usage), (Some(5), Some(42), true, true));
    assert_eq!(ok.stop, vec!["\n".to_string()]);
    let cases = [
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#, "max_tokens"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, "max_tokens"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#, "temperature"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":"high"}"#, "top_p"),
        (r#"{"model":"m","messages":[]}"#, "messages"),
        (r#"{"messages":[{"role":"user","content":"x"}]}"#, "model"),
        (r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#, "messages[0]"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#, "stop"),
        (r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#, "messages[0]"),
    ];
    for (body, param) in cases {
        let e = ChatCompletionRequest::parse(body).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
    }
    assert!(ChatCompletionRequest::parse("nope").unwrap_err().message.contains("not valid JSON"));
}

#[test]
fn chunks_are_whole_sse_events() {
    let b = ChunkBuilder::new("chatcmpl-1", 1764000000, "m");
    for event in [b.role(), b.content("hé 🙂"), b.finish(FinishReason::Length), b.usage(&Usage::new(3, 4))]
    {
        let json = event.strip_prefix("data: ").unwrap().strip_suffix("\n\n").unwrap();
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["id"], "chatcmpl-1");
    }
    let v: Value = serde_json::from_str(b.content("hé 🙂").strip_prefix("data: ").unwrap().trim()).unwrap();
    assert_eq!(v["choices"][0]["delta"]["content"], "hé 🙂");
    let v: Value = serde_json::from_str(&b.completion("ok", FinishReason::Stop, &Usage::new(1, 1))).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "ok");
    assert_eq!(v["usage"]["total_tokens"], 2);
}
