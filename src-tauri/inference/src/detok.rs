//! Turning a growing list of token ids into text deltas that are always whole characters.
//!
//! A character can span tokens (byte-level BPE splits an emoji into byte tokens; SentencePiece
//! models fall back to `<0xF0>`-style byte tokens), and decoding a single token can also depend on
//! its neighbours (leading-space rules). So the decoder re-decodes a small window — the tokens since
//! the last emitted boundary — and emits only the new suffix, holding it back while the window ends
//! in an incomplete character (which decodes to U+FFFD). At the end, [`IncrementalDecoder::flush`]
//! emits whatever is left, so bytes that never form a valid character are not silently lost.

use crate::job::EngineError;

/// Decodes token ids to text; implemented by the shared `TextCodec` (the `text` module, which
/// builds on this one) and by test doubles.
pub trait Decode {
    fn decode_ids(&self, ids: &[u32]) -> Result<String, EngineError>;
}

/// How many trailing tokens may be held back waiting for a character to complete: UTF-8 needs at
/// most 4 bytes, so after this many the replacement character is real and is emitted.
const MAX_HELD_TOKENS: usize = 8;

#[derive(Debug, Default, Clone)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    /// Start of the decode window (context for leading-space rules).
    prefix: usize,
    /// Tokens before this index have been emitted.
    read: usize,
}

impl IncrementalDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token and returns the text it completes (possibly empty).
    pub fn push(&mut self, id: u32, codec: &dyn Decode) -> Result<String, EngineError> {
        self.ids.push(id);
        let prefix_text = codec.decode_ids(&self.ids[self.prefix..self.read])?;
        let full = codec.decode_ids(&self.ids[self.prefix..])?;
        let held = self.ids.len() - self.read;
        if full.ends_with('\u{FFFD}') && held < MAX_HELD_TOKENS {
            return Ok(String::new());
        }
        // The window's earlier tokens decode to what was already emitted; the rest is new. (If a
        // decoder rewrote earlier text, the new suffix is still the best that can be done.)
        let Some(new) = full.get(prefix_text.len()..).filter(|n| !n.is_empty()) else {
            return Ok(String::new());
        };
        let delta = new.to_string();
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(delta)
    }

    /// Whatever is still held back (a trailing partial character becomes U+FFFD).
    pub fn flush(&mut self, codec: &dyn Decode) -> Result<String, EngineError> {
        if self.read >= self.ids.len() {
            return Ok(String::new());
        }
        let prefix_text = codec.decode_ids(&self.ids[self.prefix..self.read])?;
        let full = codec.decode_ids(&self.ids[self.prefix..])?;
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(full.get(prefix_text.len()..).unwrap_or_default().to_string())
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each id is one byte; decoding is lossy UTF-8 like a byte-level tokenizer's.
    struct Bytes;
    impl Decode for Bytes {
        fn decode_ids(&self, ids: &[u32]) -> Result<String, EngineError> {
            Ok(String::from_utf8_lossy(&ids.iter().map(|&i| i as u8).collect::<Vec<_>>()).into_owned())
        }
    }

    fn run(text: &[u8]) -> Vec<String> {
        let mut d = IncrementalDecoder::new();
        let mut out: Vec<String> = text.iter().map(|&b| d.push(u32::from(b), &Bytes).unwrap()).collect();
        out.push(d.flush(&Bytes).unwrap());
        out
    }

    #[test]
    fn multibyte_characters_arrive_whole() {
        let s = "Résumé 東京 😀!";
        let parts = run(s.as_bytes());
        assert_eq!(parts.concat(), s);
        for p in &parts {
            assert!(!p.contains('\u{FFFD}'), "{parts:?}");
        }
        // The emoji's four bytes produce exactly one delta holding it.
        assert!(parts.iter().any(|p| p == "😀"));
    }

    #[test]
    fn invalid_bytes_are_not_held_forever() {
        let parts = run(&[b'a', 0xF0, 0x9F, b'b']);
        assert_eq!(parts.concat(), "a\u{FFFD}b");
    }

    #[test]
    fn trailing_partial_is_flushed() {
        let parts = run(&[b'x', 0xE6, 0x9D]);
        assert_eq!(parts.concat(), "x\u{FFFD}");
    }
}
