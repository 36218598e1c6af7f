//! Where the shared fixtures live: model directories, their mlx_lm oracles and tokenizers, kept
//! outside the repository in `shared/` (beside the clone, or wherever `HEARTH_SHARED_DIR` says).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `shared/` beside the repository clone; `HEARTH_SHARED_DIR` overrides.
pub fn shared_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HEARTH_SHARED_DIR") {
        return PathBuf::from(d);
    }
    // This crate is src-tauri/testkit: three levels below the clone's parent.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// A fixture model directory, e.g. `fixture_model("tiny-llama-4bit")`.
pub fn fixture_model(name: &str) -> PathBuf {
    shared_dir().join("fixtures/models").join(name)
}

/// The fixture models' folder, or `None` where this checkout has no shared fixtures (the caller
/// then skips, saying so).
pub fn fixture_models_if_present() -> Option<PathBuf> {
    let models = shared_dir().join("fixtures/models");
    models.join("tiny-llama-4bit/config.json").is_file().then_some(models)
}

/// The mlx_lm oracle recorded for fixture model `name` (`<name>.oracle.json`).
pub fn oracle(name: &str) -> serde_json::Value {
    let p = shared_dir().join("fixtures/models").join(format!("{name}.oracle.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// A Python that can import mlx_lm (`HEARTH_MLX_LM_PYTHON`, else `python3`). `None` means skip the
/// test — unless `HEARTH_REQUIRE_MODELS` is set (scripts/test.sh), which makes it a failure.
pub fn mlx_lm_python() -> Option<String> {
    let python = std::env::var("HEARTH_MLX_LM_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import mlx_lm"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("HEARTH_REQUIRE_MODELS").is_none(),
        "{python} cannot import mlx_lm; scripts/test.sh provisions it (HEARTH_MLX_LM_PYTHON)"
    );
    println!(
        "SKIP: {python} cannot import mlx_lm; pip install 'mlx[cpu]' mlx-lm and set HEARTH_MLX_LM_PYTHON"
    );
    None
}
