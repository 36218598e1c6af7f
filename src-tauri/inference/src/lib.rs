//! Hearth's inference layer.
//!
//! An [`Engine`] owns a loaded model and runs generation jobs. A job runs to completion on the thread
//! that calls [`Engine::generate`] — always a dedicated inference thread, never an async runtime
//! worker — and reports what happens through a callback: prefill progress, then text deltas. It ends
//! with a [`GenerationOutcome`] (finish reason and usage) or an [`EngineError`].
//!
//! Backends live in their own modules; everything that is not tensor math (templates, sampling, stop
//! sequences, detokenizing) is shared:
//! - [`model_dir`] reads and validates mlx-community model directories; [`text`] owns tokenizer,
//!   chat template ([`template`]) and EOS ids; [`sampling`], [`detok`] and [`stop`] are the pieces of
//!   the loop in [`generate`], which every local backend runs through [`generate::ForwardModel`].
//! - Backends: `cpu` (candle, behind the default `cpu` feature; model directories), `gguf`
//!   (llama.cpp, behind the default `gguf` feature; GGUF files, Metal on macOS), [`loopback`] (a
//!   local OpenAI-compatible server), `mlx` (macOS; elsewhere with the `mlx` feature, on MLX's
//!   CPU build), [`scripted`] (test double).
//! - [`spec`] says what to load ([`LoadSpec`]: a model and its [`Backend`]); [`load`] picks and
//!   loads one ([`load_engine`]) and inspects models ([`inspect_model`], into a [`ModelInfo`] from
//!   [`model_info`]); [`bench`] measures one.

pub mod bench;
#[cfg(feature = "cpu")]
pub mod cpu;
pub mod detok;
pub mod error;
pub mod generate;
#[cfg(feature = "gguf")]
pub mod gguf;
pub mod job;
pub mod load;
pub mod loopback;
#[cfg(any(target_os = "macos", feature = "mlx"))]
pub mod mlx;
pub mod model_dir;
pub mod model_info;
pub mod sampling;
pub mod scripted;
pub mod spec;
pub mod stop;
pub mod template;
pub mod text;

pub use bench::{bench_model, bench_parallel, BenchResult};
pub use error::LoadError;
pub use job::{
    CancelToken, Engine, EngineError, GenerationEvent, GenerationOutcome, GenerationRequest, ModelDescriptor,
    Prompt, SamplingParams, StopReason,
};
pub use load::{inspect_model, load_engine};
pub use model_info::{ModelFormat, ModelInfo};
pub use spec::{Backend, LoadSpec};
