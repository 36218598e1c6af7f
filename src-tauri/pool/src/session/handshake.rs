//! Admission: the bearer check and the first frame, which must be a valid text `hello`.
//!
//! Kept apart from the session loop so a v2 handshake (`auth_request` …) can be added beside it.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::{header, HeaderMap};
use hearth_protocol::close::{BAD_FIRST_MESSAGE, INVALID_HELLO};
use hearth_protocol::{decode_provider, DecodeError, Hello, ProviderMessage};

use super::writer::close_reason;

/// Why a connection is refused, as the close frame that says so (`None`: the peer is already gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub close: Option<(u16, String)>,
    pub reason: String,
}

impl Refusal {
    fn close(code: u16, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self { close: Some((code, reason.clone())), reason }
    }
    fn gone(reason: impl Into<String>) -> Self {
        Self { close: None, reason: reason.into() }
    }
}

/// `None` accepts anything; otherwise the upgrade must carry `Authorization: Bearer <known token>`.
pub(crate) fn bearer_ok(tokens: Option<&HashSet<String>>, headers: &HeaderMap) -> bool {
    let Some(tokens) = tokens else { return true };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| tokens.contains(t.trim()))
}

/// Waits for the first data frame and checks it is an acceptable `hello`. Control frames before it
/// are skipped (they are not messages); anything else is refused with the coordinator's codes.
pub(crate) async fn await_hello(
    socket: &mut WebSocket,
    timeout: Duration,
    max_frame_bytes: usize,
) -> Result<Hello, Refusal> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => return Err(Refusal::close(BAD_FIRST_MESSAGE, format!("no hello within {timeout:?}"))),
            Ok(None) => return Err(Refusal::gone("closed before hello")),
            Ok(Some(Err(e))) => return Err(Refusal::gone(format!("read error before hello: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => return Err(Refusal::gone("closed before hello")),
            Message::Binary(_) => {
                return Err(Refusal::close(BAD_FIRST_MESSAGE, "first message must be a text hello frame"))
            }
            Message::Text(text) => text,
        };
        return match decode_provider(text.as_str(), max_frame_bytes) {
            Ok(ProviderMessage::Hello(hello)) => match hello.validate() {
                Ok(()) => Ok(hello),
                Err(invalid) => Err(Refusal::close(INVALID_HELLO, invalid.to_string())),
            },
            Ok(other) => Err(Refusal::close(
                BAD_FIRST_MESSAGE,
                format!("first message must be hello, got {}", other.type_name()),
            )),
            Err(DecodeError::Invalid { type_name, detail }) if type_name == "hello" => {
                Err(Refusal::close(INVALID_HELLO, format!("invalid_hello: {}", field_of(&detail))))
            }
            Err(e) => Err(Refusal::close(BAD_FIRST_MESSAGE, format!("bad first message: {e}"))),
        };
    }
}

/// The field a serde error names (`missing field `x``, `unknown variant` …), else the whole detail.
fn field_of(detail: &str) -> String {
    detail
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("malformed ({detail})"))
}

/// Sends a close frame, then reads until the peer answers (or a short wait ends) so the close
/// frame is delivered before the TCP connection goes away.
pub(crate) async fn close_with(mut socket: WebSocket, code: u16, reason: &str, write_timeout: Duration) {
    let frame = Message::Close(Some(CloseFrame { code, reason: close_reason(reason).into() }));
    if !matches!(tokio::time::timeout(write_timeout, socket.send(frame)).await, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_field() {
        assert_eq!(field_of("missing field `hostname` at line 1 column 20"), "hostname");
        assert!(field_of("invalid type: string").starts_with("malformed"));
    }

    #[test]
    fn bearer_check() {
        let tokens: HashSet<String> = ["t1".to_string()].into();
        let mut headers = HeaderMap::new();
        assert!(bearer_ok(None, &headers));
        assert!(!bearer_ok(Some(&tokens), &headers));
        headers.insert(header::AUTHORIZATION, "Bearer t2".parse().unwrap());
        assert!(!bearer_ok(Some(&tokens), &headers));
        headers.insert(header::AUTHORIZATION, "Bearer t1".parse().unwrap());
        assert!(bearer_ok(Some(&tokens), &headers));
    }
}
