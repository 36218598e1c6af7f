//! `hearth generate` as someone checking a model's chat template runs it: a whole conversation
//! through `--messages` (system message included) on the shared tiny fixtures gives mlx_lm's
//! prompt ids and greedy ids, and a malformed conversation is refused naming the flag and the
//! shape it wants.

use std::process::Output;

use hearth_testkit::hearth::Hearth;
use hearth_testkit::shared_fixtures;
use serde_json::Value;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

fn generate(args: &[&str]) -> Output {
    HEARTH.command().arg("generate").args(args).output().expect("running hearth generate")
}

#[test]
fn messages_give_mlx_lm_prompt_and_greedy_ids_for_whole_conversations() {
    let Some(models) = shared_fixtures::fixture_models_if_present() else {
        println!("SKIP: no shared fixtures (HEARTH_SHARED_DIR)");
        return;
    };
    for name in ["tiny-llama-4bit", "tiny-qwen2-4bit"] {
        let oracle = shared_fixtures::oracle(name);
        let chats: Vec<&Value> =
            oracle["cases"].as_array().unwrap().iter().filter(|c| c["kind"] == "chat").collect();
        assert!(
            chats.iter().any(|c| c["messages"][0]["role"] == "system"),
            "{name}: the oracle has no conversation with a system message"
        );
        let model = models.join(name);
        for case in chats {
            let messages = case["messages"].to_string();
            let max_tokens = oracle["max_tokens"].to_string();
            let out = generate(&[
                "--engine",
                "cpu",
                "--model",
                model.to_str().unwrap(),
                "--messages",
                &messages,
                "--max-tokens",
                &max_tokens,
                "--json",
            ]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{name} {messages}: {}\n{stderr}", out.status);
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!("{name}: not one JSON object ({e}): {}", String::from_utf8_lossy(&out.stdout))
            });
            assert_eq!(report["prompt_ids"], case["prompt_ids"], "{name} {messages}: prompt ids");
            assert_eq!(report["token_ids"], case["greedy_ids"], "{name} {messages}: greedy ids");
        }
    }
}

#[test]
fn malformed_messages_are_refused_naming_the_flag_and_the_shape() {
    // The scripted engine needs no model: the flag is checked before anything loads.
    for bad in ["[{\"role\": \"user\"", r#"{"role":"user","content":"Hi"}"#, r#"[{"content":"Hi"}]"#, "[]"] {
        let out = generate(&["--engine", "scripted", "--messages", bad, "--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} was accepted: {}", String::from_utf8_lossy(&out.stdout));
        assert!(stderr.contains("--messages"), "{bad}: {stderr}");
        assert!(
            stderr.contains(r#"JSON array of {"role": "...", "content": "..."} objects"#),
            "{bad}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{bad}: printed {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn scripted_engine_takes_a_conversation() {
    let messages = r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]"#;
    let out = generate(&["--engine", "scripted", "--messages", messages, "--max-tokens", "4", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["engine"], "scripted");
    assert!(report["completion_tokens"].as_u64().unwrap() > 0, "{report}");
}
