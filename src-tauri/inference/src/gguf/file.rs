//! Opening a GGUF file: what its header says ([`GgufFile`]: architecture, size, quantization,
//! context), the checks that turn a bad file into an error naming it and saying what to do (a
//! part of a split model, a missing part, a truncated download), and loading it through
//! llama.cpp ([`load_model`]), whose failures come back with llama.cpp's own reason.
//!
//! [`GgufFile::read`] and [`load_model`] are the same two steps for inspecting (vocabulary only:
//! llama.cpp reads the header, the hyper-parameters and the vocabulary, which is where unknown
//! architectures and malformed files fail) and for loading (everything), so what inspection
//! accepts is what loads.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2 as sys;

use crate::error::LoadError;
use crate::gguf::runtime;

/// What a GGUF file's header says, checked against the file itself.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    pub path: PathBuf,
    /// `general.architecture`: `llama`, `qwen2`, `gemma3`…
    pub architecture: String,
    /// `{arch}.context_length`: the context the model was trained for (0 if the file omits it).
    pub context_length: usize,
    /// The quantization as llama.cpp names it (`Q4_K_M`), from `general.file_type`, else the most
    /// common tensor type (`Q4_K`).
    pub file_type: String,
    pub params: u64,
    /// Bytes on disk, all parts of a split model together.
    pub size_on_disk: u64,
    /// KV-cache bytes per token of context at f32, from the attention shape (0 if unknown).
    pub kv_bytes_per_token: u64,
    /// `tokenizer.chat_template`, when the file carries one.
    pub chat_template: Option<String>,
}

impl GgufFile {
    /// Reads the header of `path` (and of the other parts, for a split model) without loading
    /// any weights, and checks that every tensor's data lies inside its file.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        if !path.is_file() {
            return Err(LoadError::NotFound(path.to_path_buf()));
        }
        let header = Header::open(path)?;
        let mut size_on_disk = header.check_complete(path)?;
        let count = header.uint("split.count").unwrap_or(1);
        if count > 1 {
            let no = header.uint("split.no").unwrap_or(0);
            let prefix = split_prefix(path, no, count);
            if no != 0 {
                return Err(LoadError::invalid(
                    path,
                    format!(
                        "this is part {} of {count} of a split model; choose its first part, {}",
                        no + 1,
                        split_path(&prefix, 0, count).display()
                    ),
                ));
            }
            for i in 1..count {
                let part = split_path(&prefix, i, count);
                if !part.is_file() {
                    return Err(LoadError::MissingFile {
                        path: part,
                        hint: format!(
                            "{} is split into {count} parts and all of them must be in the same folder",
                            path.display()
                        ),
                    });
                }
                size_on_disk += Header::open(&part)?.check_complete(&part)?;
            }
        }
        let architecture = header
            .string("general.architecture")
            .ok_or_else(|| LoadError::invalid(path, "no `general.architecture`: not a model GGUF"))?;
        let arch_uint = |key: &str| header.uint(&format!("{architecture}.{key}"));
        let blocks = arch_uint("block_count").unwrap_or(0);
        let heads = arch_uint("attention.head_count").unwrap_or(0);
        let head_dim = arch_uint("embedding_length").unwrap_or(0).checked_div(heads).unwrap_or(0);
        let key_len = arch_uint("attention.key_length").unwrap_or(head_dim);
        let value_len = arch_uint("attention.value_length").unwrap_or(head_dim);
        // A per-layer array in some architectures; summed over the layers it describes.
        let kv_heads_total = match header.uint_array(&format!("{architecture}.attention.head_count_kv")) {
            Some(per_layer) => per_layer.iter().sum(),
            None => arch_uint("attention.head_count_kv").unwrap_or(heads) * blocks,
        };
        let file_type = header
            .uint("general.file_type")
            .and_then(ftype_name)
            .map(str::to_string)
            .unwrap_or_else(|| header.dominant_tensor_type());
        Ok(Self {
            path: path.to_path_buf(),
            context_length: arch_uint("context_length").unwrap_or(0) as usize,
            file_type,
            params: header.params(),
            size_on_disk,
            kv_bytes_per_token: kv_heads_total * (key_len + value_len) * 4,
            chat_template: header.string("tokenizer.chat_template"),
            architecture,
        })
    }
}

/// Loads `path` through llama.cpp: only its vocabulary (cheap: for inspection) or everything.
pub fn load_model(path: &Path, vocab_only: bool) -> Result<LlamaModel, LoadError> {
    let backend = runtime::backend()
        .map_err(|reason| LoadError::EngineUnavailable { engine: "gguf".into(), reason })?;
    let params = LlamaModelParams::default().with_vocab_only(vocab_only);
    runtime::take_errors();
    LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
        let said = runtime::take_errors();
        // llama.cpp's messages repeat the function names ("llama_model_load: error loading
        // model: …"); the last one names the cause.
        let cause = said
            .iter()
            .rev()
            .find_map(|line| line.rsplit_once("error loading model: ").map(|(_, c)| c.to_string()))
            .or_else(|| said.last().cloned())
            .unwrap_or_else(|| e.to_string());
        if let Some(arch) = cause.split("unknown model architecture: ").nth(1) {
            return LoadError::invalid(
                path,
                format!(
                    "its architecture {} is not one this build's llama.cpp runs; update Hearth or choose another model",
                    arch.trim()
                ),
            );
        }
        LoadError::invalid(path, format!("llama.cpp cannot load it: {cause}"))
    })
}

/// `model-00002-of-00003.gguf` → `model`, as llama.cpp names the parts.
fn split_prefix(path: &Path, no: u64, count: u64) -> String {
    let s = path.to_string_lossy();
    let suffix = format!("-{:05}-of-{count:05}.gguf", no + 1);
    s.strip_suffix(&suffix).map(str::to_string).unwrap_or_else(|| s.trim_end_matches(".gguf").to_string())
}

fn split_path(prefix: &str, no: u64, count: u64) -> PathBuf {
    PathBuf::from(format!("{prefix}-{:05}-of-{count:05}.gguf", no + 1))
}

/// llama.cpp's name for a `general.file_type` (its `llama_ftype`).
fn ftype_name(ftype: u64) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        41 => "Q2_0",
        _ => return None,
    })
}

/// ggml's `GGML_MAX_DIMS` (a macro, so not in the generated bindings): `gguf_get_tensor_ne`
/// returns this many dimensions.
const GGML_MAX_DIMS: usize = 4;

/// A GGUF header read by ggml's parser (metadata and tensor descriptions, no tensor data).
struct Header {
    ctx: *mut sys::gguf_context,
}

impl Header {
    fn open(path: &Path) -> Result<Self, LoadError> {
        let c_path = path.to_str().and_then(|s| CString::new(s).ok()).ok_or_else(|| {
            LoadError::invalid(path, "the path is not valid UTF-8; rename the file or its folder")
        })?;
        // Initialised first, so that the parser's complaints reach our log callback.
        runtime::backend()
            .map_err(|reason| LoadError::EngineUnavailable { engine: "gguf".into(), reason })?;
        runtime::take_errors();
        let params = sys::gguf_init_params { no_alloc: true, ctx: std::ptr::null_mut() };
        // SAFETY: a valid NUL-terminated path; with `no_alloc` and no ggml context requested,
        // ggml only parses the header. The result is freed in Drop.
        let ctx = unsafe { sys::gguf_init_from_file(c_path.as_ptr(), params) };
        if ctx.is_null() {
            let said = runtime::take_errors();
            let why = said.last().map(|l| format!(" ({l})")).unwrap_or_default();
            return Err(LoadError::invalid(
                path,
                format!("not a readable GGUF file{why}; it may be incomplete or damaged: download it again"),
            ));
        }
        Ok(Self { ctx })
    }

    /// Checks that every tensor's data lies inside the file (a truncated download does not) and
    /// returns the file's size.
    fn check_complete(&self, path: &Path) -> Result<u64, LoadError> {
        let len = std::fs::metadata(path).map_err(|e| LoadError::io(path, e))?.len();
        // SAFETY (all calls below): `self.ctx` is a live context and every index is in range.
        let data = unsafe { sys::gguf_get_data_offset(self.ctx) } as u64;
        let n = unsafe { sys::gguf_get_n_tensors(self.ctx) };
        let end = (0..n)
            .map(|i| unsafe {
                sys::gguf_get_tensor_offset(self.ctx, i) as u64
                    + sys::gguf_get_tensor_size(self.ctx, i) as u64
            })
            .max()
            .unwrap_or(0);
        if data + end > len {
            return Err(LoadError::invalid(
                path,
                format!(
                    "truncated: its tensors need {} bytes but the file has {len}; the download is incomplete: fetch it again",
                    data + end
                ),
            ));
        }
        Ok(len)
    }

    fn key(&self, key: &str) -> Option<i64> {
        let c = CString::new(key).ok()?;
        // SAFETY: live context, NUL-terminated key.
        let id = unsafe { sys::gguf_find_key(self.ctx, c.as_ptr()) };
        (id >= 0).then_some(id)
    }

    /// An unsigned integer value of any width (GGUF writers differ: `split.count` is a u16).
    fn uint(&self, key: &str) -> Option<u64> {
        let id = self.key(key)?;
        // SAFETY: live context, valid key id, each getter matching the stored type.
        unsafe {
            Some(match sys::gguf_get_kv_type(self.ctx, id) {
                sys::GGUF_TYPE_UINT8 => u64::from(sys::gguf_get_val_u8(self.ctx, id)),
                sys::GGUF_TYPE_UINT16 => u64::from(sys::gguf_get_val_u16(self.ctx, id)),
                sys::GGUF_TYPE_UINT32 => u64::from(sys::gguf_get_val_u32(self.ctx, id)),
                sys::GGUF_TYPE_UINT64 => sys::gguf_get_val_u64(self.ctx, id),
                sys::GGUF_TYPE_INT8 => u64::try_from(sys::gguf_get_val_i8(self.ctx, id)).ok()?,
                sys::GGUF_TYPE_INT16 => u64::try_from(sys::gguf_get_val_i16(self.ctx, id)).ok()?,
                sys::GGUF_TYPE_INT32 => u64::try_from(sys::gguf_get_val_i32(self.ctx, id)).ok()?,
                sys::GGUF_TYPE_INT64 => u64::try_from(sys::gguf_get_val_i64(self.ctx, id)).ok()?,
                _ => return None,
            })
        }
    }

    /// An array of 32-bit integers (per-layer hyper-parameters).
    fn uint_array(&self, key: &str) -> Option<Vec<u64>> {
        let id = self.key(key)?;
        // SAFETY: live context and key id; the data pointer holds `n` values of the array's type.
        unsafe {
            if sys::gguf_get_kv_type(self.ctx, id) != sys::GGUF_TYPE_ARRAY {
                return None;
            }
            let n = sys::gguf_get_arr_n(self.ctx, id);
            let data = sys::gguf_get_arr_data(self.ctx, id);
            if data.is_null() {
                return None;
            }
            match sys::gguf_get_arr_type(self.ctx, id) {
                sys::GGUF_TYPE_UINT32 => Some(
                    std::slice::from_raw_parts(data.cast::<u32>(), n).iter().map(|&v| u64::from(v)).collect(),
                ),
                sys::GGUF_TYPE_INT32 => Some(
                    std::slice::from_raw_parts(data.cast::<i32>(), n)
                        .iter()
                        .map(|&v| v.max(0) as u64)
                        .collect(),
                ),
                _ => None,
            }
        }
    }

    fn string(&self, key: &str) -> Option<String> {
        let id = self.key(key)?;
        // SAFETY: live context and key id; the string lives as long as the context.
        unsafe {
            if sys::gguf_get_kv_type(self.ctx, id) != sys::GGUF_TYPE_STRING {
                return None;
            }
            let p = sys::gguf_get_val_str(self.ctx, id);
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    }

    /// Elements over all tensors.
    fn params(&self) -> u64 {
        // SAFETY: live context; `ne` points at GGML_MAX_DIMS dimensions.
        unsafe {
            (0..sys::gguf_get_n_tensors(self.ctx))
                .map(|i| {
                    let ne = std::slice::from_raw_parts(sys::gguf_get_tensor_ne(self.ctx, i), GGML_MAX_DIMS);
                    ne.iter().map(|&d| d.max(0) as u64).product::<u64>()
                })
                .sum()
        }
    }

    /// The tensor type holding the most bytes, as ggml names it (`q4_K`), upper-cased.
    fn dominant_tensor_type(&self) -> String {
        let mut bytes: std::collections::BTreeMap<sys::ggml_type, u64> = Default::default();
        // SAFETY: live context and valid tensor indices.
        unsafe {
            for i in 0..sys::gguf_get_n_tensors(self.ctx) {
                *bytes.entry(sys::gguf_get_tensor_type(self.ctx, i)).or_default() +=
                    sys::gguf_get_tensor_size(self.ctx, i) as u64;
            }
        }
        let Some((&ty, _)) = bytes.iter().max_by_key(|(_, &n)| n) else { return String::new() };
        // SAFETY: ggml names every type it parsed; the name is a static string.
        let name = unsafe { sys::ggml_type_name(ty) };
        if name.is_null() {
            return format!("type {ty}");
        }
        // SAFETY: non-null static NUL-terminated string.
        unsafe { CStr::from_ptr(name) }.to_string_lossy().to_uppercase()
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        // SAFETY: created by gguf_init_from_file, freed once.
        unsafe { sys::gguf_free(self.ctx) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_parts_are_named_as_llama_cpp_names_them() {
        let p = Path::new("/m/llama-7b-00002-of-00003.gguf");
        let prefix = split_prefix(p, 1, 3);
        assert_eq!(prefix, "/m/llama-7b");
        assert_eq!(split_path(&prefix, 0, 3), PathBuf::from("/m/llama-7b-00001-of-00003.gguf"));
    }

    #[test]
    fn file_types_have_llama_cpp_names() {
        assert_eq!(ftype_name(15), Some("Q4_K_M"));
        assert_eq!(ftype_name(7), Some("Q8_0"));
        assert_eq!(ftype_name(4), None);
    }
}
