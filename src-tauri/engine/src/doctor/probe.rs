//! The doctor's observations: TCP and TLS to the coordinator (TLS with the session's own rustls
//! configuration, so the verdict is the session's), its HTTP `Date` header and earnings endpoint,
//! the model's inspection, memory and disk, and other inference servers on their usual ports and
//! in the process list. Nothing here decides a verdict; [`super::checks`] does.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hearth_settings::{EngineKind, TokenSource};
use tokio::net::TcpStream;

use super::checks::{Clock, Competing, Disk, Memory, Model, Reach, Tls, Token};
use super::{CoordinatorTarget, DoctorInputs};
use crate::status::ProviderPhase;

/// An inference server the doctor looks for: its usual port on 127.0.0.1 and its process names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Competitor {
    pub name: String,
    pub port: u16,
    /// Matched against a process's name, its executable's file name, or any one argument
    /// (`python -m mlx_lm.server`), case-insensitively.
    pub processes: Vec<String>,
}

fn competitor(name: &str, port: u16, processes: &[&str]) -> Competitor {
    Competitor { name: name.into(), port, processes: processes.iter().map(|p| p.to_string()).collect() }
}

/// Ollama, LM Studio, mlx_lm.server and llama-server on their default ports.
pub fn default_competitors() -> Vec<Competitor> {
    vec![
        competitor("Ollama", 11434, &["ollama", "Ollama"]),
        competitor("LM Studio", 1234, &["LM Studio", "lm-studio", "lms"]),
        competitor("mlx_lm.server", 8080, &["mlx_lm.server"]),
        competitor("llama-server", 8080, &["llama-server"]),
    ]
}

/// [`default_competitors`], or, when `HEARTH_DOCTOR_PORTS` is set (`Ollama=1234,llama-server=5678`;
/// for tests, which cannot rely on those ports being free), only the servers it names, on its ports.
pub fn competitors_from_env() -> Vec<Competitor> {
    let Some(spec) = std::env::var("HEARTH_DOCTOR_PORTS").ok().filter(|s| !s.trim().is_empty()) else {
        return default_competitors();
    };
    let known = default_competitors();
    spec.split(',')
        .filter_map(|entry| {
            let (name, port) = entry.trim().rsplit_once('=')?;
            let port: u16 = port.trim().parse().ok()?;
            let processes = known.iter().find(|c| c.name == name.trim()).map(|c| c.processes.clone());
            Some(Competitor { name: name.trim().into(), port, processes: processes.unwrap_or_default() })
        })
        .collect()
}

/// Host, port, scheme and gateway URL of a coordinator URL.
struct Endpoint {
    host: String,
    port: u16,
    tls: bool,
    gateway: Option<String>,
}

fn endpoint(url: &str) -> Result<Endpoint, String> {
    let parsed = crate::session::connect::validate_url(url).map_err(|e| e.to_string())?;
    let host =
        parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    Ok(Endpoint {
        port: parsed.port_or_known_default().unwrap_or(443),
        tls: parsed.scheme() == "wss",
        gateway: crate::app::remote::gateway_url(url),
        host,
    })
}

/// Connects to `host:port` (every address it resolves to, in turn).
pub async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let work = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let mut last = "no address".to_string();
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(_) => return Ok(addr),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    };
    tokio::time::timeout(timeout, work).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

pub async fn reach(i: &DoctorInputs) -> Reach {
    match &i.coordinator {
        CoordinatorTarget::LocalPool { running: false, .. } => Reach::LocalPoolNotStarted,
        CoordinatorTarget::LocalPool { addr, running: true } => {
            let shown = addr.to_string();
            match tcp(&addr.ip().to_string(), addr.port(), i.timeout).await {
                Ok(_) => Reach::Reached { addr: shown, local_pool: true },
                Err(why) => Reach::Unreachable { addr: shown, why, local_pool: true },
            }
        }
        CoordinatorTarget::Url(url) => {
            let e = match endpoint(url) {
                Ok(e) => e,
                Err(why) => return Reach::BadUrl(why),
            };
            let shown = format!("{}:{}", e.host, e.port);
            match tcp(&e.host, e.port, i.timeout).await {
                Ok(_) => Reach::Reached { addr: shown, local_pool: false },
                Err(why) => Reach::Unreachable { addr: shown, why, local_pool: false },
            }
        }
    }
}

pub async fn tls(i: &DoctorInputs) -> Tls {
    let url = match &i.coordinator {
        CoordinatorTarget::LocalPool { .. } => {
            return Tls::NotUsed("not used: the local pool runs on this machine".into())
        }
        CoordinatorTarget::Url(u) => u,
    };
    let Ok(e) = endpoint(url) else { return Tls::Unreached };
    if !e.tls {
        return Tls::NotUsed("not used: plain ws:// to this machine".into());
    }
    let config = match crate::session::connect::tls_client_config(i.ca_file.as_deref()) {
        Ok(c) => Arc::new(c),
        Err(err) => return Tls::CaFile(err.to_string()),
    };
    let (host, port, timeout) = (e.host.clone(), e.port, i.timeout);
    let result = tokio::task::spawn_blocking(move || handshake(&host, port, config, timeout))
        .await
        .unwrap_or_else(|e| Err(HandshakeError::Other(e.to_string())));
    let host = e.host;
    match result {
        Ok(version) => Tls::Valid { version, host },
        Err(HandshakeError::Tcp) => Tls::Unreached,
        // The app may have been started with an extra CA the doctor was not told of: a session
        // that is connected has had its certificate verified by the session itself.
        Err(HandshakeError::Certificate(_)) if session_connected_to(i, url) => {
            Tls::Valid { version: "verified by the connected session".into(), host }
        }
        Err(HandshakeError::Certificate(why)) => Tls::Invalid { host, why },
        Err(HandshakeError::Other(why)) => Tls::Failed { host, why },
    }
}

fn session_connected_to(i: &DoctorInputs, url: &str) -> bool {
    i.status.as_ref().is_some_and(|s| s.connection.connected && s.connection.coordinator_url == url)
}

#[derive(Debug)]
enum HandshakeError {
    Tcp,
    Certificate(String),
    Other(String),
}

/// A TLS handshake over a plain blocking socket: the verdict needs only the handshake, and the
/// blocking pool keeps this off the async workers. Returns the negotiated protocol version.
fn handshake(
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<String, HandshakeError> {
    let addr =
        (host, port).to_socket_addrs().map_err(|_| HandshakeError::Tcp)?.next().ok_or(HandshakeError::Tcp)?;
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|_| HandshakeError::Tcp)?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| HandshakeError::Other(format!("{host} is not a valid TLS name: {e}")))?;
    let mut conn =
        rustls::ClientConnection::new(config, name).map_err(|e| HandshakeError::Other(e.to_string()))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
            return Err(match rustls_error {
                Some(rustls::Error::InvalidCertificate(c)) => HandshakeError::Certificate(format!("{c:?}")),
                Some(other) => HandshakeError::Other(other.to_string()),
                None => HandshakeError::Other(e.to_string()),
            });
        }
    }
    Ok(conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_else(|| "TLS".into()))
}

fn gateway(i: &DoctorInputs) -> Result<String, String> {
    match &i.coordinator {
        CoordinatorTarget::LocalPool { .. } => Err("the local pool".into()),
        CoordinatorTarget::Url(u) => endpoint(u)?.gateway.ok_or_else(|| format!("{u} has no HTTP gateway")),
    }
}

pub async fn token(i: &DoctorInputs) -> Token {
    if matches!(i.coordinator, CoordinatorTarget::LocalPool { .. }) {
        return Token::LocalPool;
    }
    let gateway = match gateway(i) {
        Ok(g) => g,
        Err(why) => return Token::Unknown(why),
    };
    // The path holds the provider id (a safe id); the token travels only in the header.
    let url = format!("{gateway}/providers/{}/earnings", i.provider_id);
    let mut request = crate::app::remote::coordinator_client(i.ca_file.as_deref(), i.timeout).get(&url);
    if let Some(t) = &i.token {
        request = request.bearer_auth(t.token.expose());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Token::Unknown(format!("cannot reach {url}: {}", e.without_url())),
    };
    let status = response.status();
    match (status.as_u16(), &i.token) {
        (200..=299, Some(t)) => Token::Accepted {
            source: match t.source {
                TokenSource::Env => "HEARTH_PROVIDER_TOKEN environment variable".into(),
                TokenSource::Keychain => "keychain".into(),
            },
        },
        (200..=299, None) => Token::NotNeeded,
        (code @ (401 | 403), Some(_)) => Token::Refused { status: code },
        (code @ (401 | 403), None) => Token::Required { status: code },
        (404, _) => Token::NoEndpoint,
        (code, _) => Token::Unknown(format!("{url} answered HTTP {code}")),
    }
}

pub async fn clock(i: &DoctorInputs) -> Clock {
    let gateway = match gateway(i) {
        Ok(g) => g,
        Err(_) if matches!(i.coordinator, CoordinatorTarget::LocalPool { .. }) => return Clock::SameMachine,
        Err(why) => return Clock::Unknown(why),
    };
    clock_at(&format!("{gateway}/v1/status"), i.ca_file.as_deref(), i.timeout).await
}

/// The skew between this machine and the server answering `url`, from its `Date` header.
pub async fn clock_at(url: &str, ca_file: Option<&Path>, timeout: Duration) -> Clock {
    let sent = SystemTime::now();
    let response = match crate::app::remote::coordinator_client(ca_file, timeout).get(url).send().await {
        Ok(r) => r,
        Err(e) => return Clock::Unknown(format!("cannot reach {url}: {}", e.without_url())),
    };
    let received = SystemTime::now();
    let Some(date) = response.headers().get(reqwest::header::DATE).and_then(|d| d.to_str().ok()) else {
        return Clock::NoDate;
    };
    let Some(server) = parse_http_date(date) else { return Clock::NoDate };
    // The server stamped its answer somewhere between our send and receive: take the midpoint.
    // Its clock is read to the second and truncated, so its moment is half a second later on average.
    let unix =
        |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let local = (unix(sent) + unix(received)) / 2.0;
    Clock::Skew(server as f64 + 0.5 - local)
}

/// An HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) as unix seconds.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(s.trim(), &format).ok()?;
    Some(t.assume_utc().unix_timestamp())
}

/// Tokens of context the memory estimate reserves, as the model picker's estimate does.
const ESTIMATE_CONTEXT: usize = 4096;

pub async fn model(i: &DoctorInputs) -> Model {
    if let Some(s) = &i.status {
        use ProviderPhase::*;
        match s.phase {
            Ready | Busy | Draining | Degraded | Paused | Offline => {
                return Model::Serving { model_id: s.model_id.clone(), engine: s.engine.clone() }
            }
            Connecting => return Model::Starting,
            Error if s.reason.starts_with("model not loaded") => return Model::LoadFailed(s.reason.clone()),
            // Stopped, or failed for another reason: judge the configured model as if not running.
            _ => {}
        }
    }
    match i.engine {
        EngineKind::Scripted => Model::NoModelNeeded,
        EngineKind::Loopback => {
            let Some(url) = i.loopback_url.clone() else { return Model::LoopbackUnset };
            let Some((host, port)) = url::Url::parse(&url)
                .ok()
                .and_then(|u| Some((u.host_str()?.to_string(), u.port_or_known_default()?)))
            else {
                return Model::LoopbackDown { url, why: "not a valid URL".into() };
            };
            match tcp(host.trim_start_matches('[').trim_end_matches(']'), port, i.timeout).await {
                Ok(_) => Model::LoopbackUp(url),
                Err(why) => Model::LoopbackDown { url, why },
            }
        }
        EngineKind::Cpu | EngineKind::Mlx | EngineKind::Gguf => {
            let Some(path) = i.model_path.clone() else { return Model::NoModelChosen };
            if !path.exists() {
                return Model::Missing(path);
            }
            tokio::task::spawn_blocking(move || inspect(&path))
                .await
                .unwrap_or_else(|e| Model::Unloadable(format!("the inspection failed: {e}")))
        }
    }
}

/// The inspection the loader runs (and discovery shows), with its memory estimate.
fn inspect(path: &Path) -> Model {
    let info = match hearth_inference::inspect_model(path) {
        Ok(info) => info,
        Err(e) => return Model::Unloadable(e.to_string().lines().next().unwrap_or_default().to_string()),
    };
    if let Err(why) = &info.cpu_supported {
        return Model::Unloadable(format!("{}: {}", path.display(), why.lines().next().unwrap_or_default()));
    }
    let backend = match info.format {
        hearth_inference::ModelFormat::MlxDir if cfg!(target_os = "macos") => hearth_inference::Backend::Mlx,
        _ => hearth_inference::Backend::Cpu,
    };
    let needed = info.estimated_memory(&backend, ESTIMATE_CONTEXT.min(info.max_context.max(1)));
    Model::Loadable {
        name: info.model_id.clone(),
        family: info.family.clone(),
        needed: (needed > 0).then_some(needed),
    }
}

/// Memory and disk, read once.
pub struct System {
    pub total: Option<u64>,
    pub available: Option<u64>,
    pub disks: Vec<Disk>,
}

pub async fn system(i: &DoctorInputs) -> System {
    let mut places = vec![("data folder".to_string(), i.data_dir.clone())];
    if let Some(hf) = &i.hf_cache {
        places.push(("Hugging Face cache".into(), hf.clone()));
    }
    tokio::task::spawn_blocking(move || System {
        total: crate::system::total_ram_bytes(),
        available: available_ram(),
        disks: places.into_iter().map(|(label, path)| Disk { free: free_disk(&path), label, path }).collect(),
    })
    .await
    .unwrap_or(System { total: None, available: None, disks: vec![] })
}

pub fn memory_need(model: &Model, system: &System) -> Memory {
    Memory {
        total: system.total,
        available: system.available,
        needed: match model {
            Model::Loadable { needed, .. } => *needed,
            _ => None,
        },
        loaded: matches!(model, Model::Serving { .. }),
    }
}

/// Bytes an unprivileged process may still write on the volume holding `path` (or its nearest
/// existing parent: the Hugging Face cache may not exist yet).
pub fn free_disk(path: &Path) -> Option<u64> {
    let mut p: PathBuf = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

/// Memory the system could give a new model without swapping.
pub fn available_ram() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kb: u64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemAvailable:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
    #[cfg(target_os = "macos")]
    {
        // Free, speculative and purgeable pages: a floor (macOS also reclaims inactive pages),
        // which is the safe side for "will the model fit".
        fn sysctl(name: &std::ffi::CStr) -> Option<u64> {
            let mut v: u64 = 0;
            let mut len = std::mem::size_of::<u64>();
            // SAFETY: `v` is 8 writable bytes and `len` says so; a 4-byte value fills the low
            // bytes (both Mac architectures are little-endian).
            let rc = unsafe {
                libc::sysctlbyname(
                    name.as_ptr(),
                    (&mut v as *mut u64).cast(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            };
            (rc == 0).then_some(v)
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
        let pages = sysctl(c"vm.page_free_count")?
            + sysctl(c"vm.page_speculative_count").unwrap_or(0)
            + sysctl(c"vm.page_purgeable_count").unwrap_or(0);
        Some(pages * page)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        None
    }
}

/// A running process, as far as the OS lets an ordinary user see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    pub args: Vec<String>,
    pub rss: Option<u64>,
}

impl ProcessInfo {
    fn matches(&self, pattern: &str) -> bool {
        let exe = self.args.first().and_then(|a| Path::new(a).file_name()).map(|n| n.to_string_lossy());
        self.name.eq_ignore_ascii_case(pattern)
            || exe.is_some_and(|e| e.eq_ignore_ascii_case(pattern))
            || self.args.iter().skip(1).any(|a| a.eq_ignore_ascii_case(pattern))
    }
}

/// The processes on this machine (Linux: /proc; macOS: names only, from libproc).
pub fn list_processes() -> Vec<ProcessInfo> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
        let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
        dir.flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let base = e.path();
                let name = std::fs::read_to_string(base.join("comm")).ok()?.trim().to_string();
                let args = std::fs::read(base.join("cmdline"))
                    .map(|raw| {
                        raw.split(|b| *b == 0)
                            .filter(|a| !a.is_empty())
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let rss = std::fs::read_to_string(base.join("statm"))
                    .ok()
                    .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .map(|pages| pages * page);
                Some(ProcessInfo { pid, name, args, rss })
            })
            .collect()
    }
    #[cfg(target_os = "macos")]
    {
        // SAFETY: a null buffer asks for the count only.
        let n = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
        if n <= 0 {
            return vec![];
        }
        let mut pids = vec![0 as libc::pid_t; n as usize + 64];
        let bytes = (pids.len() * std::mem::size_of::<libc::pid_t>()) as libc::c_int;
        // SAFETY: `pids` has `bytes` writable bytes.
        let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        pids.truncate(n.max(0) as usize);
        pids.into_iter()
            .filter(|p| *p > 0)
            .filter_map(|pid| {
                let mut buf = [0u8; 256];
                // SAFETY: `buf` is writable and its length is passed.
                let len = unsafe { libc::proc_name(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
                (len > 0).then(|| ProcessInfo {
                    pid: pid as u32,
                    name: String::from_utf8_lossy(&buf[..len as usize]).into_owned(),
                    args: vec![],
                    rss: None,
                })
            })
            .collect()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        vec![]
    }
}

pub async fn competitors(i: &DoctorInputs) -> Vec<Competing> {
    let processes = tokio::task::spawn_blocking(list_processes).await.unwrap_or_default();
    // The server the loopback engine forwards to is the one Hearth uses, not a competitor.
    let ours = match i.engine {
        EngineKind::Loopback => {
            i.loopback_url.as_deref().and_then(|u| url::Url::parse(u).ok()?.port_or_known_default())
        }
        _ => None,
    };
    find_competitors(&i.competitors, &processes, ours, Duration::from_millis(500).min(i.timeout)).await
}

/// Which of `table` listen on 127.0.0.1 or appear in `processes` (this process excluded), skipping
/// `ours` (the port Hearth itself forwards to).
pub async fn find_competitors(
    table: &[Competitor],
    processes: &[ProcessInfo],
    ours: Option<u16>,
    timeout: Duration,
) -> Vec<Competing> {
    let me = std::process::id();
    let table: Vec<&Competitor> = table.iter().filter(|c| Some(c.port) != ours).collect();
    let mut ports: Vec<u16> = table.iter().map(|c| c.port).collect();
    ports.sort_unstable();
    ports.dedup();
    let mut open = Vec::new();
    for port in ports {
        if tcp("127.0.0.1", port, timeout).await.is_ok() {
            open.push(port);
        }
    }
    let mut found: Vec<Competing> = Vec::new();
    let mut explained = Vec::new();
    for c in &table {
        let matched: Vec<(u32, Option<u64>)> = processes
            .iter()
            .filter(|p| p.pid != me && c.processes.iter().any(|pat| p.matches(pat)))
            .map(|p| (p.pid, p.rss))
            .collect();
        if matched.is_empty() {
            continue;
        }
        let port = open.contains(&c.port).then_some(c.port);
        if port.is_some() {
            explained.push(c.port);
        }
        found.push(Competing { name: c.name.clone(), port, processes: matched });
    }
    // A port open with no known process behind it: name everything that uses that port.
    for port in open.into_iter().filter(|p| !explained.contains(p)) {
        let names: Vec<&str> = table.iter().filter(|c| c.port == port).map(|c| c.name.as_str()).collect();
        found.push(Competing { name: names.join(" or "), port: Some(port), processes: vec![] });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{checks, SettingsState, Verdict};

    fn inputs(coordinator: CoordinatorTarget) -> DoctorInputs {
        DoctorInputs {
            settings: SettingsState::Missing("/x".into()),
            coordinator,
            ca_file: None,
            provider_id: "p1".into(),
            token: None,
            engine: EngineKind::Scripted,
            model_path: None,
            loopback_url: None,
            status: None,
            data_dir: std::env::temp_dir(),
            hf_cache: None,
            competitors: vec![],
            timeout: Duration::from_secs(2),
            source: "cli",
        }
    }

    /// A one-route HTTP server on a free port answering every request with `status` and `headers`.
    async fn fake_http(status: u16, headers: Vec<(&'static str, String)>) -> SocketAddr {
        use axum::http::{HeaderName, HeaderValue, StatusCode};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move || {
            let headers = headers.clone();
            async move {
                let mut r =
                    axum::response::IntoResponse::into_response(StatusCode::from_u16(status).unwrap());
                for (k, v) in headers {
                    r.headers_mut().insert(HeaderName::from_static(k), HeaderValue::from_str(&v).unwrap());
                }
                r
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        addr
    }

    fn http_date(offset_s: i64) -> String {
        let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_s);
        let f = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        t.format(&f).unwrap()
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[tokio::test]
    async fn a_coordinator_with_a_skewed_date_header_is_reported() {
        for (offset, verdict) in [(0, Verdict::Ok), (-120, Verdict::Warn), (3600, Verdict::Fail)] {
            let addr = fake_http(200, vec![("date", http_date(offset))]).await;
            let i = inputs(CoordinatorTarget::Url(format!("ws://{addr}/ws/provider")));
            let c = clock(&i).await;
            let Clock::Skew(s) = c else { panic!("{c:?}") };
            assert!((s - offset as f64).abs() < 2.0, "{s} vs {offset}");
            assert_eq!(checks::clock(&c).verdict, verdict, "{offset}");
        }
    }

    #[tokio::test]
    async fn the_token_check_reads_the_coordinators_answer() {
        let token = hearth_settings::ResolvedToken {
            token: hearth_settings::ProviderToken::new("secret-token-123").unwrap(),
            source: TokenSource::Env,
        };
        let cases = [
            (200, true, Token::Accepted { source: "HEARTH_PROVIDER_TOKEN environment variable".into() }),
            (200, false, Token::NotNeeded),
            (401, true, Token::Refused { status: 401 }),
            (403, false, Token::Required { status: 403 }),
            (404, false, Token::NoEndpoint),
        ];
        for (status, with_token, want) in cases {
            let addr = fake_http(status, vec![]).await;
            let mut i = inputs(CoordinatorTarget::Url(format!("ws://{addr}/ws/provider")));
            i.token = with_token.then(|| token.clone());
            assert_eq!(token_probe(&i).await, want, "{status} {with_token}");
        }
        let i = inputs(CoordinatorTarget::LocalPool { addr: "127.0.0.1:9".parse().unwrap(), running: false });
        assert_eq!(token_probe(&i).await, Token::LocalPool);
    }

    async fn token_probe(i: &DoctorInputs) -> Token {
        token(i).await
    }

    #[tokio::test]
    async fn reach_and_tls_for_plain_and_closed_coordinators() {
        let addr = fake_http(200, vec![]).await;
        let i = inputs(CoordinatorTarget::Url(format!("ws://{addr}/ws/provider")));
        assert!(matches!(reach(&i).await, Reach::Reached { .. }));
        assert!(matches!(tls(&i).await, Tls::NotUsed(_)));
        let closed = hearth_testkit::process::free_port();
        let i = inputs(CoordinatorTarget::Url(format!("ws://127.0.0.1:{closed}/ws/provider")));
        assert!(matches!(reach(&i).await, Reach::Unreachable { local_pool: false, .. }));
        assert!(matches!(clock(&i).await, Clock::Unknown(_)));
        let i = inputs(CoordinatorTarget::Url("ws://pool.example/ws/provider".into()));
        assert!(matches!(reach(&i).await, Reach::BadUrl(_)));
        let i = inputs(CoordinatorTarget::LocalPool { addr: "127.0.0.1:9".parse().unwrap(), running: false });
        assert_eq!(reach(&i).await, Reach::LocalPoolNotStarted);
        assert_eq!(clock(&i).await, Clock::SameMachine);
    }

    #[tokio::test]
    async fn a_wss_coordinator_with_an_untrusted_certificate_fails_tls_and_trusting_its_ca_passes() {
        let dir = tempfile::tempdir().unwrap();
        let certs = hearth_testkit::certs::Certs::self_signed(dir.path(), &["localhost", "127.0.0.1"]);
        let port = hearth_testkit::process::free_port();
        let pool_config = hearth_pool::PoolConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            tls: Some(hearth_pool::TlsFiles { cert: certs.cert.clone(), key: certs.key.clone() }),
            ..Default::default()
        };
        let pool = hearth_pool::Pool::start(pool_config).await.unwrap();
        let mut i = inputs(CoordinatorTarget::Url(format!("wss://localhost:{port}/ws/provider")));
        let untrusted = tls(&i).await;
        assert!(
            matches!(&untrusted, Tls::Invalid { why, .. } if why.contains("UnknownIssuer")),
            "{untrusted:?}"
        );
        i.ca_file = Some(certs.cert.clone());
        let trusted = tls(&i).await;
        assert!(
            matches!(&trusted, Tls::Valid { version, .. } if version.starts_with("TLSv1")),
            "{trusted:?}"
        );
        pool.shutdown().await;
    }

    #[tokio::test]
    async fn a_server_on_a_competitors_port_or_in_the_process_list_is_found() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let busy = listener.local_addr().unwrap().port();
        let free = hearth_testkit::process::free_port();
        let table = vec![
            competitor("Ollama", busy, &["ollama"]),
            competitor("LM Studio", free, &["LM Studio"]),
            competitor("llama-server", free, &["llama-server"]),
        ];
        let procs = vec![
            ProcessInfo {
                pid: 7,
                name: "python3".into(),
                args: vec!["python3".into(), "-m".into(), "x".into()],
                rss: None,
            },
            ProcessInfo {
                pid: 8,
                name: "llama-serv".into(),
                args: vec!["/opt/bin/llama-server".into(), "-m".into(), "m.gguf".into()],
                rss: Some(2 << 30),
            },
        ];
        let t = Duration::from_millis(300);
        let found = find_competitors(&table, &procs, None, t).await;
        assert_eq!(
            found,
            [
                Competing { name: "llama-server".into(), port: None, processes: vec![(8, Some(2 << 30))] },
                Competing { name: "Ollama".into(), port: Some(busy), processes: vec![] },
            ]
        );
        // The loopback engine's own server is not a competitor.
        assert_eq!(find_competitors(&table[..1], &[], Some(busy), t).await, []);
        assert_eq!(
            checks::competing(&find_competitors(&table[1..], &[], None, t).await).verdict,
            Verdict::Ok
        );
        drop(listener);
    }

    #[tokio::test]
    async fn the_model_check_inspects_the_configured_model_when_no_app_runs() {
        let mut i = inputs(CoordinatorTarget::Url("ws://127.0.0.1:9/ws/provider".into()));
        assert_eq!(model(&i).await, Model::NoModelNeeded);
        i.engine = EngineKind::Gguf;
        assert_eq!(model(&i).await, Model::NoModelChosen);
        i.model_path = Some("/nonexistent/model.gguf".into());
        assert_eq!(model(&i).await, Model::Missing("/nonexistent/model.gguf".into()));
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.gguf");
        std::fs::write(&cut, b"GGUF\x03\x00").unwrap();
        i.model_path = Some(cut);
        assert!(matches!(model(&i).await, Model::Unloadable(why) if why.contains("cut.gguf")));
        if let Some(fixtures) = hearth_testkit::shared_fixtures::fixture_models_if_present() {
            i.engine = EngineKind::Cpu;
            i.model_path = Some(fixtures.join("tiny-qwen2-4bit"));
            let m = model(&i).await;
            assert!(
                matches!(&m, Model::Loadable { family, needed: Some(n), .. } if family == "qwen2" && *n > 0),
                "{m:?}"
            );
        }
        // A running app's status wins over the files.
        let mut s = crate::status::Status::new("p", "m1", "gguf", 1, "ws://x");
        s.set_phase(ProviderPhase::Error, "model not loaded: out of memory");
        i.status = Some(s.clone());
        assert_eq!(model(&i).await, Model::LoadFailed("model not loaded: out of memory".into()));
        s.set_phase(ProviderPhase::Ready, "serving");
        i.status = Some(s);
        assert_eq!(model(&i).await, Model::Serving { model_id: "m1".into(), engine: "gguf".into() });
    }

    #[test]
    fn free_disk_and_memory_are_read() {
        assert!(free_disk(Path::new("/")).is_some_and(|b| b > 0));
        assert!(free_disk(Path::new("/definitely/not/here")).is_some(), "the nearest existing parent");
        if cfg!(target_os = "linux") {
            assert!(available_ram().is_some_and(|b| b > 0));
            assert!(list_processes().iter().any(|p| p.pid == std::process::id()));
        }
    }
}
