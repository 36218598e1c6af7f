//! [`FetchError`]: why a pull (or a removal) did not happen, each worded for the person who asked
//! for it — what went wrong and what to do — since the CLI and the Settings window show it as is.

use std::path::PathBuf;

use crate::models::entry::human;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `REPO[:FILE]` that is not one (the message says what is wrong with it).
    #[error("{0}")]
    InvalidSpec(String),
    #[error("no Hugging Face cache folder: set HF_HOME (or HOME) so Hearth knows where models go")]
    NoCache,
    /// 401: the hub will not say whether a private repository exists, so this covers "no such
    /// repository" for anonymous callers too.
    #[error(
        "{endpoint} refused access to {repo} (401): it is private or gated, or does not exist. {}",
        if *.token_sent {
            "HF_TOKEN was sent but not accepted: check that it is valid and can read this repository"
        } else {
            "If you have access, set HF_TOKEN to an access token (https://huggingface.co/settings/tokens)"
        }
    )]
    Unauthorized { repo: String, endpoint: String, token_sent: bool },
    #[error(
        "{repo} is gated (403): accept its terms at {endpoint}/{repo} with your account, then set HF_TOKEN \
         to an access token of that account"
    )]
    Gated { repo: String, endpoint: String },
    #[error("no repository {repo} on {endpoint} (404): check the name (org/name, as in its URL)")]
    RepoNotFound { repo: String, endpoint: String },
    #[error("{repo} has no revision {revision} (404)")]
    RevisionNotFound { repo: String, revision: String },
    #[error("{repo} has no file {file}{}", list_hint(.available))]
    FileNotFound { repo: String, file: String, available: Vec<String> },
    /// A repository that is not a model Hearth can pull as a whole (many GGUFs, no MLX config).
    #[error("{0}")]
    NotAModel(String),
    #[error("{url} answered {status}: {message}")]
    Http { url: String, status: u16, message: String },
    #[error("cannot reach {url}: {message}")]
    Network { url: String, message: String },
    #[error("unexpected answer from {url}: {problem}")]
    BadResponse { url: String, problem: String },
    #[error(
        "not enough disk space for {repo}: it needs {} more and {} has {} free; free some space, or set \
         HF_HOME to a disk with room",
        human(*.needed), .path.display(), human(*.free)
    )]
    NoRoom { repo: String, path: PathBuf, needed: u64, free: u64 },
    /// The memory estimate exceeds this machine's RAM; `--force` (or `"force": true`) downloads
    /// it anyway.
    #[error("{message}; pass --force to download it anyway")]
    DoesNotFit { message: String },
    #[error(
        "{file} arrived damaged (its sha256 is {actual}, the hub says {expected}): the download was \
         deleted and nothing was kept; run the pull again"
    )]
    Checksum { file: String, expected: String, actual: String },
    #[error("{file}: the hub said {expected} bytes but sent {actual}; run the pull again")]
    SizeMismatch { file: String, expected: u64, actual: u64 },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{file} is being downloaded by another pull right now; wait for it to finish")]
    Busy { file: String },
    #[error("cancelled; what was downloaded is kept: run the same pull again to resume")]
    Cancelled,
    #[error("{repo} is not in the Hugging Face cache ({} does not exist)", .path.display())]
    NotInCache { repo: String, path: PathBuf },
    #[error("refusing to delete {}: {why}", .path.display())]
    RemoveRefused { path: PathBuf, why: String },
}

impl FetchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FetchError::Io { path: path.into(), source }
    }

    /// Worth a retry with resume: the link broke, not the request.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            FetchError::Network { .. } => true,
            FetchError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

fn list_hint(available: &[String]) -> String {
    if available.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = available.iter().take(12).map(String::as_str).collect();
    let more = if available.len() > shown.len() { ", …" } else { "" };
    format!("; it has: {}{more}", shown.join(", "))
}
