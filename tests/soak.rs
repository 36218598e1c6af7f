//! Soak: steady buyer load on the real pool and provider processes for 10 minutes (HEARTH_SOAK_SECS
//! to change), with a fault every minute from the same rig as faults.rs (latency, cut, blackhole,
//! stall, kill -9, bandwidth). Reports reconnects, jobs served and failed, the provider's largest
//! heartbeat gap within a session, and RSS growth; checks that the ledger lost nothing.
//!
//! Opt-in (it is long and needs root):
//! `HEARTH_SOAK=1 cargo test -p hearth-engine --test soak -- --ignored --nocapture`

mod harness;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::*;
use hearth_testkit::buyer::stream_request;
use hearth_testkit::chat::chat;
use hearth_testkit::hearth::MODEL;
use hearth_testkit::process::free_port;

#[derive(Default)]
struct Counts {
    complete: AtomicU64,
    /// Refused before any provider took the job (503: no provider ready during a fault).
    refused: AtomicU64,
    /// Started or sent, then cut by a fault (5xx other than 503, stream error, transport error).
    failed: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10-minute soak; run with HEARTH_SOAK=1 … -- --ignored --nocapture"]
async fn ten_minutes_of_load_with_a_fault_every_minute() {
    assert_eq!(std::env::var("HEARTH_SOAK").as_deref(), Ok("1"), "set HEARTH_SOAK=1 to run the soak");
    let secs: u64 = std::env::var("HEARTH_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let dir = tempfile::tempdir().unwrap();
    let ns = NetNs::create(2);
    let certs = certs(dir.path(), &["127.0.0.1", &ns.root_ip]);
    let pool_port = free_port();
    let mut pool = HEARTH.tls_pool(dir.path(), pool_port, &certs, &[]).await;
    let proxy_addr = format!("{}:{}", ns.root_ip, free_port());
    let mut proxy = FaultProxy::start(proxy_addr.clone(), format!("127.0.0.1:{pool_port}")).await;
    let provider = NsProvider::start(
        &ns,
        &dir.path().join("p1"),
        &format!("wss://{proxy_addr}/ws/provider"),
        &certs.cert,
        &["--slots", "2"],
    )
    .await;
    provider.until("first session", Duration::from_secs(30), serving).await;
    let (_, rss_start) = provider.proc.memory_kib();
    let provider = Arc::new(provider);

    // Load: two buyers, alternating short completions and 50-token streams, ~10 requests/s.
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let url = pool.chat_url();
    let buyers: Vec<_> = (0..2)
        .map(|b| {
            let (counts, stop, http, url) = (counts.clone(), stop.clone(), pool.http.clone(), url.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let stream = (i + b).is_multiple_of(2);
                    let body = if stream {
                        chat(MODEL, "token_delay_ms=5", 50, true)
                    } else {
                        chat(MODEL, "soak", 3, false)
                    };
                    let r = tokio::time::timeout(
                        Duration::from_secs(90),
                        stream_request(http.clone(), url.clone(), body, None),
                    )
                    .await;
                    match r {
                        Ok(r) if r.complete => counts.complete.fetch_add(1, Ordering::Relaxed),
                        Ok(r) if r.status == 503 => counts.refused.fetch_add(1, Ordering::Relaxed),
                        _ => counts.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            })
        })
        .collect();

    // The provider's heartbeat clock, sampled on its own task (the fault loop below sleeps).
    let sampler = {
        let (provider, stop) = (provider.clone(), stop.clone());
        tokio::spawn(async move {
            let mut max_gap_ms = 0u64;
            let mut last_hb: Option<(String, u64)> = None;
            while !stop.load(Ordering::Relaxed) {
                let s = provider.status().await;
                let c = &s["connection"];
                if let (Some(id), Some(hb)) =
                    (c["assigned_id"].as_str(), c["last_heartbeat_sent_ms"].as_u64())
                {
                    if let Some((last_id, last)) = &last_hb {
                        if last_id == id && hb > *last {
                            max_gap_ms = max_gap_ms.max(hb - last);
                        }
                    }
                    last_hb = Some((id.to_string(), hb));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            max_gap_ms
        })
    };

    // Faults, one a minute.
    let started = Instant::now();
    let mut faults = Vec::new();
    let mut minute = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let due = started.elapsed().as_secs() / 60;
        if due > minute && started.elapsed() + Duration::from_secs(50) < Duration::from_secs(secs) {
            minute = due;
            let kind =
                ["latency", "cut", "blackhole", "stall", "kill -9", "bandwidth"][(minute as usize - 1) % 6];
            let at = Instant::now();
            match kind {
                "latency" => {
                    proxy.add_latency(200, 150).await;
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    proxy.clear().await;
                }
                "cut" => {
                    proxy.cut().await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    proxy.restore().await;
                }
                "blackhole" => {
                    ns.blackhole(true);
                    provider.until("blackhole noticed", Duration::from_secs(45), |s| !connected(s)).await;
                    ns.blackhole(false);
                }
                "stall" => {
                    pool.proc.signal(libc::SIGSTOP);
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    pool.proc.signal(libc::SIGCONT);
                }
                "kill -9" => {
                    pool.proc.kill9();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    pool = HEARTH.tls_pool(dir.path(), pool_port, &certs, &[]).await;
                }
                _ => {
                    ns.rate_limit(Some("128kbit"));
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    ns.rate_limit(None);
                }
            }
            let cleared = Instant::now();
            provider.until("serving after the fault", Duration::from_secs(60), serving).await;
            faults.push((kind, at.elapsed() - cleared.elapsed(), cleared.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let max_gap_ms = sampler.await.unwrap();
    for b in buyers {
        tokio::time::timeout(Duration::from_secs(120), b).await.expect("a buyer hung").unwrap();
    }

    // The ledger: every job the buyers saw complete is recorded as complete; nothing else vanished.
    let s = provider.status().await;
    let e = provider.json("/api/earnings?range=all").await;
    let (complete, refused, failed) = (
        counts.complete.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    let (jobs_completed, jobs_lost, jobs_failed) = (
        s["jobs_completed"].as_u64().unwrap(),
        s["jobs_lost"].as_u64().unwrap(),
        s["jobs_failed"].as_u64().unwrap(),
    );
    let (hwm, rss_end) = provider.proc.memory_kib();
    let reconnects = s["connection"]["reconnects"].as_u64().unwrap();
    println!(
        "\nsoak {:.0} s: {complete} jobs served ({} more recorded complete by the provider but never \
         delivered), {failed} cut by faults ({jobs_lost} recorded lost), {refused} \
         refused with 503 while no provider was ready; {reconnects} reconnects; heartbeat max gap within a \
         session {max_gap_ms} ms; provider RSS {} → {} KiB (VmHWM {} KiB)",
        started.elapsed().as_secs_f64(),
        jobs_completed.saturating_sub(complete),
        rss_start,
        rss_end,
        hwm
    );
    for (kind, held, recover) in &faults {
        println!(
            "  fault {kind:<10} held {:>5.1} s, serving again {:>5.2} s after clearing",
            held.as_secs_f64(),
            recover.as_secs_f64()
        );
    }
    // A job whose end frame was written into a link that then died is `complete` for the provider
    // but never reached its buyer (no acks in the protocol; the credited-vs-estimated gap shows
    // it). Each fault can do that to at most the two jobs in its slots.
    assert!(jobs_completed >= complete, "a buyer got an answer the provider did not record");
    assert!(jobs_completed - complete <= 2 * faults.len() as u64, "{jobs_completed} vs {complete}");
    assert_eq!(e["period"]["jobs"].as_u64().unwrap(), jobs_completed + jobs_lost + jobs_failed, "{e:#}");
    assert_eq!(e["period"]["lost_jobs"].as_u64().unwrap(), jobs_lost);
    assert!(jobs_lost <= failed, "lost jobs ({jobs_lost}) are among the buyers' failures ({failed})");
    // Heartbeats tick every ≤5 s; a stall does not stop the provider's own ticker.
    assert!(max_gap_ms <= 12_000, "heartbeat gap {max_gap_ms} ms");
    assert!(rss_end < rss_start + 64 * 1024, "provider RSS grew {} KiB", rss_end - rss_start);
}
