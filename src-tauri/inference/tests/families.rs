//! Model families and paths the shared fixtures (Llama, Qwen 2) do not reach — Gemma 3 (sliding
//! window shorter than the prompt, sandwich norms, GELU, embedding scale, linear rope scaling),
//! Qwen 3 (q/k norms), Llama 3 (rope scaling, untied head), a Gemma 3 checkpoint that keeps its own
//! `lm_head` though its config says the embeddings are tied (the weights decide) — on tiny random
//! 4-bit models that `scripts/family_models.py` generates with mlx_lm, which also writes their
//! oracles. Needs a Python with mlx_lm (`HEARTH_MLX_LM_PYTHON`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use hearth_inference::generate::{LocalEngine, ModelRunner};
use hearth_inference::load::load_cpu;
use hearth_inference::{Backend, LoadSpec};
use hearth_testkit::shared_fixtures;

/// Generates the models once per test binary; `None` when mlx_lm is missing (and not required).
fn models() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let python = shared_fixtures::mlx_lm_python()?;
        let dir = std::env::temp_dir().join(format!("hearth-family-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/family_models.py");
        let out = Command::new(python)
            .arg(script)
            .arg(&dir)
            .arg(shared_fixtures::fixture_model("tiny-llama-4bit"))
            .output()
            .unwrap();
        assert!(out.status.success(), "family_models.py failed: {}", String::from_utf8_lossy(&out.stderr));
        Some(dir)
    })
    .as_ref()
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().fold((0, f32::MIN), |best, (i, &x)| if x > best.1 { (i, x) } else { best }).0 as u32
}

/// Prefills each oracle prompt in chunks of `chunk` and decodes 16 greedy tokens: same ids as
/// mlx_lm, first-step logits within `tolerance`.
fn check<R: ModelRunner>(
    dir: &std::path::Path,
    name: &str,
    engine: &LocalEngine<R>,
    chunk: usize,
    tolerance: f32,
) {
    let text = std::fs::read_to_string(dir.join(format!("{name}.raw-oracle.json"))).unwrap();
    let oracle: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in oracle["cases"].as_array().unwrap() {
        let ids: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        let want_greedy: Vec<u32> = serde_json::from_value(case["greedy_ids"].clone()).unwrap();
        let want_logits: Vec<f32> = serde_json::from_value(case["first_step_logits"].clone()).unwrap();
        let mut session = engine.runner().session().unwrap();
        let (mut pos, mut logits) = (0, Vec::new());
        for piece in ids.chunks(chunk) {
            logits = session.forward(piece, pos).unwrap();
            pos += piece.len();
        }
        assert_eq!(logits.len(), want_logits.len(), "{name}: vocabulary size");
        let diff = logits.iter().zip(&want_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < tolerance, "{name} ({} ids, chunk {chunk}): max |logit diff| {diff:e}", ids.len());
        let mut greedy = Vec::new();
        let mut token = argmax(&logits);
        for _ in 0..16 {
            greedy.push(token);
            token = argmax(&session.forward(&[token], pos).unwrap());
            pos += 1;
        }
        assert_eq!(greedy, want_greedy, "{name} ({} ids, chunk {chunk}): greedy ids", ids.len());
    }
}

/// The cpu backend computes in f32, so it is held to the f32 models' oracles.
#[test]
fn cpu_backend_matches_mlx_lm_on_generated_families() {
    let Some(dir) = models() else { return };
    for name in ["tiny-gemma3-4bit", "tiny-qwen3-4bit", "tiny-llama3-4bit", "tiny-gemma3-untied-head-4bit"] {
        let engine =
            load_cpu(&LoadSpec::new(dir.join(name), Backend::Cpu)).unwrap_or_else(|e| panic!("{name}: {e}"));
        for chunk in [1000, 4] {
            check(dir, name, &engine, chunk, 1e-3);
        }
    }
}

/// The mlx backend runs in the model's dtype like mlx_lm, bf16 included.
#[cfg(any(target_os = "macos", feature = "mlx"))]
#[test]
fn mlx_backend_matches_mlx_lm_on_generated_families() {
    let Some(dir) = models() else { return };
    for name in [
        "tiny-gemma3-4bit",
        "tiny-gemma3-bf16-4bit",
        "tiny-qwen3-4bit",
        "tiny-llama3-4bit",
        "tiny-gemma3-untied-head-4bit",
    ] {
        let engine = hearth_inference::mlx::load_mlx(&LoadSpec::new(dir.join(name), Backend::Mlx))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for chunk in [1000, 4, 1] {
            check(dir, name, &engine, chunk, 1e-3);
        }
    }
}
