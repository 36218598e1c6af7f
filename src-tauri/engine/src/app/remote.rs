//! What the app learns from the coordinator over plain HTTP, politely: the pool view
//! (`/v1/status`), the rate card (`/v1/rate-card`) and what it credited us
//! (`/providers/{id}/earnings`). Nothing here is needed to serve; every failure is shown, then
//! retried later, and the last good figures stay.

use std::time::Duration;

use hearth_ledger::{CreditedSnapshot, RateCard};
use hearth_settings::ProviderToken;
use serde::Deserialize;
use tokio::sync::watch;

use super::recorder::{Recorder, SharedCard};
use crate::status::{unix_ms, PoolModel, PoolView, StatusHub};

/// After a failed rate-card fetch, wait at least this long before the next try.
const RATE_CARD_RETRY: Duration = Duration::from_secs(300);
/// A gateway that has no `/v1/status` (404) is asked again only this rarely.
const NO_STATUS_RETRY: Duration = Duration::from_secs(300);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Who we are talking to, published by the supervisor whenever a provider starts.
#[derive(Clone, PartialEq)]
pub struct Target {
    /// `http(s)://host:port` of the coordinator's gateway.
    pub gateway_url: String,
    pub provider_id: String,
    pub token: Option<ProviderToken>,
    /// Extra certificate authorities for `https://` (the session's `ca_file`): a self-hosted
    /// coordinator's gateway uses the same certificate as its `wss://` endpoint.
    pub ca_file: Option<std::path::PathBuf>,
}

/// The gateway lives on the coordinator's host and port: `ws://h:p/ws/provider` → `http://h:p`,
/// `wss://…` → `https://…`.
pub fn gateway_url(coordinator_url: &str) -> Option<String> {
    let url = url::Url::parse(coordinator_url).ok()?;
    let scheme = match url.scheme() {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

#[derive(Debug, Deserialize)]
struct GatewayStatus {
    status: Option<String>,
    #[serde(default)]
    pool: GatewayCounts,
    #[serde(default)]
    models: Vec<PoolModel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GatewayCounts {
    total_providers: u64,
    ready: u64,
}

/// An HTTP client for the coordinator's own endpoints (gateway status, earnings), trusting the
/// session's extra CA file too; the doctor's probes use it as well.
pub fn coordinator_client(
    ca_file: Option<&std::path::Path>,
    timeout: std::time::Duration,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        // An unreadable CA file is reported by the session (which cannot connect either) and by
        // the doctor's TLS check.
        let certs = std::fs::read(path).ok().and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok());
        for cert in certs.unwrap_or_default() {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().unwrap_or_default()
}

/// One HTTP client per CA file: rebuilt only when the target's `ca_file` changes.
struct Http {
    client: reqwest::Client,
    ca_file: Option<std::path::PathBuf>,
}

impl Http {
    fn new() -> Self {
        Self { client: coordinator_client(None, HTTP_TIMEOUT), ca_file: None }
    }

    fn for_target(&mut self, t: &Target) -> &reqwest::Client {
        if self.ca_file != t.ca_file {
            self.client = coordinator_client(t.ca_file.as_deref(), HTTP_TIMEOUT);
            self.ca_file = t.ca_file.clone();
        }
        &self.client
    }
}

/// Waits `d`, returning early when the target changes. Once the supervisor is gone (shutdown) it
/// never returns early again, so no poller can spin.
async fn pause(target: &mut watch::Receiver<Option<Target>>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        r = target.changed() => if r.is_err() { std::future::pending::<()>().await },
    }
}

/// The current target, waiting for one while there is none; `None` once there never will be
/// (the supervisor is gone), which ends the poller.
async fn current_target(target: &mut watch::Receiver<Option<Target>>) -> Option<Target> {
    loop {
        if let Some(t) = target.borrow_and_update().clone() {
            return Some(t);
        }
        target.changed().await.ok()?;
    }
}

/// Polls `/v1/status` every `every` for the pool view in the snapshot.
pub async fn poll_pool(hub: StatusHub, mut target: watch::Receiver<Option<Target>>, every: Duration) {
    let mut http_clients = Http::new();
    loop {
        let Some(t) = current_target(&mut target).await else { return };
        let http = http_clients.for_target(&t).clone();
        let url = format!("{}/v1/status", t.gateway_url);
        let mut wait = every;
        // Err((absent, why)): `absent` when the gateway has no status endpoint at all.
        let result: Result<GatewayStatus, (bool, String)> = async {
            let r = http.get(&url).send().await.map_err(|e| (false, format!("cannot reach {url}: {e}")))?;
            if r.status() == reqwest::StatusCode::NOT_FOUND {
                return Err((true, format!("the coordinator has no gateway status at {url} (404)")));
            }
            if !r.status().is_success() {
                return Err((false, format!("{url} answered {}", r.status())));
            }
            r.json::<GatewayStatus>()
                .await
                .map_err(|e| (false, format!("{url} sent an unreadable status: {e}")))
        }
        .await;
        let gateway = t.gateway_url.clone();
        match result {
            Ok(g) => hub.update(|s| {
                s.pool = Some(PoolView {
                    gateway_url: gateway,
                    status: g.status,
                    providers_total: g.pool.total_providers,
                    providers_ready: g.pool.ready,
                    models: g.models,
                    fetched_ms: Some(unix_ms()),
                    error: None,
                })
            }),
            Err((absent, e)) => {
                if absent {
                    wait = NO_STATUS_RETRY.max(every);
                }
                tracing::debug!(error = %e, "pool status poll failed");
                hub.update(|s| {
                    let view = s.pool.get_or_insert_with(PoolView::default);
                    if view.gateway_url != gateway {
                        *view = PoolView { gateway_url: gateway, ..PoolView::default() };
                    }
                    view.error = Some(e);
                });
            }
        }
        pause(&mut target, wait).await;
    }
}

/// Fetches the rate card when the target changes and every `every`; the builtin card stays in force
/// until one arrives.
pub async fn poll_rate_card(
    hub: StatusHub,
    card: SharedCard,
    recorder: Recorder,
    mut target: watch::Receiver<Option<Target>>,
    every: Duration,
) {
    let mut http_clients = Http::new();
    loop {
        let Some(t) = current_target(&mut target).await else { return };
        let http = http_clients.for_target(&t).clone();
        let url = format!("{}/v1/rate-card", t.gateway_url);
        let fetched = async {
            let r = http.get(&url).send().await.map_err(|e| format!("cannot reach {url}: {e}"))?;
            if !r.status().is_success() {
                return Err(format!("{url} answered {}", r.status()));
            }
            let body = r.text().await.map_err(|e| format!("{url}: {e}"))?;
            RateCard::from_json(&body).map_err(|e| format!("{url} sent an unreadable rate card: {e}"))
        }
        .await;
        let wait = match fetched {
            Ok(c) => {
                let version = c.version.clone();
                let usd_per_million_credits = c.usd_per_million_credits;
                *card.write().unwrap_or_else(|e| e.into_inner()) =
                    super::recorder::CardInForce { card: c, source: "coordinator" };
                hub.update(|s| {
                    s.earnings.rate_card_version = version;
                    s.earnings.rate_card_source = "coordinator".into();
                    s.earnings.usd_per_million_credits = usd_per_million_credits;
                });
                recorder.refresh();
                every
            }
            Err(e) => {
                tracing::info!(error = %e, "rate card not available; estimates use the card in force");
                hub.update(|s| s.earnings.error = Some(format!("rate card: {e}")));
                RATE_CARD_RETRY.min(every)
            }
        };
        pause(&mut target, wait).await;
    }
}

/// The fields of `/providers/{id}/earnings` we keep. Integers may arrive as floats from some
/// coordinators; both are accepted.
#[derive(Debug, Deserialize)]
struct EarningsBody {
    total_credits: serde_json::Number,
    #[serde(default)]
    current_window_credits: Option<serde_json::Number>,
}

fn as_i64(n: &serde_json::Number) -> i64 {
    n.as_i64()
        .or_else(|| n.as_u64().map(|u| u as i64))
        .or_else(|| n.as_f64().map(|f| f.round() as i64))
        .unwrap_or(0)
}

/// Reads what the coordinator credited this provider id, every `every` (production: once a minute,
/// the endpoint allows 60/min), and stores it in the ledger beside the estimates.
pub async fn poll_credited(
    hub: StatusHub,
    recorder: Recorder,
    mut target: watch::Receiver<Option<Target>>,
    every: Duration,
) {
    let mut http_clients = Http::new();
    // A restart with new settings must not make us ask the same endpoint more than once per period.
    let mut last: Option<(String, tokio::time::Instant)> = None;
    loop {
        let Some(t) = current_target(&mut target).await else { return };
        let http = http_clients.for_target(&t).clone();
        // The path holds the provider id; the token travels only in the header.
        let url = format!("{}/providers/{}/earnings", t.gateway_url, t.provider_id);
        if let Some((prev, at)) = &last {
            if *prev == url && at.elapsed() < every {
                tokio::time::sleep_until(*at + every).await;
            }
        }
        last = Some((url.clone(), tokio::time::Instant::now()));
        let mut request = http.get(&url);
        if let Some(token) = &t.token {
            request = request.bearer_auth(token.expose());
        }
        let result = async {
            let r = request.send().await.map_err(|e| format!("cannot reach {url}: {e}"))?;
            match r.status() {
                s if s.is_success() => {}
                reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
                    return Err(format!("the coordinator refused our token for {url} ({})", r.status()))
                }
                s => return Err(format!("{url} answered {s}")),
            }
            r.json::<EarningsBody>().await.map_err(|e| format!("{url} sent unreadable earnings: {e}"))
        }
        .await;
        match result {
            Ok(body) => recorder.credited(CreditedSnapshot {
                fetched_at: unix_ms() as i64,
                total_credits: as_i64(&body.total_credits),
                current_window_credits: body.current_window_credits.as_ref().map_or(0, as_i64),
                source_url: url,
            }),
            Err(e) => {
                tracing::info!(error = %e, "credited earnings not available");
                hub.update(|s| s.earnings.error = Some(format!("credited earnings: {e}")));
            }
        }
        pause(&mut target, every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_coordinators_host_over_http() {
        assert_eq!(gateway_url("ws://127.0.0.1:8444/ws/provider").as_deref(), Some("http://127.0.0.1:8444"));
        assert_eq!(gateway_url("wss://pool.example/ws/provider").as_deref(), Some("https://pool.example"));
        assert_eq!(
            gateway_url("wss://pool.example:9443/deep/ws/provider").as_deref(),
            Some("https://pool.example:9443")
        );
        assert_eq!(gateway_url("ws://[::1]:8444/ws/provider").as_deref(), Some("http://[::1]:8444"));
        assert_eq!(gateway_url("https://x/ws"), None);
    }
}
