//! A tiny fake provider speaking the protocol with `hearth_protocol` types, plus pool helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_pool::{Pool, PoolConfig, PoolStatus};
use hearth_protocol::{
    decode_coordinator, encode, CoordinatorMessage, Heartbeat, Hello, HelloAck, MetricsSnapshot,
    MetricsWindow, ProviderMessage, ProviderState, StateUpdate,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const MODEL: &str = "mlx-community/Tiny-Model-4bit";

/// A config on an ephemeral loopback port with test-friendly timings.
pub fn config() -> PoolConfig {
    PoolConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        liveness_timeout: Duration::from_secs(30),
        disconnect_grace: Duration::from_secs(30),
        sse_keepalive: Duration::from_secs(30),
        ..PoolConfig::default()
    }
}

pub async fn start(config: PoolConfig) -> Pool {
    Pool::start(config).await.expect("pool starts")
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

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
        wait_for(pool, |s| {
            s.providers
                .iter()
                .any(|r| r.assigned_id == assigned && r.connected && r.state == ProviderState::Ready)
        })
        .await;
        p
    }

    pub async fn send(&mut self, message: ProviderMessage) {
        self.ws.send(Message::text(encode(&message))).await.unwrap();
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

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

fn placeholder_ack() -> HelloAck {
    serde_json::from_str(r#"{"assigned_id":""}"#).unwrap()
}

/// Polls the pool's snapshot until `check` holds (panics after 5 s).
pub async fn wait_for(pool: &Pool, check: impl Fn(&PoolStatus) -> bool) -> PoolStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = pool.snapshot();
        if check(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not reached; last status: {s:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A minimal valid chat body.
pub fn chat_body(stream: bool) -> String {
    serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "say ok"}],
        "max_tokens": 8,
        "stream": stream,
    })
    .to_string()
}
