//! Why a model could not be loaded, in words a person can act on.
//!
//! Loading happens once, before any job, so these errors carry enough context (which file, which
//! setting, what is supported) to fix the problem without reading code. A job-time failure is an
//! [`EngineError`](crate::EngineError); a `LoadError` converts into one (`ModelNotLoaded`) for callers
//! that only speak the job interface.

use std::path::PathBuf;

use crate::job::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model path {0} does not exist")]
    NotFound(PathBuf),
    #[error("{} is missing: {hint}", path.display())]
    MissingFile { path: PathBuf, hint: String },
    #[error("unsupported model architecture `{found}`; the {engine} engine runs: {}", supported.join(", "))]
    UnsupportedArchitecture { found: String, engine: &'static str, supported: Vec<&'static str> },
    #[error("unsupported quantization: {0}")]
    UnsupportedQuantization(String),
    #[error("{}: {reason}", file.display())]
    InvalidFile { file: PathBuf, reason: String },
    #[error("chat template: {0}")]
    Template(String),
    #[error("weights: {0}")]
    Weights(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the `{engine}` engine cannot run here: {reason}")]
    EngineUnavailable { engine: String, reason: String },
    #[error("this build of Hearth has no `{0}` engine (compiled without the `{0}` feature)")]
    BackendNotBuilt(&'static str),
}

impl LoadError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            return LoadError::NotFound(path);
        }
        LoadError::Io { path, source }
    }

    pub(crate) fn invalid(file: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        LoadError::InvalidFile { file: file.into(), reason: reason.to_string() }
    }
}

impl From<LoadError> for EngineError {
    fn from(e: LoadError) -> Self {
        EngineError::ModelNotLoaded(e.to_string())
    }
}

#[cfg(feature = "cpu")]
impl From<candle_core::Error> for LoadError {
    fn from(e: candle_core::Error) -> Self {
        LoadError::Weights(e.to_string())
    }
}
