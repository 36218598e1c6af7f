//! Opening the WebSocket: URL rules, the TCP socket's dead-link options, TLS and the upgrade.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::config::ProviderConfig;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("coordinator URL {url:?} is not valid: {problem}")]
    BadUrl { url: String, problem: String },
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: std::io::Error },
    #[error("cannot reach {addr}: {source}")]
    Tcp { addr: String, source: std::io::Error },
    #[error("connecting to {0} timed out")]
    Timeout(String),
    #[error("cannot use the CA file {path}: {problem}")]
    CaFile { path: String, problem: String },
    #[error("the coordinator refused the WebSocket upgrade: {0}")]
    Upgrade(String),
}

impl ConnectError {
    /// Errors that no retry can fix: the user must change a setting.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::BadUrl { .. } | Self::CaFile { .. })
    }
}

/// Checks a coordinator URL against the rules in PROTOCOL.md: `wss://` anywhere, plain `ws://`
/// only to this machine, never credentials in the URL.
pub fn validate_url(raw: &str) -> Result<Url, ConnectError> {
    let bad = |problem: &str| ConnectError::BadUrl { url: raw.to_string(), problem: problem.to_string() };
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "URLs with a user:password@ part are refused; put the token in the keychain instead",
        ));
    }
    let host = url.host_str().ok_or_else(|| bad("it has no host"))?;
    match url.scheme() {
        "wss" => Ok(url),
        "ws" if is_loopback_host(host) => Ok(url),
        "ws" => Err(bad("plain ws:// is only allowed to localhost, 127.0.0.1 or ::1; use wss://")),
        other => Err(bad(&format!("scheme {other}:// is not a WebSocket scheme; use wss://"))),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || trimmed.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// A connected, upgraded session socket and the raw descriptor of its TCP connection (for RTT).
pub struct Connected {
    pub socket: Socket,
    pub fd: RawFd,
}

pub async fn connect(config: &ProviderConfig) -> Result<Connected, ConnectError> {
    let url = validate_url(&config.coordinator_url)?;
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let target = format!("{host}:{port}");
    // A bad CA file is a settings problem: report it before touching the network.
    let connector = match &config.ca_file {
        Some(path) if url.scheme() == "wss" => Some(tls_connector(path)?),
        _ => None,
    };

    let tcp = tokio::time::timeout(config.connect_timeout, async {
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|source| ConnectError::Resolve { host: host.clone(), source })?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(ConnectError::Tcp {
            addr: target.clone(),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        })
    })
    .await
    .map_err(|_| ConnectError::Timeout(target.clone()))??;
    tune_socket(&tcp, config.tcp_user_timeout);
    let fd = tcp.as_raw_fd();

    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::BadUrl { url: url.to_string(), problem: e.to_string() })?;
    if let Some(token) = &config.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ConnectError::BadUrl {
            url: url.to_string(),
            problem: "the provider token contains characters not allowed in a header".into(),
        })?;
        request.headers_mut().insert("Authorization", value);
    }
    // The transport cap is above the protocol limit so that an oversized-but-sane frame reaches the
    // decoder and is answered with a nak instead of killing the session.
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_frame_bytes.saturating_mul(4)))
        .max_frame_size(Some(config.max_frame_bytes.saturating_mul(4)));
    let (socket, _response) = tokio::time::timeout(
        config.connect_timeout,
        tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(ws_config), connector),
    )
    .await
    .map_err(|_| ConnectError::Timeout(target.clone()))?
    .map_err(|e| ConnectError::Upgrade(e.to_string()))?;
    Ok(Connected { socket, fd })
}

/// TLS that trusts the platform roots plus the certificates in `path`.
fn tls_connector(path: &std::path::Path) -> Result<Connector, ConnectError> {
    Ok(Connector::Rustls(Arc::new(tls_client_config(Some(path))?)))
}

/// The session's TLS client configuration: the platform roots, plus the certificates in
/// `extra_ca` when given. Public so that `hearth doctor` judges a coordinator's certificate exactly
/// as the session will.
pub fn tls_client_config(extra_ca: Option<&std::path::Path>) -> Result<rustls::ClientConfig, ConnectError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let shown = extra_ca.map(|p| p.display().to_string()).unwrap_or_default();
    let err = |problem: String| ConnectError::CaFile { path: shown.clone(), problem };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
            let cert = cert.map_err(|e| err(e.to_string()))?;
            roots.add(cert).map_err(|e| err(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(err("it holds no PEM certificate".into()));
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Dead-link detection at the transport: keepalive probes on an idle link and a cap on how long
/// written bytes may stay unacknowledged, so a half-open connection dies in seconds, not hours.
fn tune_socket(tcp: &TcpStream, user_timeout: Duration) {
    let _ = tcp.set_nodelay(true);
    let sock = socket2::SockRef::from(tcp);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::warn!(error = %e, "could not enable TCP keepalive");
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = sock.set_tcp_user_timeout(Some(user_timeout)) {
        tracing::warn!(error = %e, "could not set TCP_USER_TIMEOUT");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = user_timeout;
}

/// The smoothed round-trip time the kernel keeps for a TCP connection.
pub fn kernel_rtt(fd: RawFd) -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` is a properly sized, writable tcp_info and `len` holds its size; the fd is
        // only queried while the session that owns it is alive.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        (rc == 0).then(|| Duration::from_micros(info.tcpi_rtt as u64))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        assert!(validate_url("wss://pool.example/ws/provider").is_ok());
        assert!(validate_url("ws://127.0.0.1:8444/ws/provider").is_ok());
        assert!(validate_url("ws://localhost:8444/ws/provider").is_ok());
        assert!(validate_url("ws://[::1]:8444/ws/provider").is_ok());
        let e = validate_url("ws://pool.example/ws/provider").unwrap_err().to_string();
        assert!(e.contains("only allowed to localhost"), "{e}");
        let e = validate_url("wss://me:secret@pool.example/ws/provider").unwrap_err().to_string();
        assert!(e.contains("user:password"), "{e}");
        let e = validate_url("https://pool.example/ws/provider").unwrap_err().to_string();
        assert!(e.contains("not a WebSocket scheme"), "{e}");
        assert!(validate_url("not a url").is_err());
    }
}
