//! `hearth`: the headless command line — run a local pool, serve as a provider, ask for status.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hearth_engine::control::{self, ControlServer};
use hearth_engine::provider::Provider;
use hearth_engine::session::ProviderConfig;
use hearth_engine::status::Status;
use hearth_engine::telemetry::{self, LogFormat};
use hearth_inference::scripted::ScriptedEngine;
use hearth_inference::Engine;
use hearth_pool::PoolConfig;

#[derive(Parser)]
#[command(name = "hearth", version, about = "Turn this machine into an inference provider for an LLM pool")]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local pool: a coordinator and an OpenAI-compatible gateway in one process.
    Pool(PoolArgs),
    /// Connect to a coordinator and serve requests with a local model.
    Serve(ServeArgs),
    /// Show the status of the provider running on this machine.
    Status {
        /// Print the raw JSON snapshot.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct PoolArgs {
    /// Address for both the provider WebSocket (/ws/provider) and the buyer API (/v1/...).
    #[arg(long, default_value = "127.0.0.1:8444")]
    listen: SocketAddr,
    /// Reproduce the production coordinator's hazards (stale write deadline, ping auto-pong through it).
    #[arg(long)]
    strict: bool,
    /// heartbeat_interval_s announced in hello_ack.
    #[arg(long, default_value_t = 30)]
    heartbeat_interval: u64,
    /// Close a provider session after this many seconds without a text frame.
    #[arg(long, default_value_t = 90)]
    liveness_timeout: u64,
    /// The stale write deadline of --strict, and the per-write timeout otherwise (seconds).
    #[arg(long, default_value_t = 10.0)]
    write_timeout: f64,
}

#[derive(Args)]
struct ServeArgs {
    /// The coordinator's provider endpoint, used exactly as given, e.g. wss://host/ws/provider.
    #[arg(long, env = "HEARTH_COORDINATOR")]
    coordinator: String,
    /// This provider's id (letters, digits, '-', '_', '.'); a random one is made and kept if absent.
    #[arg(long)]
    provider_id: Option<String>,
    /// Concurrent requests.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    slots: u32,
    #[command(flatten)]
    engine: EngineArgs,
    /// Where the local control API listens (loopback only; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    control_listen: SocketAddr,
    /// Seconds in-flight requests get to finish when stopping or draining.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// Seconds to wait before reconnecting after a drain.
    #[arg(long, default_value_t = 10.0)]
    reconnect_after_drain: f64,
    /// Extra certificate authorities (PEM) to trust for wss://.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

#[derive(Args)]
struct EngineArgs {
    /// Inference backend.
    #[arg(long, value_enum, default_value = "scripted")]
    engine: EngineKind,
    /// The model id to announce (scripted engine).
    #[arg(long, default_value = "hearth-scripted")]
    model_id: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EngineKind {
    /// A deterministic test engine: no model, predictable tokens.
    Scripted,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Pool(args) => pool(args).await,
            Command::Serve(args) => serve(args).await,
            Command::Status { json } => status(json).await,
        }
    })
}

async fn pool(args: PoolArgs) -> Result<()> {
    let config = PoolConfig {
        listen: args.listen,
        strict: args.strict,
        heartbeat_interval_s: args.heartbeat_interval,
        liveness_timeout: Duration::from_secs(args.liveness_timeout),
        write_timeout: Duration::from_secs_f64(args.write_timeout),
        ..PoolConfig::default()
    };
    hearth_pool::run(config, shutdown_signal()).await.context("the local pool failed")
}

fn build_engine(args: &EngineArgs) -> Result<Arc<dyn Engine>> {
    Ok(match args.engine {
        EngineKind::Scripted => Arc::new(ScriptedEngine::new(&args.model_id)),
    })
}

async fn serve(args: ServeArgs) -> Result<()> {
    let data_dir = control::data_dir();
    let provider_id = match args.provider_id {
        Some(id) => id,
        None => persistent_provider_id(&data_dir)?,
    };
    if !hearth_protocol::is_safe_id(&provider_id) {
        bail!("provider id {provider_id:?} is not valid: use 1-128 letters, digits, '-', '_' or '.'");
    }
    let engine = build_engine(&args.engine)?;
    let mut config = ProviderConfig::new(args.coordinator, provider_id);
    config.token = std::env::var("HEARTH_PROVIDER_TOKEN").ok().filter(|t| !t.is_empty());
    config.slots = args.slots;
    config.drain_timeout = Duration::from_secs_f64(args.drain_timeout);
    config.reconnect_after_drain = Duration::from_secs_f64(args.reconnect_after_drain);
    config.ca_file = args.ca_file;
    hearth_engine::session::connect::validate_url(&config.coordinator_url)?;

    let mut provider = Provider::start(config, engine);
    let control = ControlServer::start(args.control_listen, &data_dir, provider.status().clone()).await?;
    tracing::info!(control = %control.addr, "control API listening");
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("stopping: draining in-flight requests");
            provider.stop().await;
            Ok(())
        }
        _ = provider.wait() => {
            let status = provider.status().snapshot();
            bail!("the provider stopped: {}", status.reason)
        }
    }
}

async fn status(json: bool) -> Result<()> {
    let endpoint = control::find_endpoint(&control::data_dir())?;
    let url = format!("{}/api/status", endpoint.url);
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&endpoint.token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| control::ControlError::Unreachable { url: url.clone(), problem: e.to_string() })?;
    if !response.status().is_success() {
        bail!(
            "the control API answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let status: Status = response.json().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_status(&status);
    }
    Ok(())
}

fn print_status(s: &Status) {
    println!("state:       {:?} — {}", s.phase, s.reason);
    println!("provider:    {} serving {} ({} engine)", s.provider_id, s.model_id, s.engine);
    println!("slots:       {}/{} free", s.slots_free, s.slots_total);
    let c = &s.connection;
    println!(
        "coordinator: {} ({})",
        c.coordinator_url,
        if c.connected { "connected" } else { "not connected" }
    );
    if let Some(rtt) = c.rtt_ms {
        println!("rtt:         {rtt:.1} ms");
    }
    println!("reconnects:  {}", c.reconnects);
    println!("jobs:        {} completed, {} failed, {} lost", s.jobs_completed, s.jobs_failed, s.jobs_lost);
    if let Some(e) = &c.last_error {
        println!("last error:  {e}");
    }
}

/// The provider id kept in the data directory, created on first use.
fn persistent_provider_id(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("provider-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if hearth_protocol::is_safe_id(&id) {
            return Ok(id);
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
