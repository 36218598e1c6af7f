//! The `gguf` backend: every GGUF file llama.cpp runs (through the `llama-cpp-2` crate, linked
//! into the binary), on Metal on macOS and on the CPU elsewhere.
//!
//! The model file is all it needs: the tokenizer is llama.cpp's vocabulary from the GGUF
//! ([`vocab`]), the chat template is the file's `tokenizer.chat_template`, or, for a file without
//! one, its architecture's standard template ([`templates`]), rendered by the shared renderer like
//! every backend's. Sampling, stop strings, detokenizing, cancellation and usage are the shared
//! generation loop's ([`crate::generate`]); llama.cpp only runs forward passes, on its own thread
//! ([`worker`]). [`file`] reads and checks the file, so [`inspect`] and [`load`] fail alike.
//!
//! Threads: all cores (`std::thread::available_parallelism`), or `HEARTH_THREADS`.
//!
//! Sampling happens in the shared [`Sampler`](crate::sampling::Sampler) over the logits rather
//! than in llama.cpp's sampler chain, so a request means the same on every backend: greedy is
//! the first maximal logit, and a seed gives the same tokens as on the cpu or mlx engines for the
//! same logits, whatever llama.cpp's sampler defaults become.

pub mod file;
pub mod runtime;
pub mod sizing;
pub mod step_queue;
pub mod templates;
pub mod vocab;
pub mod worker;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::LoadError;
use crate::generate::{GenerateOptions, LocalEngine, DEFAULT_PREFILL_CHUNK};
use crate::job::ModelDescriptor;
use crate::model_dir::dir_name;
use crate::model_info::{ModelFormat, ModelInfo};
use crate::spec::LoadSpec;
use crate::template::ChatTemplate;
use crate::text::TextCodec;
use file::{load_model, GgufFile};
use sizing::{auto_slots, context_size};
use vocab::GgufVocab;
use worker::{ContextOptions, GgufRunner};

pub use runtime::{cpu_variant, system_info};

/// The gguf engine, concretely typed (tests reach its codec).
pub type GgufEngine = LocalEngine<GgufRunner>;

/// Loads a GGUF file on llama.cpp.
pub fn load(spec: &LoadSpec) -> Result<Arc<GgufEngine>, LoadError> {
    let path = &spec.model_path;
    let file = GgufFile::read(path)?;
    let model = Arc::new(load_model(path, false)?);
    let vocab = GgufVocab::new(model.clone());
    let codec = codec(&file, &vocab)?;
    let trained = match model.n_ctx_train() as usize {
        0 => file.context_length,
        n => n,
    };
    let max_context = context_size(trained, file.kv_bytes_per_token, spec.max_context);
    let slots = spec.slots.unwrap_or_else(|| {
        auto_slots(spec.ram_bytes, file.size_on_disk, max_context, file.kv_bytes_per_token)
    });
    let options = ContextOptions {
        n_ctx: max_context as u32,
        n_batch: DEFAULT_PREFILL_CHUNK as u32,
        threads: threads() as i32,
        slots: slots as u32,
    };
    let runner = GgufRunner::start(model, options)
        .map_err(|reason| LoadError::EngineUnavailable { engine: "gguf".into(), reason })?;
    let descriptor = ModelDescriptor {
        model_id: spec.id_or(|| dir_name(path)),
        params_b: file.params as f64 / 1e9,
        max_context_tokens: max_context as u64,
        engine: "gguf".into(),
        // Decode is memory-bound: ~10 GB/s of effective bandwidth over the weights per token.
        throughput_tps_estimate: (10e9 / file.size_on_disk.max(1) as f64).clamp(0.1, 1000.0),
    };
    let options = GenerateOptions { prefill_chunk: DEFAULT_PREFILL_CHUNK, max_context };
    tracing::info!(
        model = %path.display(), architecture = %file.architecture, quantization = %file.file_type,
        context = max_context, slots, threads = threads(), cpu = ?cpu_variant(), "loaded on llama.cpp"
    );
    Ok(Arc::new(LocalEngine::new(descriptor, codec, runner, options)))
}

/// What a GGUF file is, checked as loading checks it (llama.cpp reads its vocabulary), without
/// loading the weights.
pub fn inspect(path: &Path) -> Result<ModelInfo, LoadError> {
    let file = GgufFile::read(path)?;
    let model = load_model(path, true)?;
    let vocab = GgufVocab::new(Arc::new(model));
    let has_template = file.chat_template.is_some()
        || templates::standard_template(&file.architecture, |t| has_token(&vocab, t)).is_some();
    Ok(ModelInfo {
        model_id: dir_name(path),
        path: path.to_path_buf(),
        format: ModelFormat::Gguf,
        family: file.architecture,
        quant_bits: None,
        quant_group_size: None,
        gguf_type: Some(file.file_type),
        params: file.params,
        size_on_disk: file.size_on_disk,
        max_context: file.context_length,
        kv_bytes_per_token: file.kv_bytes_per_token,
        has_chat_template: has_template,
        cpu_supported: Ok(()),
    })
}

/// The codec: llama.cpp's vocabulary, the file's template (or the architecture's standard one)
/// with the vocabulary's BOS/EOS text, and llama.cpp's end-of-generation tokens.
fn codec(file: &GgufFile, vocab: &GgufVocab) -> Result<TextCodec, LoadError> {
    let source = file.chat_template.clone().or_else(|| {
        templates::standard_template(&file.architecture, |t| has_token(vocab, t)).map(str::to_string)
    });
    let (bos, eos) = vocab.bos_eos_text();
    let mut specials = BTreeMap::new();
    if let Some(b) = &bos {
        specials.insert("bos_token".to_string(), b.clone());
    }
    if let Some(e) = eos {
        specials.insert("eos_token".to_string(), e);
    }
    let template = source.map(|s| ChatTemplate::new(&s, specials)).transpose()?;
    Ok(TextCodec::new(Box::new(vocab.clone()), template, bos, vocab.end_of_generation_ids()))
}

fn has_token(vocab: &GgufVocab, text: &str) -> bool {
    use crate::text::Vocabulary;
    vocab.token_id(text).is_some()
}

/// `HEARTH_THREADS`, else every core this process may use.
fn threads() -> usize {
    std::env::var("HEARTH_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::inspect;
    use crate::error::LoadError;

    /// A header-only GGUF (version 3, no tensors) with the given metadata.
    enum Val {
        Str(&'static str),
        U16(u16),
    }

    fn write_gguf(dir: &Path, name: &str, kv: &[(&str, Val)]) -> PathBuf {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend((kv.len() as u64).to_le_bytes());
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend((s.len() as u64).to_le_bytes());
            b.extend(s.as_bytes());
        };
        for (k, v) in kv {
            string(&mut b, k);
            match v {
                Val::Str(s) => {
                    b.extend(8u32.to_le_bytes());
                    string(&mut b, s);
                }
                Val::U16(n) => {
                    b.extend(2u32.to_le_bytes());
                    b.extend(n.to_le_bytes());
                }
            }
        }
        let path = dir.join(name);
        std::fs::write(&path, b).unwrap();
        path
    }

    fn reason(e: LoadError) -> String {
        match e {
            LoadError::InvalidFile { reason, .. } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_split_part_names_the_first_part() {
        let dir = tempfile::tempdir().unwrap();
        let kv = [
            ("general.architecture", Val::Str("llama")),
            ("split.no", Val::U16(1)),
            ("split.count", Val::U16(3)),
        ];
        let part = write_gguf(dir.path(), "m-00002-of-00003.gguf", &kv);
        let r = reason(inspect(&part).unwrap_err());
        assert!(r.contains("part 2 of 3") && r.contains("m-00001-of-00003.gguf"), "{r}");

        let kv = [
            ("general.architecture", Val::Str("llama")),
            ("split.no", Val::U16(0)),
            ("split.count", Val::U16(2)),
        ];
        let first = write_gguf(dir.path(), "n-00001-of-00002.gguf", &kv);
        match inspect(&first).unwrap_err() {
            LoadError::MissingFile { path, .. } => {
                assert!(path.ends_with("n-00002-of-00002.gguf"), "{path:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_architecture_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_gguf(dir.path(), "odd.gguf", &[("general.architecture", Val::Str("nonesuch"))]);
        let r = reason(inspect(&path).unwrap_err());
        assert!(r.contains("nonesuch") && r.contains("not one this build's llama.cpp runs"), "{r}");
    }

    #[test]
    fn a_file_that_is_not_gguf_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.gguf");
        std::fs::write(&path, b"this is not a model at all, just some text").unwrap();
        let r = reason(inspect(&path).unwrap_err());
        assert!(r.contains("not a readable GGUF file"), "{r}");
        assert!(matches!(inspect(&dir.path().join("absent.gguf")), Err(LoadError::NotFound(_))));
    }
}
