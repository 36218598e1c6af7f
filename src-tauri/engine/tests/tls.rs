//! `wss://` to the local pool with a self-signed certificate: trusted through a CA file it works;
//! otherwise the error names the certificate problem and nothing falls back to plain text.

use std::sync::Arc;
use std::time::Duration;

use hearth_engine::provider::Provider;
use hearth_engine::session::ProviderConfig;
use hearth_engine::status::ProviderPhase;
use hearth_inference::scripted::ScriptedEngine;
use hearth_pool::{Pool, PoolConfig, TlsFiles};
use hearth_testkit::certs::Certs;
use hearth_testkit::chat::chat;
use hearth_testkit::poll::poll_until;

/// A self-signed certificate for localhost, in a folder that lives as long as it.
struct TestCerts {
    _dir: tempfile::TempDir,
    certs: Certs,
}

fn self_signed() -> TestCerts {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::self_signed(dir.path(), &["localhost", "127.0.0.1"]);
    TestCerts { _dir: dir, certs }
}

async fn tls_pool(certs: &Certs) -> Pool {
    Pool::start(PoolConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsFiles { cert: certs.cert.clone(), key: certs.key.clone() }),
        ..PoolConfig::default()
    })
    .await
    .unwrap()
}

fn config(url: String, ca_file: Option<std::path::PathBuf>) -> ProviderConfig {
    let mut c = ProviderConfig::new(url, "tls-provider");
    c.ca_file = ca_file;
    c.backoff_base = Duration::from_millis(50);
    c.backoff_cap = Duration::from_millis(200);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_trusted_self_signed_certificate_serves_requests() {
    let test_certs = self_signed();
    let certs = &test_certs.certs;
    let pool = tls_pool(certs).await;
    let url = format!("wss://localhost:{}/ws/provider", pool.local_addr().port());
    let provider = Provider::start(config(url, Some(certs.cert.clone())), Arc::new(ScriptedEngine::new("m")));
    let status = || std::future::ready(provider.status().snapshot());
    poll_until("ready over wss", Duration::from_secs(10), status, |s| s.phase == ProviderPhase::Ready).await;
    assert_eq!(pool.snapshot().pool.ready, 1);

    // A buyer over https, trusting the same certificate, gets a completion relayed over wss.
    let http = certs.client();
    let body = chat("m", "hi", 2, false);
    let r = http
        .post(format!("https://localhost:{}/v1/chat/completions", pool.local_addr().port()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "t0 t1 ");
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_reported_and_never_bypassed() {
    let test_certs = self_signed();
    let pool = tls_pool(&test_certs.certs).await;
    let url = format!("wss://localhost:{}/ws/provider", pool.local_addr().port());
    let provider = Provider::start(config(url, None), Arc::new(ScriptedEngine::new("m")));
    let status = || std::future::ready(provider.status().snapshot());
    poll_until("an error naming the certificate", Duration::from_secs(10), status, |s| {
        s.connection.last_error.as_deref().is_some_and(|e| e.to_lowercase().contains("certificate"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = provider.status().snapshot();
    assert!(!s.connection.connected);
    // Between retries it is either waiting (offline) or trying again (connecting) — never serving.
    assert!(
        matches!(s.phase, ProviderPhase::Offline | ProviderPhase::Connecting),
        "an untrusted certificate is retried, not served: {:?} {}",
        s.phase,
        s.reason
    );
    assert_eq!(pool.snapshot().pool.total_providers, 0, "nothing may reach the pool");
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_to_a_plain_text_server_fails_instead_of_falling_back() {
    let pool = Pool::start(PoolConfig { listen: "127.0.0.1:0".parse().unwrap(), ..PoolConfig::default() })
        .await
        .unwrap();
    let url = format!("wss://127.0.0.1:{}/ws/provider", pool.local_addr().port());
    let provider = Provider::start(config(url, None), Arc::new(ScriptedEngine::new("m")));
    let status = || std::future::ready(provider.status().snapshot());
    poll_until("a connection error", Duration::from_secs(10), status, |s| s.connection.last_error.is_some())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.snapshot().pool.total_providers, 0);
    assert!(!provider.status().snapshot().connection.connected);
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_ca_file_is_a_settings_error_that_stops_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("ca.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let mut provider = Provider::start(
        config("wss://localhost:1/ws/provider".into(), Some(bogus)),
        Arc::new(ScriptedEngine::new("m")),
    );
    tokio::time::timeout(Duration::from_secs(5), provider.wait()).await.expect("stops on a bad CA file");
    let s = provider.status().snapshot();
    assert_eq!(s.phase, ProviderPhase::Error);
    assert!(s.reason.contains("ca.pem") && s.reason.contains("no PEM certificate"), "{}", s.reason);
}
