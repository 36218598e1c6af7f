//! [`Pulls`]: the pulls the app runs in the background for the control API and the Settings
//! window — started by `POST /api/models/pull`, listed with their progress by
//! `GET /api/models/pulls`, cancelled (or, once ended, forgotten) by
//! `DELETE /api/models/pulls/{id}`. Each runs [`super::pull`] on the app's runtime; the same
//! repository and file asked for twice while running is one pull.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::error::FetchError;
use super::hub::Hub;
use super::progress::{DiskCheck, MemoryCheck, Progress};
use super::{pull, PullOptions, PullSpec, Pulled};

/// The body of `POST /api/models/pull`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// `org/name`.
    pub repo: String,
    /// One file of it (a GGUF); absent for an MLX repository.
    #[serde(default)]
    pub file: Option<String>,
    /// Download even if it does not fit this machine's memory.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullState {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// One pull as `GET /api/models/pulls` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullView {
    pub id: String,
    pub repo: String,
    pub file: Option<String>,
    pub state: PullState,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub rate_bps: u64,
    pub eta_s: Option<u64>,
    /// Why it failed, for people.
    pub error: Option<String>,
    /// The file being downloaded.
    pub current_file: Option<String>,
    pub disk: Option<DiskCheck>,
    pub memory: Option<MemoryCheck>,
    pub notes: Vec<String>,
    /// Once done: the model's name in the picker and what to put in `model_path`.
    pub name: Option<String>,
    pub path: Option<PathBuf>,
}

struct Entry {
    id: String,
    spec: PullSpec,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    outcome: Arc<Mutex<Outcome>>,
}

#[derive(Default)]
struct Outcome {
    ended: Option<Result<Pulled, (PullState, String)>>,
}

impl Entry {
    fn view(&self) -> PullView {
        let p = self.progress.snapshot();
        let outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        let (state, error, name, path) = match &outcome.ended {
            None => (PullState::Running, None, None, None),
            Some(Ok(pulled)) => (PullState::Done, None, Some(pulled.name.clone()), Some(pulled.path.clone())),
            Some(Err((state, error))) => (*state, Some(error.clone()), None, None),
        };
        let running = state == PullState::Running;
        PullView {
            id: self.id.clone(),
            repo: self.spec.repo.clone(),
            file: self.spec.file.clone(),
            state,
            bytes_done: p.bytes_done,
            bytes_total: p.bytes_total,
            rate_bps: if running { p.rate_bps } else { 0 },
            eta_s: if running { p.eta_s } else { None },
            error,
            current_file: p.file,
            disk: p.disk,
            memory: p.memory,
            notes: p.notes,
            name,
            path,
        }
    }

    fn running(&self) -> bool {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).ended.is_none()
    }
}

/// The app's background pulls. Cheap to clone.
#[derive(Clone)]
pub struct Pulls {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: tokio::runtime::Handle,
    cache_root: Option<PathBuf>,
    next_id: AtomicU64,
    entries: Mutex<Vec<Entry>>,
}

impl Pulls {
    /// Pulls into the hub cache at `cache_root`, run on the current tokio runtime (call it from
    /// inside one; the methods may then be called from any thread).
    pub fn new(cache_root: Option<PathBuf>) -> Self {
        Pulls {
            inner: Arc::new(Inner {
                runtime: tokio::runtime::Handle::current(),
                cache_root,
                next_id: AtomicU64::new(1),
                entries: Mutex::new(Vec::new()),
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.inner.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts pulling (or returns the pull of the same thing already running). Errors are those
    /// known at once: a malformed request, no cache folder, no usable `HF_ENDPOINT`.
    pub fn start(&self, request: PullRequest) -> Result<PullView, FetchError> {
        let spec = PullSpec::new(&request.repo, request.file.as_deref())?;
        let cache_root = self.inner.cache_root.clone().ok_or(FetchError::NoCache)?;
        let hub = Hub::from_env()?;
        let mut entries = self.entries();
        if let Some(running) = entries.iter().find(|e| e.spec == spec && e.running()) {
            return Ok(running.view());
        }
        let entry = Entry {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed).to_string(),
            spec: spec.clone(),
            progress: Arc::new(Progress::new()),
            cancel: CancellationToken::new(),
            outcome: Arc::default(),
        };
        let (progress, cancel, outcome) =
            (entry.progress.clone(), entry.cancel.clone(), entry.outcome.clone());
        let options = PullOptions { force: request.force, ..PullOptions::default() };
        let id = entry.id.clone();
        self.inner.runtime.spawn(async move {
            let result = pull(&hub, &cache_root, &spec, &options, &progress, &cancel).await;
            match &result {
                Ok(p) => tracing::info!(id, model = %p.name, path = %p.path.display(), "pull done"),
                Err(e) => tracing::warn!(id, %spec, "pull ended: {e}"),
            }
            let ended = result.map_err(|e| match e {
                FetchError::Cancelled => (PullState::Cancelled, e.to_string()),
                // Without the CLI's `--force` advice: the windows offer "fetch anyway" themselves
                // (a request with `force`), and no message in the app names a command-line flag.
                FetchError::DoesNotFit { message } => (PullState::Failed, message),
                e => (PullState::Failed, e.to_string()),
            });
            outcome.lock().unwrap_or_else(|e| e.into_inner()).ended = Some(ended);
        });
        let view = entry.view();
        entries.push(entry);
        Ok(view)
    }

    /// Every pull since the app started (minus the forgotten ones), oldest first.
    pub fn list(&self) -> Vec<PullView> {
        self.entries().iter().map(Entry::view).collect()
    }

    /// Cancels a running pull (its state turns `cancelled` once it has stopped), or forgets one
    /// that has ended. `None`: no such pull.
    pub fn cancel(&self, id: &str) -> Option<PullView> {
        let mut entries = self.entries();
        let index = entries.iter().position(|e| e.id == id)?;
        if entries[index].running() {
            entries[index].cancel.cancel();
            Some(entries[index].view())
        } else {
            Some(entries.remove(index).view())
        }
    }
}
