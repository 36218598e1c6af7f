//! Session benchmarks (`cargo bench -p hearth-engine --bench session`), each against a peer
//! measured in the same run:
//!
//! * relay: tokens/s and per-token latency buyer-side, pool → provider → SSE client, with a
//!   zero-cost engine; the peer is the same tokens streamed as SSE straight from a local HTTP
//!   server (no pool, no WebSocket hop), so the difference is what the relay adds;
//! * heartbeat: gap p50/max while every core is busy and a forward pass is stalled, as a ratio of
//!   the tick;
//! * restart: time from a pool restart to the provider being ready again, p50 over 20 restarts, as
//!   a ratio of the first backoff ceiling (1 s);
//! * v2: the relay's throughput and per-token latency on a v2 session (encrypted leg: every request
//!   and chunk sealed and opened) against a v1 session in the same run, rounds alternating.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::response::sse::{Event, Sse};
use axum::routing::get;
use hearth_engine::provider::Provider;
use hearth_engine::session::ProviderConfig;
use hearth_inference::scripted::ScriptedEngine;
use hearth_inference::*;
use hearth_pool::{Pool, PoolConfig, PoolEvent};
use hearth_protocol::ProtocolChoice;

const MODEL: &str = "bench-model";

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Emits `max_tokens` deltas, one every `pace`, each carrying its emission time.
struct PacedEngine {
    descriptor: ModelDescriptor,
    pace: Duration,
}

impl Engine for PacedEngine {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }
    fn generate(
        &self,
        request: &GenerationRequest,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(GenerationEvent),
    ) -> Result<GenerationOutcome, EngineError> {
        let mut next = Instant::now();
        for _ in 0..request.max_tokens {
            if cancel.is_cancelled() {
                break;
            }
            next += self.pace;
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            on_event(GenerationEvent::Delta(format!("{} ", epoch().elapsed().as_nanos())));
        }
        Ok(GenerationOutcome {
            stop_reason: StopReason::Length,
            prompt_tokens: 1,
            completion_tokens: request.max_tokens as u64,
            prefill_time: Duration::ZERO,
            decode_time: Duration::ZERO,
            prompt_ids: vec![],
            token_ids: vec![],
        })
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Streams an SSE response, calling `on_data` with each `data:` payload and its arrival time.
async fn consume_sse(response: reqwest::Response, mut on_data: impl FnMut(&str, Instant)) {
    let mut response = response;
    let mut buf = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        let now = Instant::now();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.strip_prefix("data: ") {
                on_data(data.trim_end(), now);
            }
        }
    }
}

fn delta_content(data: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    v["choices"][0]["delta"]["content"].as_str().map(str::to_string)
}

async fn start_pool(port: u16, heartbeat_interval_s: u64) -> Pool {
    Pool::start(PoolConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        heartbeat_interval_s,
        ..PoolConfig::default()
    })
    .await
    .unwrap()
}

async fn wait_ready(pool: &Pool) -> Duration {
    let started = Instant::now();
    while pool.snapshot().pool.ready < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

fn provider_config(pool: &Pool) -> ProviderConfig {
    let mut c = ProviderConfig::new(format!("ws://{}/ws/provider", pool.local_addr()), "bench-provider");
    c.reconnect_after_drain = Duration::from_millis(100);
    c
}

fn chat(max_tokens: u32) -> serde_json::Value {
    serde_json::json!({"model": MODEL, "messages": [{"role":"user","content":"go"}], "max_tokens": max_tokens, "stream": true})
}

/// A plain local SSE server streaming what the engine emits: the peer without any relay.
async fn direct_sse_server(engine: Arc<dyn Engine>) -> String {
    let app = axum::Router::new().route(
        "/stream/{n}",
        get(move |axum::extract::Path(n): axum::extract::Path<u32>| {
            let engine = engine.clone();
            async move {
                let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(256);
                std::thread::spawn(move || {
                    let request = GenerationRequest {
                        prompt: Prompt::Raw("go".into()),
                        max_tokens: n,
                        sampling: SamplingParams::default(),
                        stop: vec![],
                    };
                    let builder = hearth_protocol::openai::ChunkBuilder::new("direct", 0, MODEL);
                    let _ = engine.generate(&request, &CancelToken::new(), &mut |e| {
                        if let GenerationEvent::Delta(t) = e {
                            let event = builder.content(&t);
                            let data = event.strip_prefix("data: ").unwrap().trim_end().to_string();
                            let _ = tx.blocking_send(Ok(Event::default().data(data)));
                        }
                    });
                });
                Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

struct RelayFigures {
    tokens_per_s: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
}

async fn measure_stream(
    http: &reqwest::Client,
    response_url: Option<&str>,
    pool: Option<&Pool>,
    n: u32,
) -> (f64, Vec<f64>) {
    let response = match (response_url, pool) {
        (Some(url), _) => http.get(url).send().await.unwrap(),
        (None, Some(pool)) => http
            .post(format!("http://{}/v1/chat/completions", pool.local_addr()))
            .json(&chat(n))
            .send()
            .await
            .unwrap(),
        _ => unreachable!(),
    };
    let started = Instant::now();
    let mut tokens = 0u64;
    let mut latencies = vec![];
    consume_sse(response, |data, at| {
        if let Some(content) = delta_content(data) {
            if content.is_empty() {
                return;
            }
            tokens += 1;
            if let Ok(ns) = content.trim().parse::<u128>() {
                let emitted = epoch() + Duration::from_nanos(ns as u64);
                latencies.push(at.saturating_duration_since(emitted).as_secs_f64() * 1e6);
            }
        }
    })
    .await;
    (tokens as f64 / started.elapsed().as_secs_f64(), latencies)
}

async fn bench_relay() {
    const THROUGHPUT_TOKENS: u32 = 50_000;
    const PACED_TOKENS: u32 = 2_000;
    let http = reqwest::Client::new();
    let mut figures = vec![];
    for (label, via_pool) in [("relay (pool→provider→SSE)", true), ("direct SSE (peer)", false)] {
        let fast: Arc<dyn Engine> = Arc::new(ScriptedEngine::new(MODEL));
        let paced = paced_engine();
        let (tps, lat) = if via_pool {
            relay_through_pool(&http, ProtocolChoice::Auto, fast, paced, THROUGHPUT_TOKENS, PACED_TOKENS)
                .await
        } else {
            let base = direct_sse_server(fast).await;
            let (tps, _) =
                measure_stream(&http, Some(&format!("{base}/stream/{THROUGHPUT_TOKENS}")), None, 0).await;
            let base = direct_sse_server(paced).await;
            let (_, lat) =
                measure_stream(&http, Some(&format!("{base}/stream/{PACED_TOKENS}")), None, 0).await;
            (tps, lat)
        };
        let mut lat = lat;
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let f = RelayFigures {
            tokens_per_s: tps,
            latency_p50_us: percentile(&lat, 0.5),
            latency_p99_us: percentile(&lat, 0.99),
        };
        println!(
            "{label:<28} {:>10.0} tokens/s   token latency p50 {:>7.1} µs  p99 {:>7.1} µs  ({} samples)",
            f.tokens_per_s,
            f.latency_p50_us,
            f.latency_p99_us,
            lat.len()
        );
        figures.push(f);
    }
    let (relay, direct) = (&figures[0], &figures[1]);
    println!(
        "relay/direct: throughput ×{:.2}; added latency per token p50 {:.1} µs, p99 {:.1} µs",
        relay.tokens_per_s / direct.tokens_per_s,
        relay.latency_p50_us - direct.latency_p50_us,
        relay.latency_p99_us - direct.latency_p99_us
    );
}

/// CPU time this process has used, user and system.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU µs per token of the last fast stream measured by [`relay_through_pool`] (pool, provider and
/// client all run in this process, so this is the whole relay's cost).
static LAST_CPU_US_PER_TOKEN: std::sync::Mutex<f64> = std::sync::Mutex::new(0.0);

/// One provider on a fresh pool with `protocol`: tokens/s of a `fast_tokens` stream from `fast`,
/// then per-token latencies of a `paced_tokens` stream from `paced`.
async fn relay_through_pool(
    http: &reqwest::Client,
    protocol: ProtocolChoice,
    fast: Arc<dyn Engine>,
    paced: Arc<dyn Engine>,
    fast_tokens: u32,
    paced_tokens: u32,
) -> (f64, Vec<f64>) {
    let pool = start_pool(0, 30).await;
    let mut c = provider_config(&pool);
    c.slots = 1;
    c.protocol = protocol;
    let p = Provider::start(c.clone(), fast);
    wait_ready(&pool).await;
    let cpu_before = cpu_time();
    let (tps, _) = measure_stream(http, None, Some(&pool), fast_tokens).await;
    *LAST_CPU_US_PER_TOKEN.lock().unwrap() =
        (cpu_time() - cpu_before).as_secs_f64() * 1e6 / fast_tokens as f64;
    p.stop().await;
    wait_until_gone(&pool).await;
    let p = Provider::start(c, paced);
    wait_ready(&pool).await;
    let (_, lat) = measure_stream(http, None, Some(&pool), paced_tokens).await;
    p.stop().await;
    pool.shutdown().await;
    (tps, lat)
}

fn paced_engine() -> Arc<dyn Engine> {
    Arc::new(PacedEngine {
        descriptor: ModelDescriptor {
            model_id: MODEL.into(),
            params_b: 0.0,
            max_context_tokens: 1 << 20,
            engine: "paced".into(),
            throughput_tps_estimate: 1000.0,
        },
        pace: Duration::from_micros(500),
    })
}

async fn bench_v2() {
    const ROUNDS: usize = 7;
    let http = reqwest::Client::new();
    let mut tps: [Vec<f64>; 2] = [vec![], vec![]];
    let mut cpu: [Vec<f64>; 2] = [vec![], vec![]];
    let mut lat: [Vec<f64>; 2] = [vec![], vec![]];
    for _ in 0..ROUNDS {
        for (i, protocol) in [ProtocolChoice::V1, ProtocolChoice::V2].into_iter().enumerate() {
            let fast: Arc<dyn Engine> = Arc::new(ScriptedEngine::new(MODEL));
            let (t, l) = relay_through_pool(&http, protocol, fast, paced_engine(), 50_000, 2_000).await;
            tps[i].push(t);
            cpu[i].push(*LAST_CPU_US_PER_TOKEN.lock().unwrap());
            lat[i].extend(l);
        }
    }
    let mut medians = [0.0; 2];
    let mut cpu_medians = [0.0; 2];
    for (i, label) in ["v1 (plaintext)", "v2 (encrypted leg)"].into_iter().enumerate() {
        tps[i].sort_by(|a, b| a.partial_cmp(b).unwrap());
        cpu[i].sort_by(|a, b| a.partial_cmp(b).unwrap());
        lat[i].sort_by(|a, b| a.partial_cmp(b).unwrap());
        medians[i] = percentile(&tps[i], 0.5);
        cpu_medians[i] = percentile(&cpu[i], 0.5);
        println!(
            "{label:<20} {:>10.0} tokens/s, {:>5.1} CPU µs/token (medians of {ROUNDS})   token latency p50 {:>7.1} µs  p99 {:>7.1} µs",
            medians[i],
            cpu_medians[i],
            percentile(&lat[i], 0.5),
            percentile(&lat[i], 0.99)
        );
    }
    println!(
        "v2/v1: throughput ×{:.3} ({:+.1} %), CPU per token ×{:.3}; added latency per token p50 {:.1} µs, p99 {:.1} µs",
        medians[1] / medians[0],
        (medians[1] / medians[0] - 1.0) * 100.0,
        cpu_medians[1] / cpu_medians[0],
        percentile(&lat[1], 0.5) - percentile(&lat[0], 0.5),
        percentile(&lat[1], 0.99) - percentile(&lat[0], 0.99)
    );
}

async fn wait_until_gone(pool: &Pool) {
    while pool.snapshot().pool.ready > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn bench_heartbeat() {
    let pool = start_pool(0, 1).await; // 1 s interval → 1 s tick
    let mut events = pool.events();
    let mut engine = ScriptedEngine::new(MODEL);
    engine.prefill_stall = Duration::from_secs(8);
    engine.spin = true;
    let provider = Provider::start(provider_config(&pool), Arc::new(engine));
    wait_ready(&pool).await;
    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let url = format!("http://{}/v1/chat/completions", pool.local_addr());
    let buyer = tokio::spawn(async move {
        let _ = reqwest::Client::new().post(url).json(&chat(2)).send().await;
    });
    let mut beats = vec![];
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        match tokio::time::timeout(until - Instant::now(), events.recv()).await {
            Ok(Ok(PoolEvent::FrameReceived { type_name, at, .. })) if type_name == "heartbeat" => {
                beats.push(at)
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
    let mut gaps: Vec<f64> = beats.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0).collect();
    gaps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let max = gaps.last().copied().unwrap_or(f64::NAN);
    println!(
        "heartbeat under load (tick 1000 ms, all cores busy, forward stalled 8 s): gap p50 {:.1} ms, max {:.1} ms = ×{:.3} tick ({} gaps)",
        percentile(&gaps, 0.5),
        max,
        max / 1000.0,
        gaps.len()
    );
    let _ = buyer.await;
    provider.stop().await;
    pool.shutdown().await;
}

async fn bench_restart() {
    let first = start_pool(0, 30).await;
    let port = first.local_addr().port();
    let provider = Provider::start(provider_config(&first), Arc::new(ScriptedEngine::new(MODEL)));
    wait_ready(&first).await;
    first.shutdown().await;
    let mut times = vec![];
    for _ in 0..20 {
        let pool = start_pool(port, 30).await;
        times.push(wait_ready(&pool).await.as_secs_f64() * 1000.0);
        pool.shutdown().await;
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "pool restart → provider ready over 20 restarts: p50 {:.0} ms, max {:.0} ms (first backoff ceiling 1000 ms: p50 ×{:.2})",
        percentile(&times, 0.5),
        times.last().unwrap(),
        percentile(&times, 0.5) / 1000.0
    );
    provider.stop().await;
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| name.contains(w.as_str()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        epoch();
        if wants("relay") {
            bench_relay().await;
        }
        if wants("heartbeat") {
            bench_heartbeat().await;
        }
        if wants("restart") {
            bench_restart().await;
        }
        if wants("v2") {
            bench_v2().await;
        }
    });
}
