//! The decode thread: one llama.cpp context (and so one KV cache) per loaded model, owned by a
//! thread that runs every forward pass. Jobs reach it through [`GgufRunner::session`], which
//! gives the shared generation loop its [`ForwardModel`]; the loop itself (sampling, stops,
//! detokenizing, cancellation) stays on the job's own thread, as for every backend.
//!
//! A llama.cpp context borrows its model and is not `Sync`, so it lives on its own thread rather
//! than behind a lock in a self-referential struct: the thread holds the model (an `Arc`) and the
//! context borrowing it, and a request channel is the only way in. One job runs at a time (the
//! session holds the turn); dropping the runner closes the channel, and the thread frees the
//! context before the runner's drop returns, so a replaced model's memory is gone at once.

use std::num::NonZeroU32;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::generate::{ForwardModel, ModelRunner};
use crate::gguf::runtime;
use crate::job::EngineError;

/// How the context is sized.
#[derive(Debug, Clone, Copy)]
pub struct ContextOptions {
    /// Tokens of context (prompt plus completion) a job may use.
    pub n_ctx: u32,
    /// The most tokens one forward pass takes (the prefill chunk).
    pub n_batch: u32,
    /// CPU threads for decoding and prefill.
    pub threads: i32,
}

/// The sequence id every job uses: jobs take turns, each starting from an empty cache.
const SEQ: i32 = 0;

enum Request {
    /// Run `tokens` at positions `pos..`; reply with the logits of the last one.
    Forward { tokens: Vec<u32>, pos: usize, reply: mpsc::SyncSender<Result<Vec<f32>, EngineError>> },
    /// The job is over: forget its cache.
    Release,
}

/// Loaded weights plus the thread that runs them: the gguf backend's [`ModelRunner`].
pub struct GgufRunner {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Held by the running job's session.
    turn: Mutex<()>,
}

impl GgufRunner {
    /// Creates the context on a new thread; returns once it is ready (or why it could not be).
    pub fn start(model: Arc<LlamaModel>, options: ContextOptions) -> Result<Self, String> {
        let backend = runtime::backend()?;
        let (requests, inbox) = mpsc::channel::<Request>();
        let (ready_tx, ready) = mpsc::sync_channel::<Result<(), String>>(1);
        let thread = std::thread::Builder::new()
            .name("llama.cpp".into())
            .spawn(move || {
                let params = LlamaContextParams::default()
                    .with_n_ctx(NonZeroU32::new(options.n_ctx))
                    .with_n_batch(options.n_batch)
                    .with_n_ubatch(options.n_batch)
                    .with_n_seq_max(1)
                    .with_n_threads(options.threads)
                    .with_n_threads_batch(options.threads);
                let mut ctx = match model.new_context(backend, params) {
                    Ok(ctx) => ctx,
                    Err(e) => {
                        let said = runtime::take_errors().join("; ");
                        let _ =
                            ready_tx.send(Err(format!("llama.cpp could not create a context: {e} {said}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut batch = LlamaBatch::new(options.n_batch as usize, 1);
                while let Ok(request) = inbox.recv() {
                    match request {
                        Request::Forward { tokens, pos, reply } => {
                            let _ = reply.send(forward(&mut ctx, &mut batch, &tokens, pos));
                        }
                        Request::Release => {
                            ctx.clear_kv_cache_seq(Some(SEQ as u32), None, None).ok();
                        }
                    }
                }
            })
            .map_err(|e| format!("could not start the llama.cpp thread: {e}"))?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Self { requests: Some(requests), thread: Some(thread), turn: Mutex::new(()) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err("the llama.cpp thread stopped while creating its context".into())
            }
        }
    }

    fn send(&self, request: Request) -> Result<(), EngineError> {
        self.requests
            .as_ref()
            .and_then(|r| r.send(request).ok())
            .ok_or_else(|| EngineError::Internal("the llama.cpp thread has stopped".into()))
    }
}

impl Drop for GgufRunner {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl ModelRunner for GgufRunner {
    fn session(&self) -> Result<Box<dyn ForwardModel + '_>, EngineError> {
        // A poisoned lock only means an earlier job panicked; its cache was released on unwind.
        let turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Box::new(GgufSession { runner: self, _turn: turn }))
    }
}

/// One job's use of the context.
struct GgufSession<'a> {
    runner: &'a GgufRunner,
    _turn: MutexGuard<'a, ()>,
}

impl ForwardModel for GgufSession<'_> {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.runner.send(Request::Forward { tokens: tokens.to_vec(), pos, reply })?;
        answer.recv().map_err(|_| EngineError::Internal("the llama.cpp thread has stopped".into()))?
    }
}

impl Drop for GgufSession<'_> {
    fn drop(&mut self) {
        // Sent before the turn is released (fields drop after this), so the next job starts from
        // an empty cache.
        let _ = self.runner.send(Request::Release);
    }
}

/// One forward pass over one sequence.
fn forward(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    tokens: &[u32],
    pos: usize,
) -> Result<Vec<f32>, EngineError> {
    if tokens.is_empty() {
        return Err(EngineError::Internal("a forward pass needs at least one token".into()));
    }
    if pos == 0 {
        // A new prompt: nothing from an earlier job may remain.
        ctx.clear_kv_cache_seq(Some(SEQ as u32), None, None).ok();
    }
    batch.clear();
    let last = tokens.len() - 1;
    for (i, &t) in tokens.iter().enumerate() {
        let token = LlamaToken(
            i32::try_from(t).map_err(|_| EngineError::Internal(format!("token id {t} is out of range")))?,
        );
        let p = i32::try_from(pos + i).map_err(|_| EngineError::Internal("position out of range".into()))?;
        batch
            .add(token, p, &[SEQ], i == last)
            .map_err(|e| EngineError::Internal(format!("llama.cpp batch: {e}")))?;
    }
    ctx.decode(batch).map_err(|e| {
        let said = runtime::take_errors().join("; ");
        EngineError::Internal(format!("llama.cpp decode failed: {e} {said}").trim_end().to_string())
    })?;
    Ok(ctx.get_logits_ith(last as i32).to_vec())
}
