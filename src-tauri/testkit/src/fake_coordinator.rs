//! A scriptable fake coordinator on a real socket: it accepts a provider's WebSocket session,
//! answers the hello (or runs the v2 handshake, when the provider opens with `auth_request`), and
//! lets a test send any frame (or any text, malformed on purpose) and watch what the provider sends
//! back, each item with its arrival time. On a v2 session it seals requests and opens the
//! provider's sealed chunks and ends with the protocol crate's Pillar-B code, strictly in seq
//! order, so a test reads the same plaintext messages on either version.
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::v2::{
    open_response, seal_request, AuthInitial, AuthRequest, CoordinatorHandshake, OpenedResponse, Opener,
    SealedCoordinatorFrame, SealedProviderFrame, SealedRequest, Sealer, SeqPolicy,
};
use hearth_protocol::{
    decode_provider, decode_provider_frame, encode, CoordinatorMessage, Hello, HelloAck, ProviderFrame,
    ProviderMessage,
};
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
    /// The provider's hello; on a v2 session, its initial `auth_request` read as one.
    pub hello: Hello,
    pub authorization: Option<String>,
    /// Whether the provider opened with v2, and the kid of its leg once accepted.
    pub v2: bool,
    pub kid: Option<String>,
    sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    seen: mpsc::UnboundedReceiver<(Instant, Seen)>,
    /// The c2p sealer of an accepted v2 session.
    sealer: Option<Sealer>,
    /// Stream flags of the requests sent (the p2c AAD binds them).
    streams: Arc<Mutex<HashMap<String, bool>>>,
    /// While true the reader stops reading the socket: a coordinator that stopped reading.
    reading_paused: tokio::sync::watch::Sender<bool>,
}

/// What the reader task holds of an accepted v2 session.
struct ReaderLeg {
    opener: Opener,
    envelope: bool,
    streams: Arc<Mutex<HashMap<String, bool>>>,
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

    /// Accepts the next provider connection and completes the handshake (v1 or v2, as the
    /// provider opens).
    pub async fn accept(&self) -> Session {
        let (mut ws, authorization) = self.upgrade().await;
        let first = first_text(&mut ws).await;
        let mut sealer = None;
        let mut leg = None;
        let mut kid = None;
        let (hello, v2) = match parse_first(&first) {
            First::V1(hello) => {
                let ack = HelloAck::accepted(uuid::Uuid::new_v4().to_string(), self.heartbeat_interval_s);
                ws.send(Message::text(encode(&CoordinatorMessage::HelloAck(ack)))).await.unwrap();
                (hello, false)
            }
            First::V2(value, initial) => {
                let assigned_id = uuid::Uuid::new_v4().to_string();
                let (handshake, challenge) =
                    CoordinatorHandshake::accept_initial(&value, &assigned_id, "2099-01-01T00:00:00Z".into())
                        .unwrap_or_else(|r| panic!("the provider's initial auth_request was refused: {r:?}"));
                ws.send(Message::text(encode(&CoordinatorMessage::AuthChallenge(challenge)))).await.unwrap();
                let proof_text = first_text(&mut ws).await;
                let proof = match decode_provider(&proof_text, usize::MAX) {
                    Ok(ProviderMessage::AuthRequest(proof)) => proof,
                    other => panic!("expected the proof, got {other:?}"),
                };
                let accepted =
                    handshake.check_proof(Some(&proof), false).expect("the provider's proof is valid");
                let response = accepted.accepted_response(self.heartbeat_interval_s, (10_000, 3600));
                ws.send(Message::text(encode(&CoordinatorMessage::AuthResponse(response)))).await.unwrap();
                let (c2p, p2c) = accepted.coordinator_halves(SeqPolicy::Strict);
                kid = Some(accepted.keys.kid.clone());
                sealer = Some(c2p);
                leg = Some((p2c, accepted.envelope));
                (initial.to_hello(), true)
            }
        };
        self.session(ws, authorization, hello, v2, kid, sealer, leg)
    }

    /// Accepts a connection and reads the opening frame (hello or initial `auth_request`) without
    /// answering it.
    pub async fn accept_raw(&self) -> Session {
        let (mut ws, authorization) = self.upgrade().await;
        let first = first_text(&mut ws).await;
        let (hello, v2) = match parse_first(&first) {
            First::V1(hello) => (hello, false),
            First::V2(_, initial) => (initial.to_hello(), true),
        };
        self.session(ws, authorization, hello, v2, None, None, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &self,
        ws: WebSocketStream<TcpStream>,
        authorization: Option<String>,
        hello: Hello,
        v2: bool,
        kid: Option<String>,
        sealer: Option<Sealer>,
        leg: Option<(Opener, bool)>,
    ) -> Session {
        let (sink, stream) = ws.split();
        let (tx, seen) = mpsc::unbounded_channel();
        let streams = Arc::new(Mutex::new(HashMap::new()));
        let reader_leg =
            leg.map(|(opener, envelope)| ReaderLeg { opener, envelope, streams: streams.clone() });
        let (reading_paused, paused) = tokio::sync::watch::channel(false);
        tokio::spawn(read_frames(stream, tx, reader_leg, paused));
        Session { hello, authorization, v2, kid, sink, seen, sealer, streams, reading_paused }
    }

    /// The next WebSocket upgrade, and the `Authorization` header it carried.
    async fn upgrade(&self) -> (WebSocketStream<TcpStream>, Option<String>) {
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
        let authorization = auth.lock().unwrap().clone();
        (ws, authorization)
    }
}

enum First {
    V1(Hello),
    V2(serde_json::Value, Box<AuthInitial>),
}

fn parse_first(text: &str) -> First {
    match decode_provider(text, usize::MAX) {
        Ok(ProviderMessage::Hello(h)) => First::V1(h),
        Ok(ProviderMessage::AuthRequest(AuthRequest::Initial(i))) => {
            First::V2(serde_json::from_str(text).unwrap(), Box::new(i))
        }
        other => panic!("expected a hello or an initial auth_request first, got {other:?}"),
    }
}

/// The next text frame, skipping control frames.
async fn first_text(ws: &mut WebSocketStream<TcpStream>) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("the provider sent no opening frame: {other:?}"),
        }
    }
}

/// The reader: every frame the provider sends, sealed ones opened, with its arrival time.
async fn read_frames(
    mut stream: SplitStream<WebSocketStream<TcpStream>>,
    tx: mpsc::UnboundedSender<(Instant, Seen)>,
    mut leg: Option<ReaderLeg>,
    mut paused: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                break;
            }
        }
        let Some(frame) = stream.next().await else { break };
        let now = Instant::now();
        let item = match frame {
            Ok(Message::Text(t)) => {
                match decode_provider_frame(&t, usize::MAX).expect("provider sent a bad frame") {
                    ProviderFrame::Plain(m) => Seen::Message(m),
                    ProviderFrame::Sealed(sealed) => {
                        let leg = leg.as_mut().expect("a sealed frame on a session without an encrypted leg");
                        match open(leg, sealed) {
                            Ok(m) => Seen::Message(m),
                            Err(e) => panic!("a sealed provider frame did not open: {e}"),
                        }
                    }
                }
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
}

fn open(leg: &mut ReaderLeg, sealed: SealedProviderFrame) -> Result<ProviderMessage, String> {
    let (r, is_chunk) = match sealed {
        SealedProviderFrame::InferenceResponseChunk(r) => (r, true),
        SealedProviderFrame::InferenceResponseEnd(r) => (r, false),
        SealedProviderFrame::AeadRekeyCommitted(_) => {
            return Err("the fake coordinator does not rekey".into())
        }
    };
    let stream = leg.streams.lock().unwrap().get(&r.request_id).copied().unwrap_or(false);
    match open_response(&mut leg.opener, &r, is_chunk, stream, leg.envelope).map_err(|e| e.to_string())? {
        OpenedResponse::Chunk(c) => Ok(ProviderMessage::InferenceResponseChunk(c)),
        OpenedResponse::End(e) => Ok(ProviderMessage::InferenceResponseEnd(e)),
    }
}

impl Session {
    /// Sends a message (a request sealed, on a v2 session); returns how long the write (with
    /// flush) took.
    pub async fn send(&mut self, message: &CoordinatorMessage) -> Duration {
        let text = match message {
            CoordinatorMessage::InferenceRequest(_) if self.sealer.is_some() => {
                encode(&SealedCoordinatorFrame::InferenceRequest(self.seal(message)))
            }
            _ => encode(message),
        };
        self.send_text(text).await
    }

    /// Seals an `inference_request` at the session's next c2p seq (for a test to send as is or
    /// tampered with). Panics on a v1 session or another message.
    pub fn seal(&mut self, message: &CoordinatorMessage) -> SealedRequest {
        let CoordinatorMessage::InferenceRequest(r) = message else { panic!("only requests are sealed") };
        let sealer = self.sealer.as_mut().expect("a v2 session");
        self.streams.lock().unwrap().insert(r.request_id.clone(), r.stream);
        seal_request(sealer, r).expect("the fake's counter is far from exhausted")
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

    /// Stops reading the socket (the provider's writes then back up in TCP), or reads on.
    pub fn pause_reading(&self, paused: bool) {
        self.reading_paused.send_replace(paused);
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
