//! The llama.cpp backend (`Backend::Gguf`) held to llama-cpp-python on the same files: tiny random
//! llama and qwen2 GGUFs (f32, f16 and q8_0) that `scripts/gguf_models.py` writes at test time with
//! the `gguf` package, each with its own embedded tokenizer and chat template. Beside each file
//! llama-cpp-python records, for raw prompts and chat conversations (one with a system message, one
//! with several turns), the prompt's token ids and the greedy continuation (at most 16 tokens,
//! ending before an end-of-generation token) with its text. Needs a Python with `gguf` and
//! `llama-cpp-python` (`HEARTH_GGUF_PYTHON`; see the kit's `shared_fixtures::gguf_python`).
//!
//! The whole file is behind the crate's `gguf` feature, the one that brings llama.cpp.
#![cfg(feature = "gguf")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use hearth_inference::job::ChatMessage;
use hearth_inference::{
    load_engine, Backend, CancelToken, Engine, GenerationEvent, GenerationOutcome, GenerationRequest,
    LoadSpec, Prompt, SamplingParams, StopReason,
};
use hearth_testkit::shared_fixtures;
use serde_json::Value;

/// What the script writes: `<name>.gguf` and `<name>.oracle.json` for each.
const MODELS: [&str; 4] = ["tiny-llama-f32", "tiny-llama-q8_0", "tiny-qwen2-f16", "tiny-qwen2-q8_0"];

/// Greedy tokens the oracle records per case.
const MAX_TOKENS: u32 = 16;

/// Generates the models and oracles once per test binary; `None` when the Python tools are missing
/// (and not required).
fn models() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let python = shared_fixtures::gguf_python()?;
        let dir = std::env::temp_dir().join(format!("hearth-gguf-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/gguf_models.py");
        let out = Command::new(python).arg(script).arg(&dir).output().unwrap();
        assert!(out.status.success(), "gguf_models.py failed: {}", String::from_utf8_lossy(&out.stderr));
        Some(dir)
    })
    .as_deref()
}

fn oracle(dir: &Path, name: &str) -> Value {
    let path = dir.join(format!("{name}.oracle.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

/// The case's prompt as a buyer's request carries it, and a label for failure messages.
fn prompt(case: &Value) -> (Prompt, String) {
    match case["kind"].as_str() {
        Some("raw") => {
            let text = case["prompt"].as_str().unwrap();
            (Prompt::Raw(text.to_string()), format!("raw {text:?}"))
        }
        Some("chat") => {
            let messages: Vec<ChatMessage> = serde_json::from_value(case["messages"].clone()).unwrap();
            let label = format!("chat {}", case["messages"]);
            (Prompt::Chat(messages), label)
        }
        other => panic!("unknown oracle case kind {other:?}"),
    }
}

/// Greedy generation through the `Engine` trait, as the relay runs it: the outcome and the text
/// the deltas add up to.
fn greedy(engine: &dyn Engine, prompt: Prompt) -> (GenerationOutcome, String) {
    let request = GenerationRequest {
        prompt,
        max_tokens: MAX_TOKENS,
        sampling: SamplingParams { temperature: 0.0, ..SamplingParams::default() },
        stop: vec![],
    };
    let mut text = String::new();
    let outcome = engine
        .generate(&request, &CancelToken::new(), &mut |event| {
            if let GenerationEvent::Delta(delta) = event {
                text.push_str(&delta);
            }
        })
        .unwrap_or_else(|e| panic!("generation failed: {e}"));
    (outcome, text)
}

/// How near a tie (top-two margin over the case's largest |logit|) a greedy step of
/// llama-cpp-python's must have been for another build to pick differently there. llama.cpp's
/// kernels round differently by build, CPU variant and batch shape; measured on these files with
/// llama-cpp-python itself, prefilling one token at a time instead of in one batch moved the logits
/// by at most 1.1e-4 (f32), 6.2e-4 (f16) and 9.5e-3 (q8_0) of that scale (q8_0 quantizes the
/// activations, differently per kernel). The bounds are two to ten times those: only a near-tie
/// excuses a different token, and every step before it must agree exactly.
fn near_tie(tensor_type: &str) -> f64 {
    match tensor_type {
        "F32" => 1e-3,
        "F16" => 5e-3,
        "Q8_0" => 2e-2,
        other => panic!("no rounding bound for {other} tensors"),
    }
}

#[test]
fn gguf_backend_matches_llama_cpp_python_on_tiny_llama_and_qwen2() {
    let Some(dir) = models() else { return };
    let mut diverged = Vec::new();
    for name in MODELS {
        let path = dir.join(format!("{name}.gguf"));
        let engine =
            load_engine(&LoadSpec::new(&path, Backend::Gguf)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let oracle = oracle(dir, name);
        let bound = near_tie(oracle["tensor_type"].as_str().unwrap());
        let cases = oracle["cases"].as_array().unwrap();
        // The oracle covers what the backend is held to: raw prompts and conversations, one of
        // them opening with a system message.
        assert!(cases.iter().any(|c| c["kind"] == "raw"), "{name}: no raw prompt in the oracle");
        assert!(
            cases.iter().any(|c| c["kind"] == "chat" && c["messages"][0]["role"] == "system"),
            "{name}: no conversation with a system message in the oracle"
        );
        for case in cases {
            let (prompt, label) = prompt(case);
            let (outcome, text) = greedy(engine.as_ref(), prompt);
            let want_prompt = ids(&case["prompt_ids"]);
            let want_greedy = ids(&case["greedy_ids"]);
            assert_eq!(outcome.prompt_ids, want_prompt, "{name} {label}: prompt ids");
            assert_eq!(outcome.prompt_tokens, want_prompt.len() as u64, "{name} {label}: prompt usage");
            assert_eq!(outcome.completion_tokens, outcome.token_ids.len() as u64, "{name} {label}: usage");

            let agreed = outcome.token_ids.iter().zip(&want_greedy).take_while(|(a, b)| a == b).count();
            if agreed < outcome.token_ids.len().max(want_greedy.len()) {
                // A different token (or an end where the oracle went on, or the reverse) at step
                // `agreed`: allowed only where llama-cpp-python's winner barely led.
                let margin = case["margins"][agreed].as_f64().unwrap();
                let relative = margin / case["logit_scale"].as_f64().unwrap();
                assert!(
                    relative <= bound,
                    "{name} {label}: greedy ids differ at step {agreed}, where llama-cpp-python's top two \
                     logits were {margin} apart ({relative:.1e} of the logit scale, more than the {bound:.0e} \
                     kernels may round away)\n got  {:?}\n want {want_greedy:?}",
                    outcome.token_ids
                );
                diverged.push(format!("{name} {label}: step {agreed}, margin {relative:.1e} of the scale"));
                continue;
            }
            assert_eq!(text, case["text"].as_str().unwrap(), "{name} {label}: text");
            let want_stop =
                if case["ended_by_eog"].as_bool().unwrap() { StopReason::Stop } else { StopReason::Length };
            assert_eq!(outcome.stop_reason, want_stop, "{name} {label}: finish reason");
        }
    }
    if !diverged.is_empty() {
        println!("near-ties that went the other way (within the rounding bound):\n{}", diverged.join("\n"));
    }
}
