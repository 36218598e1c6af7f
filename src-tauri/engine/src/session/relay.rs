//! The relay: an `inference_request` becomes an inference job, the job's deltas become
//! `inference_response_chunk` frames (one whole SSE event each, as the buyer will see it), and the
//! job ends with exactly one `inference_response_end`.
//!
//! Every method the handler calls returns at once: admission checks are synchronous, and the job
//! itself runs on a dedicated inference thread with a small async task translating its events into
//! frames. The relay belongs to one session; when the session's connection is lost its jobs are
//! cancelled and recorded as lost (the coordinator drops ends for requests it no longer knows).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_inference::{
    CancelToken, EngineError, GenerationEvent, GenerationOutcome, GenerationRequest, Prompt, SamplingParams,
    StopReason,
};
use hearth_protocol::openai::{ChatCompletionRequest, ChunkBuilder, FinishReason, SSE_DONE};
use hearth_protocol::{
    nak_code, CancelRequest, EndStatus, ErrorBody, InferenceRequest, Nak, Preflight, PreflightAck,
    PreflightReason, ProviderMessage, ResponseChunk, ResponseEnd, Usage,
};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::Instrument;

use super::job_sink::StartedJob;
use super::shared::{SessionFlags, Shared};
use super::writer::Outbox;
use crate::status::{unix_ms, ActiveJob, FinishedJob, JobOutcome};

/// `max_tokens` when the buyer does not say.
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// Events buffered between an inference thread and its relay task before the thread waits.
const JOB_EVENT_BUFFER: usize = 256;
/// A request's chunks queued for the coordinator but not yet written, at most (the reference
/// provider's per-request buffer). A job whose chunks are not being written waits for room: the
/// relay stops taking its events, and the inference thread then blocks on [`JOB_EVENT_BUFFER`].
pub const CHUNK_WINDOW: usize = 256;

struct RunningJob {
    cancel: CancelToken,
    /// Why it was cancelled, when the coordinator said.
    cancel_reason: Mutex<Option<String>>,
    /// The engine it runs on, fixed at admission (a model swap waits for it to end).
    engine: Arc<dyn hearth_inference::Engine>,
}

pub struct Relay {
    shared: Arc<Shared>,
    flags: Arc<SessionFlags>,
    outbox: Outbox,
    jobs: Mutex<HashMap<String, Arc<RunningJob>>>,
    active: watch::Sender<usize>,
    /// Set when the session's connection is gone, with the reason.
    lost: Mutex<Option<String>>,
    /// The session's `assigned_id`, once the hello is accepted.
    assigned_id: Mutex<Option<String>>,
}

impl Relay {
    pub fn new(shared: Arc<Shared>, flags: Arc<SessionFlags>, outbox: Outbox) -> Arc<Self> {
        Arc::new(Self {
            shared,
            flags,
            outbox,
            jobs: Mutex::new(HashMap::new()),
            active: watch::Sender::new(0),
            lost: Mutex::new(None),
            assigned_id: Mutex::new(None),
        })
    }

    /// Records the session id the coordinator assigned, for the ledger rows of this session's jobs.
    pub fn set_assigned_id(&self, id: &str) {
        *self.assigned_id.lock().unwrap() = Some(id.to_string());
    }

    fn assigned_id(&self) -> Option<String> {
        self.assigned_id.lock().unwrap().clone()
    }

    /// Admits or refuses a request, and starts the job when admitted. Never waits.
    pub fn start(self: &Arc<Self>, request: InferenceRequest) {
        let id = request.request_id.clone();
        // The job's span, a child of the session's: every line about this request (its refusal, its
        // task, its inference thread, the ledger's write) carries the request id without restating
        // it. Error level, so a warning under `RUST_LOG=warn` still names its request.
        let span = tracing::error_span!("job", request_id = %id);
        let _entered = span.enter();
        if self.jobs.lock().unwrap().contains_key(&id) {
            self.outbox.send(&ProviderMessage::Nak(Nak {
                in_reply_to: "inference_request".into(),
                error: ErrorBody::new(
                    nak_code::DUPLICATE_REQUEST_ID,
                    format!("request {id} is already running on this provider"),
                ),
            }));
            return;
        }
        if self.flags.is_draining() || self.shared.is_paused() || self.shared.is_swapping() {
            return self.refuse(
                &request,
                EndStatus::ErrorQueueFull,
                "draining",
                "the provider is draining and takes no new work",
                true,
            );
        }
        let parsed = match ChatCompletionRequest::parse(&request.body) {
            Ok(p) => p,
            Err(e) => {
                let what = match &e.param {
                    Some(p) => format!("invalid request body ({p}): {}", e.message),
                    None => format!("invalid request body: {}", e.message),
                };
                return self.refuse(&request, EndStatus::ErrorInternal, "invalid_request", &what, false);
            }
        };
        if !self.shared.try_reserve_slot() {
            return self.refuse(
                &request,
                EndStatus::ErrorQueueFull,
                "queue_full",
                "every slot of this provider is busy",
                true,
            );
        }
        // Checked with the slot held: a model swap waits for held slots, so the engine read here
        // is the one that runs the job (a swap that began meanwhile is refused like a drain).
        if self.shared.is_swapping() {
            self.shared.release_slot();
            return self.refuse(
                &request,
                EndStatus::ErrorQueueFull,
                "draining",
                "the provider is switching models and takes no new work for a moment",
                true,
            );
        }
        let engine = self.shared.engine();
        let served = engine.descriptor().model_id.clone();
        if !hearth_protocol::names_served_model(&parsed.model, &served) {
            self.shared.release_slot();
            let what = format!("this provider serves {served:?}, not {:?}", parsed.model);
            return self.refuse(&request, EndStatus::ErrorModelNotLoaded, "model_not_loaded", &what, true);
        }
        let job =
            Arc::new(RunningJob { cancel: CancelToken::new(), cancel_reason: Mutex::new(None), engine });
        self.jobs.lock().unwrap().insert(id.clone(), job.clone());
        self.active.send_modify(|n| *n += 1);
        let relay = self.clone();
        tokio::spawn(async move { relay.run_job(request, parsed, job).await }.instrument(span.clone()));
    }

    /// `cancel_request`: stop within one decode step. An unknown id still gets a `cancelled` end.
    pub fn cancel(&self, cancel: CancelRequest) {
        let job = self.jobs.lock().unwrap().get(&cancel.request_id).cloned();
        match job {
            Some(job) => {
                *job.cancel_reason.lock().unwrap() = Some(cancel.reason);
                job.cancel.cancel();
            }
            // On an encrypted session the stream flag of a request never seen is unknown (the AAD
            // binds it), and the reference provider stays silent there too.
            None if self.outbox.is_encrypted() => {
                tracing::info!(request_id = %cancel.request_id, "cancel for an unknown request ignored");
            }
            None => {
                self.outbox.send_response(
                    ProviderMessage::InferenceResponseEnd(ResponseEnd {
                        request_id: cancel.request_id,
                        status: EndStatus::Cancelled,
                        chunks_sent: 0,
                        usage: Usage::default(),
                        error: None,
                        retryable: None,
                        terminal_state_ts_unix_ms: Some(unix_ms()),
                    }),
                    false,
                );
            }
        }
    }

    /// `preflight`: can this provider take a prompt of that size now?
    pub fn preflight(&self, preflight: Preflight) -> PreflightAck {
        let max = self.shared.engine().descriptor().max_context_tokens;
        let reason = if self.flags.is_draining() || self.shared.is_paused() || self.shared.is_swapping() {
            Some(PreflightReason::Draining)
        } else if preflight.estimated_tokens > max {
            Some(PreflightReason::ContextExceedsCapacity)
        } else if self.shared.slots_free() == 0 {
            Some(PreflightReason::QueueFull)
        } else {
            None
        };
        PreflightAck {
            request_id: preflight.request_id,
            accepted: reason.is_none(),
            estimated_wait_ms: 0,
            reason,
            max_context_tokens: max,
        }
    }

    pub fn inflight(&self) -> usize {
        *self.active.borrow()
    }

    /// Waits until no job of this session runs, or the deadline passes. Returns the jobs left.
    pub async fn wait_idle(&self, deadline: Duration) -> usize {
        let mut rx = self.active.subscribe();
        let _ = tokio::time::timeout(deadline, rx.wait_for(|n| *n == 0)).await;
        self.inflight()
    }

    pub fn cancel_all(&self, reason: &str) {
        for job in self.jobs.lock().unwrap().values() {
            job.cancel_reason.lock().unwrap().get_or_insert_with(|| reason.to_string());
            job.cancel.cancel();
        }
    }

    /// The session's connection is gone: every job still running is cancelled and will be
    /// recorded as lost with this reason.
    pub fn connection_lost(&self, reason: &str) {
        *self.lost.lock().unwrap() = Some(reason.to_string());
        self.cancel_all(reason);
    }

    fn refuse(
        &self,
        request: &InferenceRequest,
        status: EndStatus,
        code: &str,
        message: &str,
        retryable: bool,
    ) {
        let id = &request.request_id;
        tracing::info!(status = status.as_str(), "refused request: {message}");
        self.outbox.send_response(
            ProviderMessage::InferenceResponseEnd(ResponseEnd {
                request_id: id.to_string(),
                status,
                chunks_sent: 0,
                usage: Usage::default(),
                error: Some(ErrorBody::new(code, message)),
                retryable: Some(retryable),
                terminal_state_ts_unix_ms: Some(unix_ms()),
            }),
            request.stream,
        );
        let now = unix_ms();
        self.shared.status.update(|s| {
            s.finish_job(FinishedJob {
                request_id: id.to_string(),
                assigned_id: self.assigned_id(),
                model: String::new(),
                outcome: JobOutcome::Error(status.as_str().into()),
                status: status.as_str().into(),
                reason: Some(message.to_string()),
                prompt_tokens: 0,
                completion_tokens: 0,
                started_ms: now,
                ended_ms: now,
                prefill_ms: 0,
                decode_ms: 0,
            })
        });
    }

    async fn run_job(
        self: Arc<Self>,
        request: InferenceRequest,
        parsed: ChatCompletionRequest,
        job: Arc<RunningJob>,
    ) {
        let started = Instant::now();
        let started_ms = unix_ms();
        let id = request.request_id.clone();
        let model = parsed.model.clone();
        self.shared.status.update(|s| {
            s.active_jobs.push(ActiveJob {
                request_id: id.clone(),
                model: model.clone(),
                stream: request.stream,
                started_ms,
                completion_tokens: 0,
                tokens_per_s: None,
            })
        });
        if let Some(sink) = &self.shared.job_sink {
            sink.job_started(&StartedJob {
                request_id: id.clone(),
                assigned_id: self.assigned_id(),
                model: model.clone(),
                started_ms,
            });
        }
        let window = Arc::new(Semaphore::new(CHUNK_WINDOW));
        let mut out = ChunkSender {
            relay: &self,
            request_id: &id,
            seq: 0,
            text: String::new(),
            window: window.clone(),
            stream: request.stream,
        };
        let builder = ChunkBuilder::new(format!("chatcmpl-{id}"), started_ms / 1000, &model);
        if request.stream {
            out.send(builder.role());
        }

        let result = self
            .generate(&parsed, &job, &window, |event| match event {
                GenerationEvent::Delta(text) if request.stream => out.send(builder.content(&text)),
                GenerationEvent::Delta(text) => out.collected(&text),
                GenerationEvent::PrefillProgress { .. } => {}
            })
            .await;

        let (status, usage, error, outcome) = match result {
            Ok(outcome) if outcome.stop_reason == StopReason::Cancelled => {
                let usage = Usage::new(outcome.prompt_tokens, outcome.completion_tokens);
                (EndStatus::Cancelled, usage, None, Some(outcome))
            }
            Ok(outcome) => {
                let reason = if outcome.stop_reason == StopReason::Length {
                    FinishReason::Length
                } else {
                    FinishReason::Stop
                };
                let usage = Usage::new(outcome.prompt_tokens, outcome.completion_tokens);
                if request.stream {
                    out.send(builder.finish(reason));
                    out.send(builder.usage(&usage));
                    out.send(SSE_DONE.to_string());
                } else {
                    let text = std::mem::take(&mut out.text);
                    out.send(builder.completion(&text, reason, &usage));
                }
                (EndStatus::Complete, usage, None, Some(outcome))
            }
            Err(e) => {
                let (status, code) = match &e {
                    EngineError::ContextExceeded { .. } => {
                        (EndStatus::ErrorContextExceeded, "context_exceeded")
                    }
                    EngineError::InvalidRequest(_) => (EndStatus::ErrorInternal, "invalid_request"),
                    EngineError::ModelNotLoaded(_) => (EndStatus::ErrorModelNotLoaded, "model_not_loaded"),
                    EngineError::Internal(_) => (EndStatus::ErrorInternal, "internal_error"),
                };
                (status, Usage::default(), Some(ErrorBody::new(code, e.to_string())), None)
            }
        };
        let chunks_sent = out.seq;
        let end = ProviderMessage::InferenceResponseEnd(ResponseEnd {
            request_id: id.clone(),
            status,
            chunks_sent,
            usage,
            retryable: error.as_ref().map(|_| status != EndStatus::ErrorInternal),
            error: error.clone(),
            terminal_state_ts_unix_ms: Some(unix_ms()),
        });

        // The outcome is settled (and published) just before the end frame is handed over, so
        // whoever sees the end — the coordinator, a buyer, a test — finds the job already in the
        // status and on its way to the ledger. Handing a frame over only queues it for the writer;
        // a closed queue, checked here, is the same signal a failed hand-over would give.
        let lost = self
            .lost
            .lock()
            .unwrap()
            .clone()
            .or_else(|| self.outbox.is_closed().then(|| "connection closed".into()));
        let cancel_reason = job.cancel_reason.lock().unwrap().clone();
        let (job_outcome, reason) = match (&lost, status) {
            (Some(why), _) => {
                (JobOutcome::Lost, Some(format!("connection to the coordinator lost mid-request: {why}")))
            }
            (None, EndStatus::Complete) => (JobOutcome::Complete, None),
            (None, EndStatus::Cancelled) => {
                (JobOutcome::Cancelled, Some(format!("cancelled: {}", cancel_reason.unwrap_or_default())))
            }
            (None, _) => (JobOutcome::Error(status.as_str().into()), error.map(|e| e.message)),
        };
        if let (Some(o), JobOutcome::Complete) = (&outcome, &job_outcome) {
            self.shared.metrics.lock().unwrap().record(started.elapsed(), o.completion_tokens, o.decode_time);
        }
        let finished = FinishedJob {
            request_id: id.clone(),
            assigned_id: self.assigned_id(),
            model,
            outcome: job_outcome,
            status: status.as_str().into(),
            reason,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            started_ms,
            ended_ms: unix_ms(),
            prefill_ms: outcome.as_ref().map_or(0, |o| o.prefill_time.as_millis() as u64),
            decode_ms: outcome.as_ref().map_or(0, |o| o.decode_time.as_millis() as u64),
        };
        if let Some(sink) = &self.shared.job_sink {
            sink.job_finished(&finished);
        }
        self.shared.status.update(|s| s.finish_job(finished));

        self.jobs.lock().unwrap().remove(&id);
        // Free the slot and announce it (priority lane) before the end frame: a buyer who sends the
        // next request the moment this one ends must find this provider ready at the coordinator,
        // not still busy until the coalesced state report catches up.
        self.shared.release_slot();
        if lost.is_none() {
            self.shared.announce_state(&self.flags, &self.outbox, None);
        }
        if !self.outbox.send_response(end, request.stream) && lost.is_none() {
            tracing::warn!("the connection closed as the end frame was handed over");
        }
        self.active.send_modify(|n| *n = n.saturating_sub(1));
        tracing::info!(
            status = status.as_str(),
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request ended"
        );
    }

    /// Runs the engine on its own thread and feeds its events to `on_event` on this task.
    async fn generate(
        &self,
        parsed: &ChatCompletionRequest,
        job: &RunningJob,
        window: &Semaphore,
        mut on_event: impl FnMut(GenerationEvent),
    ) -> Result<GenerationOutcome, EngineError> {
        enum JobMsg {
            Event(GenerationEvent),
            Done(Result<GenerationOutcome, EngineError>),
        }
        let request = GenerationRequest {
            prompt: Prompt::Chat(parsed.messages.clone()),
            max_tokens: parsed.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            sampling: SamplingParams {
                temperature: parsed.temperature.unwrap_or(0.0),
                top_p: parsed.top_p.unwrap_or(1.0),
                top_k: parsed.top_k,
                seed: parsed.seed,
            },
            stop: parsed.stop.clone(),
        };
        let (tx, mut rx) = mpsc::channel(JOB_EVENT_BUFFER);
        let engine = job.engine.clone();
        let cancel = job.cancel.clone();
        // The job's span follows it onto the inference thread, so the engine's own lines name the
        // request too.
        let span = tracing::Span::current();
        let spawned = std::thread::Builder::new().name("hearth-inference".into()).spawn(move || {
            let _entered = span.enter();
            let events = tx.clone();
            let result = engine.generate(&request, &cancel, &mut |event| {
                // A closed channel means the relay task is gone; the cancel token stops the job.
                let _ = events.blocking_send(JobMsg::Event(event));
            });
            let _ = tx.blocking_send(JobMsg::Done(result));
        });
        if let Err(e) = spawned {
            return Err(EngineError::Internal(format!("cannot start an inference thread: {e}")));
        }
        let mut tokens = 0u64;
        let decode_started = Instant::now();
        let mut last_status = Instant::now();
        loop {
            match rx.recv().await {
                Some(JobMsg::Event(event)) => {
                    if matches!(event, GenerationEvent::Delta(_)) {
                        // Room in the window first (the permit goes back at once: the chunk takes
                        // its own, see ChunkSender), so a stalled writer holds the job here.
                        drop(window.acquire().await);
                        tokens += 1;
                        if last_status.elapsed() >= Duration::from_millis(250) {
                            last_status = Instant::now();
                            self.report_progress(job, tokens, decode_started.elapsed());
                        }
                    }
                    on_event(event);
                }
                Some(JobMsg::Done(result)) => return result,
                None => {
                    return Err(EngineError::Internal("the inference thread stopped unexpectedly".into()))
                }
            }
        }
    }

    fn report_progress(&self, job: &RunningJob, tokens: u64, elapsed: Duration) {
        let id = {
            let jobs = self.jobs.lock().unwrap();
            jobs.iter().find(|(_, j)| std::ptr::eq(Arc::as_ptr(j), job)).map(|(id, _)| id.clone())
        };
        if let Some(id) = id {
            self.shared.status.update(|s| {
                if let Some(a) = s.active_jobs.iter_mut().find(|a| a.request_id == id) {
                    a.completion_tokens = tokens;
                    a.tokens_per_s = Some(tokens as f64 / elapsed.as_secs_f64().max(1e-6));
                }
            });
        }
    }
}

/// Numbers a request's chunks without gaps and collects non-streamed text.
struct ChunkSender<'a> {
    relay: &'a Relay,
    request_id: &'a str,
    seq: u64,
    /// The whole answer, for a non-streamed request.
    text: String,
    /// This request's places for unwritten chunks ([`CHUNK_WINDOW`]).
    window: Arc<Semaphore>,
    /// The request's stream flag (bound into a sealed chunk's AAD).
    stream: bool,
}

impl ChunkSender<'_> {
    fn send(&mut self, data: String) {
        let chunk = ResponseChunk { request_id: self.request_id.to_string(), seq: self.seq, data };
        // Deltas find a place (generate waited for one); the few closing chunks may go beyond.
        let place = self.window.clone().try_acquire_owned().ok();
        let message = ProviderMessage::InferenceResponseChunk(chunk);
        if self.relay.outbox.send_in_window(message, self.stream, place) {
            self.seq += 1;
        }
    }

    fn collected(&mut self, text: &str) {
        self.text.push_str(text);
    }
}
