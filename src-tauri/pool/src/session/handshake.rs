//! Admission: the bearer check and the first frame, dispatched on its `type`: a v1 `hello`, or a
//! v2 `auth_request` whose handshake (challenge, proof, acceptance) runs here on the whole socket
//! before the session splits it (PROTOCOL-V2.md, "The local pool").

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::{header, HeaderMap};
use hearth_protocol::close::{BAD_FIRST_MESSAGE, INVALID_HELLO, TIER2_KEY_EXCHANGE_FAILED};
use hearth_protocol::v2::{AuthInitial, CoordinatorHandshake, Leg};
use hearth_protocol::{decode_provider, encode, CoordinatorMessage, DecodeError, Hello, ProviderMessage};
use serde_json::Value;

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

/// How a provider opened its session.
pub(crate) enum Opening {
    V1(Hello),
    /// A v2 session whose handshake completed: the initial frame and the accepted leg.
    V2(Box<AuthInitial>, Leg),
}

/// What the v2 handshake needs from the pool's settings.
pub(crate) struct Admission {
    pub timeout: Duration,
    pub max_frame_bytes: usize,
    /// Refuse a v1 hello (production's `tier2.require_encrypted_leg`).
    pub require_v2: bool,
    pub heartbeat_interval_s: u64,
    pub rekey_after: (u64, u64),
}

/// Reads the first data frame and admits the provider by it: a v1 `hello`, or the whole v2
/// handshake. Control frames before it are skipped (they are not messages); anything else is
/// refused with the coordinator's codes.
pub(crate) async fn admit(
    socket: &mut WebSocket,
    assigned_id: &str,
    rules: &Admission,
) -> Result<Opening, Refusal> {
    let deadline = tokio::time::Instant::now() + rules.timeout;
    let text = next_text(socket, deadline, "hello").await?;
    let first_type = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
    if first_type.as_deref() == Some("auth_request") {
        return admit_v2(socket, &text, assigned_id, rules).await;
    }
    let hello = parse_hello(&text, rules.max_frame_bytes)?;
    if rules.require_v2 {
        return Err(Refusal::close(TIER2_KEY_EXCHANGE_FAILED, "tier2_encrypted_leg_required"));
    }
    Ok(Opening::V1(hello))
}

/// The next text frame before `deadline`.
async fn next_text(
    socket: &mut WebSocket,
    deadline: tokio::time::Instant,
    waiting_for: &str,
) -> Result<String, Refusal> {
    loop {
        let frame = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => return Err(Refusal::close(BAD_FIRST_MESSAGE, format!("no {waiting_for} in time"))),
            Ok(None) => return Err(Refusal::gone(format!("closed before {waiting_for}"))),
            Ok(Some(Err(e))) => return Err(Refusal::gone(format!("read error before {waiting_for}: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        return match frame {
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => Err(Refusal::gone(format!("closed before {waiting_for}"))),
            Message::Binary(_) => {
                Err(Refusal::close(BAD_FIRST_MESSAGE, "first message must be a text frame"))
            }
            Message::Text(text) => Ok(text.as_str().to_string()),
        };
    }
}

/// The v2 handshake after its initial frame, with production's checks, order and codes.
async fn admit_v2(
    socket: &mut WebSocket,
    text: &str,
    assigned_id: &str,
    rules: &Admission,
) -> Result<Opening, Refusal> {
    if text.len() > rules.max_frame_bytes {
        return Err(Refusal::close(BAD_FIRST_MESSAGE, "unrecognized auth message"));
    }
    let received: Value = serde_json::from_str(text)
        .map_err(|_| Refusal::close(BAD_FIRST_MESSAGE, "unrecognized auth message"))?;
    let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let expires_at = expires
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    let (handshake, challenge) =
        match CoordinatorHandshake::accept_initial(&received, assigned_id, expires_at) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                reject(socket, &refusal, rules.timeout).await;
                return Err(Refusal::close(refusal.code, refusal.reason));
            }
        };
    let initial = handshake.initial().clone();
    send(socket, &CoordinatorMessage::AuthChallenge(challenge), rules.timeout).await?;
    // The proof has the handshake timeout again, from the challenge.
    let deadline = tokio::time::Instant::now() + rules.timeout;
    let proof_text = next_text(socket, deadline, "auth_request proof").await?;
    let proof = match decode_provider(&proof_text, rules.max_frame_bytes) {
        Ok(ProviderMessage::AuthRequest(proof)) => Some(proof),
        _ => None,
    };
    let leg = match handshake.check_proof(proof.as_ref(), time::OffsetDateTime::now_utc() >= expires) {
        Ok(leg) => leg,
        Err(refusal) => {
            reject(socket, &refusal, rules.timeout).await;
            return Err(Refusal::close(refusal.code, refusal.reason));
        }
    };
    let response = leg.accepted_response(rules.heartbeat_interval_s, rules.rekey_after);
    send(socket, &CoordinatorMessage::AuthResponse(response), rules.timeout).await?;
    Ok(Opening::V2(Box::new(initial), leg))
}

/// Sends the `auth_response` `rejected` that precedes a close, where production sends one.
async fn reject(socket: &mut WebSocket, refusal: &hearth_protocol::v2::Refusal, timeout: Duration) {
    if let Some(response) = refusal.response() {
        let _ = send(socket, &CoordinatorMessage::AuthResponse(response), timeout).await;
    }
}

async fn send(
    socket: &mut WebSocket,
    message: &CoordinatorMessage,
    timeout: Duration,
) -> Result<(), Refusal> {
    match tokio::time::timeout(timeout, socket.send(Message::Text(encode(message).into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Refusal::gone(format!("could not send {}", message.type_name()))),
    }
}

/// Checks a v1 first frame is an acceptable `hello`.
fn parse_hello(text: &str, max_frame_bytes: usize) -> Result<Hello, Refusal> {
    match decode_provider(text, max_frame_bytes) {
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
