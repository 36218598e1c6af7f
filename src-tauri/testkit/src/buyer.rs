//! What a buyer got back from the pool's `/v1/chat/completions`, streamed or not, reduced to what
//! tests judge: did the answer complete, which job served it, which error ended it.

use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

/// How long [`start_stream`] waits for a stream's first event.
pub const FIRST_EVENT_WAIT: Duration = Duration::from_secs(10);

/// A buyer's result. `complete` means an HTTP 200, no error event, a `finish_reason`, and for a
/// stream the closing `[DONE]`: an answer the buyer can trust as whole.
#[derive(Debug, Clone)]
pub struct BuyerResult {
    /// The HTTP status, or 0 when the request never got an answer (then `error_code` says why).
    pub status: u16,
    /// The `req-…` id of the job (from the completion id), when a provider started it.
    pub request_id: Option<String>,
    pub complete: bool,
    /// The `error.code` of an error envelope or error event.
    pub error_code: Option<String>,
    /// The raw body, for failure messages.
    pub body: String,
}

/// Posts `body` and reads the whole answer. `first_data`, when given, is told as soon as the first
/// `data:` event arrives: the job is running at the provider (a test can then cut it mid-stream).
pub async fn stream_request(
    http: reqwest::Client,
    url: String,
    body: Value,
    first_data: Option<tokio::sync::oneshot::Sender<()>>,
) -> BuyerResult {
    let mut first_data = first_data;
    let mut response = match http.post(url).json(&body).send().await {
        Ok(r) => r,
        Err(e) => {
            return BuyerResult {
                status: 0,
                request_id: None,
                complete: false,
                error_code: Some(format!("transport: {e}")),
                body: String::new(),
            }
        }
    };
    let status = response.status().as_u16();
    let mut buf = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if buf.contains("data: ") {
            if let Some(tx) = first_data.take() {
                let _ = tx.send(());
            }
        }
    }
    parse_buyer(status, buf)
}

/// Starts a streamed request on its own task and returns once its first `data:` event arrived:
/// the job is running at a provider, so a fault injected now cuts a job that really started.
/// Panics if the stream ends before that or takes longer than [`FIRST_EVENT_WAIT`]. Await the
/// handle for the buyer's result.
pub async fn start_stream(http: reqwest::Client, url: String, body: Value) -> JoinHandle<BuyerResult> {
    let (first_data, started) = tokio::sync::oneshot::channel();
    let job = tokio::spawn(stream_request(http, url, body, Some(first_data)));
    match tokio::time::timeout(FIRST_EVENT_WAIT, started).await {
        Ok(Ok(())) => job,
        Ok(Err(_)) => {
            let b = job.await.unwrap();
            panic!("the stream ended before its first event: {} {:?} {}", b.status, b.error_code, b.body)
        }
        Err(_) => panic!("the stream sent no event within {FIRST_EVENT_WAIT:?}"),
    }
}

/// Judges a body the pool answered with `status`: a JSON completion or error envelope, or an SSE
/// stream of chunks.
pub fn parse_buyer(status: u16, body: String) -> BuyerResult {
    let streamed = !body.trim_start().starts_with('{');
    let events: Vec<&str> = if streamed {
        body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect()
    } else {
        vec![body.as_str()]
    };
    let (mut request_id, mut error_code, mut finished, mut done) = (None, None, false, false);
    for e in events {
        if e == "[DONE]" {
            done = true;
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(e) else { continue };
        if let Some(id) = v["id"].as_str().and_then(|id| id.strip_prefix("chatcmpl-")) {
            request_id.get_or_insert_with(|| id.to_string());
        }
        if let Some(code) = v["error"]["code"].as_str() {
            error_code = Some(code.to_string());
        }
        if v["choices"][0]["finish_reason"].is_string() {
            finished = true;
        }
    }
    let complete = status == 200 && error_code.is_none() && finished && (done || !streamed);
    BuyerResult { status, request_id, complete, error_code, body }
}
