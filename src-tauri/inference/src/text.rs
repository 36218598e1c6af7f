//! The text side of a model: tokenizer, chat template, special tokens and end-of-sequence ids —
//! everything a backend needs to turn a [`Prompt`] into ids and ids back into text.
//!
//! Prompts are encoded the way `mlx_lm` does it, because the oracles come from there: a raw prompt
//! gets the tokenizer's special tokens (its BOS) unless it already starts with the BOS text; a
//! rendered chat template already contains them, so it is encoded without.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use crate::detok::Decode;
use crate::error::LoadError;
use crate::job::{EngineError, Prompt};
use crate::model_dir::ModelDir;
use crate::template::ChatTemplate;

/// Qwen 2's pre-tokenizer split (digits one by one, letters with one leading non-letter).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[derive(Debug)]
pub struct TextCodec {
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    bos_token: Option<String>,
    eos_ids: Vec<u32>,
}

impl TextCodec {
    /// Builds the codec for a model directory.
    pub fn from_model_dir(dir: &ModelDir) -> Result<Self, LoadError> {
        let bytes = std::fs::read(&dir.tokenizer_json).map_err(|e| LoadError::io(&dir.tokenizer_json, e))?;
        let mut eos = dir.config.eos_token_ids.clone();
        eos.extend(&dir.generation_eos_ids);
        Self::from_parts(
            &bytes,
            &dir.tokenizer_json,
            &dir.tokenizer_config,
            dir.chat_template.as_deref(),
            &dir.config.model_type,
            &eos,
        )
    }

    /// Builds a codec from a tokenizer.json's bytes, the parsed tokenizer_config.json (or `Null`),
    /// an optional chat template (overrides the config's), the model family and known EOS ids.
    pub fn from_parts(
        tokenizer_json: &[u8],
        tokenizer_path: &Path,
        tokenizer_config: &Value,
        chat_template: Option<&str>,
        model_type: &str,
        eos_ids: &[u32],
    ) -> Result<Self, LoadError> {
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_json).map_err(|e| {
            LoadError::invalid(tokenizer_path, format!("not a tokenizer this build can read: {e}"))
        })?;
        apply_family_rules(&mut tokenizer, model_type).map_err(|e| LoadError::invalid(tokenizer_path, e))?;

        let mut specials = BTreeMap::new();
        for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
            if let Some(t) = tokenizer_config.get(key).and_then(token_text) {
                specials.insert(key.to_string(), t);
            }
        }
        let bos_token = specials.get("bos_token").cloned();
        let mut eos: Vec<u32> = eos_ids.to_vec();
        if let Some(id) = specials.get("eos_token").and_then(|t| tokenizer.token_to_id(t)) {
            eos.push(id);
        }
        // Gemma's chat turns end with <end_of_turn>, which its configs list only in
        // generation_config.json (often absent in conversions): treat it as EOS too.
        if model_type.starts_with("gemma") {
            eos.extend(tokenizer.token_to_id("<end_of_turn>"));
        }
        eos.sort_unstable();
        eos.dedup();
        let source = chat_template
            .map(str::to_string)
            .or_else(|| tokenizer_config.get("chat_template").and_then(Value::as_str).map(str::to_string));
        let template = source.map(|s| ChatTemplate::new(&s, specials)).transpose()?;
        Ok(Self { tokenizer, template, bos_token, eos_ids: eos })
    }

    /// Tokens of a prompt, with the chat template applied to chat prompts.
    pub fn encode_prompt(&self, prompt: &Prompt) -> Result<Vec<u32>, EngineError> {
        match prompt {
            Prompt::Raw(text) => {
                let add_special = self.bos_token.as_deref().is_none_or(|b| !text.starts_with(b));
                self.encode(text, add_special)
            }
            Prompt::Chat(messages) => {
                let template = self.template.as_ref().ok_or_else(|| {
                    EngineError::InvalidRequest(
                        "this model has no chat template (tokenizer_config.json `chat_template` or chat_template.jinja); send a raw prompt".into(),
                    )
                })?;
                let text = template.render(messages)?;
                self.encode(&text, false)
            }
        }
    }

    /// The rendered chat prompt (for inspection and tests).
    pub fn render_chat(&self, messages: &[crate::job::ChatMessage]) -> Result<String, EngineError> {
        match &self.template {
            Some(t) => t.render(messages),
            None => Err(EngineError::InvalidRequest("this model has no chat template".into())),
        }
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EngineError> {
        self.tokenizer
            .encode_fast(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Internal(format!("tokenizing failed: {e}")))
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

impl Decode for TextCodec {
    fn decode_ids(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| EngineError::Internal(format!("detokenizing failed: {e}")))
    }
}

/// `"<s>"` or `{"content": "<s>", …}` (an AddedToken in older configs).
fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Family-specific tokenizer settings that `transformers` imposes regardless of tokenizer.json.
///
/// `transformers` 5 builds Qwen 2 tokenizers from their class definition: NFC normalization and a
/// digit-splitting regex before byte-level encoding, whatever the file says. Real Qwen files already
/// say exactly that, so applying it always is harmless, and it makes files that don't (like the
/// tiny fixtures) tokenize as `mlx_lm` does.
fn apply_family_rules(tokenizer: &mut Tokenizer, model_type: &str) -> Result<(), String> {
    if matches!(model_type, "qwen2" | "qwen2_moe" | "qwen3" | "qwen3_moe") {
        let split =
            Split::new(SplitPattern::Regex(QWEN2_SPLIT.into()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| format!("qwen2 pre-tokenizer: {e}"))?;
        let byte_level = ByteLevel::new(false, true, false);
        tokenizer.with_normalizer(Some(NFC)).map_err(|e| format!("qwen2 normalizer: {e}"))?;
        tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![split.into(), byte_level.into()])));
    }
    Ok(())
}

/// Reads a tokenizer.json that may be xz-compressed (`.xz`), as the Gemma fixture ships it.
pub fn read_tokenizer_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let raw = std::fs::read(path).map_err(|e| LoadError::io(path, e))?;
    if path.extension().is_some_and(|e| e == "xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut raw.as_slice(), &mut out)
            .map_err(|e| LoadError::invalid(path, format!("not a valid .xz file: {e}")))?;
        return Ok(out);
    }
    Ok(raw)
}
