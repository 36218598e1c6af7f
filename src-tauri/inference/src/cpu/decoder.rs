//! A decoder-only transformer in candle ops, covering the Llama, Qwen 2 and Gemma 3 families.
//!
//! The families differ in a handful of switches — q/k/v biases (Qwen 2), q/k norms, sandwich norms,
//! GELU, embedding scaling and sliding-window layers (Gemma 3), rope flavour — so one implementation
//! with a [`DecoderSpec`] serves all of them, whether its weights came dense from an MLX checkpoint
//! or block-quantized from a GGUF file (see [`Linear`]). Each job owns a [`DecoderSession`] with its
//! own KV cache; the weights are shared read-only.

use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::generate::{ForwardModel, ModelRunner};
use crate::job::EngineError;
use crate::model_dir::{inv_freqs, RopeConfig, RopeScaling};

/// The token embedding table: dense f32, or kept in its GGUF blocks and dequantized only for the
/// rows a forward pass looks up. The second matters: Gemma 3's 262k-row table is ~670 MB as f32 but
/// a few hundred MB quantized, and it is already resident once as the tied output head.
#[derive(Debug, Clone)]
pub enum Embedding {
    Dense(Tensor),
    Quantized(Arc<QuantizedRows>),
}

/// A block-quantized `[rows, hidden]` matrix whose rows can be dequantized one by one (each row is
/// a whole number of blocks). It shares its blocks with the tied output head, if there is one.
#[derive(Debug)]
pub struct QuantizedRows {
    q: Arc<QTensor>,
    row_bytes: usize,
    rows: usize,
    hidden: usize,
}

impl QuantizedRows {
    pub fn new(q: Arc<QTensor>) -> candle_core::Result<Self> {
        let (rows, hidden) = q.shape().dims2()?;
        let dtype = q.dtype();
        if hidden % dtype.block_size() != 0 {
            candle_core::bail!("rows of {hidden} values are not whole {dtype:?} blocks")
        }
        let row_bytes = hidden / dtype.block_size() * dtype.type_size();
        if q.data()?.len() != rows * row_bytes {
            candle_core::bail!("{dtype:?} data does not hold {rows} rows of {row_bytes} bytes")
        }
        Ok(Self { q, row_bytes, rows, hidden })
    }

    fn lookup(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let bytes = self.q.data()?;
        let mut raw = Vec::with_capacity(ids.len() * self.row_bytes);
        for &id in ids {
            let id = id as usize;
            if id >= self.rows {
                candle_core::bail!("token id {id} is outside the embedding table ({} rows)", self.rows)
            }
            raw.extend_from_slice(&bytes[id * self.row_bytes..(id + 1) * self.row_bytes]);
        }
        qtensor_from_ggml(self.q.dtype(), &raw, vec![ids.len(), self.hidden], &Device::Cpu)?
            .dequantize(&Device::Cpu)?
            .to_dtype(DType::F32)
    }
}

impl Embedding {
    /// `[t, hidden]` f32 rows for `tokens`.
    fn lookup(&self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        match self {
            Embedding::Dense(table) => {
                table.index_select(&Tensor::from_slice(tokens, tokens.len(), &Device::Cpu)?, 0)
            }
            Embedding::Quantized(rows) => rows.lookup(tokens),
        }
    }
}

/// A linear layer `y = x Wᵀ + b`, dense f32 or GGUF block-quantized.
#[derive(Debug, Clone)]
pub enum Linear {
    Dense { weight: Tensor, bias: Option<Tensor> },
    Quantized { weight: QMatMul, bias: Option<Tensor> },
}

impl Linear {
    pub fn dense(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear::Dense { weight, bias }
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (y, bias) = match self {
            Linear::Dense { weight, bias } => (x.broadcast_matmul(&weight.t()?)?, bias),
            Linear::Quantized { weight, bias } => (weight.forward(x)?, bias),
        };
        match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation (Gemma).
    GeluTanh,
}

/// The architectural switches.
#[derive(Debug, Clone)]
pub struct DecoderSpec {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope: RopeConfig,
    pub rope_local: Option<RopeConfig>,
    pub sliding_window: Option<usize>,
    pub activation: Activation,
    /// Multiplier on token embeddings (Gemma: √hidden).
    pub embed_scale: Option<f64>,
    /// Attention logits scale (usually 1/√head_dim).
    pub attn_scale: f64,
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// Per-head RMS norm of queries and keys (Gemma 3), as final multipliers.
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    pub attn_in_norm: Tensor,
    /// Norm of the attention output before the residual add (Gemma's sandwich norm).
    pub attn_out_norm: Option<Tensor>,
    pub mlp_in_norm: Tensor,
    pub mlp_out_norm: Option<Tensor>,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    pub sliding: bool,
}

#[derive(Debug, Clone)]
pub struct Decoder {
    pub spec: DecoderSpec,
    pub embed: Embedding,
    pub layers: Vec<Layer>,
    pub final_norm: Tensor,
    pub lm_head: Linear,
    /// Inverse frequencies for global and sliding layers.
    inv_freq: Vec<f32>,
    inv_freq_local: Vec<f32>,
}

impl Decoder {
    pub fn new(
        spec: DecoderSpec,
        embed: Embedding,
        layers: Vec<Layer>,
        final_norm: Tensor,
        lm_head: Linear,
    ) -> Self {
        let inv_freq = inv_freqs(&spec.rope, spec.head_dim);
        let inv_freq_local =
            spec.rope_local.as_ref().map(|r| inv_freqs(r, spec.head_dim)).unwrap_or(inv_freq.clone());
        Self { spec, embed, layers, final_norm, lm_head, inv_freq, inv_freq_local }
    }

    fn norm(&self, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, w, self.spec.rms_norm_eps as f32)
    }

    /// cos/sin tables `[t, head_dim/2]` for positions `pos..pos+t`.
    fn rope_tables(
        &self,
        inv: &[f32],
        pos: usize,
        t: usize,
        scale: f32,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let half = inv.len();
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in pos..pos + t {
            for f in inv {
                let a = p as f32 * scale * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok((Tensor::from_vec(cos, (t, half), &Device::Cpu)?, Tensor::from_vec(sin, (t, half), &Device::Cpu)?))
    }

    fn forward_inner(
        &self,
        cache: &mut [Option<(Tensor, Tensor)>],
        tokens: &[u32],
        pos: usize,
    ) -> candle_core::Result<Vec<f32>> {
        let s = &self.spec;
        let t = tokens.len();
        let mut x = self.embed.lookup(tokens)?.unsqueeze(0)?; // [1, t, h]
        if let Some(scale) = s.embed_scale {
            x = (x * scale)?;
        }
        let rope_scale = |r: &RopeConfig| match r.scaling {
            RopeScaling::Linear { factor } => (1.0 / factor) as f32,
            _ => 1.0,
        };
        let global = self.rope_tables(&self.inv_freq, pos, t, rope_scale(&s.rope))?;
        let local = match &s.rope_local {
            Some(r) => Some(self.rope_tables(&self.inv_freq_local, pos, t, rope_scale(r))?),
            None => None,
        };
        let kv_len = pos + t;
        let full_mask = causal_mask(t, pos, None)?;
        let sliding_mask = match s.sliding_window {
            Some(w) if kv_len > w || t > 1 => causal_mask(t, pos, Some(w))?,
            _ => full_mask.clone(),
        };
        for (layer, slot) in self.layers.iter().zip(cache.iter_mut()) {
            let (cos, sin) = if layer.sliding { local.as_ref().unwrap_or(&global) } else { &global };
            let mask = if layer.sliding { &sliding_mask } else { &full_mask };
            let h = self.norm(&x, &layer.attn_in_norm)?;
            let mut a = self.attention(layer, &h, cos, sin, mask.as_ref(), slot)?;
            if let Some(n) = &layer.attn_out_norm {
                a = self.norm(&a, n)?;
            }
            x = (x + a)?;
            let h = self.norm(&x, &layer.mlp_in_norm)?;
            let gate = layer.gate.forward(&h)?;
            let gate = match s.activation {
                Activation::Silu => candle_nn::ops::silu(&gate)?,
                Activation::GeluTanh => gate.gelu()?,
            };
            let mut m = layer.down.forward(&(gate * layer.up.forward(&h)?)?)?;
            if let Some(n) = &layer.mlp_out_norm {
                m = self.norm(&m, n)?;
            }
            x = (x + m)?;
        }
        let last = x.narrow(1, t - 1, 1)?;
        let last = self.norm(&last, &self.final_norm)?;
        let logits = self.lm_head.forward(&last)?;
        logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> candle_core::Result<Tensor> {
        let s = &self.spec;
        let (b, t, _) = x.dims3()?;
        let heads = |y: Tensor, n: usize| -> candle_core::Result<Tensor> {
            y.reshape((b, t, n, s.head_dim))?.transpose(1, 2)?.contiguous()
        };
        let mut q = heads(layer.q.forward(x)?, s.num_heads)?;
        let mut k = heads(layer.k.forward(x)?, s.num_kv_heads)?;
        let v = heads(layer.v.forward(x)?, s.num_kv_heads)?;
        if let Some(n) = &layer.q_norm {
            q = self.norm(&q, n)?;
        }
        if let Some(n) = &layer.k_norm {
            k = self.norm(&k, n)?;
        }
        let rope = |y: &Tensor| {
            if s.rope.traditional {
                candle_nn::rotary_emb::rope_i(y, cos, sin)
            } else {
                candle_nn::rotary_emb::rope(y, cos, sin)
            }
        };
        let q = rope(&q)?;
        let k = rope(&k)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        let rep = s.num_heads / s.num_kv_heads;
        let (k, v) = if rep > 1 { (repeat_kv(&k, rep)?, repeat_kv(&v, rep)?) } else { (k, v) };
        let mut scores = (q.matmul(&k.t()?.contiguous()?)? * s.attn_scale)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v.contiguous()?)?; // [b, heads, t, hd]
        let out = out.transpose(1, 2)?.reshape((b, t, s.num_heads * s.head_dim))?;
        layer.o.forward(&out)
    }
}

/// `[b, kv, n, d]` → `[b, kv * rep, n, d]`, each kv head repeated for its query heads.
fn repeat_kv(x: &Tensor, rep: usize) -> candle_core::Result<Tensor> {
    let (b, kv, n, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, rep, n, d))?.reshape((b, kv * rep, n, d))
}

/// Additive mask `[t, pos + t]`: 0 where query `pos + i` may see key `j`, -inf elsewhere. `None`
/// when nothing is masked (a single query over a full-attention cache).
fn causal_mask(t: usize, pos: usize, window: Option<usize>) -> candle_core::Result<Option<Tensor>> {
    let kv = pos + t;
    if t == 1 && window.is_none_or(|w| kv <= w) {
        return Ok(None);
    }
    let mut m = vec![0f32; t * kv];
    for i in 0..t {
        let qp = pos + i;
        for j in 0..kv {
            let hidden = j > qp || window.is_some_and(|w| qp - j >= w);
            if hidden {
                m[i * kv + j] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Some(Tensor::from_vec(m, (t, kv), &Device::Cpu)?))
}

/// One job's KV cache over shared weights.
pub struct DecoderSession<'a> {
    model: &'a Decoder,
    cache: Vec<Option<(Tensor, Tensor)>>,
}

impl ForwardModel for DecoderSession<'_> {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        if tokens.is_empty() {
            return Err(EngineError::Internal("forward called with no tokens".into()));
        }
        let cached =
            self.cache.first().and_then(|c| c.as_ref()).map(|(k, _)| k.dim(2).unwrap_or(0)).unwrap_or(0);
        if cached != pos {
            return Err(EngineError::Internal(format!(
                "forward at position {pos} but the cache holds {cached} tokens"
            )));
        }
        self.model
            .forward_inner(&mut self.cache, tokens, pos)
            .map_err(|e| EngineError::Internal(format!("forward pass failed: {e}")))
    }
}

impl ModelRunner for Decoder {
    fn session(&self) -> Result<Box<dyn ForwardModel + '_>, EngineError> {
        Ok(Box::new(DecoderSession { model: self, cache: vec![None; self.layers.len()] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_shapes() {
        assert!(causal_mask(1, 5, None).unwrap().is_none());
        let m = causal_mask(2, 1, None).unwrap().unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m[0], vec![0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0, 0.0, 0.0]);
        // Window 2: query at position 3 sees keys 2 and 3 only.
        let m = causal_mask(1, 3, Some(2)).unwrap().unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m[0], vec![f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0, 0.0]);
    }
}
