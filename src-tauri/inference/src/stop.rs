//! Stop sequences: generation ends *before* a stop string would be emitted, even when the string
//! arrives split across several tokens.
//!
//! Text is released only when it cannot be the start of a stop string: a suffix that is a prefix of
//! some stop sequence is held back until the next token either completes the match (stop, drop it)
//! or rules it out (release it).

#[derive(Debug, Default, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What to do with a chunk of decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCheck {
    /// Emit this text (may be empty) and keep going.
    Continue(String),
    /// Emit this text, then stop: a stop sequence matched.
    Stop(String),
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), pending: String::new() }
    }

    pub fn push(&mut self, text: &str) -> StopCheck {
        self.pending.push_str(text);
        if self.stops.is_empty() {
            return StopCheck::Continue(std::mem::take(&mut self.pending));
        }
        // Earliest full match wins.
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return StopCheck::Stop(out);
        }
        // Hold back the longest suffix that could still grow into a stop sequence.
        let hold_from = self
            .pending
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.pending[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.pending.len());
        let out = self.pending[..hold_from].to_string();
        self.pending.drain(..hold_from);
        StopCheck::Continue(out)
    }

    /// The held-back text, when generation ends for another reason.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            match m.push(p) {
                StopCheck::Continue(t) => out.push_str(&t),
                StopCheck::Stop(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.flush());
        (out, false)
    }

    #[test]
    fn stop_across_tokens() {
        assert_eq!(feed(&["END"], &["abc E", "N", "D tail"]), ("abc ".to_string(), true));
    }

    #[test]
    fn false_prefix_is_released() {
        assert_eq!(feed(&["END"], &["a E", "Nx", " b"]), ("a ENx b".to_string(), false));
    }

    #[test]
    fn earliest_of_several() {
        assert_eq!(feed(&["zz", "b"], &["a b zz"]), ("a ".to_string(), true));
    }

    #[test]
    fn held_text_only_at_char_boundaries() {
        assert_eq!(feed(&["東京タワー"], &["x 東", "京"]), ("x 東京".to_string(), false));
    }

    #[test]
    fn no_stops_passes_through() {
        let mut m = StopMatcher::new(&[]);
        assert_eq!(m.push("hi"), StopCheck::Continue("hi".into()));
    }
}
