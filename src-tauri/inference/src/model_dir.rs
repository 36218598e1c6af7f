//! A model directory in the mlx-community layout, read and checked before any weights are touched.
//!
//! The layout: `config.json`, one or more `*.safetensors` (a sharded set lists its shards in
//! `model.safetensors.index.json`), `tokenizer.json`, and a chat template in
//! `tokenizer_config.json` (`chat_template`) or `chat_template.jinja`. Configs come from several
//! generations of `transformers` and `mlx_lm`, so the reader accepts each spelling of the same fact
//! (`eos_token_id` as int or list, `quantization` or `quantization_config`, a flat `rope_theta` or
//! `rope_parameters`, a multimodal `text_config`) and resolves them into one [`ModelConfig`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::LoadError;

/// Model families the shared decoder understands (`model_type` values).
pub const SUPPORTED_FAMILIES: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "gemma3_text"];

/// The architecture-level facts a forward pass needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope: RopeConfig,
    /// Rope for sliding-window layers where it differs (Gemma 3's local layers).
    pub rope_local: Option<RopeConfig>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub quantization: Option<Quantization>,
    /// Window for sliding-window layers, and which layers use it.
    pub sliding_window: Option<usize>,
    pub sliding_layers: Vec<bool>,
    /// Attention scale numerator (`query_pre_attn_scalar`), when not `head_dim`.
    pub query_pre_attn_scalar: Option<f64>,
    /// q/k/v projections carry a bias (Qwen 2).
    pub attention_bias: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RopeConfig {
    pub theta: f64,
    /// MLX's "traditional" rope rotates adjacent pairs; the default rotates halves.
    pub traditional: bool,
    pub scaling: RopeScaling,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.x frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position: f64,
    },
}

/// Rope inverse frequencies, with Llama 3 frequency-dependent scaling applied. Shared by the cpu and
/// mlx backends, so it lives here rather than behind either one's build.
pub fn inv_freqs(r: &RopeConfig, head_dim: usize) -> Vec<f32> {
    let half = head_dim / 2;
    (0..half)
        .map(|i| {
            let inv = 1.0 / r.theta.powf((2 * i) as f64 / head_dim as f64);
            let inv = match r.scaling {
                RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => {
                    let wavelen = 2.0 * std::f64::consts::PI / inv;
                    let low_wavelen = original_max_position / low_freq_factor;
                    let high_wavelen = original_max_position / high_freq_factor;
                    if wavelen > low_wavelen {
                        inv / factor
                    } else if wavelen < high_wavelen {
                        inv
                    } else {
                        let smooth = (original_max_position / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * inv / factor + smooth * inv
                    }
                }
                _ => inv,
            };
            inv as f32
        })
        .collect()
}

/// MLX affine quantization: `w = scale * q + bias` per group of `group_size` input columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantization {
    pub group_size: usize,
    pub bits: u32,
    /// Per-module overrides (`model.layers.0.mlp.down_proj` → spec, or `None` = left unquantized).
    pub overrides: BTreeMap<String, Option<QuantSpec>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantSpec {
    pub group_size: usize,
    pub bits: u32,
}

impl Quantization {
    /// The quantization of one module (the weight's name without `.weight`).
    pub fn for_module(&self, module: &str) -> Option<QuantSpec> {
        match self.overrides.get(module) {
            Some(o) => *o,
            None => Some(QuantSpec { group_size: self.group_size, bits: self.bits }),
        }
    }
}

/// Bits the CPU dequantizer unpacks (values that tile a `u32` exactly).
pub const SUPPORTED_BITS: &[u32] = &[2, 4, 8];

/// A model directory whose files were found and whose config was understood.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
    pub config: ModelConfig,
    /// The raw config.json, for backends that want more.
    pub raw_config: Value,
    pub weight_files: Vec<PathBuf>,
    pub tokenizer_json: PathBuf,
    /// `tokenizer_config.json`, parsed, or `Value::Null` when absent.
    pub tokenizer_config: Value,
    pub chat_template: Option<String>,
    /// Extra EOS ids from `generation_config.json`.
    pub generation_eos_ids: Vec<u32>,
}

impl ModelDir {
    /// Reads and validates a model directory. Nothing large is read: weights are only listed.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        if !path.exists() {
            return Err(LoadError::NotFound(path.to_path_buf()));
        }
        if !path.is_dir() {
            return Err(LoadError::invalid(
                path,
                "expected a model directory (config.json, *.safetensors, tokenizer.json); GGUF files are run by the cpu engine when given the .gguf file itself",
            ));
        }
        let config_path = path.join("config.json");
        let raw_config = read_json(
            &config_path,
            "every model directory needs config.json; copy it from the model's repository",
        )?;
        let config = ModelConfig::from_json(&raw_config).map_err(|r| LoadError::invalid(&config_path, r))?;
        let weight_files = list_weights(path)?;
        let tokenizer_json = path.join("tokenizer.json");
        if !tokenizer_json.is_file() {
            return Err(LoadError::MissingFile {
                path: tokenizer_json,
                hint: "the fast tokenizer is required; download tokenizer.json from the model's repository (or save it with transformers' AutoTokenizer.save_pretrained)".into(),
            });
        }
        let tc_path = path.join("tokenizer_config.json");
        let tokenizer_config = if tc_path.is_file() { read_json(&tc_path, "")? } else { Value::Null };
        let chat_template = find_chat_template(path, &tokenizer_config)?;
        let gen_path = path.join("generation_config.json");
        let generation_eos_ids = if gen_path.is_file() {
            read_json(&gen_path, "")?.get("eos_token_id").map(id_list).unwrap_or_default()
        } else {
            vec![]
        };
        Ok(Self {
            path: path.to_path_buf(),
            config,
            raw_config,
            weight_files,
            tokenizer_json,
            tokenizer_config,
            chat_template,
            generation_eos_ids,
        })
    }

    /// The directory's name: the default model id (`tiny-llama-4bit`).
    pub fn name(&self) -> String {
        dir_name(&self.path)
    }

    /// Bytes of weights on disk.
    pub fn weights_size(&self) -> u64 {
        self.weight_files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
    }

    /// Checks the config against what a backend can run.
    pub fn check_supported(&self, engine: &'static str) -> Result<(), LoadError> {
        if !SUPPORTED_FAMILIES.contains(&self.config.model_type.as_str()) {
            return Err(LoadError::UnsupportedArchitecture {
                found: self.config.model_type.clone(),
                engine,
                supported: SUPPORTED_FAMILIES.to_vec(),
            });
        }
        if let Some(q) = &self.config.quantization {
            let mut specs: BTreeSet<(u32, usize)> = BTreeSet::new();
            specs.insert((q.bits, q.group_size));
            specs.extend(q.overrides.values().flatten().map(|s| (s.bits, s.group_size)));
            for (bits, group) in specs {
                if !SUPPORTED_BITS.contains(&bits) {
                    return Err(LoadError::UnsupportedQuantization(format!(
                        "{bits}-bit weights (the {engine} engine unpacks {:?}-bit MLX affine weights; use a 4-bit or 8-bit conversion)",
                        SUPPORTED_BITS
                    )));
                }
                if group == 0 {
                    return Err(LoadError::UnsupportedQuantization("group_size 0".into()));
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn dir_name(path: &Path) -> String {
    let p = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let name = if p.is_file() { p.file_stem() } else { p.file_name() };
    name.map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
}

fn read_json(path: &Path, missing_hint: &str) -> Result<Value, LoadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LoadError::MissingFile { path: path.to_path_buf(), hint: missing_hint.into() })
        }
        Err(e) => return Err(LoadError::io(path, e)),
    };
    serde_json::from_str(&text).map_err(|e| LoadError::invalid(path, format!("not valid JSON: {e}")))
}

fn list_weights(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let v = read_json(&index, "")?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| LoadError::invalid(&index, "no `weight_map` object"))?;
        let files: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        let mut out = Vec::new();
        for f in files {
            let p = dir.join(f);
            if !p.is_file() {
                return Err(LoadError::MissingFile {
                    path: p,
                    hint: format!(
                        "model.safetensors.index.json lists this shard; the download is incomplete — fetch every file the index names ({} shard(s))",
                        map.values().filter_map(Value::as_str).collect::<BTreeSet<_>>().len()
                    ),
                });
            }
            out.push(p);
        }
        return Ok(out);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LoadError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(LoadError::MissingFile {
            path: dir.join("model.safetensors"),
            hint: "no *.safetensors weights in the directory; download the model's weight files".into(),
        });
    }
    Ok(out)
}

fn find_chat_template(dir: &Path, tokenizer_config: &Value) -> Result<Option<String>, LoadError> {
    match tokenizer_config.get("chat_template") {
        Some(Value::String(s)) => return Ok(Some(s.clone())),
        // A list of named templates: use "default", else the first.
        Some(Value::Array(list)) => {
            let named = |n: &str| list.iter().find(|t| t.get("name").and_then(Value::as_str) == Some(n));
            if let Some(t) = named("default").or_else(|| list.first()) {
                if let Some(s) = t.get("template").and_then(Value::as_str) {
                    return Ok(Some(s.to_string()));
                }
            }
        }
        _ => {}
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja).map(Some).map_err(|e| LoadError::io(&jinja, e));
    }
    let json = dir.join("chat_template.json");
    if json.is_file() {
        let v = read_json(&json, "")?;
        return Ok(v.get("chat_template").and_then(Value::as_str).map(str::to_string));
    }
    Ok(None)
}

/// `5`, `[5, 7]` or absent → list of ids.
pub(crate) fn id_list(v: &Value) -> Vec<u32> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Value::Array(a) => a.iter().filter_map(Value::as_u64).map(|n| n as u32).collect(),
        _ => vec![],
    }
}

impl ModelConfig {
    /// Resolves a config.json into the facts a forward pass needs; the error names the bad field.
    pub fn from_json(raw: &Value) -> Result<Self, String> {
        // Multimodal configs keep the language model's settings under `text_config`; top-level keys
        // (quantization, eos) still apply.
        let mut merged = raw.as_object().cloned().ok_or("config.json is not an object")?;
        if let Some(Value::Object(text)) = raw.get("text_config") {
            for (k, v) in text {
                merged.insert(k.clone(), v.clone());
            }
        }
        let c = Value::Object(merged);
        let get = |k: &str| c.get(k).filter(|v| !v.is_null());
        let usize_of = |k: &str| -> Result<usize, String> {
            get(k)
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .ok_or_else(|| format!("`{k}` is missing or not a number"))
        };
        let opt_usize = |k: &str| get(k).and_then(Value::as_u64).map(|n| n as usize);
        let opt_f64 = |k: &str| get(k).and_then(Value::as_f64);

        let mut model_type = get("model_type").and_then(Value::as_str).unwrap_or_default().to_string();
        if model_type.is_empty() {
            return Err("`model_type` is missing".into());
        }
        // A Gemma 3 multimodal checkpoint's text tower is a gemma3_text model.
        if model_type == "gemma3" && raw.get("text_config").is_some() {
            model_type = "gemma3_text".into();
        }
        let is_gemma3 = model_type == "gemma3_text";
        let hidden_size = usize_of("hidden_size")?;
        let num_heads = usize_of("num_attention_heads")?;
        let num_kv_heads = opt_usize("num_key_value_heads").unwrap_or(num_heads);
        let head_dim = opt_usize("head_dim").unwrap_or(hidden_size / num_heads.max(1));
        let num_layers = usize_of("num_hidden_layers")?;
        let vocab_size = usize_of("vocab_size")?;
        let intermediate_size = usize_of("intermediate_size")?;
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(format!(
                "num_attention_heads ({num_heads}) must be a positive multiple of num_key_value_heads ({num_kv_heads})"
            ));
        }

        let traditional = get("rope_traditional").and_then(Value::as_bool).unwrap_or(false);
        let default_theta = if is_gemma3 { 1_000_000.0 } else { 10_000.0 };
        let rope_params = get("rope_parameters");
        let (rope, rope_local) = match rope_params {
            // transformers 5 for Gemma 3: one rope per attention kind.
            Some(p) if p.get("full_attention").is_some() => {
                let full =
                    parse_rope(p.get("full_attention").unwrap_or(&Value::Null), default_theta, traditional)?;
                let local =
                    p.get("sliding_attention").map(|s| parse_rope(s, 10_000.0, traditional)).transpose()?;
                (full, local)
            }
            Some(p) => {
                let mut obj = p.clone();
                if obj.get("rope_theta").is_none() {
                    if let (Some(o), Some(t)) = (obj.as_object_mut(), get("rope_theta")) {
                        o.insert("rope_theta".into(), t.clone());
                    }
                }
                (parse_rope(&obj, default_theta, traditional)?, None)
            }
            None => {
                let mut obj = get("rope_scaling").cloned().unwrap_or(Value::Object(Default::default()));
                if let (Some(o), Some(t)) = (obj.as_object_mut(), get("rope_theta")) {
                    o.insert("rope_theta".into(), t.clone());
                }
                let local = if is_gemma3 {
                    Some(RopeConfig {
                        theta: opt_f64("rope_local_base_freq").unwrap_or(10_000.0),
                        traditional,
                        scaling: RopeScaling::None,
                    })
                } else {
                    None
                };
                (parse_rope(&obj, default_theta, traditional)?, local)
            }
        };

        let quantization = match get("quantization").or_else(|| get("quantization_config")) {
            Some(q) => Some(parse_quantization(q)?),
            None => None,
        };

        let sliding_window = opt_usize("sliding_window").filter(|_| is_gemma3);
        let sliding_layers: Vec<bool> = if !is_gemma3 {
            vec![false; num_layers]
        } else if let Some(types) = get("layer_types").and_then(Value::as_array) {
            types.iter().map(|t| t.as_str() == Some("sliding_attention")).collect()
        } else {
            let pattern = opt_usize("sliding_window_pattern").unwrap_or(6).max(1);
            (0..num_layers).map(|i| (i + 1) % pattern != 0).collect()
        };
        if sliding_layers.len() != num_layers {
            return Err(format!("layer_types has {} entries for {num_layers} layers", sliding_layers.len()));
        }

        let mut eos_token_ids = get("eos_token_id").map(id_list).unwrap_or_default();
        eos_token_ids.dedup();
        Ok(Self {
            attention_bias: model_type == "qwen2"
                || get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
            model_type,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size,
            rms_norm_eps: opt_f64("rms_norm_eps").unwrap_or(1e-6),
            rope,
            rope_local,
            max_position_embeddings: opt_usize("max_position_embeddings").unwrap_or(4096),
            tie_word_embeddings: get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(is_gemma3),
            bos_token_id: get("bos_token_id").and_then(Value::as_u64).map(|n| n as u32),
            eos_token_ids,
            quantization,
            sliding_window,
            sliding_layers,
            query_pre_attn_scalar: opt_f64("query_pre_attn_scalar").filter(|_| is_gemma3),
        })
    }

    /// Rough parameter count (embeddings counted once when tied).
    pub fn params_estimate(&self) -> u64 {
        let h = self.hidden_size as u64;
        let q = (self.num_heads * self.head_dim) as u64;
        let kv = (self.num_kv_heads * self.head_dim) as u64;
        let attn = h * q * 2 + h * kv * 2;
        let mlp = 3 * h * self.intermediate_size as u64;
        let emb = self.vocab_size as u64 * h;
        let head = if self.tie_word_embeddings { 0 } else { emb };
        self.num_layers as u64 * (attn + mlp) + emb + head
    }
}

fn parse_rope(p: &Value, default_theta: f64, traditional: bool) -> Result<RopeConfig, String> {
    let theta = p.get("rope_theta").and_then(Value::as_f64).unwrap_or(default_theta);
    let kind = p.get("rope_type").or_else(|| p.get("type")).and_then(Value::as_str).unwrap_or("default");
    let f = |k: &str, d: f64| p.get(k).and_then(Value::as_f64).unwrap_or(d);
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear { factor: f("factor", 1.0) },
        "llama3" => RopeScaling::Llama3 {
            factor: f("factor", 8.0),
            low_freq_factor: f("low_freq_factor", 1.0),
            high_freq_factor: f("high_freq_factor", 4.0),
            original_max_position: f("original_max_position_embeddings", 8192.0),
        },
        other => {
            return Err(format!(
                "rope scaling `{other}` is not supported (supported: default, linear, llama3)"
            ))
        }
    };
    Ok(RopeConfig { theta, traditional, scaling })
}

fn parse_quantization(q: &Value) -> Result<Quantization, String> {
    let obj = q.as_object().ok_or("`quantization` is not an object")?;
    if let Some(mode) = obj.get("mode").and_then(Value::as_str) {
        if mode != "affine" {
            return Err(format!("quantization mode `{mode}` is not supported (only MLX `affine`)"));
        }
    }
    let spec = |v: &Value| -> Option<QuantSpec> {
        Some(QuantSpec {
            group_size: v.get("group_size")?.as_u64()? as usize,
            bits: v.get("bits")?.as_u64()? as u32,
        })
    };
    let top = spec(q).ok_or("`quantization` needs `group_size` and `bits`")?;
    let mut overrides = BTreeMap::new();
    for (k, v) in obj {
        match v {
            Value::Bool(false) => {
                overrides.insert(k.clone(), None);
            }
            Value::Object(_) => {
                if let Some(s) = spec(v) {
                    overrides.insert(k.clone(), Some(s));
                }
            }
            _ => {}
        }
    }
    Ok(Quantization { group_size: top.group_size, bits: top.bits, overrides })
}

/// Where an mlx-community checkpoint keeps each tensor, for every backend that reads one. The
/// families differ in the norms around the MLP (Gemma 3's sandwich norms), in whether the text
/// tower is nested (multimodal Gemma 3 checkpoints put it under `language_model.`) and in what
/// settles whether the logits come from an output head of their own or from the embedding.
#[derive(Debug, Clone)]
pub struct CheckpointLayout {
    root: String,
    /// The output head's module, `None` when the logits reuse the embedding.
    head: Option<String>,
    gemma: bool,
}

/// One decoder layer's tensor names. Linear layers are module names (their `.weight`, `.scales`,
/// `.biases` and optional `.bias` sit under them); norms are full tensor names.
#[derive(Debug, Clone)]
pub struct LayerNames {
    pub q: String,
    pub k: String,
    pub v: String,
    pub o: String,
    /// Per-head norms of queries and keys (Qwen 3, Gemma 3): `None` if the checkpoint has none.
    pub q_norm: Option<String>,
    pub k_norm: Option<String>,
    pub attn_in_norm: String,
    /// Gemma's norm of the attention output before the residual add.
    pub attn_out_norm: Option<String>,
    pub mlp_in_norm: String,
    pub mlp_out_norm: Option<String>,
    pub gate: String,
    pub up: String,
    pub down: String,
}

impl CheckpointLayout {
    /// `has` answers whether the checkpoint holds a tensor of that name.
    pub fn detect(config: &ModelConfig, has: impl Fn(&str) -> bool) -> Self {
        let nested = has("language_model.model.embed_tokens.weight");
        let (root, head) =
            if nested { ("language_model.model", "language_model.lm_head") } else { ("model", "lm_head") };
        let gemma = config.model_type == "gemma3_text";
        // mlx_lm's rule, which the backends are held to. Gemma 3 lets the checkpoint decide: its
        // `sanitize` ties the head only when the weights carry none, whatever config.json says
        // (mlx_lm's save path writes whatever head the model holds, under a config that may still
        // say tied).
        // Llama, Mistral and Qwen follow `tie_word_embeddings` and drop a head the config calls
        // tied; an untied config without the head falls back to the embedding here.
        let has_head = has(&format!("{head}.weight"));
        let untied = has_head && (gemma || !config.tie_word_embeddings);
        Self { root: root.into(), head: untied.then(|| head.into()), gemma }
    }

    pub fn embed(&self) -> String {
        format!("{}.embed_tokens", self.root)
    }

    pub fn final_norm(&self) -> String {
        format!("{}.norm.weight", self.root)
    }

    /// The output head's module name, or `None` when the logits are the embedding's transpose.
    pub fn lm_head(&self) -> Option<&str> {
        self.head.as_deref()
    }

    /// Layer `i`'s names; `has` (as in [`CheckpointLayout::detect`]) settles the optional ones.
    pub fn layer(&self, i: usize, has: impl Fn(&str) -> bool) -> LayerNames {
        let p = format!("{}.layers.{i}", self.root);
        let (mlp_in_norm, attn_out_norm, mlp_out_norm) = if self.gemma {
            (
                format!("{p}.pre_feedforward_layernorm.weight"),
                Some(format!("{p}.post_attention_layernorm.weight")),
                Some(format!("{p}.post_feedforward_layernorm.weight")),
            )
        } else {
            (format!("{p}.post_attention_layernorm.weight"), None, None)
        };
        LayerNames {
            q: format!("{p}.self_attn.q_proj"),
            k: format!("{p}.self_attn.k_proj"),
            v: format!("{p}.self_attn.v_proj"),
            o: format!("{p}.self_attn.o_proj"),
            q_norm: Some(format!("{p}.self_attn.q_norm.weight")).filter(|n| has(n)),
            k_norm: Some(format!("{p}.self_attn.k_norm.weight")).filter(|n| has(n)),
            attn_in_norm: format!("{p}.input_layernorm.weight"),
            attn_out_norm,
            mlp_in_norm,
            mlp_out_norm,
            gate: format!("{p}.mlp.gate_proj"),
            up: format!("{p}.mlp.up_proj"),
            down: format!("{p}.mlp.down_proj"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,
               "num_hidden_layers":2,"vocab_size":100,"intermediate_size":128})
    }

    #[test]
    fn eos_int_or_list() {
        let mut c = base();
        c["eos_token_id"] = json!(7);
        assert_eq!(ModelConfig::from_json(&c).unwrap().eos_token_ids, vec![7]);
        c["eos_token_id"] = json!([4, 1]);
        assert_eq!(ModelConfig::from_json(&c).unwrap().eos_token_ids, vec![4, 1]);
    }

    #[test]
    fn rope_parameters_and_flat_theta() {
        let mut c = base();
        c["rope_theta"] = json!(500000.0);
        assert_eq!(ModelConfig::from_json(&c).unwrap().rope.theta, 500000.0);
        let mut c = base();
        c["rope_parameters"] = json!({"rope_theta": 1e6, "rope_type": "linear", "factor": 2.0});
        let r = ModelConfig::from_json(&c).unwrap().rope;
        assert_eq!(r.theta, 1e6);
        assert_eq!(r.scaling, RopeScaling::Linear { factor: 2.0 });
        c["rope_parameters"] = json!({"rope_theta": 1e6, "rope_type": "yarn"});
        assert!(ModelConfig::from_json(&c).unwrap_err().contains("yarn"));
    }

    #[test]
    fn quantization_spellings_and_overrides() {
        let mut c = base();
        c["quantization_config"] = json!({"group_size": 32, "bits": 4, "lm_head": {"group_size": 64, "bits": 8}, "model.embed_tokens": false});
        let q = ModelConfig::from_json(&c).unwrap().quantization.unwrap();
        assert_eq!(q.for_module("model.layers.0.mlp.up_proj"), Some(QuantSpec { group_size: 32, bits: 4 }));
        assert_eq!(q.for_module("lm_head"), Some(QuantSpec { group_size: 64, bits: 8 }));
        assert_eq!(q.for_module("model.embed_tokens"), None);
    }

    #[test]
    fn gemma3_sliding_pattern() {
        let c = json!({"model_type":"gemma3_text","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":1,
            "num_hidden_layers":7,"vocab_size":100,"intermediate_size":128,"sliding_window":512,"head_dim":16});
        let m = ModelConfig::from_json(&c).unwrap();
        assert_eq!(m.sliding_layers, vec![true, true, true, true, true, false, true]);
        assert_eq!(m.rope_local.unwrap().theta, 10_000.0);
        assert!(m.tie_word_embeddings);
    }

    /// mlx_lm's rule: Gemma 3's weights decide, the other families' config does.
    #[test]
    fn output_head_follows_mlx_lm() {
        let head = |c: Value, names: &[&str]| {
            let config = ModelConfig::from_json(&c).unwrap();
            CheckpointLayout::detect(&config, |n| names.contains(&n)).lm_head().map(str::to_string)
        };
        let gemma = json!({"model_type":"gemma3_text","hidden_size":64,"num_attention_heads":4,
            "num_hidden_layers":2,"vocab_size":100,"intermediate_size":128,"tie_word_embeddings":true});
        assert_eq!(
            head(gemma.clone(), &["model.embed_tokens.weight", "lm_head.weight"]).as_deref(),
            Some("lm_head")
        );
        assert_eq!(head(gemma.clone(), &["model.embed_tokens.weight"]), None);
        let nested = ["language_model.model.embed_tokens.weight", "language_model.lm_head.weight"];
        assert_eq!(head(gemma, &nested).as_deref(), Some("language_model.lm_head"));
        let mut llama = base();
        llama["tie_word_embeddings"] = json!(true);
        assert_eq!(head(llama.clone(), &["model.embed_tokens.weight", "lm_head.weight"]), None);
        llama["tie_word_embeddings"] = json!(false);
        assert_eq!(
            head(llama.clone(), &["model.embed_tokens.weight", "lm_head.weight"]).as_deref(),
            Some("lm_head")
        );
        assert_eq!(head(llama, &["model.embed_tokens.weight"]), None);
    }

    #[test]
    fn missing_field_is_named() {
        let mut c = base();
        c.as_object_mut().unwrap().remove("hidden_size");
        assert!(ModelConfig::from_json(&c).unwrap_err().contains("hidden_size"));
    }

    #[test]
    fn llama3_scaling_keeps_high_frequencies() {
        let r = RopeConfig {
            theta: 500000.0,
            traditional: false,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position: 8192.0,
            },
        };
        let plain = RopeConfig { scaling: RopeScaling::None, ..r.clone() };
        let (a, b) = (inv_freqs(&r, 128), inv_freqs(&plain, 128));
        assert_eq!(a[0], b[0]);
        assert!((a[63] - b[63] / 8.0).abs() < 1e-12);
    }
}
