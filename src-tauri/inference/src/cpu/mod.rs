//! The `cpu` backend: candle tensor math on any OS, for mlx-community model directories (GGUF
//! files run on llama.cpp, the `gguf` backend). Everything else (templates, sampling, stop
//! sequences) comes from the shared core.

pub mod decoder;
pub mod mlx_weights;

use std::sync::Arc;

use candle_core::Tensor;

use crate::error::LoadError;
use crate::generate::{GenerateOptions, LocalEngine, DEFAULT_PREFILL_CHUNK};
use crate::job::ModelDescriptor;
use crate::model_dir::{CheckpointLayout, ModelDir};
use crate::spec::LoadSpec;
use crate::text::TextCodec;
use decoder::{Activation, Decoder, DecoderSpec, Embedding, Layer, Linear};
use mlx_weights::MlxWeights;

/// Builds the decoder for a (validated) mlx-community model directory, dequantizing to f32.
pub fn load_mlx_dir(dir: &ModelDir) -> Result<Decoder, LoadError> {
    dir.check_supported("cpu")?;
    let c = &dir.config;
    let w = MlxWeights::open(dir)?;
    let gemma = c.model_type == "gemma3_text";
    let names = CheckpointLayout::detect(c, |name| w.has(name));
    // Gemma's RMSNorm multiplies by (1 + w); fold the 1 in once here.
    let norm = |name: &str| -> Result<Tensor, LoadError> {
        let t = w.plain(name)?;
        Ok(if gemma { (t + 1.0)? } else { t })
    };
    let linear = |module: &str| -> Result<Linear, LoadError> {
        Ok(Linear::dense(w.matrix(module)?, w.plain_opt(&format!("{module}.bias"))?))
    };
    let embed = w.matrix(&names.embed())?;
    let mut layers = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let n = names.layer(i, |name| w.has(name));
        layers.push(Layer {
            q: linear(&n.q)?,
            k: linear(&n.k)?,
            v: linear(&n.v)?,
            o: linear(&n.o)?,
            q_norm: n.q_norm.as_deref().map(norm).transpose()?,
            k_norm: n.k_norm.as_deref().map(norm).transpose()?,
            attn_in_norm: norm(&n.attn_in_norm)?,
            attn_out_norm: n.attn_out_norm.as_deref().map(norm).transpose()?,
            mlp_in_norm: norm(&n.mlp_in_norm)?,
            mlp_out_norm: n.mlp_out_norm.as_deref().map(norm).transpose()?,
            gate: linear(&n.gate)?,
            up: linear(&n.up)?,
            down: linear(&n.down)?,
            sliding: c.sliding_layers.get(i).copied().unwrap_or(false),
        });
    }
    let final_norm = norm(&names.final_norm())?;
    let lm_head = match names.lm_head() {
        Some(head) => linear(head)?,
        None => Linear::dense(embed.clone(), None),
    };
    let spec = DecoderSpec {
        num_heads: c.num_heads,
        num_kv_heads: c.num_kv_heads,
        head_dim: c.head_dim,
        rms_norm_eps: c.rms_norm_eps,
        rope: c.rope.clone(),
        rope_local: c.rope_local.clone(),
        sliding_window: c.sliding_window,
        activation: if gemma { Activation::GeluTanh } else { Activation::Silu },
        // mlx_lm rounds √hidden to bf16 whatever the model's dtype (√640 = 25.30 → 25.25).
        embed_scale: gemma.then(|| round_to_bf16((c.hidden_size as f64).sqrt() as f32) as f64),
        attn_scale: 1.0 / c.query_pre_attn_scalar.unwrap_or(c.head_dim as f64).sqrt(),
    };
    Ok(Decoder::new(spec, Embedding::Dense(embed), layers, final_norm, lm_head))
}

/// The CPU engine, concretely typed (tests and the bench reach its runner).
pub type CpuEngine = LocalEngine<Decoder>;

/// Loads a model directory on the CPU backend.
pub fn load_cpu(spec: &LoadSpec) -> Result<Arc<CpuEngine>, LoadError> {
    let path = &spec.model_path;
    let dir = ModelDir::open(path)?;
    dir.check_supported("cpu")?;
    let codec = TextCodec::from_model_dir(&dir)?;
    let decoder = load_mlx_dir(&dir)?;
    let model_max = dir.config.max_position_embeddings;
    let max_context = spec.max_context.unwrap_or(model_max).min(model_max);
    let params = dir.config.params_estimate();
    let descriptor = ModelDescriptor {
        model_id: spec.id_or(|| dir.name()),
        params_b: params as f64 / 1e9,
        max_context_tokens: max_context as u64,
        engine: "cpu".into(),
        throughput_tps_estimate: cpu_tps_estimate(params, 4.0),
    };
    let options = GenerateOptions { prefill_chunk: DEFAULT_PREFILL_CHUNK, max_context };
    Ok(Arc::new(LocalEngine::new(descriptor, codec, decoder, options)))
}

/// Decode is memory-bound: ~10 GB/s of effective bandwidth over the weights' bytes per token.
fn cpu_tps_estimate(params: u64, bytes_per_param: f64) -> f64 {
    (10e9 / (params.max(1) as f64 * bytes_per_param)).clamp(0.1, 1000.0)
}

/// `x` rounded to the nearest bfloat16 (ties to even), as an f32.
fn round_to_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    let rounding = 0x7fff + ((bits >> 16) & 1);
    f32::from_bits(bits.wrapping_add(rounding) & 0xffff_0000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bf16_rounding_matches_mlx_lm_for_gemma_widths() {
        // √640 and √1152 as mlx_lm's `mx.array(√h, mx.bfloat16)` gives them.
        assert_eq!(super::round_to_bf16(640f32.sqrt()), 25.25);
        assert_eq!(super::round_to_bf16(1152f32.sqrt()), 34.0);
        assert_eq!(super::round_to_bf16(1.0), 1.0);
    }
}
