//! The `loopback` backend: forwards jobs to a local OpenAI-compatible server (Ollama, LM Studio,
//! `mlx_lm.server`, llama-server) and streams its deltas back.
//!
//! Each job runs on its calling (dedicated) thread with a private current-thread Tokio runtime and
//! HTTP client, so it never touches the application's runtime; driving the stream asynchronously
//! lets a cancellation interrupt even a long server-side prefill instead of waiting for the next
//! byte. Stop sequences are sent to the server and also enforced here, since servers differ.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::job::*;
use crate::stop::{StopCheck, StopMatcher};

/// How often a waiting job looks at its cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(20);
/// A server silent for this long mid-stream is considered stuck.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct LoopbackEngine {
    descriptor: ModelDescriptor,
    base_url: String,
    upstream_model: String,
}

impl LoopbackEngine {
    /// `base_url` is the API root, e.g. `http://127.0.0.1:8080/v1`; `upstream_model` is the name the
    /// server knows the model by.
    pub fn new(base_url: &str, upstream_model: &str, descriptor: ModelDescriptor) -> Self {
        Self {
            descriptor,
            base_url: base_url.trim_end_matches('/').to_string(),
            upstream_model: upstream_model.to_string(),
        }
    }

    /// Asks the server which models it serves (`GET {base}/models`).
    pub fn list_models(base_url: &str) -> Result<Vec<String>, EngineError> {
        let url = format!("{}/models", base_url.trim_end_matches('/'));
        runtime()?.block_on(async {
            let resp = client()?.get(&url).send().await.map_err(|e| connect_error(&url, &e))?;
            let resp = check_status(&url, resp).await?;
            let v: Value =
                resp.json().await.map_err(|e| EngineError::Internal(format!("{url}: bad JSON: {e}")))?;
            Ok(v["data"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect())
                .unwrap_or_default())
        })
    }

    fn body(&self, request: &GenerationRequest) -> (String, Value) {
        let mut body = match &request.prompt {
            Prompt::Chat(messages) => json!({ "messages": messages }),
            Prompt::Raw(text) => json!({ "prompt": text }),
        };
        let path = if matches!(request.prompt, Prompt::Chat(_)) { "chat/completions" } else { "completions" };
        let s = &request.sampling;
        body["model"] = json!(self.upstream_model);
        body["max_tokens"] = json!(request.max_tokens);
        body["temperature"] = json!(s.temperature);
        body["top_p"] = json!(s.top_p);
        if let Some(k) = s.top_k.filter(|&k| k > 0) {
            body["top_k"] = json!(k);
        }
        if let Some(seed) = s.seed {
            body["seed"] = json!(seed);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        body["stream"] = json!(true);
        body["stream_options"] = json!({ "include_usage": true });
        (format!("{}/{path}", self.base_url), body)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, EngineError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::Internal(format!("cannot start the loopback I/O runtime: {e}")))
}

fn client() -> Result<reqwest::Client, EngineError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| EngineError::Internal(format!("cannot build the HTTP client: {e}")))
}

fn connect_error(url: &str, e: &reqwest::Error) -> EngineError {
    if e.is_connect() || e.is_timeout() {
        EngineError::ModelNotLoaded(format!(
            "the local model server at {url} is not reachable ({e}); is it running?"
        ))
    } else {
        EngineError::Internal(format!("request to {url} failed: {e}"))
    }
}

async fn check_status(url: &str, resp: reqwest::Response) -> Result<reqwest::Response, EngineError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().or(v["error"].as_str()).map(str::to_string))
        .unwrap_or(text);
    let message = format!("{url} answered {status}: {}", message.trim());
    Err(match status.as_u16() {
        404 => EngineError::ModelNotLoaded(message),
        400..=499 => EngineError::InvalidRequest(message),
        _ => EngineError::Internal(message),
    })
}

impl Engine for LoopbackEngine {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(GenerationEvent),
    ) -> Result<GenerationOutcome, EngineError> {
        let (url, body) = self.body(request);
        let started = Instant::now();
        let rt = runtime()?;
        rt.block_on(stream_job(&url, &body, request, cancel, on_event, started))
    }
}

fn parse_progress(s: &str) -> Option<(usize, usize)> {
    let (a, b) = s.trim().split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Waits for `fut` while watching the cancel token; `None` means cancelled.
async fn cancellable<T>(cancel: &CancelToken, fut: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tokio::time::sleep(CANCEL_POLL) => if cancel.is_cancelled() { return None },
        }
    }
}

async fn stream_job(
    url: &str,
    body: &Value,
    request: &GenerationRequest,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(GenerationEvent),
    started: Instant,
) -> Result<GenerationOutcome, EngineError> {
    let prompt_chars = match &request.prompt {
        Prompt::Raw(t) => t.len(),
        Prompt::Chat(m) => m.iter().map(|m| m.content.len()).sum(),
    };
    // The server tokenizes; until its usage arrives, progress is an estimate (~4 bytes a token).
    let estimate = (prompt_chars / 4).max(1);
    on_event(GenerationEvent::PrefillProgress { done: 0, total: estimate });
    let mut outcome = GenerationOutcome {
        stop_reason: StopReason::Length,
        prompt_tokens: 0,
        completion_tokens: 0,
        prefill_time: Duration::ZERO,
        decode_time: Duration::ZERO,
        prompt_ids: vec![],
        token_ids: vec![],
    };
    let client = client()?;
    let send = client.post(url).json(body).send();
    let resp = match cancellable(cancel, send).await {
        None => {
            outcome.stop_reason = StopReason::Cancelled;
            outcome.prefill_time = started.elapsed();
            return Ok(outcome);
        }
        Some(r) => r.map_err(|e| connect_error(url, &e))?,
    };
    let mut resp = check_status(url, resp).await?;
    let mut stops = StopMatcher::new(&request.stop);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunks = 0u64;
    let mut first_at: Option<Instant> = None;
    let mut usage: Option<(u64, u64)> = None;
    let mut finish: Option<String> = None;
    let mut stopped_locally = false;
    'read: loop {
        let next = tokio::time::timeout(IDLE_TIMEOUT, resp.chunk());
        let chunk = match cancellable(cancel, next).await {
            None => {
                outcome.stop_reason = StopReason::Cancelled;
                break;
            }
            Some(Err(_)) => {
                return Err(EngineError::Internal(format!("{url} stopped responding mid-stream")))
            }
            Some(Ok(Err(e))) => return Err(EngineError::Internal(format!("stream from {url} broke: {e}"))),
            Some(Ok(Ok(None))) => break,
            Some(Ok(Ok(Some(c)))) => c,
        };
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            // mlx_lm.server reports prefill progress as SSE comments (`: keepalive 26/27`).
            if let Some((done, total)) = line.strip_prefix(": keepalive").and_then(parse_progress) {
                on_event(GenerationEvent::PrefillProgress { done, total });
                continue;
            }
            let Some(data) = line.strip_prefix("data:") else { continue };
            let data = data.trim();
            if data == "[DONE]" {
                break 'read;
            }
            let v: Value = match serde_json::from_str(data) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if let Some(err) = v.get("error") {
                return Err(EngineError::Internal(format!(
                    "{url}: {}",
                    err["message"].as_str().unwrap_or("error")
                )));
            }
            if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                usage = Some((
                    u["prompt_tokens"].as_u64().unwrap_or(0),
                    u["completion_tokens"].as_u64().unwrap_or(0),
                ));
            }
            let Some(choice) = v["choices"].get(0) else { continue };
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
            let text = choice["delta"]["content"].as_str().or(choice["text"].as_str()).unwrap_or_default();
            if text.is_empty() || stopped_locally {
                continue;
            }
            if first_at.is_none() {
                first_at = Some(Instant::now());
                on_event(GenerationEvent::PrefillProgress { done: estimate, total: estimate });
            }
            chunks += 1;
            match stops.push(text) {
                StopCheck::Continue(t) if !t.is_empty() => on_event(GenerationEvent::Delta(t)),
                StopCheck::Continue(_) => {}
                StopCheck::Stop(t) => {
                    if !t.is_empty() {
                        on_event(GenerationEvent::Delta(t));
                    }
                    stopped_locally = true;
                    // Like a local engine: stop at once; the usage chunk is not worth waiting for.
                    break 'read;
                }
            }
        }
    }
    if outcome.stop_reason != StopReason::Cancelled && !stopped_locally {
        let rest = stops.flush();
        if !rest.is_empty() {
            on_event(GenerationEvent::Delta(rest));
        }
    }
    let first = first_at.unwrap_or_else(Instant::now);
    outcome.prefill_time = first.duration_since(started);
    outcome.decode_time = first.elapsed();
    let (p, c) = usage.unwrap_or((estimate as u64, chunks));
    outcome.prompt_tokens = p;
    outcome.completion_tokens = c.max(chunks.min(1));
    if outcome.stop_reason != StopReason::Cancelled {
        outcome.stop_reason = if stopped_locally || finish.as_deref() == Some("stop") {
            StopReason::Stop
        } else {
            StopReason::Length
        };
    }
    Ok(outcome)
}
