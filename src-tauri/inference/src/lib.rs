//! Hearth's inference layer.
//!
//! An [`Engine`] owns a loaded model and runs generation jobs. A job runs to completion on the thread
//! that calls [`Engine::generate`] — always a dedicated inference thread, never an async runtime
//! worker — and reports what happens through a callback: prefill progress, then text deltas. It ends
//! with a [`GenerationOutcome`] (finish reason and usage) or an [`EngineError`].
//!
//! Backends live in their own modules; everything that is not tensor math (templates, sampling, stop
//! sequences, detokenizing) is shared.

pub mod job;
pub mod scripted;

pub use job::{
    CancelToken, Engine, EngineError, GenerationEvent, GenerationOutcome, GenerationRequest, ModelDescriptor,
    Prompt, SamplingParams, StopReason,
};
