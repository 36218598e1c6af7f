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
/// integer and the block its scale. Candle has SIMD kernels for Q8_0 and only a scalar loop for
/// Q5_0, which made Gemma's q/k/gate/up projections most of the run time. The price is 34 bytes
/// per block instead of 22 on those tensors (about +23 MB for Gemma 3 270M). The weights are
/// exact, but the activations are not always quantized alike: Q5_0 always pairs with Q8_0
/// activations (a scale per 32 values), Q8_0 too except on x86 with AVX512-VNNI or AVX-VNNI, where
/// candle's repacked kernels take Q8K ones (a scale per 256 values) when the rows are a multiple of
/// 16 and the columns of 256 (see the tests).
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

    // What the matmul checks below rest on. `QMatMul::forward` quantizes the activations to 8-bit
    // blocks before the integer dot products, and which blocks depends on the dtype *and on the
    // machine*: candle's Q5_0 kernel always takes Q8_0 activations (a scale per 32 values), and so
    // does Q8_0 on AVX2-only x86 and on aarch64; but on x86 with AVX512-VNNI or AVX-VNNI (runtime
    // detection in candle-core's `repack_x86::level`), Q8_0 weights with n % 16 == 0 and
    // k % 256 == 0 go through repacked VNNI tiles that take Q8K activations (one scale per 256
    // values). Measured with N(0, 1) inputs on an AVX512-VNNI machine: y5 is within 1e-5 of the
    // exact product of the Q8_0-quantized activations and y8 of the Q8K-quantized ones, each
    // 0.2..0.5 from the f32 reference, so y5 and y8 differ by 0.3..0.4 although our weights are
    // exact. So the tests compare both against the f32 reference `x · dequantized(w)ᵀ` instead,
    // exactly where the activations quantize losslessly, and within the rounding bound elsewhere.

    const N: usize = 48; // a multiple of 16 and
    const K: usize = 256; // of 256: the shape the VNNI tiles take, so those machines test them
    const M: usize = 5; // more than one 4-row tile and a tail row (aarch64 splits them)

    /// SplitMix64 with a fixed seed: every run and machine sees the same numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u32 << 24) as f32
        }

        /// Standard normal (Box-Muller).
        fn normal(&mut self) -> f32 {
            let (u, v) = (1.0 - self.unit(), self.unit());
            (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        }

        fn normals(&mut self, shape: (usize, usize)) -> Tensor {
            let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| self.normal()).collect();
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
        }
    }

    /// Q5_0 weights, our Q8_0 re-encoding of them, and their dequantized values.
    fn weights(rng: &mut Rng) -> (QTensor, QTensor, Tensor) {
        let q5 = QTensor::quantize(&rng.normals((N, K)), GgmlDType::Q5_0).unwrap();
        let q8 = q5_0_bytes_as_q8_0(&q5.data().unwrap(), vec![N, K]).unwrap();
        let w = q5.dequantize(&Device::Cpu).unwrap();
        (q5, q8, w)
    }

    fn matmuls(q5: QTensor, q8: QTensor, x: &Tensor) -> (Tensor, Tensor) {
        let y5 = QMatMul::from_qtensor(q5).unwrap().forward(x).unwrap();
        let y8 = QMatMul::from_qtensor(q8).unwrap().forward(x).unwrap();
        (y5, y8)
    }

    /// Float rounding alone, per output: a sum of K products in f32, in any order, is within
    /// K·ε·Σ|x||w| of the exact sum (Higham's γ_K); twice that covers the kernel's own sum too.
    fn rounding_bound(x: &Tensor, w: &Tensor) -> Tensor {
        let abs = x.abs().unwrap().matmul(&w.abs().unwrap().t().unwrap()).unwrap();
        (abs * (2.0 * K as f64 * f32::EPSILON as f64)).unwrap()
    }

    /// Asserts |y - reference| ≤ bound elementwise.
    fn assert_within(what: &str, y: &Tensor, reference: &Tensor, bound: &Tensor) {
        let err = (y - reference).unwrap().abs().unwrap();
        let excess = (&err - bound).unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let worst = err.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(excess <= 0.0, "{what}: off by up to {worst}, {excess} past the bound");
    }

    /// The re-encoding is exact: the same dequantized values, and on activations that every 8-bit
    /// block format holds exactly, the same matmul as candle's own Q5_0 kernel and as the f32
    /// reference, up to float summation order.
    #[test]
    fn q5_0_reencodes_exactly_as_q8_0() {
        let mut rng = Rng(0x4845_4152_5448); // "HEARTH"
        let (q5, q8, w) = weights(&mut rng);
        assert_eq!(q8.dtype(), GgmlDType::Q8_0);
        let b = q8.dequantize(&Device::Cpu).unwrap();
        assert_eq!(w.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());

        // x = q / 128 with integers q in -127..=127 and ±127 in every 32-value block: the scale of
        // a Q8_0 block (amax/127, as f16) and of a Q8K block (max/-127, as f32) is then ±1/128
        // exactly, so either quantization gives back x bit for bit.
        let q: Vec<f32> = (0..M * K)
            .map(|i| match i % 32 {
                0 => 127.0,
                16 => -127.0,
                _ => (rng.next() % 255) as f32 - 127.0,
            })
            .collect();
        let x = (Tensor::from_vec(q, (M, K), &Device::Cpu).unwrap() / 128.0).unwrap();
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q8K] {
            let back = QTensor::quantize(&x, dtype).unwrap().dequantize(&Device::Cpu).unwrap();
            assert_eq!(back.to_vec2::<f32>().unwrap(), x.to_vec2::<f32>().unwrap(), "{dtype:?}");
        }

        let reference = x.matmul(&w.t().unwrap()).unwrap();
        let bound = rounding_bound(&x, &w);
        let (y5, y8) = matmuls(q5, q8, &x);
        assert_within("re-encoded Q8_0", &y8, &reference, &bound);
        assert_within("candle's Q5_0", &y5, &reference, &bound);
        let diff = (y5 - y8).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-3, "{diff}");
    }

    /// On ordinary activations the re-encoded matmul is the f32 reference up to the rounding of the
    /// activations, whichever 8-bit blocks candle quantizes them to on this machine.
    #[test]
    fn q5_0_as_q8_0_matmul_is_within_activation_rounding() {
        let mut rng = Rng(0x5135_5f30); // "Q5_0"
        let (q5, q8, w) = weights(&mut rng);
        let x = rng.normals((M, K));

        // Each activation becomes s·round(x/s) with a block scale s = amax_block/127 ≤ amax_row/127
        // (stored as f16 in Q8_0: relative error ≤ 2^-11, times |q| ≤ 127), so it moves by at most
        // (0.5 + 127·2^-11)·amax_row/127 < 0.6·amax_row/127, and output (i, j) by at most that
        // times Σ_k |w_jk|; plus float rounding. (Measured: up to 0.15 of it. The loose bound
        // only catches gross errors; the exact test above is the strict one.)
        let amax = x.abs().unwrap().max_keepdim(1).unwrap();
        let w_l1 = w.abs().unwrap().sum(1).unwrap().reshape((1, N)).unwrap();
        let activation = (amax.broadcast_mul(&w_l1).unwrap() * (0.6 / 127.0)).unwrap();
        let bound = (activation + rounding_bound(&x, &w)).unwrap();

        let reference = x.matmul(&w.t().unwrap()).unwrap();
        let (y5, y8) = matmuls(q5, q8, &x);
        assert_within("re-encoded Q8_0", &y8, &reference, &bound);
        assert_within("candle's Q5_0", &y5, &reference, &bound);
    }
}
