//! A tiny fake provider that speaks the protocol with `hearth_protocol` types to a real pool:
//! it handshakes, reports state and heartbeats, and answers requests with whatever frames a test
//! scripts — including wrong ones.
//!
//! ```no_run
//! # async fn example() {
//! use hearth_testkit::fake_provider::FakeProvider;
//! use hearth_testkit::pool::{start_pool, test_config};
//!
//! let pool = start_pool(test_config()).await;
//! let mut p = FakeProvider::ready(&pool, "prov-a", 1).await; // handshaken, ready, seen by the pool
//! let request = p.recv().await; // what the pool routed to it
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_pool::Pool;
use hearth_protocol::{
    decode_coordinator, encode, CoordinatorMessage, Heartbeat, Hello, HelloAck, MetricsSnapshot,
    MetricsWindow, ProviderMessage, ProviderState, StateUpdate,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::pool::status_until;

/// The provider's end of the WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The model the fake provider says it serves. The pool's rate card prices it by its model key,
/// `tiny-model`.
pub const MODEL: &str = "mlx-community/Tiny-Model-4bit";

/// A valid hello for [`MODEL`] with one slot; change fields to make it invalid or different.
pub fn hello(provider_id: &str) -> Hello {
    Hello {
        version: 1,
        tier: 1,
        provider_id: provider_id.into(),
        hostname: "test.local".into(),
        model_id: MODEL.into(),
        model_params_b: 0.1,
        ram_gb: 16,
        max_context_tokens: 8192,
        max_concurrency: 1,
        throughput_tps_estimate: 40.0,
        binary_version: "0.1.0".into(),
        attestation: None,
        model_hash: None,
        model_hash_algorithm: None,
        runtime_source: None,
    }
}

/// Opens the WebSocket (optionally with a bearer) without saying anything.
pub async fn open(addr: SocketAddr, token: Option<&str>) -> Ws {
    let mut request = format!("ws://{addr}/ws/provider").into_client_request().unwrap();
    if let Some(token) = token {
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.expect("websocket upgrade").0
}

/// What the pool did to end a connection: its close frame, or `None` for a dropped connection.
pub async fn await_close(ws: &mut Ws, within: Duration) -> Option<CloseFrame> {
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the pool should have closed the connection")
}

/// A provider session: the socket, the pool's hello_ack, and the provider id it said hello with.
pub struct FakeProvider {
    pub ws: Ws,
    pub ack: HelloAck,
    pub id: String,
}

impl FakeProvider {
    /// Handshake only: hello, then the ack.
    pub async fn handshake(addr: SocketAddr, hello: Hello, token: Option<&str>) -> FakeProvider {
        let mut ws = open(addr, token).await;
        let id = hello.provider_id.clone();
        ws.send(Message::text(encode(&ProviderMessage::Hello(hello)))).await.unwrap();
        let mut p = FakeProvider { ws, ack: placeholder_ack(), id };
        match p.recv().await {
            CoordinatorMessage::HelloAck(ack) => p.ack = ack,
            other => panic!("expected hello_ack, got {other:?}"),
        }
        p
    }

    /// Handshake, then `state_update ready` with `slots` free, and wait until the pool shows it.
    pub async fn ready(pool: &Pool, id: &str, slots: u32) -> FakeProvider {
        let mut h = hello(id);
        h.max_concurrency = slots;
        let mut p = FakeProvider::handshake(pool.local_addr(), h, None).await;
        p.state(ProviderState::Ready, slots, slots).await;
        let assigned = p.ack.assigned_id.clone();
        status_until(pool, &format!("{id} ready in the pool"), |s| {
            s.providers
                .iter()
                .any(|r| r.assigned_id == assigned && r.connected && r.state == ProviderState::Ready)
        })
        .await;
        p
    }

    /// Sends one protocol message.
    pub async fn send(&mut self, message: ProviderMessage) {
        self.ws.send(Message::text(encode(&message))).await.unwrap();
    }

    /// Sends raw text (a malformed or unknown frame).
    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// A `state_update` with `free` of `total` slots.
    pub async fn state(&mut self, state: ProviderState, free: u32, total: u32) {
        self.send(ProviderMessage::StateUpdate(StateUpdate {
            state,
            reason: "test".into(),
            since: "2026-11-24T10:00:00Z".into(),
            metrics_snapshot: MetricsSnapshot {
                slots_free: free,
                slots_total: total,
                window: MetricsWindow::default(),
            },
        }))
        .await;
    }

    /// A text heartbeat (ready, one free slot), as real providers keep alive.
    pub async fn heartbeat(&mut self) {
        self.send(ProviderMessage::Heartbeat(Heartbeat {
            status: ProviderState::Ready,
            model_id: MODEL.into(),
            model_params_b: 0.1,
            ram_gb: 16,
            max_context_tokens: 8192,
            max_concurrency: 1,
            slots_free: 1,
            slots_total: 1,
            throughput_tps_estimate: 40.0,
            window: MetricsWindow::default(),
            loading: None,
        }))
        .await;
    }

    /// The next protocol message (control frames skipped); panics after 5 s.
    pub async fn recv(&mut self) -> CoordinatorMessage {
        self.recv_within(Duration::from_secs(5)).await.expect("a message from the pool")
    }

    /// The next protocol message, or `None` after `within` (to show nothing was sent); panics if
    /// the pool closes the session.
    pub async fn recv_within(&mut self, within: Duration) -> Option<CoordinatorMessage> {
        tokio::time::timeout(within, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        return decode_coordinator(t.as_str(), usize::MAX).expect("pool frames decode")
                    }
                    Some(Ok(Message::Close(f))) => panic!("pool closed the session: {f:?}"),
                    Some(Ok(_)) => continue,
                    other => panic!("connection ended: {other:?}"),
                }
            }
        })
        .await
        .ok()
    }
}

/// Stands in until the real ack is read (every field but the id is optional).
fn placeholder_ack() -> HelloAck {
    serde_json::from_str(r#"{"assigned_id":""}"#).unwrap()
}
