//! Where the shared fixtures live: model directories, their mlx_lm oracles and tokenizers, kept
//! outside the repository in `shared/` (beside the clone, or wherever `HEARTH_SHARED_DIR` says) —
//! and the Pythons whose packages generate the other model fixtures and their oracles at test time.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `shared/` beside the repository clone; `HEARTH_SHARED_DIR` overrides.
///
/// Found from the working directory, which cargo sets to the test's package inside the clone: the
/// nearest ancestor with a `shared/` folder beside it. Not from the build tree's path, so nothing
/// here depends on where the crate was compiled.
pub fn shared_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HEARTH_SHARED_DIR") {
        return PathBuf::from(d);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .map(|a| a.join("shared"))
        .find(|s| s.join("fixtures").is_dir() || s.join("design").is_dir())
        .unwrap_or_else(|| cwd.join("..").join("shared"))
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
    python_that_imports(
        python,
        "mlx_lm",
        "scripts/test.sh provisions it (HEARTH_MLX_LM_PYTHON)",
        "pip install 'mlx[cpu]' mlx-lm and set HEARTH_MLX_LM_PYTHON",
    )
}

/// The Python of the venv `.ci/run` provisions with the tests' Python peers and oracles.
pub const CI_VENV_PYTHON: &str = "/var/tmp/hearth-venv/bin/python";

/// A Python that can import `gguf` and `llama_cpp` (llama-cpp-python), which write the tiny GGUF
/// models and their oracles: `HEARTH_GGUF_PYTHON`, else the CI venv's if it exists, else `python3`.
/// `None` means skip the test — unless `HEARTH_REQUIRE_MODELS` is set, which makes it a failure.
pub fn gguf_python() -> Option<String> {
    let python = std::env::var("HEARTH_GGUF_PYTHON").unwrap_or_else(|_| {
        if std::path::Path::new(CI_VENV_PYTHON).is_file() { CI_VENV_PYTHON } else { "python3" }.into()
    });
    python_that_imports(
        python,
        "gguf, llama_cpp",
        ".ci/run provisions it in /var/tmp/hearth-venv (HEARTH_GGUF_PYTHON)",
        "pip install gguf llama-cpp-python and set HEARTH_GGUF_PYTHON",
    )
}

/// `python` if it can `import modules`; otherwise `None` (skip, printing `install`), or a panic
/// saying `provisioned` when `HEARTH_REQUIRE_MODELS` is set.
fn python_that_imports(python: String, modules: &str, provisioned: &str, install: &str) -> Option<String> {
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("HEARTH_REQUIRE_MODELS").is_none(),
        "{python} cannot import {modules}; {provisioned}"
    );
    println!("SKIP: {python} cannot import {modules}; {install}");
    None
}

/// The real Gemma 3 270M GGUF (`HEARTH_GEMMA_GGUF`, provisioned by scripts/fetch-gemma.sh from its
/// PyPI package). `None` means skip the test, saying why — unless `HEARTH_REQUIRE_MODELS` is set,
/// which makes it a failure.
pub fn gemma_gguf() -> Option<PathBuf> {
    let found = std::env::var_os("HEARTH_GEMMA_GGUF").map(PathBuf::from).filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("HEARTH_REQUIRE_MODELS").is_none(),
            "HEARTH_GEMMA_GGUF must name the Gemma GGUF (scripts/fetch-gemma.sh provisions it)"
        );
        println!("SKIP: HEARTH_GEMMA_GGUF is not set to an existing file; run scripts/fetch-gemma.sh");
    }
    found
}
