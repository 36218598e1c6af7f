//! What a walk found, before inspection: a [`Found`] candidate (a file or directory that should be
//! a model, its name, where it came from, and what the walk itself saw wrong with it), and the
//! [`ModelSource`] it came from. Plain data at the bottom of `models`, so every walker and the
//! inspection can share it without importing one another.

use std::path::PathBuf;

use hearth_inference::ModelFormat;
use serde::{Deserialize, Serialize};

/// Where a model was found. The order is the picker's (and the order the roots are walked in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// `<data_dir>/models`.
    HearthModels,
    /// The Hugging Face hub cache.
    HuggingFaceCache,
    /// LM Studio's models folder.
    LmStudio,
    /// Ollama's store (manifests and blobs).
    Ollama,
    /// A folder named in the `model_folders` setting.
    UserFolder,
}

/// One candidate. `path` is what goes in `model_path` if the user picks it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Found {
    pub name: String,
    pub path: PathBuf,
    pub source: ModelSource,
    /// What the layout says it is; `None` for an entry that is a note about a folder (a user folder
    /// that is missing or holds no model), not a model.
    pub format: Option<ModelFormat>,
    /// Bytes on disk: the file, all parts of a split GGUF, or the model directory's files.
    pub size_bytes: u64,
    /// What keeps it from loading, seen by the walk (a missing blob or split part). Each names the
    /// file and says what to do.
    pub problems: Vec<String>,
    /// What may surprise the user but does not keep it from loading.
    pub warnings: Vec<String>,
    /// How to get an intact copy from where it came from (`run \`ollama pull x\``), appended to
    /// errors that mean a damaged or cut-short file.
    pub refetch: String,
}

impl Found {
    pub fn model(
        name: String,
        path: PathBuf,
        source: ModelSource,
        format: ModelFormat,
        size_bytes: u64,
        refetch: impl Into<String>,
    ) -> Self {
        Found {
            name,
            path,
            source,
            format: Some(format),
            size_bytes,
            problems: Vec::new(),
            warnings: Vec::new(),
            refetch: refetch.into(),
        }
    }

    /// An entry about a folder rather than a model: listed, never loadable.
    pub fn folder_note(path: PathBuf, source: ModelSource, problem: String) -> Self {
        Found {
            name: path.display().to_string(),
            path,
            source,
            format: None,
            size_bytes: 0,
            problems: vec![problem],
            warnings: Vec::new(),
            refetch: String::new(),
        }
    }

    pub fn with_problem(mut self, problem: String) -> Self {
        self.problems.push(problem);
        self
    }
}
