//! The `cpu` backend: candle tensor math on any OS, for mlx-community model directories and GGUF
//! files. Everything else (templates, sampling, stop sequences) comes from the shared core.

pub mod decoder;
pub mod gguf;
pub mod mlx_weights;

use candle_core::Tensor;

use crate::error::LoadError;
use crate::model_dir::ModelDir;
use decoder::{Activation, Decoder, DecoderSpec, Embedding, Layer, Linear};
use mlx_weights::MlxWeights;

/// Builds the decoder for a (validated) mlx-community model directory, dequantizing to f32.
pub fn load_mlx_dir(dir: &ModelDir) -> Result<Decoder, LoadError> {
    dir.check_supported("cpu")?;
    let c = &dir.config;
    let w = MlxWeights::open(dir)?;
    let gemma = c.model_type == "gemma3_text";
    // Multimodal Gemma 3 checkpoints nest the text tower under `language_model.`.
    let root =
        if w.has("language_model.model.embed_tokens.weight") { "language_model.model" } else { "model" };
    let head_root =
        root.strip_suffix(".model").map(|r| format!("{r}.lm_head")).unwrap_or_else(|| "lm_head".into());
    // Gemma's RMSNorm multiplies by (1 + w); fold the 1 in once here.
    let norm = |name: &str| -> Result<Tensor, LoadError> {
        let t = w.plain(name)?;
        Ok(if gemma { (t + 1.0)? } else { t })
    };
    let norm_opt = |name: &str| -> Result<Option<Tensor>, LoadError> {
        if w.has(name) {
            norm(name).map(Some)
        } else {
            Ok(None)
        }
    };
    let linear = |module: &str| -> Result<Linear, LoadError> {
        Ok(Linear::dense(w.matrix(module)?, w.plain_opt(&format!("{module}.bias"))?))
    };
    let embed = w.matrix(&format!("{root}.embed_tokens"))?;
    let mut layers = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let p = format!("{root}.layers.{i}");
        let (mlp_in, attn_out, mlp_out) = if gemma {
            (
                norm(&format!("{p}.pre_feedforward_layernorm.weight"))?,
                Some(norm(&format!("{p}.post_attention_layernorm.weight"))?),
                Some(norm(&format!("{p}.post_feedforward_layernorm.weight"))?),
            )
        } else {
            (norm(&format!("{p}.post_attention_layernorm.weight"))?, None, None)
        };
        layers.push(Layer {
            q: linear(&format!("{p}.self_attn.q_proj"))?,
            k: linear(&format!("{p}.self_attn.k_proj"))?,
            v: linear(&format!("{p}.self_attn.v_proj"))?,
            o: linear(&format!("{p}.self_attn.o_proj"))?,
            q_norm: norm_opt(&format!("{p}.self_attn.q_norm.weight"))?,
            k_norm: norm_opt(&format!("{p}.self_attn.k_norm.weight"))?,
            attn_in_norm: norm(&format!("{p}.input_layernorm.weight"))?,
            attn_out_norm: attn_out,
            mlp_in_norm: mlp_in,
            mlp_out_norm: mlp_out,
            gate: linear(&format!("{p}.mlp.gate_proj"))?,
            up: linear(&format!("{p}.mlp.up_proj"))?,
            down: linear(&format!("{p}.mlp.down_proj"))?,
            sliding: c.sliding_layers.get(i).copied().unwrap_or(false),
        });
    }
    let final_norm = norm(&format!("{root}.norm.weight"))?;
    let lm_head = if !c.tie_word_embeddings && w.has(&format!("{head_root}.weight")) {
        linear(&head_root)?
    } else {
        Linear::dense(embed.clone(), None)
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
        embed_scale: gemma.then(|| (c.hidden_size as f64).sqrt()),
        attn_scale: 1.0 / c.query_pre_attn_scalar.unwrap_or(c.head_dim as f64).sqrt(),
    };
    Ok(Decoder::new(spec, Embedding::Dense(embed), layers, final_norm, lm_head))
}
