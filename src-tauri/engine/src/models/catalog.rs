//! A short built-in list of models known to load and serve well, and the first-launch view built
//! on it ([`Onboarding`], `GET /api/onboarding`): what this machine can serve, what it already has,
//! and what to fetch when it has nothing.
//!
//! The sizes are approximate on purpose: they are what the hub listed when the entry was written,
//! good enough to judge the fit before anything is downloaded, and the pull's own checks (with the
//! real sizes and, for MLX, the real config) have the last word. The fit uses discovery's own
//! thresholds (`entry::fit`), so a suggestion that "fits" is one the picker will call loadable.

use hearth_settings::EngineKind;
use serde::Serialize;

use super::entry::{fit, human};
use super::{Fit, LocalModel, ModelEngine};

/// One known-good model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatalogEntry {
    pub repo: &'static str,
    /// The GGUF file of the repository; `None` for an MLX repository (fetched whole).
    pub file: Option<&'static str>,
    /// Billions of parameters.
    pub params_b: f64,
    /// Download size.
    pub approx_bytes: u64,
    /// The KV cache for the 4096 tokens discovery's estimate reserves (from the model's layers,
    /// KV heads and head size, at 16 bits), which comes on top of the weights.
    pub approx_kv_bytes: u64,
}

impl CatalogEntry {
    pub fn engine(&self) -> ModelEngine {
        match self.file {
            Some(_) => ModelEngine::Gguf,
            None => ModelEngine::Mlx,
        }
    }

    /// Memory to serve it: the weights as stored plus the KV cache.
    pub fn approx_memory_bytes(&self) -> u64 {
        self.approx_bytes + self.approx_kv_bytes
    }

    /// The name discovery lists it under once fetched (`org/name`, or `org/name/<file>`).
    pub fn name(&self) -> String {
        match self.file {
            Some(file) => format!("{}/{file}", self.repo),
            None => self.repo.to_string(),
        }
    }
}

const MB: u64 = 1_000_000;

/// Smallest first within each format: the first launch wants something that serves soon.
const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        repo: "mlx-community/Qwen2.5-0.5B-Instruct-4bit",
        file: None,
        params_b: 0.5,
        approx_bytes: 280 * MB,
        approx_kv_bytes: 48 << 20,
    },
    CatalogEntry {
        repo: "mlx-community/Llama-3.2-1B-Instruct-4bit",
        file: None,
        params_b: 1.2,
        approx_bytes: 700 * MB,
        approx_kv_bytes: 128 << 20,
    },
    CatalogEntry {
        repo: "mlx-community/gemma-3-1b-it-4bit",
        file: None,
        params_b: 1.0,
        approx_bytes: 730 * MB,
        approx_kv_bytes: 104 << 20,
    },
    CatalogEntry {
        repo: "mlx-community/Qwen2.5-7B-Instruct-4bit",
        file: None,
        params_b: 7.6,
        approx_bytes: 4_300 * MB,
        approx_kv_bytes: 224 << 20,
    },
    CatalogEntry {
        repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        file: Some("qwen2.5-0.5b-instruct-q4_k_m.gguf"),
        params_b: 0.5,
        approx_bytes: 490 * MB,
        approx_kv_bytes: 48 << 20,
    },
    CatalogEntry {
        repo: "bartowski/Llama-3.2-1B-Instruct-GGUF",
        file: Some("Llama-3.2-1B-Instruct-Q4_K_M.gguf"),
        params_b: 1.2,
        approx_bytes: 810 * MB,
        approx_kv_bytes: 128 << 20,
    },
    CatalogEntry {
        repo: "bartowski/Qwen2.5-7B-Instruct-GGUF",
        file: Some("Qwen2.5-7B-Instruct-Q4_K_M.gguf"),
        params_b: 7.6,
        approx_bytes: 4_680 * MB,
        approx_kv_bytes: 224 << 20,
    },
];

/// The entries this OS can run: MLX only where MLX runs (macOS), GGUF everywhere.
pub fn entries() -> impl Iterator<Item = &'static CatalogEntry> {
    CATALOG.iter().filter(|e| e.engine() != ModelEngine::Mlx || cfg!(target_os = "macos"))
}

/// A catalog entry judged against this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub repo: String,
    pub file: Option<String>,
    /// Its name in the picker once fetched.
    pub name: String,
    pub engine: ModelEngine,
    /// Approximate download size.
    pub approx_bytes: u64,
    /// Approximate memory to serve it (weights and a 4096-token KV cache).
    pub approx_memory_bytes: u64,
    pub params_b: f64,
    /// `None`: this machine's RAM is unknown.
    pub fit: Option<Fit>,
    /// The verdict with its numbers, for people.
    pub summary: String,
}

/// Every entry for this OS not already on this machine (`present`: discovery's names), judged
/// against `ram` bytes: those that fit first, then tight, then the rest; smallest first within each.
pub fn suggestions(ram: Option<u64>, present: &[String]) -> Vec<Suggestion> {
    let mut out: Vec<Suggestion> =
        entries().filter(|e| !present.contains(&e.name())).map(|e| suggest(e, ram)).collect();
    let rank = |f: Option<Fit>| match f {
        Some(Fit::Fits) => 0,
        None => 1,
        Some(Fit::Tight) => 2,
        Some(Fit::DoesNotFit) => 3,
    };
    out.sort_by_key(|s| (rank(s.fit), s.approx_bytes));
    out
}

fn suggest(e: &CatalogEntry, ram: Option<u64>) -> Suggestion {
    let needed = e.approx_memory_bytes();
    let verdict = ram.map(|ram| fit(needed, ram));
    let size = format!("about {} to download", human(e.approx_bytes));
    let summary = match (verdict, ram) {
        (Some(Fit::Fits), Some(ram)) => {
            format!("fits: {size}, needs about {} of {} RAM", human(needed), human(ram))
        }
        (Some(Fit::Tight), Some(ram)) => format!(
            "tight: {size}, needs about {} of {} RAM, leaving little for other apps",
            human(needed),
            human(ram)
        ),
        (Some(Fit::DoesNotFit), Some(ram)) => {
            format!("does not fit: needs about {} but this machine has {} of RAM", human(needed), human(ram))
        }
        _ => format!("{size}, needs about {} of memory", human(needed)),
    };
    Suggestion {
        repo: e.repo.to_string(),
        file: e.file.map(str::to_string),
        name: e.name(),
        engine: e.engine(),
        approx_bytes: e.approx_bytes,
        approx_memory_bytes: needed,
        params_b: e.params_b,
        fit: verdict,
        summary,
    }
}

/// What `GET /api/onboarding` answers: everything the first-launch panel shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Onboarding {
    pub machine: Machine,
    /// The models on this machine that load (discovery's loadable entries).
    pub found: Vec<LocalModel>,
    pub suggestions: Vec<Suggestion>,
    /// The settings name no model and the engine in force needs one: the provider cannot serve
    /// until one is chosen or fetched.
    pub needs_model: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    pub ram_bytes: Option<u64>,
    /// Free space on the file system holding the Hugging Face cache (where a pull writes).
    pub disk_free_bytes: Option<u64>,
    /// The engine a model directory runs on here (a GGUF file always runs on `gguf`).
    pub engine: EngineKind,
    /// `macos`, `linux`, …
    pub os: String,
}

impl Onboarding {
    /// Builds the view from discovery's entries (loadable or not: only the loadable are kept).
    pub fn new(
        ram_bytes: Option<u64>,
        disk_free_bytes: Option<u64>,
        discovered: Vec<LocalModel>,
        needs_model: bool,
    ) -> Self {
        let present: Vec<String> = discovered.iter().map(|m| m.name.clone()).collect();
        Onboarding {
            machine: Machine {
                ram_bytes,
                disk_free_bytes,
                engine: EngineKind::default(),
                os: std::env::consts::OS.to_string(),
            },
            found: discovered.into_iter().filter(|m| m.loadable).collect(),
            suggestions: suggestions(ram_bytes, &present),
            needs_model,
        }
    }
}

/// Whether an engine can serve without a model file: the scripted engine makes its text up, the
/// loopback engine forwards to a server that has its own.
pub fn engine_needs_model(kind: EngineKind) -> bool {
    !matches!(kind, EngineKind::Scripted | EngineKind::Loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn by_repo<'a>(list: &'a [Suggestion], repo: &str) -> &'a Suggestion {
        list.iter().find(|s| s.repo == repo).unwrap_or_else(|| panic!("no {repo} in {list:#?}"))
    }

    #[test]
    fn mlx_is_offered_only_where_it_runs_and_gguf_everywhere() {
        let engines: Vec<ModelEngine> = entries().map(|e| e.engine()).collect();
        assert!(engines.contains(&ModelEngine::Gguf));
        assert_eq!(engines.contains(&ModelEngine::Mlx), cfg!(target_os = "macos"));
        for e in entries() {
            // A GGUF entry names its file; an MLX one is a whole repository.
            assert_eq!(e.file.is_some(), e.engine() == ModelEngine::Gguf, "{e:?}");
            assert!(e.file.is_none_or(|f| f.ends_with(".gguf")), "{e:?}");
            crate::models::fetch::PullSpec::new(e.repo, e.file).expect("a well-formed repository");
        }
    }

    #[test]
    fn suggestions_are_judged_with_discoverys_thresholds() {
        // A 7B model needs about 4.6 GiB with its cache: within 75 % of 8 GiB (fits), exactly
        // its own need of RAM (tight), more than 4 GiB (does not fit) — where a 0.5B still fits.
        let seven_b = entries().find(|e| e.params_b > 7.0).unwrap();
        let need = seven_b.approx_memory_bytes();
        for (ram, verdict) in [(8 * GIB, Fit::Fits), (need, Fit::Tight), (4 * GIB, Fit::DoesNotFit)] {
            let list = suggestions(Some(ram), &[]);
            let s = by_repo(&list, seven_b.repo);
            assert_eq!(s.fit, Some(verdict), "at {ram} bytes: {s:?}");
            assert_eq!(s.fit, Some(fit(s.approx_memory_bytes, ram)), "the same function as discovery");
            assert!(s.approx_memory_bytes > s.approx_bytes, "the cache comes on top of the weights");
            assert!(s.summary.contains(&human(ram)), "{}", s.summary);
            let small = list.iter().find(|s| s.params_b < 1.0).unwrap();
            assert_eq!(small.fit, Some(Fit::Fits), "{small:?}");
        }
        let list = suggestions(Some(4 * GIB), &[]);
        assert!(by_repo(&list, seven_b.repo).summary.starts_with("does not fit"));
        // What fits comes first, what does not fit last.
        assert_eq!(list.first().unwrap().fit, Some(Fit::Fits));
        assert_eq!(list.last().unwrap().fit, Some(Fit::DoesNotFit));
    }

    #[test]
    fn unknown_ram_has_no_verdict_and_models_already_here_are_not_suggested() {
        let list = suggestions(None, &[]);
        assert!(list.iter().all(|s| s.fit.is_none() && s.summary.contains("to download")), "{list:?}");
        let first = entries().next().unwrap();
        let list = suggestions(Some(16 * GIB), &[first.name()]);
        assert!(list.iter().all(|s| s.name != first.name()));
        assert_eq!(list.len(), entries().count() - 1);
    }

    #[test]
    fn only_engines_that_read_a_model_file_need_one() {
        assert!(engine_needs_model(EngineKind::Cpu) && engine_needs_model(EngineKind::Gguf));
        assert!(engine_needs_model(EngineKind::Mlx));
        assert!(!engine_needs_model(EngineKind::Scripted) && !engine_needs_model(EngineKind::Loopback));
    }
}
