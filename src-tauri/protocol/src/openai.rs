//! The buyer side: OpenAI chat-completions shapes.
//!
//! The coordinator forwards the buyer's request body to the provider as a string, unchanged; the
//! provider parses and validates it with [`ChatCompletionRequest::parse`], and streams back SSE events
//! built by [`ChunkBuilder`] that the gateway passes to the buyer verbatim. The local pool validates
//! the same body with the same code before routing, so the buyer gets the same 400 from both.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::messages::Usage;

/// The most stop sequences OpenAI accepts.
pub const MAX_STOP_SEQUENCES: usize = 4;

/// One chat message, with its content flattened to text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A chat-completions request, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
}

/// A request the buyer must fix: which parameter and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub param: Option<String>,
    pub message: String,
}

fn bad(param: &str, message: impl Into<String>) -> RequestError {
    RequestError { param: Some(param.to_string()), message: message.into() }
}

impl ChatCompletionRequest {
    /// Parses and validates a request body. Unknown fields (`tools`, `response_format`, …) are
    /// accepted and ignored.
    pub fn parse(body: &str) -> Result<Self, RequestError> {
        let value: Value = serde_json::from_str(body).map_err(|e| RequestError {
            param: None,
            message: format!("request body is not valid JSON: {e}"),
        })?;
        Self::from_value(&value)
    }

    pub fn from_value(v: &Value) -> Result<Self, RequestError> {
        let obj = v.as_object().ok_or_else(|| RequestError {
            param: None,
            message: "request body must be a JSON object".into(),
        })?;
        let model = match obj.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            Some(_) => return Err(bad("model", "'model' must be a non-empty string")),
            None => return Err(bad("model", "'model' is required")),
        };
        let messages = match obj.get("messages") {
            Some(Value::Array(items)) if !items.is_empty() => {
                items.iter().enumerate().map(|(i, m)| parse_message(i, m)).collect::<Result<Vec<_>, _>>()?
            }
            Some(Value::Array(_)) => return Err(bad("messages", "'messages' must not be empty")),
            Some(_) => return Err(bad("messages", "'messages' must be an array of messages")),
            None => return Err(bad("messages", "'messages' is required")),
        };
        let max_tokens = match obj.get("max_completion_tokens").or_else(|| obj.get("max_tokens")) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(t) if t >= 1 && t <= u32::MAX as i64 => Some(t as u32),
                Some(t) => {
                    return Err(bad("max_tokens", format!("'max_tokens' must be at least 1, got {t}")))
                }
                None => return Err(bad("max_tokens", "'max_tokens' must be a whole number")),
            },
            Some(_) => return Err(bad("max_tokens", "'max_tokens' must be a whole number")),
        };
        let temperature = opt_f32(obj.get("temperature"), "temperature", 0.0, 2.0)?;
        let top_p = opt_f32(obj.get("top_p"), "top_p", 0.0, 1.0)?;
        if top_p == Some(0.0) {
            return Err(bad("top_p", "'top_p' must be greater than 0"));
        }
        let top_k = match obj.get("top_k") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(k) if k <= u32::MAX as u64 => Some(k as u32),
                _ => return Err(bad("top_k", "'top_k' must be a non-negative whole number")),
            },
        };
        let seed = match obj.get("seed") {
            None | Some(Value::Null) => None,
            Some(v) => match (v.as_u64(), v.as_i64()) {
                (Some(s), _) => Some(s),
                (None, Some(s)) => Some(s as u64),
                _ => return Err(bad("seed", "'seed' must be a whole number")),
            },
        };
        let stop = match obj.get("stop") {
            None | Some(Value::Null) => vec![],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("stop", "'stop' entries must be strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(bad("stop", "'stop' must be a string or an array of strings")),
        };
        if stop.len() > MAX_STOP_SEQUENCES {
            return Err(bad("stop", format!("at most {MAX_STOP_SEQUENCES} stop sequences are allowed")));
        }
        if stop.iter().any(String::is_empty) {
            return Err(bad("stop", "stop sequences must not be empty"));
        }
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("stream", "'stream' must be true or false")),
        };
        if let Some(n) = obj.get("n") {
            if !(n.is_null() || n.as_u64() == Some(1)) {
                return Err(bad("n", "only n = 1 is supported"));
            }
        }
        let include_usage = obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Self { model, messages, max_tokens, temperature, top_p, top_k, seed, stop, stream, include_usage })
    }
}

fn opt_f32(v: Option<&Value>, param: &str, lo: f64, hi: f64) -> Result<Option<f32>, RequestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.is_finite() && x >= lo && x <= hi {
                Ok(Some(x as f32))
            } else {
                Err(bad(param, format!("'{param}' must be between {lo} and {hi}, got {n}")))
            }
        }
        Some(_) => Err(bad(param, format!("'{param}' must be a number"))),
    }
}

fn parse_message(i: usize, m: &Value) -> Result<ChatMessage, RequestError> {
    let param = format!("messages[{i}]");
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(&param, format!("{param} needs a string 'role'")))?;
    if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool") {
        return Err(bad(&param, format!("{param} has unknown role {role:?}")));
    }
    let content = match m.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // Content parts: keep the text parts, in order.
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (Some(kind), _) => {
                        return Err(bad(
                            &param,
                            format!("{param} has a '{kind}' content part; only text is supported"),
                        ))
                    }
                    _ => return Err(bad(&param, format!("{param} has a malformed content part"))),
                }
            }
            text
        }
        Some(_) => return Err(bad(&param, format!("{param}.content must be a string or an array of parts"))),
    };
    Ok(ChatMessage { role: role.to_string(), content })
}

/// OpenAI's `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// Builds the SSE events of one streamed completion; each call returns one whole event
/// (`data: …\n\n`), which is exactly what one `inference_response_chunk` carries.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    id: String,
    created: u64,
    model: String,
}

/// The event that ends every SSE stream.
pub const SSE_DONE: &str = "data: [DONE]\n\n";

impl ChunkBuilder {
    pub fn new(id: impl Into<String>, created: u64, model: impl Into<String>) -> Self {
        Self { id: id.into(), created, model: model.into() }
    }

    fn event(&self, choices: Value, usage: Option<&Usage>) -> String {
        let mut obj = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            obj["usage"] = json!(u);
        }
        format!("data: {obj}\n\n")
    }

    /// The first delta: the assistant role with empty content.
    pub fn role(&self) -> String {
        self.event(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
            None,
        )
    }

    pub fn content(&self, text: &str) -> String {
        self.event(json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}]), None)
    }

    pub fn finish(&self, reason: FinishReason) -> String {
        self.event(json!([{"index": 0, "delta": {}, "finish_reason": reason.as_str()}]), None)
    }

    pub fn usage(&self, usage: &Usage) -> String {
        self.event(json!([]), Some(usage))
    }

    /// A whole non-streamed `chat.completion` object.
    pub fn completion(&self, content: &str, reason: FinishReason, usage: &Usage) -> String {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": reason.as_str(),
            }],
            "usage": usage,
        })
        .to_string()
    }
}

/// The OpenAI error envelope: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: String,
}

/// Buyer-facing error codes the gateway uses.
pub mod error_code {
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const MODEL_NOT_FOUND: &str = "model_not_found";
    pub const PROVIDER_ERROR: &str = "provider_error";
    pub const NO_PROVIDER_AVAILABLE: &str = "no_provider_available";
    pub const PREFLIGHT_REJECTED: &str = "preflight_rejected";
    pub const PROVIDER_TIMEOUT: &str = "provider_timeout";
    pub const PROVIDER_DISCONNECTED: &str = "provider_disconnected";
    pub const RELAY_BUFFER_EXCEEDED: &str = "relay_buffer_exceeded";
}

impl ApiError {
    pub fn new(kind: &str, code: &str, message: impl Into<String>, param: Option<String>) -> Self {
        Self { message: message.into(), kind: kind.into(), param, code: code.into() }
    }

    pub fn invalid_request(e: &RequestError) -> Self {
        Self::new("invalid_request_error", error_code::INVALID_REQUEST, e.message.clone(), e.param.clone())
    }

    /// The envelope as JSON text.
    pub fn to_body(&self) -> String {
        json!({ "error": self }).to_string()
    }

    /// The envelope as one SSE event (for errors that happen after a stream has started).
    pub fn to_sse_event(&self) -> String {
        format!("data: {}\n\n", self.to_body())
    }
}
