//! `hearth`: the headless command line — run a local pool, serve as a provider, ask for status.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hearth_engine::app::{App, AppConfig, Overrides};
use hearth_engine::engines::EngineFactory;
use hearth_engine::session::ProviderConfig;
use hearth_engine::status::Status;
use hearth_engine::telemetry::{self, LogFormat};
use hearth_pool::PoolConfig;

mod cli;

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
    /// A local pool and a provider serving a real model, in one process: try Hearth end to end.
    Local(cli::local::LocalArgs),
    /// Run one generation locally (no network) and print it.
    Generate(cli::generate::GenerateArgs),
    /// Measure a model's prompt and generation speed.
    Bench(cli::generate::BenchArgs),
    /// The earnings ledger: `hearth earnings export` writes it as CSV.
    Earnings {
        #[command(subcommand)]
        command: cli::earnings::EarningsCommand,
    },
    /// The models on this machine, and fetching more from the Hugging Face hub: `hearth models
    /// pull | list | remove`.
    Models {
        #[command(subcommand)]
        command: cli::models::ModelsCommand,
    },
    /// Open the running provider's dashboard in the browser (through a one-time sign-in link).
    Open {
        /// Print the link instead of opening a browser.
        #[arg(long)]
        print: bool,
    },
    /// Show the status of the provider running on this machine.
    Status {
        /// Print the raw JSON snapshot.
        #[arg(long)]
        json: bool,
    },
    /// Check what stands between this machine and earning: the coordinator, its TLS and our token,
    /// the clock, the model, memory and disk, other inference servers, the power rule.
    Doctor(cli::doctor::DoctorArgs),
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
    /// Serve wss:// and https:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Flags override `settings.toml` (in `$HEARTH_HOME/config`, or the platform's config directory);
/// what they leave out comes from the file, which is watched and applied live.
#[derive(Args)]
struct ServeArgs {
    /// The coordinator's provider endpoint, used exactly as given, e.g. wss://host/ws/provider.
    /// Without it, the settings' `coordinator` (default: an embedded local pool on 127.0.0.1:8444).
    #[arg(long, env = "HEARTH_COORDINATOR")]
    coordinator: Option<String>,
    /// This provider's id (letters, digits, '-', '_', '.'); default: the settings' `provider_id`.
    #[arg(long)]
    provider_id: Option<String>,
    /// Concurrent requests; default: the settings' `slots`, else the engine's choice (the gguf
    /// engine: from RAM and the model's size, at most 4; others: 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    slots: Option<u32>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Where the local control API listens (loopback only); default: the settings' `control_port`,
    /// else any free port.
    #[arg(long)]
    control_listen: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish when stopping or draining.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// Seconds to wait before reconnecting after a drain.
    #[arg(long, default_value_t = 10.0)]
    reconnect_after_drain: f64,
    /// Extra certificate authorities (PEM) to trust for wss://.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Seconds between reads of the coordinator gateway's /v1/status (the pool view).
    #[arg(long, default_value_t = 5.0, hide = true)]
    pool_poll_interval: f64,
    /// Seconds between reads of /providers/{id}/earnings (once a minute is polite in production).
    #[arg(long, default_value_t = 60.0, hide = true)]
    earnings_poll_interval: f64,
    /// Seconds ready without a request before the status says so.
    #[arg(long, default_value_t = 600.0, hide = true)]
    idle_alert: f64,
    /// Seconds between readings of the power, thermal and activity probes.
    #[arg(long, default_value_t = 2.0, hide = true)]
    power_poll_interval: f64,
    /// Seconds a looser power verdict (a pause lifting, more slots) must hold before it is used.
    #[arg(long, default_value_t = 20.0, hide = true)]
    power_relax_after: f64,
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Inference backend; default: `cpu` (`mlx` on macOS) with --model, else `scripted`.
    #[arg(long, value_enum)]
    engine: Option<cli::engine::CliEngine>,
    /// A model directory (mlx-community layout) or a .gguf file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The model id to announce; default: the model's directory or file name.
    #[arg(long)]
    model_id: Option<String>,
    /// The local OpenAI-compatible server for `--engine loopback`, e.g. http://127.0.0.1:8080/v1.
    #[arg(long)]
    loopback_url: Option<String>,
    /// Tokens of context (prompt plus completion) each job may use; default: the model's own, cut
    /// so one job's KV cache fits 1 GiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(16..))]
    context: Option<u64>,
}

impl EngineArgs {
    fn load_options(&self) -> cli::engine::LoadOptions {
        cli::engine::LoadOptions {
            loopback_url: self.loopback_url.clone(),
            max_context: self.context.map(|n| n as usize),
        }
    }

    /// Loads the engine these flags name, for the one-shot commands (generate, bench): one job at
    /// a time, so one slot.
    fn load(&self) -> Result<std::sync::Arc<dyn hearth_inference::Engine>> {
        self.load_with_slots(1)
    }

    /// Loads the engine these flags name with `slots` jobs at once (bench --parallel).
    fn load_with_slots(&self, slots: u32) -> Result<std::sync::Arc<dyn hearth_inference::Engine>> {
        let choice = cli::engine::EngineChoice {
            kind: cli::engine::resolve_kind(self.engine, self.model.is_some()),
            model_id: self.model_id.clone(),
            model_path: self.model.clone(),
            loopback_url: None,
            slots: Some(slots),
        };
        cli::engine::load(&choice, &self.load_options()).map_err(anyhow::Error::msg)
    }
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
            Command::Open { print } => open_dashboard(print).await,
            Command::Doctor(args) => cli::doctor::run(args).await,
            Command::Earnings { command } => cli::earnings::run(command).await,
            Command::Models { command } => cli::models::run(command).await,
            Command::Local(args) => cli::local::run(args).await,
            Command::Generate(args) => cli::generate::run(args),
            Command::Bench(args) => cli::generate::bench(args),
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
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| hearth_pool::TlsFiles { cert, key }),
        ..PoolConfig::default()
    };
    hearth_pool::run(config, shutdown_signal()).await.context("the local pool failed")
}

/// The engine `hearth serve` pins: the one `--engine` names; with `--model`, the platform's for a
/// model; with only `--model-id`, the scripted engine (a provider announcing a model it does not
/// have is a demo or a test). Otherwise none: the settings decide, and a model switch in Settings
/// or `hearth models use` may change the engine too.
fn serve_engine(e: &EngineArgs) -> Option<hearth_settings::EngineKind> {
    match (e.engine, &e.model, &e.model_id) {
        (None, None, None) => None,
        (None, None, Some(_)) => Some(hearth_settings::EngineKind::Scripted),
        (engine, model, _) => Some(cli::engine::resolve_kind(engine, model.is_some())),
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    if let Some(id) = &args.provider_id {
        if !hearth_protocol::is_safe_id(id) {
            bail!("provider id {id:?} is not valid: use 1-128 letters, digits, '-', '_' or '.'");
        }
    }
    if let Some(url) = &args.coordinator {
        hearth_engine::session::connect::validate_url(url)?;
    }
    let paths = hearth_settings::HearthPaths::resolve()?;
    let factory: EngineFactory = cli::engine::factory(&args.engine.load_options());
    let mut config = AppConfig::new(paths, factory);
    config.overrides = Overrides {
        coordinator: args.coordinator,
        provider_id: args.provider_id,
        slots: args.slots,
        engine: serve_engine(&args.engine),
        model_id: args.engine.model_id.clone(),
        model_path: args.engine.model.clone(),
    };
    config.control_listen = args.control_listen;
    config.pool_poll = Duration::from_secs_f64(args.pool_poll_interval);
    config.earnings_poll = Duration::from_secs_f64(args.earnings_poll_interval);
    config.idle_alert = Duration::from_secs_f64(args.idle_alert);
    config.power_poll = Duration::from_secs_f64(args.power_poll_interval.max(0.05));
    config.power_relax_after = Duration::from_secs_f64(args.power_relax_after.max(0.0));
    let (drain, after_drain, ca_file) =
        (args.drain_timeout, args.reconnect_after_drain, args.ca_file.clone());
    config.tune_provider = Some(Arc::new(move |c: &mut ProviderConfig| {
        c.drain_timeout = Duration::from_secs_f64(drain);
        c.reconnect_after_drain = Duration::from_secs_f64(after_drain);
        c.ca_file = ca_file.clone();
    }));

    let model_source = match args.engine.model {
        Some(_) => cli::startup::ModelSource::Flag,
        None => cli::startup::ModelSource::Settings,
    };
    let mut app = App::start(config).await?;
    let hub = app.status().clone();
    // A model that cannot load at start ends the command (non-zero, with the reason); once it
    // started, a provider that stops by itself does too. Later failures (a settings edit naming a
    // bad model) are shown in the status and wait for a new choice.
    let ended = tokio::select! {
        _ = shutdown_signal() => None,
        Err(failed) = cli::startup::first_start(&hub) => {
            Some(cli::startup::failure_message(&failed, model_source))
        }
        reason = app.provider_exited() => Some(format!("the provider stopped: {reason}")),
    };
    tracing::info!("stopping: draining in-flight requests");
    app.shutdown().await;
    match ended {
        None => Ok(()),
        Some(why) => bail!("{why}"),
    }
}

async fn open_dashboard(print: bool) -> Result<()> {
    let app = cli::running_app::RunningApp::find()?;
    let response = app.request(reqwest::Method::POST, "/api/session", Duration::from_secs(5)).send().await?;
    let link: serde_json::Value = response.error_for_status()?.json().await?;
    let url = link["url"].as_str().ok_or_else(|| anyhow::anyhow!("the control API gave no sign-in link"))?;
    // The link signs in once and then expires, so printing it leaks nothing lasting.
    if print || open::that_detached(url).is_err() {
        println!("{url}");
    }
    Ok(())
}

async fn status(json: bool) -> Result<()> {
    let status: Status =
        cli::running_app::RunningApp::find()?.get_json("/api/status", Duration::from_secs(5)).await?;
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
    match (&c.protocol, &c.encrypted_leg) {
        (Some(p), Some(leg)) => {
            println!("protocol:    {p}, encrypted ({} kid {}), {} rekeys", leg.alg, leg.kid, c.rekeys)
        }
        (Some(p), None) if c.v1_fallback => {
            println!("protocol:    {p}, plaintext (this coordinator refused v2)")
        }
        (Some(p), None) => println!("protocol:    {p}, plaintext"),
        (None, _) => {}
    }
    if let Some(rtt) = c.rtt_ms {
        println!("rtt:         {rtt:.1} ms");
    }
    println!("reconnects:  {}", c.reconnects);
    if let Some(p) = &s.power {
        println!(
            "power:       {} (rule: {}, {} of {} slots)",
            p.reason, p.rule, p.slots_allowed, p.slots_total
        );
        let mut read = vec![match (p.power_source.as_str(), p.charge_percent) {
            (source, Some(c)) => format!("{source} power, {c} %"),
            (source, None) => format!("{source} power"),
        }];
        if let Some(t) = &p.thermal {
            read.push(format!("thermal {t}"));
        }
        if let Some(idle) = p.idle_s {
            read.push(format!("idle {idle} s"));
        }
        read.push(if p.keep_awake { "kept awake" } else { "may sleep" }.to_string());
        println!("             {}", read.join(", "));
    }
    println!("jobs:        {} completed, {} failed, {} lost", s.jobs_completed, s.jobs_failed, s.jobs_lost);
    if let Some(e) = &c.last_error {
        println!("last error:  {e}");
    }
    if let Some(why) = &s.not_earning {
        println!("not earning: {why}");
    }
    let e = &s.earnings;
    // Dollars beside credits, at the card's rate (hearth_engine::earnings::format_credits_usd).
    let money = |credits: i64| {
        let usd = hearth_engine::earnings::format_credits_usd(credits, e.usd_per_million_credits);
        format!("{usd} ({credits} credits)")
    };
    println!(
        "earnings:    today {} / 7 days {} / 30 days {} / total {} (estimated, rate card {} from {})",
        money(e.today_estimated_credits),
        money(e.last_7_days_estimated_credits),
        money(e.last_30_days_estimated_credits),
        money(e.total_estimated_credits),
        e.rate_card_version,
        e.rate_card_source
    );
    if let Some(credited) = e.credited_total_credits {
        println!("credited:    {} by the coordinator", money(credited));
    }
    if let Some(gap) = e.estimated_minus_credited.filter(|g| *g != 0) {
        println!("gap:         {} estimated minus credited", money(gap));
    }
    if let Some(p) = &s.pool {
        match &p.error {
            Some(err) if p.fetched_ms.is_none() => println!("pool:        unknown ({err})"),
            _ => println!("pool:        {}/{} providers ready", p.providers_ready, p.providers_total),
        }
    }
    for err in &s.settings.errors {
        println!("settings:    rejected edit: {err}");
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
