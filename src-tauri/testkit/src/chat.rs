//! The one builder of OpenAI chat-completions bodies the tests send, whoever sends them: a buyer
//! posting to the pool, or a fake coordinator handing a request to a provider.

use serde_json::Value;

/// `{"model", "messages": [{"role": "user", "content": prompt}], "max_tokens", "stream"}`.
///
/// The scripted engine reads its behaviour from the prompt (`token_delay_ms=50` paces it) and
/// emits exactly `max_tokens` tokens (`t0 t1 …`), which is what most assertions count on. Add other
/// fields on the returned value: `body["stream_options"] = json!({"include_usage": true})`. Where a
/// raw string body is needed, `.to_string()` it.
pub fn chat(model: &str, prompt: &str, max_tokens: i64, stream: bool) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
}
