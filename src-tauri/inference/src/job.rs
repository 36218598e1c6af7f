//! The job interface every backend implements and the provider's relay drives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use hearth_protocol::openai::ChatMessage;

/// What the provider announces about the loaded model (hello and heartbeats).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDescriptor {
    /// The id buyers ask for, e.g. `mlx-community/Llama-3.2-3B-Instruct-4bit`.
    pub model_id: String,
    /// Parameters in billions.
    pub params_b: f64,
    /// Longest prompt + completion the engine accepts, in tokens.
    pub max_context_tokens: u64,
    /// Which backend runs it (`cpu`, `mlx`, `loopback`, `scripted`).
    pub engine: String,
    /// A rough generation speed, for the hello's `throughput_tps_estimate`.
    pub throughput_tps_estimate: f64,
}

/// The text to generate from: chat messages (rendered with the model's chat template) or a raw prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Chat(Vec<ChatMessage>),
    Raw(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 1.0 disables nucleus sampling.
    pub top_p: f32,
    /// `None` or 0 disables top-k.
    pub top_k: Option<u32>,
    /// Same seed, same request, same model → same tokens.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 0.0, top_p: 1.0, top_k: None, seed: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    /// Generation stops before any of these strings would be emitted (they are not part of the output).
    pub stop: Vec<String>,
}

/// What a job reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// Prefill progress in prompt tokens.
    PrefillProgress { done: usize, total: usize },
    /// New text, always whole UTF-8 characters.
    Delta(String),
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// EOS or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The job's [`CancelToken`] was cancelled.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOutcome {
    pub stop_reason: StopReason,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub prefill_time: Duration,
    pub decode_time: Duration,
    /// The prompt after templating, as token ids (empty where a backend cannot know them).
    pub prompt_ids: Vec<u32>,
    /// The generated token ids (empty where a backend cannot know them).
    pub token_ids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("the prompt has {prompt_tokens} tokens but the model's context is {max_context_tokens}; shorten the conversation")]
    ContextExceeded { prompt_tokens: u64, max_context_tokens: u64 },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the model is not loaded: {0}")]
    ModelNotLoaded(String),
    #[error("inference failed: {0}")]
    Internal(String),
}

/// Shared flag a job checks once per decode step (and between prefill chunks).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A loaded model that runs generation jobs. Implementations are shared across threads: with more
/// than one slot, several jobs call [`Engine::generate`] at once, each with its own state.
pub trait Engine: Send + Sync + 'static {
    fn descriptor(&self) -> &ModelDescriptor;

    /// Runs one job to completion on the calling thread, reporting through `on_event`.
    /// Cancellation must be honoured within one decode step; a cancelled job returns `Ok` with
    /// [`StopReason::Cancelled`] and the usage so far.
    fn generate(
        &self,
        request: &GenerationRequest,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(GenerationEvent),
    ) -> Result<GenerationOutcome, EngineError>;

    /// How many jobs this engine runs together, when it has a number of its own (the gguf
    /// engine's llama.cpp sequences); `None` when any number may run side by side.
    fn slots(&self) -> Option<usize> {
        None
    }
}
