//! The text side of a model: tokenizer, chat template, special tokens and end-of-sequence ids —
//! everything a backend needs to turn a [`Prompt`] into ids and ids back into text.
//!
//! The tokenizer is a [`Vocabulary`]: a Hugging Face tokenizer.json for model directories (built
//! here), or llama.cpp's vocabulary from a GGUF file (the gguf backend's). Everything around it,
//! templates, BOS handling and EOS, is the same [`TextCodec`] for every backend.
//!
//! Prompts are encoded the way `mlx_lm` does it, because the oracles come from there: a raw prompt
//! gets the tokenizer's special tokens (its BOS) unless it already starts with the BOS text; a
//! rendered chat template already contains them, so it is encoded without.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    SplitDelimiterBehavior, Tokenizer,
};

use crate::detok::Decode;
use crate::error::LoadError;
use crate::job::{EngineError, Prompt};
use crate::model_dir::ModelDir;
use crate::template::ChatTemplate;

/// Qwen 2's pre-tokenizer split (digits one by one, letters with one leading non-letter).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A model's vocabulary as the generation loop uses it: text to ids and back. Implemented here for
/// Hugging Face tokenizers (model directories) and by the gguf backend for llama.cpp's own
/// vocabulary (read from the GGUF file).
pub trait Vocabulary: Send + Sync + std::fmt::Debug {
    /// Token ids of `text`. Special tokens written in the text (`<start_of_turn>`) are recognised;
    /// `add_special_tokens` adds the vocabulary's own (its BOS).
    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EngineError>;
    /// Text of `ids`, special tokens included; a character cut off at the end becomes U+FFFD.
    fn decode(&self, ids: &[u32]) -> Result<String, EngineError>;
    /// The id of a token given by its text (`<eos>`), if the vocabulary has it.
    fn token_id(&self, token: &str) -> Option<u32>;
}

impl Vocabulary for Tokenizer {
    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EngineError> {
        self.encode_fast(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Internal(format!("tokenizing failed: {e}")))
    }

    fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        // tokenizers' own method (on the `TokenizerImpl` a `Tokenizer` derefs to), not this trait's.
        std::ops::Deref::deref(self)
            .decode(ids, false)
            .map_err(|e| EngineError::Internal(format!("detokenizing failed: {e}")))
    }

    fn token_id(&self, token: &str) -> Option<u32> {
        self.token_to_id(token)
    }
}

#[derive(Debug)]
pub struct TextCodec {
    vocab: Box<dyn Vocabulary>,
    template: Option<ChatTemplate>,
    bos_token: Option<String>,
    eos_ids: Vec<u32>,
}

impl TextCodec {
    /// A codec from its parts: the vocabulary, the chat template (if the model has one), the BOS
    /// token's text (a raw prompt that starts with it gets no second one) and the ids that end
    /// generation.
    pub fn new(
        vocab: Box<dyn Vocabulary>,
        template: Option<ChatTemplate>,
        bos_token: Option<String>,
        mut eos_ids: Vec<u32>,
    ) -> Self {
        eos_ids.sort_unstable();
        eos_ids.dedup();
        Self { vocab, template, bos_token, eos_ids }
    }

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
        let mut tokenizer = parse_tokenizer(tokenizer_json).map_err(|e| {
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
        let source = chat_template
            .map(str::to_string)
            .or_else(|| tokenizer_config.get("chat_template").and_then(Value::as_str).map(str::to_string));
        let template = source.map(|s| ChatTemplate::new(&s, specials)).transpose()?;
        Ok(Self::new(Box::new(tokenizer), template, bos_token, eos))
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
        self.vocab.encode(text, add_special_tokens)
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Replaces the ids that end generation.
    pub fn set_eos_ids(&mut self, mut ids: Vec<u32>) {
        ids.sort_unstable();
        ids.dedup();
        self.eos_ids = ids;
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// The id of a token given by its text, e.g. `<end_of_turn>`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.token_id(token)
    }

    pub fn vocabulary(&self) -> &dyn Vocabulary {
        self.vocab.as_ref()
    }
}

impl Decode for TextCodec {
    fn decode_ids(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.vocab.decode(ids)
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

/// Parses a tokenizer.json. tokenizers' own deserializer buffers the whole `model` object twice
/// (serde's untagged-enum buffering, then a `serde_json::Value`) before building the model; for
/// Gemma 3's 262k-token, 515k-merge BPE that transient was ~350 MB, more than the model's weights,
/// and it set the process's peak memory. So a BPE model is deserialized straight into its
/// vocabulary and merges here, and the file's other (small) sections go through tokenizers one by
/// one, assembled the way its own deserializer does. Anything else takes tokenizers' own path.
pub fn parse_tokenizer(json: &[u8]) -> tokenizers::Result<Tokenizer> {
    match lean_bpe_tokenizer(json) {
        Some(t) => Ok(t),
        None => Tokenizer::from_bytes(json),
    }
}

/// `None` when the file is not a BPE tokenizer in the shape this understands.
pub fn lean_bpe_tokenizer(json: &[u8]) -> Option<Tokenizer> {
    let Sections { model, mut rest } = serde_json::from_slice(json).ok()?;
    let m = model?;
    if m.kind.as_deref().is_some_and(|k| k != "BPE") {
        return None;
    }
    let mut merges = Vec::with_capacity(m.merges.len());
    for merge in m.merges {
        merges.push(match merge {
            Merge::Pair(a, b) => (a, b),
            // The legacy "a b" form, split as tokenizers splits it (exactly one space).
            Merge::Legacy(line) => {
                let (a, b) = line.split_once(' ')?;
                if b.contains(' ') {
                    return None;
                }
                (a.to_string(), b.to_string())
            }
        });
    }
    let mut b = BPE::builder().vocab_and_merges(m.vocab, merges);
    if let Some(p) = m.dropout {
        b = b.dropout(p);
    }
    if let Some(t) = m.unk_token {
        b = b.unk_token(t);
    }
    if let Some(p) = m.continuing_subword_prefix {
        b = b.continuing_subword_prefix(p);
    }
    if let Some(s) = m.end_of_word_suffix {
        b = b.end_of_word_suffix(s);
    }
    if let Some(f) = m.fuse_unk {
        b = b.fuse_unk(f);
    }
    if let Some(f) = m.byte_fallback {
        b = b.byte_fallback(f);
    }
    if let Some(f) = m.ignore_merges {
        b = b.ignore_merges(f);
    }
    let mut tokenizer = Tokenizer::new(b.build().ok()?);

    fn take<T: serde::de::DeserializeOwned>(
        rest: &mut serde_json::Map<String, Value>,
        key: &str,
    ) -> Option<Option<T>> {
        match rest.remove(key) {
            None | Some(Value::Null) => Some(None),
            Some(v) => serde_json::from_value(v).ok().map(Some),
        }
    }
    if let Some(v) = rest.remove("version") {
        if v.as_str() != Some("1.0") {
            return None;
        }
    }
    tokenizer.with_truncation(take(&mut rest, "truncation")?).ok()?;
    tokenizer.with_padding(take(&mut rest, "padding")?);
    tokenizer.with_normalizer(take::<NormalizerWrapper>(&mut rest, "normalizer")?).ok()?;
    tokenizer.with_pre_tokenizer(take::<PreTokenizerWrapper>(&mut rest, "pre_tokenizer")?);
    tokenizer.with_post_processor(take::<PostProcessorWrapper>(&mut rest, "post_processor")?);
    tokenizer.with_decoder(take::<DecoderWrapper>(&mut rest, "decoder")?);
    // Added tokens last, against the real model, as tokenizers does (their ids come from it).
    let added: Vec<AddedTokenWithId> = take(&mut rest, "added_tokens")?.unwrap_or_default();
    tokenizer.add_tokens(added.into_iter().map(|t| t.token)).ok()?;
    Some(tokenizer)
}

/// A tokenizer.json split into its model, deserialized as a BPE, and everything else.
struct Sections {
    model: Option<BpeSection>,
    rest: serde_json::Map<String, Value>,
}

impl<'de> serde::Deserialize<'de> for Sections {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Sections;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a tokenizer.json object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Sections, A::Error> {
                let mut s = Sections { model: None, rest: serde_json::Map::new() };
                while let Some(key) = map.next_key::<String>()? {
                    if key == "model" {
                        s.model = Some(map.next_value()?);
                    } else {
                        let v: Value = map.next_value()?;
                        s.rest.insert(key, v);
                    }
                }
                Ok(s)
            }
        }
        d.deserialize_map(Visit)
    }
}

#[derive(serde::Deserialize)]
struct BpeSection {
    #[serde(rename = "type")]
    kind: Option<String>,
    dropout: Option<f32>,
    unk_token: Option<String>,
    continuing_subword_prefix: Option<String>,
    end_of_word_suffix: Option<String>,
    fuse_unk: Option<bool>,
    byte_fallback: Option<bool>,
    ignore_merges: Option<bool>,
    vocab: tokenizers::models::bpe::Vocab,
    merges: Vec<Merge>,
}

/// One merge: `["a", "b"]`, or the legacy `"a b"`. (Untagged per entry, so serde buffers one
/// small entry at a time, not the whole list.)
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Merge {
    Pair(String, String),
    Legacy(String),
}

#[derive(serde::Deserialize)]
struct AddedTokenWithId {
    // The entry's `id` is not read: tokenizers too takes the id the model (or the order) gives.
    #[serde(flatten)]
    token: AddedToken,
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
