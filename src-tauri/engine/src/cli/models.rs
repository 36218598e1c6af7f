//! `hearth models pull | list | remove | use`: the models on this machine, fetching more from the
//! Hugging Face hub into its cache (where mlx_lm and LM Studio find them too), and choosing the one
//! to serve.
//!
//! `pull` works without a running provider: it writes the cache itself, and a running app's
//! Settings window lists the model at its next look (discovery reads the cache per call).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::running_app::RunningApp;
use anyhow::bail;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hearth_engine::models::fetch::{self, FetchError, Hub, Progress, PullOptions, PullSpec};
use hearth_engine::models::{
    discover, hf_hub_cache_from_env, human_bytes, Fit, LocalModel, ModelEngine, ModelRoots,
};
use hearth_settings::EngineKind;
use hearth_settings::{HearthPaths, SettingsStore};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use tokio_util::sync::CancellationToken;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Fetch a model from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN) into its cache: an MLX
    /// repository, or one GGUF file of a repository (REPO:FILE). Ctrl-C stops it; running the same
    /// pull again resumes.
    Pull(PullArgs),
    /// The models on this machine (Hugging Face cache, Hearth's folder, LM Studio, Ollama, the
    /// folders in Settings): engine, size, quantization and whether each fits this machine.
    List {
        /// Print the JSON the Settings window gets.
        #[arg(long)]
        json: bool,
    },
    /// Delete a repository (org/name) from the Hugging Face cache.
    Remove {
        /// The repository, as `hearth models list` names it (org/name).
        repo: String,
    },
    /// Serve this model: a name `hearth models list` shows, or a model folder or .gguf file. A
    /// running provider loads it beside the current one and swaps between jobs; otherwise the
    /// settings are saved for the next start.
    Use {
        /// A name from `hearth models list` (or its unique end, e.g. `Qwen2.5-0.5B-Instruct-4bit`),
        /// or a path.
        model: String,
    },
}

#[derive(Args)]
pub struct PullArgs {
    /// `org/name` (an MLX repository) or `org/name:file.gguf` (one GGUF file of it).
    spec: String,
    /// A branch, tag or commit of the repository.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Download even if the model does not fit this machine's memory (the disk check still holds).
    #[arg(long)]
    force: bool,
}

pub async fn run(command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::Pull(args) => pull(args).await,
        ModelsCommand::List { json } => list(json),
        ModelsCommand::Remove { repo } => remove(&repo),
        ModelsCommand::Use { model } => use_model(&model).await,
    }
}

async fn pull(args: PullArgs) -> Result<()> {
    let spec: PullSpec = args.spec.parse()?;
    let cache = hf_hub_cache_from_env().ok_or(FetchError::NoCache)?;
    let hub = Hub::from_env()?;
    let options = PullOptions { revision: args.revision, force: args.force, ..PullOptions::default() };
    println!("pulling {spec} from {} into {}", hub.endpoint(), cache.display());

    let progress = Arc::new(Progress::new());
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let signals = tokio::spawn(async move {
        crate::shutdown_signal().await;
        on_signal.cancel();
    });
    let bar = progress_bar(&progress);
    let shown = CancellationToken::new();
    let ticker = tokio::spawn(show_progress(progress.clone(), bar.clone(), shown.clone()));

    let started = Instant::now();
    let result = fetch::pull(&hub, &cache, &spec, &options, &progress, &cancel).await;
    shown.cancel();
    let _ = ticker.await;
    signals.abort();
    let pulled = result?;
    let elapsed = started.elapsed();
    let p = progress.snapshot();
    let fetched = p.bytes_done.saturating_sub(p.disk.as_ref().map_or(0, |d| p.bytes_total - d.needed_bytes));
    println!(
        "pulled {} ({}, commit {}): {} downloaded in {:.1} s ({}/s)",
        pulled.name,
        human_bytes(pulled.bytes_total),
        &pulled.commit[..pulled.commit.len().min(12)],
        human_bytes(fetched),
        elapsed.as_secs_f64(),
        human_bytes((fetched as f64 / elapsed.as_secs_f64().max(1e-3)) as u64),
    );
    println!("model_path: {}", pulled.path.display());
    Ok(())
}

fn progress_bar(progress: &Arc<Progress>) -> ProgressBar {
    let (rate, left) = (progress.clone(), progress.clone());
    let style = ProgressStyle::with_template(
        "{msg:24!} [{bar:30}] {binary_bytes:>10}/{binary_total_bytes:<10} {rate:>12} {left}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{}/s", human_bytes(rate.snapshot().rate_bps));
    })
    .with_key("left", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = match left.snapshot().eta_s {
            Some(s) => write!(w, "{} left", clock(s)),
            None => write!(w, "—"),
        };
    })
    .progress_chars("=> ");
    let bar = ProgressBar::new(0);
    bar.set_style(style);
    bar
}

/// Redraws the bar from the pull's progress until `done`, printing each new note above it.
async fn show_progress(progress: Arc<Progress>, bar: ProgressBar, done: CancellationToken) {
    let mut printed = 0;
    loop {
        let stop = done.is_cancelled();
        let p = progress.snapshot();
        for note in &p.notes[printed..] {
            // A hidden bar (not a terminal) prints nothing, notes included.
            if bar.is_hidden() {
                println!("{note}");
            } else {
                bar.println(note);
            }
        }
        printed = p.notes.len();
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(p.file.unwrap_or_default());
        if stop {
            bar.finish_and_clear();
            return;
        }
        tokio::select! {
            _ = done.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// `1:02:03`, `4:05`.
fn clock(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn roots() -> Result<ModelRoots> {
    let paths = HearthPaths::resolve().context("cannot find Hearth's folders")?;
    // The folders added in Settings are searched too; unreadable settings just mean none.
    let folders =
        SettingsStore::new(paths.settings_file()).load().map(|s| s.model_folders).unwrap_or_default();
    Ok(ModelRoots::from_env(&paths.data_dir).with_user_folders(&folders))
}

fn list(json: bool) -> Result<()> {
    let models = discover(&roots()?, hearth_engine::system::total_ram_bytes());
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "models": models }))?);
        return Ok(());
    }
    if models.is_empty() {
        println!("no models found; fetch one with `hearth models pull org/name` (or org/name:file.gguf)");
        return Ok(());
    }
    let rows: Vec<[String; 6]> = models.iter().map(row).collect();
    let header = ["NAME", "ENGINE", "SIZE", "QUANT", "FIT", "STATUS"].map(String::from);
    let mut widths = [0usize; 5];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(r) {
            let _ = write!(line, "{cell:<w$}  ", w = *w);
        }
        println!("{}{}", line, r[5]);
    }
    Ok(())
}

fn row(m: &LocalModel) -> [String; 6] {
    let engine = m.engine.map(|e| format!("{e:?}").to_lowercase()).unwrap_or_else(|| "-".into());
    let quant = match &m.quantization {
        Some(q) => match q.bits {
            Some(bits) => format!("{bits}-bit"),
            None => q.mode.clone(),
        },
        None => "-".into(),
    };
    let fit = match m.fit {
        Some(Fit::Fits) => "fits",
        Some(Fit::Tight) => "tight",
        Some(Fit::DoesNotFit) => "does not fit",
        None => "-",
    };
    let status = match (m.loadable, m.problems.first()) {
        (true, None) => "ready".to_string(),
        (true, Some(warning)) => format!("ready ({warning})"),
        (false, Some(why)) => why.clone(),
        (false, None) => "not loadable".into(),
    };
    let size = if m.format.is_some() { human_bytes(m.size_bytes) } else { "-".into() };
    [m.name.clone(), engine, size, quant, fit.into(), status]
}

fn remove(repo: &str) -> Result<()> {
    let cache = hf_hub_cache_from_env().ok_or(FetchError::NoCache)?;
    let (dir, bytes) = fetch::remove_repo(&cache, repo)?;
    println!("removed {repo} ({} freed): {}", human_bytes(bytes), dir.display());
    Ok(())
}

/// The model `wanted` names: a path as given, else the one discovered model whose name is it or
/// ends with it. Returns the path and the engine that runs it.
fn resolve_model(wanted: &str, models: &[LocalModel]) -> Result<(std::path::PathBuf, EngineKind)> {
    let engine_of = |m: &LocalModel| match m.engine {
        Some(ModelEngine::Gguf) => EngineKind::Gguf,
        Some(ModelEngine::Mlx) => EngineKind::Mlx,
        Some(ModelEngine::Cpu) => EngineKind::Cpu,
        None => EngineKind::default(),
    };
    let path = std::path::Path::new(wanted);
    if path.is_absolute() || path.exists() {
        let path = std::fs::canonicalize(path).with_context(|| format!("no model at {wanted}"))?;
        let found = models.iter().find(|m| m.path == path);
        let engine = match found {
            Some(m) => engine_of(m),
            None if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) => EngineKind::Gguf,
            None => EngineKind::default(),
        };
        return Ok((path, engine));
    }
    let exact: Vec<&LocalModel> = models.iter().filter(|m| m.name == wanted).collect();
    let matches = if exact.is_empty() {
        models
            .iter()
            .filter(|m| m.name.ends_with(&format!("/{wanted}")) || m.name.ends_with(wanted))
            .collect()
    } else {
        exact
    };
    match matches.as_slice() {
        [] => bail!(
            "no model named {wanted:?} on this machine: `hearth models list` shows what is here, \
             `hearth models pull org/name` fetches one"
        ),
        [m] if !m.loadable => bail!(
            "{} cannot be served: {}",
            m.name,
            m.problems.first().map(String::as_str).unwrap_or("it does not load")
        ),
        [m] => Ok((m.path.clone(), engine_of(m))),
        many => bail!(
            "{wanted:?} names {} models ({}): give the whole name",
            many.len(),
            many.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

async fn use_model(wanted: &str) -> Result<()> {
    let models = discover(&roots()?, hearth_engine::system::total_ram_bytes());
    let (path, engine) = resolve_model(wanted, &models)?;
    let body = serde_json::json!({ "model_path": path, "engine": engine });
    // A running app takes it through its control API, as the Settings window does, so the switch
    // happens in place; without one the settings file is all there is to change.
    if let Ok(app) = RunningApp::find() {
        let sent = app
            .request(reqwest::Method::PUT, "/api/settings", Duration::from_secs(10))
            .json(&body)
            .send()
            .await;
        if let Ok(response) = sent {
            let ok = response.status().is_success();
            let text = response.text().await.unwrap_or_default();
            if !ok {
                bail!("the running provider refused the model: {text}");
            }
            println!(
                "switching to {}: the running provider loads it beside the current model and swaps \
                 between jobs (`hearth status` shows when it serves)",
                path.display()
            );
            return Ok(());
        }
    }
    let paths = HearthPaths::resolve().context("cannot find Hearth's folders")?;
    let store = SettingsStore::new(paths.settings_file());
    let mut settings = store.load_or_init()?;
    settings.model_path = Some(path.clone());
    settings.engine = engine;
    if let Err(errors) = settings.validate() {
        bail!("{}", hearth_settings::FieldError::join(&errors));
    }
    store.save(&settings)?;
    println!("{} will be served from the next start ({})", path.display(), store.path().display());
    Ok(())
}
