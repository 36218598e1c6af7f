//! `hearth doctor`: "tell me why I am not earning and what to do", as named checks, each with a
//! verdict (ok / warn / fail) and one sentence saying what to do.
//!
//! One implementation behind every client: the CLI runs [`run`] itself when no app is running
//! (and otherwise asks the running app, which knows its command-line overrides and its live
//! status), the control API's `GET /api/doctor` and the shell's `doctor` command run it in the app.
//!
//! The rooms: here the report types, the inputs and the runner; [`checks`] the verdict rules (pure
//! functions of what was observed, so each rule is unit-tested without a network); [`probe`] the
//! observations (TCP, TLS, HTTP, memory, disk, processes).

pub mod checks;
pub mod probe;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hearth_settings::{EngineKind, ResolvedToken};
use serde::{Deserialize, Serialize};

pub use self::probe::{competitors_from_env, default_competitors, Competitor};
use crate::status::Status;

/// How one check came out, ordered from good to bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable id (`coordinator`, `tls`, `token`, `clock`, `model`, `memory`, `disk`,
    /// `competing_servers`, `power`, `settings`): what scripts and tests key on.
    pub name: String,
    /// For people, e.g. "Coordinator reachable".
    pub title: String,
    pub verdict: Verdict,
    /// What was found, with the numbers.
    pub detail: String,
    /// One sentence: what to do ("Nothing to do." when all is well).
    pub action: String,
}

/// What `hearth doctor --json` prints and `GET /api/doctor` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// The worst verdict of all checks.
    pub verdict: Verdict,
    pub checks: Vec<Check>,
    /// `app` (run by the running app) or `cli` (by `hearth doctor`, no app running).
    pub source: String,
    /// Unix ms the checks ran.
    pub ran_ms: u64,
}

impl DoctorReport {
    pub fn new(checks: Vec<Check>, source: &str) -> Self {
        let verdict = checks.iter().map(|c| c.verdict).max().unwrap_or(Verdict::Ok);
        Self { verdict, checks, source: source.into(), ran_ms: crate::status::unix_ms() }
    }

    /// The report as `hearth doctor` prints it: one block per check.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let badge = match c.verdict {
                Verdict::Ok => "  ok",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            out.push_str(&format!("[{badge}] {}: {}\n", c.title, c.detail));
            if c.verdict != Verdict::Ok {
                out.push_str(&format!("       → {}\n", c.action));
            }
        }
        let summary = match self.verdict {
            Verdict::Ok => "All checks passed.".to_string(),
            v => {
                let n = self.checks.iter().filter(|c| c.verdict == v).count();
                format!("{n} check(s) at {}; see the arrows above.", v.as_str())
            }
        };
        out.push_str(&summary);
        out.push('\n');
        out
    }
}

/// Which coordinator the checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorTarget {
    /// The pool the app embeds on `addr`; `running` when the app serves (the pool exists only then).
    LocalPool { addr: SocketAddr, running: bool },
    /// A coordinator's provider endpoint (`wss://…/ws/provider`, or `ws://` to this machine).
    Url(String),
}

/// What the settings file said when the inputs were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsState {
    Valid(PathBuf),
    /// Not written yet: the defaults are in force.
    Missing(PathBuf),
    Invalid {
        path: PathBuf,
        problem: String,
    },
}

/// Everything the checks look at, gathered by the caller (the CLI from the settings file, the app
/// from its state), so the checks themselves never guess where they run.
#[derive(Debug, Clone)]
pub struct DoctorInputs {
    pub settings: SettingsState,
    pub coordinator: CoordinatorTarget,
    /// Extra certificate authorities the session trusts (`hearth serve --ca-file`).
    pub ca_file: Option<PathBuf>,
    pub provider_id: String,
    /// The provider token and where it came from (keychain, environment).
    pub token: Option<ResolvedToken>,
    pub engine: EngineKind,
    pub model_path: Option<PathBuf>,
    pub loopback_url: Option<String>,
    /// The running app's snapshot; `None` when no app runs.
    pub status: Option<Status>,
    pub data_dir: PathBuf,
    pub hf_cache: Option<PathBuf>,
    /// The inference servers looked for ([`default_competitors`]; tests use free ports).
    pub competitors: Vec<Competitor>,
    /// Per network probe.
    pub timeout: Duration,
    /// `app` or `cli`, copied into the report.
    pub source: &'static str,
}

/// How long one network probe may take: a coordinator slower than this to accept a connection
/// would time sessions out too.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// Runs every check (the network ones concurrently) and reports them in a fixed order.
pub async fn run(inputs: DoctorInputs) -> DoctorReport {
    let i = &inputs;
    let (coordinator, tls, token, clock, model, competitors) = tokio::join!(
        probe::reach(i),
        probe::tls(i),
        probe::token(i),
        probe::clock(i),
        probe::model(i),
        probe::competitors(i),
    );
    let system = probe::system(i).await;
    let list = vec![
        checks::settings(&i.settings),
        checks::coordinator(&coordinator),
        checks::tls(&tls),
        checks::token(&token),
        checks::clock(&clock),
        checks::model(&model),
        checks::memory(&probe::memory_need(&model, &system)),
        checks::disk(&system.disks),
        checks::competing(&competitors),
        checks::power(i.status.as_ref()),
    ];
    DoctorReport::new(list, i.source)
}

/// What the running app knows, for [`AppView::into_inputs`]: its settings with the command line's
/// overrides applied, and its live status.
pub struct AppView {
    pub settings_path: PathBuf,
    pub coordinator: hearth_settings::Coordinator,
    pub provider_id: String,
    pub engine: EngineKind,
    pub model_path: Option<PathBuf>,
    pub loopback_url: Option<String>,
    pub status: Status,
    pub data_dir: PathBuf,
    pub hf_cache: Option<PathBuf>,
}

impl AppView {
    /// The inputs as the app sees them (blocks: the keychain).
    pub fn into_inputs(self) -> DoctorInputs {
        let running = self.status.phase != crate::status::ProviderPhase::Stopped;
        let coordinator = match self.coordinator {
            hearth_settings::Coordinator::LocalPool => CoordinatorTarget::LocalPool {
                addr: local_pool_addr(&self.status.connection.coordinator_url),
                running,
            },
            hearth_settings::Coordinator::Url(u) => CoordinatorTarget::Url(u),
        };
        let settings = match self.status.settings.errors.as_slice() {
            [] => SettingsState::Valid(self.settings_path),
            errors => SettingsState::Invalid {
                path: self.settings_path,
                problem: hearth_settings::FieldError::join(errors),
            },
        };
        DoctorInputs {
            settings,
            coordinator,
            // The app is not told the session's extra CA file (a `hearth serve --ca-file` flag);
            // the TLS check trusts a connected session's own verification instead.
            ca_file: None,
            token: hearth_settings::resolve_token(&self.provider_id).ok().flatten(),
            provider_id: self.provider_id,
            engine: self.engine,
            model_path: self.model_path,
            loopback_url: self.loopback_url,
            status: Some(self.status),
            data_dir: self.data_dir,
            hf_cache: self.hf_cache,
            competitors: competitors_from_env(),
            timeout: PROBE_TIMEOUT,
            source: "app",
        }
    }
}

/// Where the embedded pool listens: the address in the URL the session uses for it once started,
/// else the default port.
pub fn local_pool_addr(coordinator_url: &str) -> SocketAddr {
    url::Url::parse(coordinator_url)
        .ok()
        .and_then(|u| u.socket_addrs(|| None).ok()?.into_iter().next())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], hearth_pool::config::DEFAULT_PORT)))
}

/// [`run`] from blocking code (the control backend's methods run on the blocking pool): on the
/// runtime the caller belongs to, or a small one of its own.
pub fn run_blocking(inputs: DoctorInputs) -> DoctorReport {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(run(inputs)),
        Err(_) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(run(inputs)),
            Err(e) => DoctorReport::new(
                vec![Check {
                    name: "doctor".into(),
                    title: "Doctor".into(),
                    verdict: Verdict::Fail,
                    detail: format!("the checks could not run: {e}"),
                    action: "Restart Hearth and run the checks again.".into(),
                }],
                inputs.source,
            ),
        },
    }
}

/// The inputs for `hearth doctor` without a running app: the settings file (not created if
/// missing), the token from the keychain or environment, the usual folders. `coordinator`
/// overrides the settings' (as `hearth serve --coordinator` would), `ca_file` is the session's
/// extra CA.
pub fn cli_inputs(
    paths: &hearth_settings::HearthPaths,
    coordinator: Option<String>,
    ca_file: Option<PathBuf>,
) -> DoctorInputs {
    let path = paths.settings_file();
    let store = hearth_settings::SettingsStore::new(&path);
    let (settings, state) = if !path.exists() {
        (hearth_settings::Settings::default(), SettingsState::Missing(path))
    } else {
        match store.load() {
            Ok(s) => (s, SettingsState::Valid(path)),
            Err(e) => (
                hearth_settings::Settings::default(),
                SettingsState::Invalid { path, problem: e.to_string() },
            ),
        }
    };
    let coordinator =
        match coordinator.map(hearth_settings::Coordinator::Url).unwrap_or(settings.coordinator.clone()) {
            hearth_settings::Coordinator::LocalPool => CoordinatorTarget::LocalPool {
                addr: SocketAddr::from(([127, 0, 0, 1], hearth_pool::config::DEFAULT_PORT)),
                running: false,
            },
            hearth_settings::Coordinator::Url(u) => CoordinatorTarget::Url(u),
        };
    let roots = crate::models::ModelRoots::from_env(&paths.data_dir);
    DoctorInputs {
        settings: state,
        coordinator,
        ca_file,
        token: hearth_settings::resolve_token(&settings.provider_id).ok().flatten(),
        provider_id: settings.provider_id.clone(),
        engine: settings.engine,
        model_path: settings.model_path.clone(),
        loopback_url: settings.loopback_url.clone(),
        status: None,
        data_dir: paths.data_dir.clone(),
        hf_cache: roots.hf_hub_cache,
        competitors: competitors_from_env(),
        timeout: PROBE_TIMEOUT,
        source: "cli",
    }
}
