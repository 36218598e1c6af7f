//! A scriptable fake coordinator on a real socket: it accepts a provider's WebSocket session,
//! answers the hello, and lets a test send any frame (or any text, malformed on purpose) and watch
//! what the provider sends back, each item with its arrival time.
//!
//! It speaks through `hearth_protocol`'s own types, so a test reads like the protocol document:
//!
//! ```no_run
//! # async fn example() {
//! use std::time::Duration;
//! use hearth_protocol::ProviderMessage;
//! use hearth_testkit::{chat::chat, fake_coordinator::{inference_request, FakeCoordinator}};
//!
//! let fake = FakeCoordinator::bind(30).await;
//! // ... start a provider with `fake.url()` as its coordinator ...
//! let mut session = fake.accept().await;
//! session.send(&inference_request("req-1", &chat("hearth-scripted", "hi", 2, false))).await;
//! let end = session
//!     .expect(Duration::from_secs(5), |m| match m {
//!         ProviderMessage::InferenceResponseEnd(e) => Some(e.clone()),
//!         _ => None,
//!     })
//!     .await;
//! # }
//! ```

// Test-only types: size and the handshake callback's error type are the library's, not ours.
#![allow(clippy::large_enum_variant, clippy::result_large_err)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::{decode_provider, encode, CoordinatorMessage, Hello, HelloAck, ProviderMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A listening fake coordinator; each [`FakeCoordinator::accept`] takes the next provider session.
pub struct FakeCoordinator {
    pub addr: SocketAddr,
    pub heartbeat_interval_s: u64,
    listener: TcpListener,
}

/// What the fake saw from the provider.
#[derive(Debug)]
pub enum Seen {
    Message(ProviderMessage),
    Ping,
    Close(Option<u16>),
    Ended,
}

/// One provider session as the coordinator sees it: the provider's hello, the bearer it sent, a
/// sink to write to it and everything it has sent since.
pub struct Session {
    pub hello: Hello,
    pub authorization: Option<String>,
    sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    seen: mpsc::UnboundedReceiver<(Instant, Seen)>,
}

impl FakeCoordinator {
    /// Listens on an ephemeral loopback port; `heartbeat_interval_s` goes into every hello_ack
    /// (the provider heartbeats every `min(interval, 5 s)`).
    pub async fn bind(heartbeat_interval_s: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self { addr: listener.local_addr().unwrap(), heartbeat_interval_s, listener }
    }

    /// The URL to give the provider as its coordinator.
    pub fn url(&self) -> String {
        format!("ws://{}/ws/provider", self.addr)
    }

    /// Accepts the next provider connection and completes the handshake.
    pub async fn accept(&self) -> Session {
        let mut session = self.accept_raw().await;
        let ack = HelloAck::accepted(uuid::Uuid::new_v4().to_string(), self.heartbeat_interval_s);
        session.send(&CoordinatorMessage::HelloAck(ack)).await;
        session
    }

    /// Accepts a connection and reads the hello, without answering it.
    pub async fn accept_raw(&self) -> Session {
        // A `hearth serve` process also polls the gateway on this address (plain HTTP GETs); those
        // fail the upgrade and are skipped.
        let deadline = Instant::now() + Duration::from_secs(20);
        let auth = std::sync::Arc::new(std::sync::Mutex::new(None));
        let ws = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (tcp, _) = tokio::time::timeout(left, self.listener.accept())
                .await
                .expect("no provider connected within 20 s")
                .unwrap();
            let auth_seen = auth.clone();
            let upgraded = tokio_tungstenite::accept_hdr_async(
                tcp,
                move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                      resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    *auth_seen.lock().unwrap() =
                        req.headers().get("authorization").map(|v| v.to_str().unwrap_or("").to_string());
                    Ok(resp)
                },
            )
            .await;
            if let Ok(ws) = upgraded {
                break ws;
            }
        };
        let (sink, mut stream) = ws.split();
        let (tx, mut seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let now = Instant::now();
                let item = match frame {
                    Ok(Message::Text(t)) => {
                        Seen::Message(decode_provider(&t, usize::MAX).expect("provider sent a bad frame"))
                    }
                    Ok(Message::Ping(_)) => Seen::Ping,
                    Ok(Message::Close(f)) => Seen::Close(f.map(|f| u16::from(f.code))),
                    Ok(_) => continue,
                    Err(_) => break,
                };
                if tx.send((now, item)).is_err() {
                    return;
                }
            }
            let _ = tx.send((Instant::now(), Seen::Ended));
        });
        let hello = match seen.recv().await {
            Some((_, Seen::Message(ProviderMessage::Hello(h)))) => h,
            other => panic!("expected a hello first, got {other:?}"),
        };
        let authorization = auth.lock().unwrap().clone();
        Session { hello, authorization, sink, seen }
    }
}

impl Session {
    /// Sends a message; returns how long the write (with flush) took.
    pub async fn send(&mut self, message: &CoordinatorMessage) -> Duration {
        self.send_text(encode(message)).await
    }

    /// Sends raw text (a malformed frame, an unknown type); returns how long the write took.
    pub async fn send_text(&mut self, text: String) -> Duration {
        let started = Instant::now();
        self.sink.send(Message::text(text)).await.expect("write to provider failed");
        started.elapsed()
    }

    /// Like [`Session::send_text`], but a failed write (the provider hung up) is returned.
    pub async fn try_send_text(&mut self, text: String) -> Result<(), String> {
        self.sink.send(Message::text(text)).await.map_err(|e| e.to_string())
    }

    /// Sends a close frame with `code` (e.g. 4004, 4005) and `reason`.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_string().into() };
        let _ = self.sink.send(Message::Close(Some(frame))).await;
    }

    /// The next thing seen, or `None` after `timeout` (silence can be what a test wants to see).
    pub async fn next(&mut self, timeout: Duration) -> Option<(Instant, Seen)> {
        tokio::time::timeout(timeout, self.seen.recv()).await.ok().flatten()
    }

    /// Waits for the first provider message for which `pred` returns `Some`, skipping heartbeats
    /// and anything else; panics if the session ends or `timeout` passes first.
    pub async fn expect<T>(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&ProviderMessage) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some((_, Seen::Message(m))) => {
                    if let Some(t) = pred(&m) {
                        return t;
                    }
                }
                Some((_, Seen::Ended)) => panic!("the provider closed the connection"),
                Some(_) => {}
                None => panic!("timed out waiting for the expected message"),
            }
        }
    }
}

/// An `inference_request` carrying `body` (a chat body, see [`crate::chat::chat`]); its `stream`
/// flag is the body's, as a coordinator copies it from the buyer's request.
pub fn inference_request(id: &str, body: &serde_json::Value) -> CoordinatorMessage {
    CoordinatorMessage::InferenceRequest(hearth_protocol::InferenceRequest {
        request_id: id.into(),
        stream: body["stream"].as_bool().unwrap_or(false),
        body: body.to_string(),
        settlement: None,
        conversation_key: None,
        body_encoding: None,
    })
}
