//! The decode thread: one llama.cpp context per loaded model, owned by a thread that runs every
//! forward pass, for every job at once. Jobs reach it through [`GgufRunner::session`], which gives
//! the shared generation loop its [`ForwardModel`]; the loop itself (sampling, stops,
//! detokenizing, cancellation) stays on the job's own thread, as for every backend.
//!
//! Continuous batching: the context holds one llama.cpp sequence (with its own KV cache) per
//! slot. A session takes a free sequence id and gives it back when its job ends; the thread
//! gathers the steps the open sessions submit and runs them as one batch ([`step_queue`] decides
//! which), so N jobs decoding together cost about one job's weight reads per step instead of N.
//! Memory grows by the KV cache only: the weights are loaded once.
//!
//! A llama.cpp context borrows its model and is not `Sync`, so it lives on its own thread rather
//! than behind a lock in a self-referential struct: the thread holds the model (an `Arc`) and the
//! context borrowing it, and a request channel is the only way in. Dropping the runner closes the
//! channel, and the thread frees the context before the runner's drop returns, so a replaced
//! model's memory is gone at once.
//!
//! [`step_queue`]: crate::gguf::step_queue

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::generate::{ForwardModel, ModelRunner};
use crate::gguf::runtime;
use crate::gguf::step_queue::{StepQueue, Tokens, GATHER_WAIT};
use crate::job::EngineError;

/// How the context is sized.
#[derive(Debug, Clone, Copy)]
pub struct ContextOptions {
    /// Tokens of context (prompt plus completion) each job may use.
    pub n_ctx: u32,
    /// The most tokens one job's forward pass takes (the prefill chunk).
    pub n_batch: u32,
    /// CPU threads for decoding and prefill.
    pub threads: i32,
    /// Jobs that decode together, each in its own llama.cpp sequence.
    pub slots: u32,
}

enum Request {
    /// Run `tokens` of sequence `seq` at positions `pos..`; reply with the logits of the last one.
    Forward(Step),
    /// The job on `seq` is over: forget its cache.
    Release { seq: i32 },
}

struct Step {
    seq: i32,
    tokens: Vec<u32>,
    pos: usize,
    reply: mpsc::SyncSender<Result<Vec<f32>, EngineError>>,
}

impl Tokens for Step {
    fn tokens(&self) -> usize {
        self.tokens.len()
    }
}

/// The sequence ids not in use, and how many jobs hold one.
struct Sequences {
    free: Mutex<Vec<i32>>,
    returned: Condvar,
    /// Jobs between [`GgufRunner::session`] and the end of their job: the decode thread stops
    /// waiting for stragglers once this many steps are queued.
    open: AtomicUsize,
    /// llama.cpp decodes run so far, whatever the number of jobs in each.
    decodes: AtomicU64,
}

/// Loaded weights plus the thread that runs them: the gguf backend's [`ModelRunner`].
pub struct GgufRunner {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    sequences: Arc<Sequences>,
    slots: usize,
}

impl GgufRunner {
    /// Creates the context on a new thread; returns once it is ready (or why it could not be).
    pub fn start(model: Arc<LlamaModel>, options: ContextOptions) -> Result<Self, String> {
        let backend = runtime::backend()?;
        let slots = options.slots.max(1);
        let sequences = Arc::new(Sequences {
            // Popped from the back: sequence 0 is used first.
            free: Mutex::new((0..slots as i32).rev().collect()),
            returned: Condvar::new(),
            open: AtomicUsize::new(0),
            decodes: AtomicU64::new(0),
        });
        // A prefill chunk from every slot at once, so prompts that arrive together are prefilled
        // together (and reach their first token together); llama.cpp runs it in micro-batches of
        // one chunk, so the compute buffers stay one chunk's size.
        let capacity = options.n_batch * slots;
        let (requests, inbox) = mpsc::channel::<Request>();
        let (ready_tx, ready) = mpsc::sync_channel::<Result<(), String>>(1);
        let seen = sequences.clone();
        let thread = std::thread::Builder::new()
            .name("llama.cpp".into())
            .spawn(move || {
                // Without a unified cache, llama.cpp gives each sequence n_ctx / n_seq_max.
                let params = LlamaContextParams::default()
                    .with_n_ctx(NonZeroU32::new(options.n_ctx.saturating_mul(slots)))
                    .with_n_batch(capacity)
                    .with_n_ubatch(options.n_batch)
                    .with_n_seq_max(slots)
                    .with_kv_unified(false)
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
                serve(&mut ctx, &inbox, &seen, capacity as usize);
            })
            .map_err(|e| format!("could not start the llama.cpp thread: {e}"))?;
        match ready.recv() {
            Ok(Ok(())) => {
                Ok(Self { requests: Some(requests), thread: Some(thread), sequences, slots: slots as usize })
            }
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

    /// The llama.cpp decodes run since loading: fewer than the jobs' steps when they were batched.
    pub fn decodes(&self) -> u64 {
        self.sequences.decodes.load(Ordering::Acquire)
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
    /// Takes a free sequence, waiting for one when every slot is busy (the provider offers no
    /// more jobs than slots, so that wait is for callers that ignore [`Self::slots`]).
    fn session(&self) -> Result<Box<dyn ForwardModel + '_>, EngineError> {
        // A poisoned lock only means an earlier job panicked; its sequence was returned on unwind.
        let mut free = self.sequences.free.lock().unwrap_or_else(|p| p.into_inner());
        let seq = loop {
            match free.pop() {
                Some(seq) => break seq,
                None => free = self.sequences.returned.wait(free).unwrap_or_else(|p| p.into_inner()),
            }
        };
        drop(free);
        self.sequences.open.fetch_add(1, Ordering::AcqRel);
        Ok(Box::new(GgufSession { runner: self, seq }))
    }

    fn slots(&self) -> Option<usize> {
        Some(self.slots)
    }
}

/// One job's sequence in the shared context.
struct GgufSession<'a> {
    runner: &'a GgufRunner,
    seq: i32,
}

impl ForwardModel for GgufSession<'_> {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.runner.send(Request::Forward(Step { seq: self.seq, tokens: tokens.to_vec(), pos, reply }))?;
        answer.recv().map_err(|_| EngineError::Internal("the llama.cpp thread has stopped".into()))?
    }
}

impl Drop for GgufSession<'_> {
    fn drop(&mut self) {
        let sequences = &self.runner.sequences;
        sequences.open.fetch_sub(1, Ordering::AcqRel);
        // Sent before the sequence is free again, and the thread reads its requests in order, so
        // the next job on this sequence starts from an empty cache.
        let _ = self.runner.send(Request::Release { seq: self.seq });
        sequences.free.lock().unwrap_or_else(|p| p.into_inner()).push(self.seq);
        sequences.returned.notify_one();
    }
}

/// The decode thread's loop: gather the open jobs' steps, run them as one batch, answer each.
/// Returns when the runner is dropped.
fn serve(
    ctx: &mut LlamaContext<'_>,
    inbox: &mpsc::Receiver<Request>,
    sequences: &Sequences,
    capacity: usize,
) {
    let mut queue = StepQueue::new(capacity);
    let mut batch = LlamaBatch::new(capacity, 1);
    let take = |request: Request, ctx: &mut LlamaContext<'_>, queue: &mut StepQueue<Step>| match request {
        Request::Forward(step) => queue.push(step),
        Request::Release { seq } => {
            ctx.clear_kv_cache_seq(Some(seq as u32), None, None).ok();
        }
    };
    loop {
        if queue.is_empty() {
            match inbox.recv() {
                Ok(request) => take(request, ctx, &mut queue),
                Err(_) => return,
            }
        }
        let deadline = Instant::now() + GATHER_WAIT;
        while !queue.ready(sequences.open.load(Ordering::Acquire)) {
            match inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(request) => take(request, ctx, &mut queue),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if !queue.is_empty() {
            let steps = queue.take_batch();
            let (jobs, t0) = (steps.len(), Instant::now());
            decode(ctx, &mut batch, steps);
            tracing::trace!(
                jobs,
                open = sequences.open.load(Ordering::Acquire),
                took_us = t0.elapsed().as_micros() as u64,
                "decode"
            );
            sequences.decodes.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// One llama.cpp decode over the steps of several sequences; each step gets the logits of its
/// last token, or the error.
fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch<'_>, mut steps: Vec<Step>) {
    // In sequence order: with a cache per sequence, llama.cpp cuts a batch into micro-batches whose
    // sequence ids ascend one by one, so steps in arrival order (say 2, 0, 3, 1) would run as
    // several passes over the weights instead of one (measured: a four-job step cost 3.5× a
    // one-job step that way, against 1.6× in order).
    steps.sort_by_key(|s| s.seq);
    batch.clear();
    let mut placed = Vec::with_capacity(steps.len());
    for step in steps {
        if step.pos == 0 {
            // A new prompt: nothing from an earlier job on this sequence may remain.
            ctx.clear_kv_cache_seq(Some(step.seq as u32), None, None).ok();
        }
        match add(batch, &step) {
            Ok(last) => placed.push((step, last)),
            Err(e) => {
                let _ = step.reply.send(Err(e));
            }
        }
    }
    if placed.is_empty() {
        return;
    }
    match ctx.decode(batch) {
        Ok(()) => {
            for (step, last) in placed {
                let _ = step.reply.send(Ok(ctx.get_logits_ith(last).to_vec()));
            }
        }
        Err(e) => {
            let said = runtime::take_errors().join("; ");
            let why = format!("llama.cpp decode failed: {e} {said}").trim_end().to_string();
            for (step, _) in placed {
                let _ = step.reply.send(Err(EngineError::Internal(why.clone())));
            }
        }
    }
}

/// Appends one step's tokens to the batch, asking for logits of its last; returns that token's
/// index in the batch.
fn add(batch: &mut LlamaBatch<'_>, step: &Step) -> Result<i32, EngineError> {
    let Some(last) = step.tokens.len().checked_sub(1) else {
        return Err(EngineError::Internal("a forward pass needs at least one token".into()));
    };
    // Checked before any is added, so a bad step leaves the batch as it was.
    let tokens = step
        .tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let token = i32::try_from(t).map_err(|_| format!("token id {t} is out of range"))?;
            let pos = i32::try_from(step.pos + i).map_err(|_| "position out of range".to_string())?;
            Ok((LlamaToken(token), pos))
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(EngineError::Internal)?;
    let start = batch.n_tokens();
    for (i, (token, pos)) in tokens.into_iter().enumerate() {
        batch
            .add(token, pos, &[step.seq], i == last)
            .map_err(|e| EngineError::Internal(format!("llama.cpp batch: {e}")))?;
    }
    Ok(start + last as i32)
}
