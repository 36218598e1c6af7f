//! Reading server-sent events: a buyer's streamed completion read whole ([`read_sse`],
//! [`sse_text`]), or the control API's `/api/events` read event by event ([`SseReader`]).

use std::time::Duration;

use serde_json::Value;

/// Reads a whole SSE response into its `data:` payloads, in order (comments such as keepalives
/// are dropped; `[DONE]` is kept).
pub async fn read_sse(mut response: reqwest::Response) -> Vec<String> {
    let mut buf = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    buf.split("\n\n").filter_map(|e| e.strip_prefix("data: ").map(str::to_string)).collect()
}

/// The text a streamed completion spelled out: every chunk's `choices[0].delta.content`, joined.
pub fn sse_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| e.as_str() != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

/// Reads an SSE response event by event, as a browser's `EventSource` would.
pub struct SseReader {
    response: reqwest::Response,
    buf: String,
}

/// One SSE event: its `event:` name (empty when unnamed) and its `data:` text, or for a comment
/// line (`: keepalive`) the comment.
#[derive(Debug)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
    pub comment: Option<String>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self { response, buf: String::new() }
    }

    /// The next event, or `None` if none arrives within `timeout` or the stream ends. (A stream
    /// going quiet is often the point of a test, so this one does not panic.)
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent { name: String::new(), data: String::new(), comment: None };
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev.name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data.push_str(v.trim_start());
                    } else if let Some(v) = line.strip_prefix(':') {
                        ev.comment = Some(v.trim().to_string());
                    }
                }
                return Some(ev);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The snapshot in the next `status` event (other events are skipped), or `None` after
    /// `timeout`.
    pub async fn next_status(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next(left).await?;
            if ev.name == "status" {
                return serde_json::from_str(&ev.data).ok();
            }
        }
    }
}
