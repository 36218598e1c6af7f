//! [`ModelRoots`]: the places discovery looks, resolved from the environment so that tests (and
//! users with unusual setups) can move every one of them by setting `HOME`, `HF_HOME`,
//! `OLLAMA_MODELS` and friends.

use std::path::{Path, PathBuf};

/// The roots searched. Well-known roots that do not exist are skipped silently (the app is not
/// installed); the user's own folders are reported when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoots {
    /// Hearth's own folder, `<data_dir>/models`: model directories and `.gguf` files.
    pub hearth_models: PathBuf,
    /// The Hugging Face hub cache (`models--org--name/snapshots/<rev>/…`).
    pub hf_hub_cache: Option<PathBuf>,
    /// LM Studio's models folders (`<publisher>/<repo>/…`): today's and the older location.
    pub lm_studio: Vec<PathBuf>,
    /// Ollama's store (`manifests/…`, `blobs/…`).
    pub ollama: Option<PathBuf>,
    /// The `model_folders` setting; see [`ModelRoots::with_user_folders`].
    pub user_folders: Vec<PathBuf>,
}

impl ModelRoots {
    /// - Hugging Face: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`,
    ///   else `~/.cache/huggingface/hub` (the `huggingface_hub` library's own order);
    /// - LM Studio: `~/.lmstudio/models` and the older `~/.cache/lm-studio/models`;
    /// - Ollama: `OLLAMA_MODELS`, else `~/.ollama/models`;
    /// - Hearth: `<data_dir>/models`.
    ///
    /// An empty variable counts as unset.
    pub fn from_env(data_dir: &Path) -> Self {
        let home = env_path("HOME");
        let under_home = |rel: &str| home.as_ref().map(|h| h.join(rel));
        let hf_hub_cache = hf_hub_cache_from_env();
        let lm_studio =
            [".lmstudio/models", ".cache/lm-studio/models"].iter().filter_map(|r| under_home(r)).collect();
        let ollama = env_path("OLLAMA_MODELS").or_else(|| under_home(".ollama/models"));
        Self {
            hearth_models: data_dir.join("models"),
            hf_hub_cache,
            lm_studio,
            ollama,
            user_folders: Vec::new(),
        }
    }

    /// These roots and the user's folders (the `model_folders` setting in force).
    pub fn with_user_folders(mut self, folders: &[PathBuf]) -> Self {
        self.user_folders = folders.to_vec();
        self
    }
}

/// The Hugging Face hub cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. The one definition both
/// discovery (which reads it) and `hearth models pull` (which writes it) use, so a pulled model is
/// always where the picker looks.
pub fn hf_hub_cache_from_env() -> Option<PathBuf> {
    env_path("HF_HUB_CACHE")
        .or_else(|| env_path("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| env_path("XDG_CACHE_HOME").map(|c| c.join("huggingface/hub")))
        .or_else(|| env_path("HOME").map(|h| h.join(".cache/huggingface/hub")))
}

/// A path from the environment; an empty variable counts as unset.
fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key).filter(|v| !v.is_empty()).map(PathBuf::from)
}
