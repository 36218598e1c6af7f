//! llama.cpp's vocabulary (read from the GGUF) as the shared codec's [`Vocabulary`]: the same ids
//! llama.cpp itself would produce for a prompt, and text for ids with special tokens written out
//! (as Hugging Face decodes with `skip_special_tokens=False`), so the shared incremental decoder
//! and stop matcher behave as for every other backend.

use std::sync::Arc;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::job::EngineError;
use crate::text::Vocabulary;

#[derive(Clone)]
pub struct GgufVocab {
    model: Arc<LlamaModel>,
}

impl GgufVocab {
    pub fn new(model: Arc<LlamaModel>) -> Self {
        Self { model }
    }

    /// The text of the BOS and EOS tokens (`<bos>`, `<eos>`), as chat templates see them.
    pub fn bos_eos_text(&self) -> (Option<String>, Option<String>) {
        let vocab = self.model.vocab();
        let text = |t: LlamaToken| {
            (t.0 >= 0 && t.0 < vocab.n_tokens())
                .then(|| vocab.text(t).map(|s| s.to_string_lossy().into_owned()))
                .flatten()
        };
        (text(vocab.bos()), text(vocab.eos()))
    }

    /// Every token that ends generation: llama.cpp's end-of-generation set (EOS, EOT and the
    /// turn-ending tokens its vocabulary rules add, such as Gemma's `<end_of_turn>`).
    pub fn end_of_generation_ids(&self) -> Vec<u32> {
        let vocab = self.model.vocab();
        vocab.tokens().filter(|&t| vocab.is_eog(t)).map(|t| t.0 as u32).collect()
    }
}

impl std::fmt::Debug for GgufVocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufVocab").field("tokens", &self.model.vocab().n_tokens()).finish()
    }
}

impl Vocabulary for GgufVocab {
    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EngineError> {
        // `parse_special`: special tokens written in the text are tokens, as Hugging Face's added
        // tokens are.
        let ids = self.model.vocab().tokenize(text.as_bytes(), add_special_tokens, true);
        Ok(ids.into_iter().map(|t| t.0 as u32).collect())
    }

    fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        let n = self.model.vocab().n_tokens();
        let tokens: Vec<LlamaToken> = ids
            .iter()
            .map(|&i| match i32::try_from(i) {
                Ok(t) if t < n => Ok(LlamaToken(t)),
                _ => {
                    Err(EngineError::Internal(format!("token id {i} is outside the vocabulary ({n} tokens)")))
                }
            })
            .collect::<Result<_, _>>()?;
        // Keep BOS/EOS (`remove_special` off) and write special tokens as text.
        let bytes = self.model.vocab().detokenize(&tokens, false, true);
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn token_id(&self, token: &str) -> Option<u32> {
        match self.encode(token, false).ok()?.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}
