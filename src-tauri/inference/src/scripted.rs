//! A deterministic engine double for tests and relay benchmarks: no model, predictable tokens, and
//! the ability to stall its thread the way a slow prefill does.
//!
//! It emits `max_tokens` tokens `t0 t1 t2 …` (each delta is `"t{i} "`), unless the prompt contains
//! a stop sequence's trigger (see [`ScriptedEngine::generate`]). Its knobs come from the constructor,
//! and a prompt can ask for a stall with the text `stall_ms=N` (so an end-to-end test can stall one
//! request through a real process).

use std::time::{Duration, Instant};

use crate::job::*;

#[derive(Debug, Clone)]
pub struct ScriptedEngine {
    descriptor: ModelDescriptor,
    /// How long prefill blocks the thread.
    pub prefill_stall: Duration,
    /// Busy-spin instead of sleeping during the stall (saturates a core, like a real forward pass).
    pub spin: bool,
    /// Pause between tokens.
    pub token_delay: Duration,
}

impl ScriptedEngine {
    pub fn new(model_id: impl Into<String>) -> Self {
        Self {
            descriptor: ModelDescriptor {
                model_id: model_id.into(),
                params_b: 0.0,
                max_context_tokens: 8192,
                engine: "scripted".into(),
                throughput_tps_estimate: 1000.0,
            },
            prefill_stall: Duration::ZERO,
            spin: false,
            token_delay: Duration::ZERO,
        }
    }

    /// Overrides the context length it announces and enforces.
    pub fn with_max_context(mut self, tokens: u64) -> Self {
        self.descriptor.max_context_tokens = tokens;
        self
    }

    fn prompt_text(prompt: &Prompt) -> String {
        match prompt {
            Prompt::Raw(s) => s.clone(),
            Prompt::Chat(m) => m.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n"),
        }
    }

    fn block(&self, d: Duration, cancel: &CancelToken) {
        let until = Instant::now() + d;
        while Instant::now() < until && !cancel.is_cancelled() {
            if self.spin {
                std::hint::spin_loop();
            } else {
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(10)));
            }
        }
    }
}

/// Reads `key=N` from a prompt.
fn knob(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Engine for ScriptedEngine {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(GenerationEvent),
    ) -> Result<GenerationOutcome, EngineError> {
        let text = Self::prompt_text(&request.prompt);
        let prompt_tokens = text.split_whitespace().count().max(1) as u64;
        if prompt_tokens > self.descriptor.max_context_tokens {
            return Err(EngineError::ContextExceeded {
                prompt_tokens,
                max_context_tokens: self.descriptor.max_context_tokens,
            });
        }
        let started = Instant::now();
        let stall = knob(&text, "stall_ms=").map(Duration::from_millis).unwrap_or(self.prefill_stall);
        let token_delay =
            knob(&text, "token_delay_ms=").map(Duration::from_millis).unwrap_or(self.token_delay);
        on_event(GenerationEvent::PrefillProgress { done: 0, total: prompt_tokens as usize });
        self.block(stall, cancel);
        on_event(GenerationEvent::PrefillProgress {
            done: prompt_tokens as usize,
            total: prompt_tokens as usize,
        });
        let prefill_time = started.elapsed();
        let decode_started = Instant::now();
        let mut emitted = String::new();
        let mut completion_tokens = 0u64;
        let mut stop_reason = StopReason::Length;
        for i in 0..request.max_tokens {
            if cancel.is_cancelled() {
                stop_reason = StopReason::Cancelled;
                break;
            }
            if !token_delay.is_zero() {
                self.block(token_delay, cancel);
            }
            let piece = format!("t{i} ");
            emitted.push_str(&piece);
            completion_tokens += 1;
            if let Some(s) = request.stop.iter().find(|s| emitted.contains(s.as_str())) {
                // Emit only what precedes the stop sequence.
                let cut = emitted.find(s.as_str()).unwrap_or(emitted.len());
                let already = emitted.len() - piece.len();
                if cut > already {
                    on_event(GenerationEvent::Delta(emitted[already..cut].to_string()));
                }
                stop_reason = StopReason::Stop;
                break;
            }
            on_event(GenerationEvent::Delta(piece));
        }
        Ok(GenerationOutcome {
            stop_reason,
            prompt_tokens,
            completion_tokens,
            prefill_time,
            decode_time: decode_started.elapsed(),
            prompt_ids: vec![],
            token_ids: (0..completion_tokens as u32).collect(),
        })
    }
}
