//! The cpu engine — and the mlx engine (macOS, or the `mlx` feature) — reproduces the mlx_lm
//! oracles for the tiny fixtures: identical prompt ids, first-step logits within 1e-3, identical 16
//! greedy tokens — through the public engine API.

use hearth_inference::generate::{LocalEngine, ModelRunner};
use hearth_inference::job::ChatMessage;
use hearth_inference::load::load_cpu;
use hearth_inference::{Backend, LoadSpec};
use hearth_inference::{CancelToken, Engine, GenerationRequest, Prompt, SamplingParams, StopReason};
use hearth_testkit::shared_fixtures;

fn prompt_of(case: &serde_json::Value) -> Prompt {
    match case["kind"].as_str().unwrap() {
        "raw" => Prompt::Raw(case["text"].as_str().unwrap().to_string()),
        _ => Prompt::Chat(serde_json::from_value::<Vec<ChatMessage>>(case["messages"].clone()).unwrap()),
    }
}

fn check(name: &str) -> f32 {
    let engine = load_cpu(&LoadSpec::new(shared_fixtures::fixture_model(name), Backend::Cpu)).unwrap();
    check_engine(name, &*engine)
}

/// The oracle checks against any local engine (the cpu one, or mlx).
fn check_engine<R: ModelRunner>(name: &str, engine: &LocalEngine<R>) -> f32 {
    assert_eq!(engine.descriptor().model_id, name);
    let oracle = shared_fixtures::oracle(name);
    let max_tokens = oracle["max_tokens"].as_u64().unwrap() as u32;
    let mut worst = 0f32;
    for case in oracle["cases"].as_array().unwrap() {
        let want_prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        let want_greedy: Vec<u32> = serde_json::from_value(case["greedy_ids"].clone()).unwrap();
        let want_logits: Vec<f32> = serde_json::from_value(case["first_step_logits"].clone()).unwrap();
        let prompt = prompt_of(case);

        let ids = engine.codec().encode_prompt(&prompt).unwrap();
        assert_eq!(ids, want_prompt, "{name}: prompt ids");

        let mut session = engine.runner().session().unwrap();
        let logits = session.forward(&ids, 0).unwrap();
        assert_eq!(logits.len(), want_logits.len());
        let diff = logits.iter().zip(&want_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("{name} {}: max |logit diff| = {diff:.2e}", case["kind"]);
        assert!(diff < 1e-3, "{name}: first-step logits differ by {diff}");
        worst = worst.max(diff);

        let request =
            GenerationRequest { prompt, max_tokens, sampling: SamplingParams::default(), stop: vec![] };
        let mut text = String::new();
        let out = engine
            .generate(&request, &CancelToken::new(), &mut |e| {
                if let hearth_inference::GenerationEvent::Delta(d) = e {
                    text.push_str(&d)
                }
            })
            .unwrap();
        assert_eq!(out.prompt_ids, want_prompt);
        assert_eq!(out.token_ids, want_greedy, "{name}: greedy ids");
        assert_eq!(out.stop_reason, StopReason::Length);
        assert_eq!(out.completion_tokens, max_tokens as u64);
        assert_eq!(text, case["greedy_text"].as_str().unwrap(), "{name}: greedy text");
    }
    println!("{name}: worst max |logit diff| = {worst:.2e}");
    worst
}

#[test]
fn tiny_llama_matches_oracle() {
    check("tiny-llama-4bit");
}

#[test]
fn tiny_qwen2_matches_oracle() {
    check("tiny-qwen2-4bit");
}

/// Prefill in chunks must give the same logits as one pass (exercises cache + masks).
#[test]
fn chunked_prefill_matches_single_pass() {
    let engine =
        load_cpu(&LoadSpec::new(shared_fixtures::fixture_model("tiny-llama-4bit"), Backend::Cpu)).unwrap();
    chunked_prefill_diff(&*engine, 1e-4);
}

fn chunked_prefill_diff<R: ModelRunner>(engine: &LocalEngine<R>, tolerance: f32) {
    let ids = engine
        .codec()
        .encode_prompt(&Prompt::Raw("Hello world! This is a test of the emergency broadcast system".into()))
        .unwrap();
    let whole = engine.runner().session().unwrap().forward(&ids, 0).unwrap();
    let mut s = engine.runner().session().unwrap();
    let mut pos = 0;
    let mut last = vec![];
    for chunk in ids.chunks(3) {
        last = s.forward(chunk, pos).unwrap();
        pos += chunk.len();
    }
    let diff = whole.iter().zip(&last).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < tolerance, "{diff}");
}

/// The same parity checks on the MLX backend: on macOS (GPU), or on any OS with the `mlx` feature
/// (MLX's default device, the CPU on a CPU-only build).
#[cfg(any(target_os = "macos", feature = "mlx"))]
mod mlx {
    use super::*;
    use hearth_inference::load_engine;
    use hearth_inference::mlx::{load_mlx, MlxEngine};

    fn load(name: &str) -> std::sync::Arc<MlxEngine> {
        load_mlx(&LoadSpec::new(shared_fixtures::fixture_model(name), Backend::Mlx)).unwrap()
    }

    #[test]
    fn tiny_llama_matches_oracle_on_mlx() {
        check_engine("tiny-llama-4bit", &*load("tiny-llama-4bit"));
    }

    #[test]
    fn tiny_qwen2_matches_oracle_on_mlx() {
        check_engine("tiny-qwen2-4bit", &*load("tiny-qwen2-4bit"));
    }

    /// GPU kernels differ between a single query and a block of them, hence the looser bound.
    #[test]
    fn chunked_prefill_matches_single_pass_on_mlx() {
        chunked_prefill_diff(&*load("tiny-llama-4bit"), 1e-3);
    }

    /// `load_engine` routes `Backend::Mlx` to this backend wherever it is built.
    #[test]
    fn load_engine_picks_mlx() {
        let engine =
            load_engine(&LoadSpec::new(shared_fixtures::fixture_model("tiny-llama-4bit"), Backend::Mlx))
                .unwrap();
        assert_eq!(engine.descriptor().engine, "mlx");
        assert_eq!(engine.descriptor().model_id, "tiny-llama-4bit");
    }
}
