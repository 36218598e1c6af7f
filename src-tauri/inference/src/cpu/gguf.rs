//! GGUF files (llama.cpp's format) on the CPU backend: block-quantized weights stay quantized and
//! run through candle's quantized matmuls, inside the shared [`Decoder`].
//!
//! candle-transformers ships a Gemma 3 GGUF model too, but its attention mask only works for a
//! whole prompt in one pass and ignores the sliding window once the cache grows past it; the shared
//! decoder gets both right (chunked prefill, long contexts), and `tests/gemma_gguf.rs` checks that
//! it agrees with candle's model where that one is correct.
//!
//! A GGUF file carries no Hugging Face tokenizer or chat template, so those come from a directory
//! beside it (or given explicitly): `tokenizer.json` (or `tokenizer.json.xz`) and
//! `tokenizer_config.json`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, k_quants as k, GgmlDType, GgmlType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};

use super::decoder::{Activation, Decoder, DecoderSpec, Embedding, Layer, Linear, QuantizedRows};
use crate::error::LoadError;
use crate::model_dir::{RopeConfig, RopeScaling};

/// GGUF architectures this backend runs.
pub const SUPPORTED_GGUF_ARCHS: &[&str] = &["gemma3"];

/// What the GGUF header says about the model.
#[derive(Debug, Clone)]
pub struct GgufInfo {
    pub architecture: String,
    pub context_length: usize,
    pub eos_token_id: Option<u32>,
    pub bos_token_id: Option<u32>,
    pub params: u64,
    /// Most common tensor type, e.g. `Q4K`.
    pub main_dtype: String,
}

pub struct GgufModel {
    pub decoder: Decoder,
    pub info: GgufInfo,
}

fn open(path: &Path) -> Result<(File, gguf_file::Content), LoadError> {
    let mut f = File::open(path).map_err(|e| LoadError::io(path, e))?;
    let mut ct = gguf_file::Content::read(&mut f)
        .map_err(|e| LoadError::invalid(path, format!("not a readable GGUF file: {e}")))?;
    // The embedded llama.cpp vocabulary (262k token strings and scores for Gemma 3) is unused: the
    // tokenizer comes from tokenizer.json. Free it before the weights are read, not after.
    ct.metadata.retain(|k, _| {
        !matches!(
            k.as_str(),
            "tokenizer.ggml.tokens"
                | "tokenizer.ggml.scores"
                | "tokenizer.ggml.token_type"
                | "tokenizer.ggml.merges"
        )
    });
    Ok((f, ct))
}

fn md_u32(ct: &gguf_file::Content, key: &str) -> Option<u32> {
    ct.metadata.get(key).and_then(|v| v.to_u32().ok())
}

fn md_f32(ct: &gguf_file::Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| v.to_f32().ok())
}

fn info_of(ct: &gguf_file::Content) -> GgufInfo {
    let architecture =
        ct.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    let mut params = 0u64;
    for t in ct.tensor_infos.values() {
        let n = t.shape.elem_count() as u64;
        params += n;
        *counts.entry(format!("{:?}", t.ggml_dtype)).or_default() += n;
    }
    GgufInfo {
        context_length: md_u32(ct, &format!("{architecture}.context_length")).unwrap_or(8192) as usize,
        eos_token_id: md_u32(ct, "tokenizer.ggml.eos_token_id"),
        bos_token_id: md_u32(ct, "tokenizer.ggml.bos_token_id"),
        main_dtype: counts.into_iter().max_by_key(|(_, n)| *n).map(|(k, _)| k).unwrap_or_default(),
        params,
        architecture,
    }
}

/// Reads only the header.
pub fn inspect(path: &Path) -> Result<GgufInfo, LoadError> {
    let (_, ct) = open(path)?;
    Ok(info_of(&ct))
}

pub fn load(path: &Path) -> Result<GgufModel, LoadError> {
    let (mut f, ct) = open(path)?;
    let info = info_of(&ct);
    if !SUPPORTED_GGUF_ARCHS.contains(&info.architecture.as_str()) {
        return Err(LoadError::UnsupportedArchitecture {
            found: format!("{} (GGUF)", info.architecture),
            engine: "cpu",
            supported: SUPPORTED_GGUF_ARCHS.to_vec(),
        });
    }
    let arch = info.architecture.clone();
    let need = |key: &str| -> Result<u32, LoadError> {
        md_u32(&ct, &format!("{arch}.{key}"))
            .ok_or_else(|| LoadError::invalid(path, format!("GGUF metadata lacks `{arch}.{key}`")))
    };
    let heads = need("attention.head_count")? as usize;
    let kv_heads = need("attention.head_count_kv")? as usize;
    let blocks = need("block_count")? as usize;
    let hidden = need("embedding_length")? as usize;
    let head_dim = need("attention.key_length")? as usize;
    let eps = md_f32(&ct, &format!("{arch}.attention.layer_norm_rms_epsilon")).unwrap_or(1e-6) as f64;
    let window = md_u32(&ct, &format!("{arch}.attention.sliding_window")).map(|w| w as usize);
    let pattern = md_u32(&ct, &format!("{arch}.attention.sliding_window_type")).unwrap_or(6).max(1) as usize;
    let theta = md_f32(&ct, &format!("{arch}.rope.freq_base")).unwrap_or(1_000_000.0) as f64;
    let scaling = match (
        ct.metadata
            .get(&format!("{arch}.rope.scaling.type"))
            .and_then(|v| v.to_string().ok())
            .map(String::as_str),
        md_f32(&ct, &format!("{arch}.rope.scaling.factor")),
    ) {
        (Some("linear"), Some(factor)) if factor > 0.0 && factor != 1.0 => {
            RopeScaling::Linear { factor: factor as f64 }
        }
        _ => RopeScaling::None,
    };

    let mut r = Reader { ct: &ct, file: &mut f, path };
    // Norm weights are stored as final multipliers (llama.cpp's converter folds Gemma's +1 in).
    // Read once: with tied weights the same blocks serve as the embedding table and the output head.
    let token_embd = Arc::new(r.qtensor("token_embd.weight")?);
    let embed = match QuantizedRows::new(token_embd.clone()) {
        Ok(rows) => Embedding::Quantized(Arc::new(rows)),
        // Types whose rows are not whole blocks fall back to a dense table.
        Err(_) => Embedding::Dense(token_embd.dequantize(&Device::Cpu)?.to_dtype(DType::F32)?),
    };
    let final_norm = r.dense("output_norm.weight")?;
    let lm_head = if ct.tensor_infos.contains_key("output.weight") {
        r.linear("output.weight")?
    } else {
        Linear::Quantized { weight: QMatMul::from_arc(token_embd)?, bias: None }
    };
    let mut layers = Vec::with_capacity(blocks);
    for i in 0..blocks {
        let p = format!("blk.{i}");
        layers.push(Layer {
            q: r.linear(&format!("{p}.attn_q.weight"))?,
            k: r.linear(&format!("{p}.attn_k.weight"))?,
            v: r.linear(&format!("{p}.attn_v.weight"))?,
            o: r.linear(&format!("{p}.attn_output.weight"))?,
            gate: r.linear(&format!("{p}.ffn_gate.weight"))?,
            up: r.linear(&format!("{p}.ffn_up.weight"))?,
            down: r.linear(&format!("{p}.ffn_down.weight"))?,
            q_norm: Some(r.dense(&format!("{p}.attn_q_norm.weight"))?),
            k_norm: Some(r.dense(&format!("{p}.attn_k_norm.weight"))?),
            attn_in_norm: r.dense(&format!("{p}.attn_norm.weight"))?,
            attn_out_norm: Some(r.dense(&format!("{p}.post_attention_norm.weight"))?),
            mlp_in_norm: r.dense(&format!("{p}.ffn_norm.weight"))?,
            mlp_out_norm: Some(r.dense(&format!("{p}.post_ffw_norm.weight"))?),
            sliding: window.is_some() && (i + 1) % pattern != 0,
        });
    }
    let spec = DecoderSpec {
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        rms_norm_eps: eps,
        rope: RopeConfig { theta, traditional: false, scaling },
        rope_local: Some(RopeConfig { theta: 10_000.0, traditional: false, scaling: RopeScaling::None }),
        sliding_window: window,
        activation: Activation::GeluTanh,
        embed_scale: Some((hidden as f64).sqrt()),
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
    };
    Ok(GgufModel { decoder: Decoder::new(spec, embed, layers, final_norm, lm_head), info })
}

struct Reader<'a> {
    ct: &'a gguf_file::Content,
    file: &'a mut File,
    path: &'a Path,
}

impl Reader<'_> {
    fn qtensor(&mut self, name: &str) -> Result<QTensor, LoadError> {
        let err = |e: candle_core::Error| {
            LoadError::Weights(format!("{}: tensor {name}: {e}", self.path.display()))
        };
        let Some(info) = self.ct.tensor_infos.get(name) else {
            return Err(err(candle_core::Error::Msg("not in the file".into())));
        };
        let start = self.ct.tensor_data_offset + info.offset;
        let dims = info.shape.dims().to_vec();
        let file = &mut *self.file;
        match info.ggml_dtype {
            GgmlDType::Q5_0 => q5_0_as_q8_0(file, start, dims).map_err(err),
            GgmlDType::Q4_0 => read_blocks::<k::BlockQ4_0>(file, start, dims).map_err(err),
            GgmlDType::Q4_1 => read_blocks::<k::BlockQ4_1>(file, start, dims).map_err(err),
            GgmlDType::Q5_1 => read_blocks::<k::BlockQ5_1>(file, start, dims).map_err(err),
            GgmlDType::Q8_0 => read_blocks::<k::BlockQ8_0>(file, start, dims).map_err(err),
            GgmlDType::Q2K => read_blocks::<k::BlockQ2K>(file, start, dims).map_err(err),
            GgmlDType::Q3K => read_blocks::<k::BlockQ3K>(file, start, dims).map_err(err),
            GgmlDType::Q4K => read_blocks::<k::BlockQ4K>(file, start, dims).map_err(err),
            GgmlDType::Q5K => read_blocks::<k::BlockQ5K>(file, start, dims).map_err(err),
            GgmlDType::Q6K => read_blocks::<k::BlockQ6K>(file, start, dims).map_err(err),
            // Float tensors (norms) are small: candle's reader, with its transient copy, is fine.
            _ => self.ct.tensor(self.file, name, &Device::Cpu).map_err(err),
        }
    }

    fn dense(&mut self, name: &str) -> Result<Tensor, LoadError> {
        Ok(self.qtensor(name)?.dequantize(&Device::Cpu)?.to_dtype(DType::F32)?)
    }

    fn linear(&mut self, name: &str) -> Result<Linear, LoadError> {
        Ok(Linear::Quantized { weight: QMatMul::from_qtensor(self.qtensor(name)?)?, bias: None })
    }
}

/// Reads a tensor's blocks from the file straight into the vector that becomes its storage.
/// candle's own reader reads into a byte buffer and then copies it into the typed vector, so for
/// the 178 MB embedding table the load would briefly hold it twice — which was the process's peak.
fn read_blocks<T: GgmlType + 'static>(
    file: &mut File,
    start: u64,
    dims: Vec<usize>,
) -> candle_core::Result<QTensor> {
    let elems: usize = dims.iter().product();
    if !elems.is_multiple_of(T::BLCK_SIZE) {
        candle_core::bail!("{elems} values are not whole {:?} blocks", T::DTYPE)
    }
    let mut blocks = vec![T::zeros(); elems / T::BLCK_SIZE];
    // SAFETY: ggml blocks are `repr(C)` structs of integers and f16s with no padding (candle
    // asserts their sizes against ggml's), so every byte pattern is a valid value and the file's
    // bytes are exactly their in-memory layout (little-endian, as GGUF is).
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(&blocks[..]))
    };
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(bytes)?;
    QTensor::new(QStorage::Cpu(Box::new(blocks)), dims)
}

/// Q5_0 weights, re-encoded losslessly as Q8_0. A Q5_0 block is 32 five-bit integers in -16..=15
/// with one f16 scale; Q8_0 is 32 eight-bit integers with one f16 scale, so each value keeps its
/// integer and the block its scale. Both multiply against the same Q8_0-quantized activations, so
/// the products are the same integers — but candle has SIMD kernels for Q8_0 and only a scalar
/// loop for Q5_0, which made Gemma's q/k/gate/up projections most of the run time. The price is
/// 34 bytes per block instead of 22 on those tensors (about +23 MB for Gemma 3 270M).
fn q5_0_as_q8_0(file: &mut File, start: u64, dims: Vec<usize>) -> candle_core::Result<QTensor> {
    let elems: usize = dims.iter().product();
    if !elems.is_multiple_of(Q5_0_VALUES) {
        candle_core::bail!("{elems} values are not whole Q5_0 blocks")
    }
    let mut raw = vec![0u8; elems / Q5_0_VALUES * Q5_0_BYTES];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut raw)?;
    q5_0_bytes_as_q8_0(&raw, dims)
}

fn q5_0_bytes_as_q8_0(raw: &[u8], dims: Vec<usize>) -> candle_core::Result<QTensor> {
    let elems: usize = dims.iter().product();
    if raw.len() != elems / Q5_0_VALUES * Q5_0_BYTES {
        candle_core::bail!("{} bytes are not {elems} Q5_0 values", raw.len())
    }
    let mut out = vec![k::BlockQ8_0::zeros(); elems / Q5_0_VALUES];
    // SAFETY: as in `read_blocks`: a `repr(C)` block of an f16 and 32 i8s, no padding.
    let out_bytes = unsafe {
        std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(&out[..]))
    };
    for (src, dst) in raw.chunks_exact(Q5_0_BYTES).zip(out_bytes.chunks_exact_mut(Q8_0_BYTES)) {
        q5_0_block_as_q8_0(src.try_into().unwrap(), dst.try_into().unwrap());
    }
    QTensor::new(QStorage::Cpu(Box::new(out)), dims)
}

const Q5_0_VALUES: usize = 32;
const Q5_0_BYTES: usize = 22;
const Q8_0_BYTES: usize = 34;

/// One block: Q5_0 is `d: f16, qh: u32 (the fifth bits), qs: [u8; 16] (low nibbles: values 0..16,
/// high nibbles: values 16..32)`; Q8_0 is `d: f16, qs: [i8; 32]`.
fn q5_0_block_as_q8_0(src: &[u8; Q5_0_BYTES], dst: &mut [u8; Q8_0_BYTES]) {
    dst[..2].copy_from_slice(&src[..2]);
    let qh = u32::from_le_bytes(src[2..6].try_into().unwrap());
    let qs = &src[6..];
    for j in 0..16 {
        let hi0 = ((qh >> j) & 1) as u8;
        let hi1 = ((qh >> (j + 16)) & 1) as u8;
        let x0 = ((qs[j] & 0x0f) | (hi0 << 4)) as i8 - 16;
        let x1 = ((qs[j] >> 4) | (hi1 << 4)) as i8 - 16;
        dst[2 + j] = x0 as u8;
        dst[2 + 16 + j] = x1 as u8;
    }
}

/// Where a GGUF model's tokenizer files are: the given directory, else the GGUF's own directory.
pub fn tokenizer_dir(gguf: &Path, explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| gguf.parent().map(Path::to_path_buf).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Module;

    /// The re-encoding is exact: same dequantized values, and (up to float summation order) the
    /// same matmul as candle's own Q5_0 kernel.
    #[test]
    fn q5_0_reencodes_exactly_as_q8_0() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (48, 256), &dev).unwrap();
        let q5 = QTensor::quantize(&w, GgmlDType::Q5_0).unwrap();
        let q8 = q5_0_bytes_as_q8_0(&q5.data().unwrap(), vec![48, 256]).unwrap();
        assert_eq!(q8.dtype(), GgmlDType::Q8_0);
        let (a, b) = (q5.dequantize(&dev).unwrap(), q8.dequantize(&dev).unwrap());
        assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());

        let x = Tensor::randn(0f32, 1.0, (5, 256), &dev).unwrap();
        let y5 = QMatMul::from_qtensor(q5).unwrap().forward(&x).unwrap();
        let y8 = QMatMul::from_qtensor(q8).unwrap().forward(&x).unwrap();
        let diff = (y5 - y8).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-3, "{diff}");
    }
}
