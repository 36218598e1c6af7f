//! One candidate inspected into a [`LocalModel`], the picker's entry: the inference crate's
//! `inspect_model` (the inspection the loader itself runs) says what it is and whether it can run;
//! this adds the engine that would run it, its size, quantization and whether it fits this
//! machine's RAM.

use std::path::{Path, PathBuf};

use hearth_inference::{inspect_model, Backend, LoadError, ModelFormat, ModelInfo};
use serde::{Deserialize, Serialize};

use super::found::{Found, ModelSource};

/// Tokens of context the memory estimate reserves a KV cache for: what a typical job uses, not the
/// model's maximum (which for recent models would quadruple the estimate of a small one).
const ESTIMATE_CONTEXT: usize = 4096;
/// Share of RAM a model may take and still leave the machine usable (and, on Apple Silicon, about
/// what the GPU may wire by default).
const COMFORTABLE_SHARE: f64 = 0.75;

/// The engine that runs a model, spelled as the settings' `engine` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelEngine {
    /// llama.cpp: every GGUF, on every OS.
    Gguf,
    /// MLX: MLX-format directories on macOS.
    Mlx,
    /// candle: MLX-format directories elsewhere.
    Cpu,
}

impl ModelEngine {
    fn for_format(format: ModelFormat) -> Self {
        match format {
            ModelFormat::Gguf => ModelEngine::Gguf,
            ModelFormat::MlxDir if cfg!(target_os = "macos") => ModelEngine::Mlx,
            ModelFormat::MlxDir => ModelEngine::Cpu,
        }
    }

    /// The backend whose memory needs the estimate uses. GGUF is estimated as the cpu backend
    /// holds it (the weights as stored, plus the KV cache) until `Backend::Gguf` exists.
    fn backend(self) -> Backend {
        match self {
            ModelEngine::Mlx => Backend::Mlx,
            ModelEngine::Gguf | ModelEngine::Cpu => Backend::Cpu,
        }
    }
}

/// How the memory estimate compares with this machine's RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Within a comfortable share of RAM.
    Fits,
    /// Within RAM, but leaves little for anything else.
    Tight,
    /// More than the machine has: not loadable.
    DoesNotFit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    /// Bits per weight for MLX affine quantization; `None` for GGUF (its type says it).
    pub bits: Option<u32>,
    pub group_size: Option<u32>,
    /// `affine` for MLX; the GGUF's tensor type as the inspection reports it (e.g. `Q4K`).
    pub mode: String,
}

/// One model found on disk, as the Settings picker shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalModel {
    /// `org/name` (+ `/<file>` for a GGUF) in the Hugging Face cache and LM Studio, the Ollama name
    /// (`llama3.2:3b`), the path below the folder for Hearth's and the user's folders.
    pub name: String,
    /// What to put in `model_path`.
    pub path: PathBuf,
    pub source: ModelSource,
    /// `None` for an entry about a folder (missing, unreadable, empty) rather than a model.
    pub format: Option<ModelFormat>,
    pub engine: Option<ModelEngine>,
    /// The architecture the inspection reports (`llama`, `qwen2`, `gemma3`, …).
    pub family: Option<String>,
    /// `None`: not quantized, or not known (the inspection failed).
    pub quantization: Option<Quantization>,
    pub context_length: Option<u64>,
    /// Bytes on disk (all parts of a split GGUF; every file of a model directory).
    pub size_bytes: u64,
    /// Memory needed to serve it: weights as the engine holds them plus a KV cache for
    /// [`ESTIMATE_CONTEXT`] tokens. `None` when the inspection failed.
    pub estimated_memory_bytes: Option<u64>,
    pub machine_ram_bytes: Option<u64>,
    /// `None` when either number is unknown.
    pub fit: Option<Fit>,
    /// The inspection accepts it, nothing the walk saw is missing, and it fits in RAM.
    pub loadable: bool,
    /// Why it is not loadable (first), then warnings. Each names the file and says what to do.
    pub problems: Vec<String>,
}

/// Inspects `found` as the loader would, and judges it against `ram` bytes of memory.
pub(super) fn inspect(found: Found, ram: Option<u64>) -> LocalModel {
    let Found { name, path, source, format, size_bytes, mut problems, mut warnings, refetch } = found;
    let mut model = LocalModel {
        name,
        path,
        source,
        format,
        engine: format.map(ModelEngine::for_format),
        family: None,
        quantization: None,
        context_length: None,
        size_bytes,
        estimated_memory_bytes: None,
        machine_ram_bytes: ram,
        fit: None,
        loadable: false,
        problems: Vec::new(),
    };
    // Nothing to inspect behind a folder note or a missing file (the walk has said why).
    if model.format.is_some() && model.path.exists() {
        match inspect_model(&model.path) {
            Ok(info) => describe(&mut model, info, &mut problems, &mut warnings),
            Err(e) => problems.push(explain(&e, &model.path, &refetch)),
        }
    }
    model.loadable = problems.is_empty() && model.format.is_some();
    model.problems = problems.into_iter().chain(warnings).collect();
    model
}

fn describe(
    model: &mut LocalModel,
    mut info: ModelInfo,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let file = file_label(&model.path);
    model.format = Some(info.format);
    let engine = ModelEngine::for_format(info.format);
    model.engine = Some(engine);
    if let Err(why) = &info.cpu_supported {
        problems.push(format!("{file}: {}", first_line(why)));
    }
    model.quantization = match info.format {
        ModelFormat::MlxDir => info.quant_bits.map(|bits| Quantization {
            bits: Some(bits),
            group_size: info.quant_group_size.map(|g| g as u32),
            mode: "affine".into(),
        }),
        ModelFormat::Gguf => info.gguf_type.clone().filter(|t| !t.is_empty()).map(|mode| Quantization {
            bits: None,
            group_size: None,
            mode,
        }),
    };
    model.context_length = Some(info.max_context as u64);
    if info.format == ModelFormat::Gguf {
        // A split GGUF's weights are in all its parts; the inspection read only the first.
        info.size_on_disk = info.size_on_disk.max(model.size_bytes);
    }
    let context = ESTIMATE_CONTEXT.min(info.max_context.max(1));
    let needed = info.estimated_memory(&engine.backend(), context);
    model.family = Some(info.family);
    if needed == 0 {
        return;
    }
    model.estimated_memory_bytes = Some(needed);
    let Some(ram) = model.machine_ram_bytes else { return };
    let fit = fit(needed, ram);
    model.fit = Some(fit);
    match fit {
        Fit::Fits => {}
        Fit::Tight => warnings.push(format!(
            "{file} needs about {} of this machine's {} of RAM: it runs, but leaves little for other apps",
            human(needed),
            human(ram)
        )),
        Fit::DoesNotFit => problems.push(format!(
            "{file} needs about {} of memory but this machine has {} of RAM: choose a smaller model or a \
             lower-bit quantization of it",
            human(needed),
            human(ram)
        )),
    }
}

pub(super) fn fit(needed: u64, ram: u64) -> Fit {
    if needed as f64 <= ram as f64 * COMFORTABLE_SHARE {
        Fit::Fits
    } else if needed <= ram {
        Fit::Tight
    } else {
        Fit::DoesNotFit
    }
}

/// The inspection's error, naming the file, with how to get an intact copy when the file itself is
/// unreadable (cut short by an interrupted download, or damaged).
fn explain(e: &LoadError, path: &Path, refetch: &str) -> String {
    let message = first_line(&e.to_string());
    match e {
        LoadError::InvalidFile { .. } | LoadError::Io { .. } if !refetch.is_empty() => {
            format!("{message}. If the file is incomplete or damaged, {refetch}")
        }
        // These name the file themselves.
        LoadError::NotFound(_)
        | LoadError::MissingFile { .. }
        | LoadError::InvalidFile { .. }
        | LoadError::Io { .. } => message,
        _ => format!("{}: {message}", file_label(path)),
    }
}

/// A picker entry is one line: a library error may carry a backtrace after its message (candle's
/// do when `RUST_BACKTRACE` is set).
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().trim_end().to_string()
}

fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// `1.2 GiB`, `350 MiB`, `900 KiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_has_three_verdicts() {
        let ram = 16 << 30;
        assert_eq!(fit(8 << 30, ram), Fit::Fits);
        assert_eq!(fit(12 << 30, ram), Fit::Fits);
        assert_eq!(fit(13 << 30, ram), Fit::Tight);
        assert_eq!(fit(16 << 30, ram), Fit::Tight);
        assert_eq!(fit((16 << 30) + 1, ram), Fit::DoesNotFit);
    }

    #[test]
    fn unreadable_files_say_how_to_get_them_again_and_every_error_names_the_file() {
        let file = Path::new("/m/cut.gguf");
        let cut = LoadError::InvalidFile { file: file.into(), reason: "not a readable GGUF file".into() };
        assert_eq!(
            explain(&cut, file, "run `ollama pull x`"),
            "/m/cut.gguf: not a readable GGUF file. If the file is incomplete or damaged, run `ollama pull x`"
        );
        assert_eq!(explain(&cut, file, ""), "/m/cut.gguf: not a readable GGUF file");
        let traced =
            LoadError::InvalidFile { file: file.into(), reason: "bad magic\n   0: backtrace".into() };
        assert_eq!(explain(&traced, file, ""), "/m/cut.gguf: bad magic");
        let arch = LoadError::UnsupportedArchitecture {
            found: "xyzzy".into(),
            engine: "cpu",
            supported: vec!["llama"],
        };
        assert_eq!(
            explain(&arch, file, "run `ollama pull x`"),
            "cut.gguf: unsupported model architecture `xyzzy`; the cpu engine runs: llama"
        );
    }

    #[test]
    fn sizes_read_as_people_do() {
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(350 << 20), "350.0 MiB");
        assert_eq!(human(12 << 30), "12.0 GiB");
    }
}
