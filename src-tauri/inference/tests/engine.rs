//! The cpu engine through the public API: loading errors, inspection, the generation loop's
//! events, stop sequences, cancellation, context limits, seeded sampling and the bench.

use std::path::{Path, PathBuf};

use hearth_inference::job::ChatMessage;
use hearth_inference::load::load_cpu;
use hearth_inference::ModelFormat;
use hearth_inference::{
    bench_model, inspect_model, load_engine, Backend, CancelToken, Engine, EngineError, GenerationEvent,
    GenerationRequest, LoadError, LoadSpec, Prompt, SamplingParams, StopReason,
};
use hearth_testkit::shared_fixtures;

fn llama() -> PathBuf {
    shared_fixtures::fixture_model("tiny-llama-4bit")
}

fn raw(text: &str, max_tokens: u32) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Raw(text.into()),
        max_tokens,
        sampling: SamplingParams::default(),
        stop: vec![],
    }
}

/// A writable copy of a fixture model directory.
fn copy_fixture(name: &str, tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("hearth-inf-{tag}-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(shared_fixtures::fixture_model(name)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        let mut perm = std::fs::metadata(dst.join(p.file_name().unwrap())).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(dst.join(p.file_name().unwrap()), perm).unwrap();
    }
    dst
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn load_errors_name_the_problem() {
    let err = load_engine(&LoadSpec::new("/nonexistent/model", Backend::Cpu)).err().unwrap();
    assert!(matches!(err, LoadError::NotFound(_)), "{err}");

    let d = copy_fixture("tiny-llama-4bit", "notok");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    let err = load_engine(&LoadSpec::new(&d, Backend::Cpu)).err().unwrap();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    let d = copy_fixture("tiny-llama-4bit", "arch");
    edit_config(&d, |c| c["model_type"] = "mamba".into());
    let err = load_engine(&LoadSpec::new(&d, Backend::Cpu)).err().unwrap();
    assert!(matches!(&err, LoadError::UnsupportedArchitecture { found, .. } if found == "mamba"), "{err}");
    assert!(err.to_string().contains("llama") && err.to_string().contains("qwen2"), "{err}");

    let d = copy_fixture("tiny-llama-4bit", "bits");
    edit_config(&d, |c| c["quantization"]["bits"] = 3.into());
    let err = load_engine(&LoadSpec::new(&d, Backend::Cpu)).err().unwrap();
    assert!(matches!(err, LoadError::UnsupportedQuantization(_)), "{err}");

    let d = copy_fixture("tiny-llama-4bit", "shard");
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    let err = load_engine(&LoadSpec::new(&d, Backend::Cpu)).err().unwrap();
    assert!(
        matches!(&err, LoadError::MissingFile { path, .. } if path.ends_with("model.safetensors")),
        "{err}"
    );

    #[cfg(not(any(target_os = "macos", feature = "mlx")))]
    assert!(matches!(
        load_engine(&LoadSpec::new(llama(), Backend::Mlx)).err().unwrap(),
        LoadError::EngineUnavailable { .. }
    ));
}

#[test]
fn inspect_reports_model_facts() {
    let info = inspect_model(&llama()).unwrap();
    assert_eq!(info.model_id, "tiny-llama-4bit");
    assert_eq!(info.format, ModelFormat::MlxDir);
    assert_eq!(info.family, "llama");
    assert_eq!((info.quant_bits, info.quant_group_size), (Some(4), Some(64)));
    assert!(info.size_on_disk > 60_000);
    assert!(info.params > 90_000 && info.params < 110_000, "{}", info.params);
    assert!(info.has_chat_template);
    assert!(info.cpu_supported.is_ok());
    assert!(info.estimated_memory(&Backend::Cpu, 2048) > info.params * 4);
}

#[test]
fn events_usage_and_limits() {
    let engine = load_cpu(&LoadSpec::new(llama(), Backend::Cpu)).unwrap();
    let mut events = vec![];
    let out = engine
        .generate(&raw("Hello world! This is", 5), &CancelToken::new(), &mut |e| events.push(e))
        .unwrap();
    assert_eq!(events[0], GenerationEvent::PrefillProgress { done: 0, total: 5 });
    assert_eq!(events[1], GenerationEvent::PrefillProgress { done: 5, total: 5 });
    assert_eq!((out.prompt_tokens, out.completion_tokens), (5, 5));
    assert_eq!(out.stop_reason, StopReason::Length);

    // Context limit: a prompt that does not fit is refused; one that nearly fits is cut short.
    let mut spec = LoadSpec::new(llama(), Backend::Cpu);
    spec.max_context = Some(8);
    let small = load_cpu(&spec).unwrap();
    assert_eq!(small.descriptor().max_context_tokens, 8);
    let err = small.generate(
        &raw("What is the capital of France? And of Spain?", 4),
        &CancelToken::new(),
        &mut |_| {},
    );
    assert!(matches!(err, Err(EngineError::ContextExceeded { max_context_tokens: 8, .. })), "{err:?}");
    let out = small.generate(&raw("Hello world! This is", 10), &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!(out.completion_tokens, 3);
    assert_eq!(out.stop_reason, StopReason::Length);
}

#[test]
fn stop_sequence_and_cancel() {
    let engine = load_cpu(&LoadSpec::new(llama(), Backend::Cpu)).unwrap();
    // The oracle's greedy text for this prompt contains "worst"; stop just before it.
    let mut req = raw("What is the capital of France?", 16);
    req.stop = vec!["worst".into()];
    let mut text = String::new();
    let out = engine
        .generate(&req, &CancelToken::new(), &mut |e| {
            if let GenerationEvent::Delta(d) = e {
                text.push_str(&d)
            }
        })
        .unwrap();
    assert_eq!(out.stop_reason, StopReason::Stop);
    assert_eq!(text, "\u{FFFD}\u{FFFD} ");

    // Cancel from inside the callback after the first delta: the job ends within one step.
    let cancel = CancelToken::new();
    let mut deltas = 0;
    let out = engine
        .generate(&raw("Hello world! This is", 16), &cancel, &mut |e| {
            if matches!(e, GenerationEvent::Delta(_)) {
                deltas += 1;
                cancel.cancel();
            }
        })
        .unwrap();
    assert_eq!(out.stop_reason, StopReason::Cancelled);
    assert!(out.completion_tokens < 16);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let engine =
        load_cpu(&LoadSpec::new(shared_fixtures::fixture_model("tiny-qwen2-4bit"), Backend::Cpu)).unwrap();
    let mut req = GenerationRequest {
        prompt: Prompt::Chat(vec![ChatMessage { role: "user".into(), content: "Say hello".into() }]),
        max_tokens: 12,
        sampling: SamplingParams { temperature: 0.9, top_p: 0.9, top_k: Some(50), seed: Some(1234) },
        stop: vec![],
    };
    let a = engine.generate(&req, &CancelToken::new(), &mut |_| {}).unwrap().token_ids;
    let b = engine.generate(&req, &CancelToken::new(), &mut |_| {}).unwrap().token_ids;
    assert_eq!(a, b);
    req.sampling.seed = Some(99);
    let c = engine.generate(&req, &CancelToken::new(), &mut |_| {}).unwrap().token_ids;
    assert_ne!(a, c);
}

#[test]
fn bench_runs() {
    let engine = load_cpu(&LoadSpec::new(llama(), Backend::Cpu)).unwrap();
    let r = bench_model(engine.as_ref(), 64, 16, 3).unwrap();
    println!("{r:?}");
    assert!(r.prompt_tps > 0.0 && r.generation_tps > 0.0);
    assert!(r.prompt_tokens >= 32);
}
