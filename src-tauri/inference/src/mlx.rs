//! The `mlx` backend (macOS, Apple Silicon): the production path. A thin
//! [`ForwardModel`](crate::generate::ForwardModel) over `mlx-rs` — MLX's quantized matmul on the
//! checkpoint's packed weights, and its fast RMSNorm, RoPE and attention kernels — for the same
//! model directories and families as the cpu decoder (Llama, Qwen 2/3, Gemma 3). Tokenizing,
//! templates, sampling, stop sequences and usage come from the shared core unchanged.
//!
//! Weights are read once from the safetensors as MLX arrays and kept in MLX's own affine format
//! (`weight` packed `u32`, per-group `scales`/`biases`): nothing is dequantized except the embedding
//! rows a forward pass looks up. MLX arrays may move between threads but not be shared, so the
//! weights sit behind a mutex that each forward pass holds; every job owns its KV cache.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};

use mlx_rs::error::Exception;
use mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use mlx_rs::{ops, transforms, Array, Dtype};

use crate::error::LoadError;
use crate::generate::{ForwardModel, GenerateOptions, LocalEngine, ModelRunner, DEFAULT_PREFILL_CHUNK};
use crate::job::{Engine, EngineError, ModelDescriptor};
use crate::model_dir::{inv_freqs, CheckpointLayout, ModelDir, RopeConfig, RopeScaling};
use crate::spec::LoadSpec;
use crate::text::TextCodec;

type MlxResult<T> = Result<T, Exception>;

/// The MLX engine, concretely typed (tests reach its runner).
pub type MlxEngine = LocalEngine<MlxModel>;

/// Loads a model directory on the MLX backend, as an [`Engine`].
pub fn load(spec: &LoadSpec) -> Result<Arc<dyn Engine>, LoadError> {
    Ok(load_mlx(spec)?)
}

/// Loads a model directory on the MLX backend.
pub fn load_mlx(spec: &LoadSpec) -> Result<Arc<MlxEngine>, LoadError> {
    let dir = ModelDir::open(&spec.model_path)?;
    dir.check_supported("mlx")?;
    let codec = TextCodec::from_model_dir(&dir)?;
    let model = MlxModel::load(&dir)?;
    let model_max = dir.config.max_position_embeddings;
    let max_context = spec.max_context.unwrap_or(model_max).min(model_max);
    let size = dir.weights_size();
    let descriptor = ModelDescriptor {
        model_id: spec.model_id.clone().unwrap_or_else(|| dir.name()),
        params_b: dir.config.params_estimate() as f64 / 1e9,
        max_context_tokens: max_context as u64,
        engine: "mlx".into(),
        // Decode is memory-bound: ~100 GB/s of effective bandwidth over the weights' bytes.
        throughput_tps_estimate: (100e9 / size.max(1) as f64).clamp(0.1, 1000.0),
    };
    let options = GenerateOptions { prefill_chunk: DEFAULT_PREFILL_CHUNK, max_context };
    Ok(Arc::new(LocalEngine::new(descriptor, codec, model, options)))
}

/// A linear layer `y = x Wᵀ + b`: MLX affine-quantized, or dense when the checkpoint left it so.
struct Linear {
    /// `[out, in * bits / 32]` packed `u32` when quantized, else `[out, in]`.
    weight: Array,
    quant: Option<Quant>,
    bias: Option<Array>,
}

struct Quant {
    scales: Array,
    biases: Array,
    group_size: i32,
    bits: i32,
}

impl Linear {
    fn forward(&self, x: &Array) -> MlxResult<Array> {
        let y = match &self.quant {
            Some(q) => {
                ops::quantized_matmul(x, &self.weight, &q.scales, &q.biases, true, q.group_size, q.bits)?
            }
            None => x.matmul(self.weight.transpose()?)?,
        };
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    /// Rows `ids` of the matrix: the embedding lookup (only these rows are dequantized).
    fn rows(&self, ids: &Array) -> MlxResult<Array> {
        let w = self.weight.take_axis(ids, 0)?;
        match &self.quant {
            Some(q) => {
                let scales = q.scales.take_axis(ids, 0)?;
                let biases = q.biases.take_axis(ids, 0)?;
                ops::dequantize(&w, &scales, &biases, q.group_size, q.bits)
            }
            None => Ok(w),
        }
    }

    fn arrays(&self) -> Vec<&Array> {
        let mut out = vec![&self.weight];
        if let Some(q) = &self.quant {
            out.push(&q.scales);
            out.push(&q.biases);
        }
        out.extend(self.bias.as_ref());
        out
    }
}

/// Rotary embedding for one kind of layer.
struct Rope {
    dims: i32,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    /// Per-pair periods (MLX's `freqs`, i.e. 1 / inverse frequency) when scaling reshapes them.
    freqs: Option<Array>,
}

impl Rope {
    fn new(r: &RopeConfig, head_dim: usize) -> Self {
        let (base, scale, freqs) = match r.scaling {
            RopeScaling::None => (Some(r.theta as f32), 1.0, None),
            RopeScaling::Linear { factor } => (Some(r.theta as f32), (1.0 / factor) as f32, None),
            RopeScaling::Llama3 { .. } => {
                let periods: Vec<f32> = inv_freqs(r, head_dim).iter().map(|f| 1.0 / f).collect();
                let n = periods.len() as i32;
                (None, 1.0, Some(Array::from_slice(&periods, &[n])))
            }
        };
        Self { dims: head_dim as i32, traditional: r.traditional, base, scale, freqs }
    }

    /// `x`: `[batch, heads, t, head_dim]` at positions `offset..offset + t`.
    fn apply(&self, x: &Array, offset: i32) -> MlxResult<Array> {
        fast::rope(x, self.dims, self.traditional, self.base, self.scale, offset, self.freqs.as_ref())
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// Per-head RMS norm of queries and keys (Gemma 3, Qwen 3).
    q_norm: Option<Array>,
    k_norm: Option<Array>,
    attn_in_norm: Array,
    /// Norm of the attention output before the residual add (Gemma's sandwich norm).
    attn_out_norm: Option<Array>,
    mlp_in_norm: Array,
    mlp_out_norm: Option<Array>,
    gate: Linear,
    up: Linear,
    down: Linear,
    sliding: bool,
}

/// Everything that holds MLX arrays; used only under [`MlxModel`]'s lock.
struct Weights {
    embed: Linear,
    layers: Vec<Layer>,
    final_norm: Array,
    /// `None`: tied to the embedding.
    lm_head: Option<Linear>,
    rope: Rope,
    rope_local: Option<Rope>,
}

/// The architectural switches (the cpu decoder's `DecoderSpec`, in MLX's types).
struct Spec {
    num_heads: i32,
    num_kv_heads: i32,
    head_dim: i32,
    rms_norm_eps: f32,
    sliding_window: Option<usize>,
    gelu: bool,
    /// Multiplier on token embeddings (Gemma: √hidden).
    embed_scale: Option<f32>,
    attn_scale: f32,
}

/// Loaded weights; each job gets an [`MlxSession`] with its own KV cache.
pub struct MlxModel {
    spec: Spec,
    num_layers: usize,
    weights: Mutex<Weights>,
}

fn weights_err(e: impl Display) -> LoadError {
    LoadError::Weights(e.to_string())
}

/// The checkpoint's tensors by name.
struct Tensors<'a> {
    map: HashMap<String, Array>,
    dir: &'a ModelDir,
}

impl<'a> Tensors<'a> {
    fn open(dir: &'a ModelDir) -> Result<Self, LoadError> {
        let mut map = HashMap::new();
        for f in &dir.weight_files {
            let part = Array::load_safetensors(f)
                .map_err(|e| LoadError::Weights(format!("reading {}: {e}", f.display())))?;
            map.extend(part);
        }
        Ok(Self { map, dir })
    }

    fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    fn get(&self, name: &str) -> Result<Array, LoadError> {
        self.map.get(name).cloned().ok_or_else(|| LoadError::MissingFile {
            path: format!("{}#{name}", self.dir.path.display()).into(),
            hint:
                "the weights lack this tensor; the checkpoint does not match its config.json's architecture"
                    .into(),
        })
    }

    fn get_opt(&self, name: &str) -> Option<Array> {
        self.map.get(name).cloned()
    }

    /// `module.weight` with its quantization (`module.scales`/`.biases`) and optional `module.bias`.
    fn linear(&self, module: &str) -> Result<Linear, LoadError> {
        let weight = self.get(&format!("{module}.weight"))?;
        let bias = self.get_opt(&format!("{module}.bias"));
        let scales_name = format!("{module}.scales");
        if !self.has(&scales_name) {
            return Ok(Linear { weight, quant: None, bias });
        }
        let spec =
            self.dir.config.quantization.as_ref().and_then(|q| q.for_module(module)).ok_or_else(|| {
                LoadError::UnsupportedQuantization(format!(
                    "{module} is quantized but config.json has no quantization settings for it"
                ))
            })?;
        let quant = Quant {
            scales: self.get(&scales_name)?,
            biases: self.get(&format!("{module}.biases"))?,
            group_size: spec.group_size as i32,
            bits: spec.bits as i32,
        };
        Ok(Linear { weight, quant: Some(quant), bias })
    }
}

impl MlxModel {
    /// Reads the weights of a (validated) mlx-community model directory into MLX arrays.
    pub fn load(dir: &ModelDir) -> Result<Self, LoadError> {
        let c = &dir.config;
        let w = Tensors::open(dir)?;
        let gemma = c.model_type == "gemma3_text";
        let names = CheckpointLayout::detect(c, |name| w.has(name));
        // Gemma's RMSNorm multiplies by (1 + w); fold the 1 in once here, keeping the dtype.
        let norm = |name: &str| -> Result<Array, LoadError> {
            let t = w.get(name)?;
            if !gemma {
                return Ok(t);
            }
            t.add(Array::from_f32(1.0)).and_then(|s| s.as_dtype(t.dtype())).map_err(weights_err)
        };
        let embed = w.linear(&names.embed())?;
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let n = names.layer(i, |name| w.has(name));
            layers.push(Layer {
                q: w.linear(&n.q)?,
                k: w.linear(&n.k)?,
                v: w.linear(&n.v)?,
                o: w.linear(&n.o)?,
                q_norm: n.q_norm.as_deref().map(norm).transpose()?,
                k_norm: n.k_norm.as_deref().map(norm).transpose()?,
                attn_in_norm: norm(&n.attn_in_norm)?,
                attn_out_norm: n.attn_out_norm.as_deref().map(norm).transpose()?,
                mlp_in_norm: norm(&n.mlp_in_norm)?,
                mlp_out_norm: n.mlp_out_norm.as_deref().map(norm).transpose()?,
                gate: w.linear(&n.gate)?,
                up: w.linear(&n.up)?,
                down: w.linear(&n.down)?,
                sliding: c.sliding_layers.get(i).copied().unwrap_or(false),
            });
        }
        let final_norm = norm(&names.final_norm())?;
        let lm_head = names.lm_head().map(|head| w.linear(head)).transpose()?;
        let weights = Weights {
            embed,
            layers,
            final_norm,
            lm_head,
            rope: Rope::new(&c.rope, c.head_dim),
            rope_local: c.rope_local.as_ref().map(|r| Rope::new(r, c.head_dim)),
        };
        // Read every tensor now, once, rather than lazily on the first request.
        transforms::eval(weights.arrays()).map_err(weights_err)?;
        let spec = Spec {
            num_heads: c.num_heads as i32,
            num_kv_heads: c.num_kv_heads as i32,
            head_dim: c.head_dim as i32,
            rms_norm_eps: c.rms_norm_eps as f32,
            sliding_window: c.sliding_window,
            gelu: gemma,
            embed_scale: gemma.then(|| (c.hidden_size as f64).sqrt() as f32),
            attn_scale: (1.0 / c.query_pre_attn_scalar.unwrap_or(c.head_dim as f64).sqrt()) as f32,
        };
        Ok(Self { spec, num_layers: c.num_layers, weights: Mutex::new(weights) })
    }
}

impl Weights {
    fn arrays(&self) -> Vec<&Array> {
        let mut out = self.embed.arrays();
        for l in &self.layers {
            for lin in [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down] {
                out.extend(lin.arrays());
            }
            out.extend([&l.attn_in_norm, &l.mlp_in_norm]);
            out.extend([&l.q_norm, &l.k_norm, &l.attn_out_norm, &l.mlp_out_norm].into_iter().flatten());
        }
        out.push(&self.final_norm);
        if let Some(h) = &self.lm_head {
            out.extend(h.arrays());
        }
        out.extend(self.rope.freqs.as_ref());
        out.extend(self.rope_local.as_ref().and_then(|r| r.freqs.as_ref()));
        out
    }
}

impl Spec {
    fn norm(&self, x: &Array, w: &Array) -> MlxResult<Array> {
        fast::rms_norm(x, Some(w), self.rms_norm_eps)
    }

    /// Runs `tokens` at `pos..`, appending to `cache`, and returns the last position's logits.
    fn forward(
        &self,
        w: &Weights,
        cache: &mut [Option<(Array, Array)>],
        tokens: &[u32],
        pos: usize,
    ) -> MlxResult<Vec<f32>> {
        let t = tokens.len();
        let ids = Array::from_slice(tokens, &[t as i32]);
        let mut x = w.embed.rows(&ids)?.reshape(&[1, t as i32, -1])?; // [1, t, hidden]
        if let Some(scale) = self.embed_scale {
            // mlx_lm rounds √hidden to bf16 whatever the model's dtype (HF to the weights' dtype,
            // bf16 for Gemma's checkpoints): √640 = 25.30 becomes 25.25, which moves every logit.
            let scale = Array::from_f32(scale).as_dtype(Dtype::Bfloat16)?.as_dtype(x.dtype())?;
            x = x.multiply(scale)?;
        }
        // Full-attention layers use MLX's causal mode (aligned to the last key, so it holds with a
        // cache); sliding-window layers need an explicit mask once the window cuts.
        let sliding_mask = self.sliding_window.and_then(|win| attention_mask(t, pos, Some(win)));
        for (layer, slot) in w.layers.iter().zip(cache.iter_mut()) {
            let rope = if layer.sliding { w.rope_local.as_ref().unwrap_or(&w.rope) } else { &w.rope };
            let mask = match &sliding_mask {
                Some(m) if layer.sliding => Some(ScaledDotProductAttentionMask::Array(m)),
                _ if t > 1 => Some(ScaledDotProductAttentionMask::Causal),
                _ => None,
            };
            let h = self.norm(&x, &layer.attn_in_norm)?;
            let mut a = self.attention(layer, rope, &h, t as i32, pos as i32, mask, slot)?;
            if let Some(n) = &layer.attn_out_norm {
                a = self.norm(&a, n)?;
            }
            x = x.add(&a)?;
            let h = self.norm(&x, &layer.mlp_in_norm)?;
            let gate = layer.gate.forward(&h)?;
            let gate = if self.gelu { gelu_tanh(&gate)? } else { gate.multiply(ops::sigmoid(&gate)?)? };
            let mut m = layer.down.forward(&gate.multiply(layer.up.forward(&h)?)?)?;
            if let Some(n) = &layer.mlp_out_norm {
                m = self.norm(&m, n)?;
            }
            x = x.add(&m)?;
        }
        let last = x.take_axis(Array::from_slice(&[t as i32 - 1], &[1]), 1)?; // [1, 1, hidden]
        let last = self.norm(&last, &w.final_norm)?;
        let logits = match &w.lm_head {
            Some(head) => head.forward(&last)?,
            None => w.embed.forward(&last)?,
        };
        let logits = logits.reshape(&[-1])?.as_dtype(Dtype::Float32)?;
        // Evaluate the logits and the grown cache together, so the cache holds data, not graphs.
        let mut outputs = vec![&logits];
        for (k, v) in cache.iter().flatten() {
            outputs.push(k);
            outputs.push(v);
        }
        transforms::eval(outputs)?;
        logits.to_vec_cast::<f32>().map_err(|e| Exception::custom(e.to_string()))
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        layer: &Layer,
        rope: &Rope,
        x: &Array,
        t: i32,
        pos: i32,
        mask: Option<ScaledDotProductAttentionMask<'_>>,
        cache: &mut Option<(Array, Array)>,
    ) -> MlxResult<Array> {
        let hd = self.head_dim;
        // [1, t, n * hd] → [1, n, t, hd]
        let heads = |y: Array, n: i32| -> MlxResult<Array> { y.reshape(&[1, t, n, hd])?.swap_axes(1, 2) };
        let mut q = heads(layer.q.forward(x)?, self.num_heads)?;
        let mut k = heads(layer.k.forward(x)?, self.num_kv_heads)?;
        let v = heads(layer.v.forward(x)?, self.num_kv_heads)?;
        if let Some(n) = &layer.q_norm {
            q = self.norm(&q, n)?;
        }
        if let Some(n) = &layer.k_norm {
            k = self.norm(&k, n)?;
        }
        let q = rope.apply(&q, pos)?;
        let k = rope.apply(&k, pos)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (ops::concatenate(&[&pk, &k], 2)?, ops::concatenate(&[&pv, &v], 2)?),
            None => (k, v),
        };
        // Grouped-query attention: MLX's kernel takes the kv heads untiled.
        let out = fast::scaled_dot_product_attention(&q, &k, &v, self.attn_scale, mask, None::<&Array>)?;
        *cache = Some((k, v));
        let out = out.swap_axes(1, 2)?.reshape(&[1, t, self.num_heads * hd])?;
        layer.o.forward(&out)
    }
}

/// GELU, tanh approximation (Gemma): mlx_lm's `nn.gelu_approx`, op for op in the model's dtype.
/// Computing it in f32 instead moves a bf16 model's logits by ~0.1, and so does `x·x·x` for `x³`:
/// each bf16 op rounds. Plain ops rather than `mlx_rs::nn`'s compiled activations: a compiled graph
/// keeps the stream it was traced on, and MLX streams are per thread, while jobs run on whichever
/// inference thread calls them.
fn gelu_tanh(x: &Array) -> MlxResult<Array> {
    // Python scalars are weak in MLX: they take the array's dtype.
    let k = |v: f32| Array::from_f32(v).as_dtype(x.dtype());
    let inner = x.add(k(0.044715)?.multiply(x.power(k(3.0)?)?)?)?;
    let t = ops::tanh(k((2.0 / std::f32::consts::PI).sqrt())?.multiply(&inner)?)?;
    k(0.5)?.multiply(x)?.multiply(k(1.0)?.add(&t)?)
}

/// Boolean mask `[t, pos + t]` (true = attend): query `pos + i` sees key `j <= pos + i`, and with a
/// window only the last `window` of those. `None` when nothing is masked (a single query over a
/// cache the window does not cut).
fn attention_mask(t: usize, pos: usize, window: Option<usize>) -> Option<Array> {
    let kv = pos + t;
    if t == 1 && window.is_none_or(|w| kv <= w) {
        return None;
    }
    let mut m = vec![true; t * kv];
    for i in 0..t {
        let qp = pos + i;
        for j in 0..kv {
            if j > qp || window.is_some_and(|w| qp - j >= w) {
                m[i * kv + j] = false;
            }
        }
    }
    Some(Array::from_slice(&m, &[t as i32, kv as i32]))
}

/// One job's KV cache over the shared weights.
pub struct MlxSession<'a> {
    model: &'a MlxModel,
    /// Per layer: keys and values `[1, kv_heads, cached, head_dim]`.
    cache: Vec<Option<(Array, Array)>>,
    cached: usize,
}

impl ForwardModel for MlxSession<'_> {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        if tokens.is_empty() {
            return Err(EngineError::Internal("forward called with no tokens".into()));
        }
        if self.cached != pos {
            return Err(EngineError::Internal(format!(
                "forward at position {pos} but the cache holds {} tokens",
                self.cached
            )));
        }
        let weights = self
            .model
            .weights
            .lock()
            .map_err(|_| EngineError::Internal("MLX weights lock poisoned".into()))?;
        let logits = self
            .model
            .spec
            .forward(&weights, &mut self.cache, tokens, pos)
            .map_err(|e| EngineError::Internal(format!("MLX forward pass failed: {e}")))?;
        self.cached = pos + tokens.len();
        Ok(logits)
    }
}

impl ModelRunner for MlxModel {
    fn session(&self) -> Result<Box<dyn ForwardModel + '_>, EngineError> {
        Ok(Box::new(MlxSession {
            model: self,
            cache: (0..self.num_layers).map(|_| None).collect(),
            cached: 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert!(attention_mask(1, 5, None).is_none());
        let m = attention_mask(2, 1, None).unwrap();
        assert_eq!(m.as_slice::<bool>(), &[true, true, false, true, true, true]);
        // Window 2: query at position 3 sees keys 2 and 3 only.
        let m = attention_mask(1, 3, Some(2)).unwrap();
        assert_eq!(m.as_slice::<bool>(), &[false, false, true, true]);
    }
}
