//! The generation loop every local backend shares: encode → chunked prefill → sample/decode →
//! detokenize → stop sequences → usage.
//!
//! A backend only supplies tensor math through [`ForwardModel`] (one per job, owning that job's KV
//! cache) and a [`ModelRunner`] that makes them; [`LocalEngine`] turns that into an [`Engine`].
//! Cancellation is checked before every prefill chunk and every decode step, so a cancelled job
//! stops within one forward pass.

use std::time::Instant;

use crate::detok::IncrementalDecoder;
use crate::job::*;
use crate::sampling::Sampler;
use crate::stop::{StopCheck, StopMatcher};
use crate::text::TextCodec;

/// Prompt tokens per prefill forward pass: big enough to use the matmul units well, small enough
/// that progress events and cancellation checks come every fraction of a second.
pub const DEFAULT_PREFILL_CHUNK: usize = 512;

/// One job's view of a model: the weights plus this job's KV cache.
pub trait ForwardModel {
    /// Runs `tokens` at positions `pos..pos + tokens.len()` — the cache already holds `0..pos` — and
    /// returns the logits (vocabulary-sized) of the last of them.
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, EngineError>;
}

/// Loaded weights that can start jobs. Shared across threads; each job gets its own session.
pub trait ModelRunner: Send + Sync + 'static {
    fn session(&self) -> Result<Box<dyn ForwardModel + '_>, EngineError>;

    /// Sessions that run together (see [`Engine::slots`]).
    fn slots(&self) -> Option<usize> {
        None
    }
}

#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    pub prefill_chunk: usize,
    /// Prompt plus completion tokens the model may hold.
    pub max_context: usize,
}

/// Runs one request to completion on the calling thread.
pub fn run_generation(
    codec: &TextCodec,
    model: &mut dyn ForwardModel,
    request: &GenerationRequest,
    options: GenerateOptions,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(GenerationEvent),
) -> Result<GenerationOutcome, EngineError> {
    let started = Instant::now();
    let prompt_ids = codec.encode_prompt(&request.prompt)?;
    if prompt_ids.is_empty() {
        return Err(EngineError::InvalidRequest("the prompt is empty".into()));
    }
    let total = prompt_ids.len();
    // The prompt must leave room for at least one generated token.
    if total >= options.max_context {
        return Err(EngineError::ContextExceeded {
            prompt_tokens: total as u64,
            max_context_tokens: options.max_context as u64,
        });
    }
    let budget = (request.max_tokens as usize).min(options.max_context - total);
    let mut outcome = GenerationOutcome {
        stop_reason: StopReason::Length,
        prompt_tokens: total as u64,
        completion_tokens: 0,
        prefill_time: Default::default(),
        decode_time: Default::default(),
        prompt_ids: prompt_ids.clone(),
        token_ids: Vec::new(),
    };

    // Prefill.
    on_event(GenerationEvent::PrefillProgress { done: 0, total });
    let chunk = options.prefill_chunk.max(1);
    let mut logits = Vec::new();
    let mut pos = 0;
    while pos < total {
        if cancel.is_cancelled() {
            outcome.stop_reason = StopReason::Cancelled;
            outcome.prefill_time = started.elapsed();
            return Ok(outcome);
        }
        let end = (pos + chunk).min(total);
        logits = model.forward(&prompt_ids[pos..end], pos)?;
        pos = end;
        on_event(GenerationEvent::PrefillProgress { done: pos, total });
    }
    outcome.prefill_time = started.elapsed();

    // Decode.
    let decode_started = Instant::now();
    let mut sampler = Sampler::new(&request.sampling);
    let mut detok = IncrementalDecoder::new();
    let mut stops = StopMatcher::new(&request.stop);
    let emit = |text: String, on_event: &mut dyn FnMut(GenerationEvent)| {
        if !text.is_empty() {
            on_event(GenerationEvent::Delta(text));
        }
    };
    let mut finished_by_stop = false;
    while outcome.token_ids.len() < budget {
        if cancel.is_cancelled() {
            outcome.stop_reason = StopReason::Cancelled;
            break;
        }
        if !outcome.token_ids.is_empty() {
            let last = *outcome.token_ids.last().unwrap_or(&0);
            logits = model.forward(&[last], pos)?;
            pos += 1;
        }
        let token = sampler.sample(&logits);
        if codec.is_eos(token) {
            outcome.stop_reason = StopReason::Stop;
            break;
        }
        outcome.token_ids.push(token);
        let text = detok.push(token, codec)?;
        match stops.push(&text) {
            StopCheck::Continue(t) => emit(t, on_event),
            StopCheck::Stop(t) => {
                emit(t, on_event);
                outcome.stop_reason = StopReason::Stop;
                finished_by_stop = true;
                break;
            }
        }
    }
    if !finished_by_stop {
        // Release held-back text: a trailing partial character, or a suffix that only looked like
        // the start of a stop sequence.
        let rest = detok.flush(codec)?;
        match stops.push(&rest) {
            StopCheck::Continue(t) => {
                emit(t, on_event);
                emit(stops.flush(), on_event);
            }
            StopCheck::Stop(t) => {
                emit(t, on_event);
                if outcome.stop_reason != StopReason::Cancelled {
                    outcome.stop_reason = StopReason::Stop;
                }
            }
        }
    }
    outcome.completion_tokens = outcome.token_ids.len() as u64;
    outcome.decode_time = decode_started.elapsed();
    Ok(outcome)
}

/// An [`Engine`] made of a [`TextCodec`] and a [`ModelRunner`]: what every local backend is.
pub struct LocalEngine<R: ModelRunner> {
    descriptor: ModelDescriptor,
    codec: TextCodec,
    runner: R,
    options: GenerateOptions,
}

impl<R: ModelRunner> LocalEngine<R> {
    pub fn new(descriptor: ModelDescriptor, codec: TextCodec, runner: R, options: GenerateOptions) -> Self {
        Self { descriptor, codec, runner, options }
    }

    pub fn codec(&self) -> &TextCodec {
        &self.codec
    }

    /// The codec, to change before the engine is shared (e.g. which tokens end generation).
    pub fn codec_mut(&mut self) -> &mut TextCodec {
        &mut self.codec
    }

    pub fn runner(&self) -> &R {
        &self.runner
    }

    pub fn options(&self) -> GenerateOptions {
        self.options
    }
}

impl<R: ModelRunner> Engine for LocalEngine<R> {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(GenerationEvent),
    ) -> Result<GenerationOutcome, EngineError> {
        let mut session = self.runner.session()?;
        run_generation(&self.codec, session.as_mut(), request, self.options, cancel, on_event)
    }

    fn slots(&self) -> Option<usize> {
        self.runner.slots()
    }
}
