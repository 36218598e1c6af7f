//! Fault-injection rig for the provider: the `hearth serve` process lives in its own network
//! namespace and reaches the local pool over a veth pair, through a noxious (Toxiproxy port) proxy.
//!
//! ```text
//!  netns hf-<pid>                      root namespace (this test process)
//!  ┌──────────────────────┐  veth   ┌──────────────────────────────────────────────┐
//!  │ hearth serve          │─────────│ noxious proxy 10.231.N.1:P → 127.0.0.1:Q     │
//!  │  wss://10.231.N.1:P   │  tbf    │ hearth pool --listen 127.0.0.1:Q (TLS)       │
//!  │  control API 127.0.0.1│  routes │ buyers: https://127.0.0.1:Q                  │
//!  └──────────────────────┘         └──────────────────────────────────────────────┘
//! ```
//!
//! Why this shape: a blackhole must drop the *provider's own* packets (a proxy in between would
//! keep ACKing and hide the half-open link), so the provider's TCP connection crosses a real link
//! that the kernel can blackhole (`ip route add blackhole`) and rate-limit (`tc tbf`). Plain `ws://`
//! is only allowed to loopback, so the link carries `wss://` with a self-signed certificate the
//! provider trusts through `--ca-file`. Latency, jitter and cuts come from noxious in this process.
//! This kernel has no `sch_netem`, so packet loss cannot be injected.

//!
//! What is not about the namespace or the proxy comes from the test kit: the pool process and its
//! TLS, the child-process wrapper, chat bodies, buyer results and `poll_until`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_testkit::certs::Certs;
use hearth_testkit::control::ControlFile;
use hearth_testkit::hearth::{Hearth, MODEL};
use hearth_testkit::poll::try_poll_until;
use hearth_testkit::process::{tail, Proc};
use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop, Stopper};
use noxious::socket::TcpListener as NoxiousListener;
use noxious::toxic::{StreamDirection, Toxic, ToxicEvent, ToxicEventKind, ToxicEventResult, ToxicKind};
use serde_json::Value;

/// The binary under test (faults.rs and soak.rs start their pools with it too).
pub const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

/// Runs an `ip`/`tc`/`sysctl` command and panics with its stderr if it fails.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// A network namespace joined to the root namespace by a veth pair on a private /30.
pub struct NetNs {
    pub name: String,
    /// The root side (where the proxy listens) and the namespace side (the provider).
    pub root_dev: String,
    pub ns_dev: String,
    pub root_ip: String,
    pub ns_ip: String,
}

impl NetNs {
    /// `tag` keeps concurrent test binaries (faults, soak) apart.
    pub fn create(tag: u8) -> Self {
        let pid = std::process::id();
        let subnet = 100 + (pid % 100) as u8 + tag;
        let name = format!("hf{tag}-{pid}");
        let ns = Self {
            name: name.clone(),
            root_dev: format!("hf{tag}a{}", pid % 100_000),
            ns_dev: format!("hf{tag}b{}", pid % 100_000),
            root_ip: format!("10.231.{subnet}.1"),
            ns_ip: format!("10.231.{subnet}.2"),
        };
        ns.teardown();
        run("ip", &["netns", "add", &name]);
        run("ip", &["link", "add", &ns.root_dev, "type", "veth", "peer", "name", &ns.ns_dev]);
        run("ip", &["link", "set", &ns.ns_dev, "netns", &name]);
        run("ip", &["addr", "add", &format!("{}/30", ns.root_ip), "dev", &ns.root_dev]);
        run("ip", &["link", "set", &ns.root_dev, "up"]);
        ns.exec_ok(&["ip", "addr", "add", &format!("{}/30", ns.ns_ip), "dev", &ns.ns_dev]);
        ns.exec_ok(&["ip", "link", "set", &ns.ns_dev, "up"]);
        // The provider's control API binds 127.0.0.1 inside the namespace.
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn exec_ok(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// A command that runs inside the namespace (`ip netns exec` execs it: same pid).
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Drops every packet between the provider and the proxy, both ways, without telling either
    /// end: the provider's TCP connection becomes half-open.
    pub fn blackhole(&self, on: bool) {
        let verb = if on { "add" } else { "del" };
        run("ip", &["route", verb, "blackhole", &format!("{}/32", self.ns_ip)]);
        self.exec_ok(&["ip", "route", verb, "blackhole", &format!("{}/32", self.root_ip)]);
    }

    /// Packet loss without netem (this kernel has none): the link drops every packet, both ways,
    /// for `drop_for` out of every `period`, until the returned guard is dropped. Bursty loss like
    /// a flaky Wi-Fi link; TCP sees it as lost segments and retransmits them.
    pub fn lossy(&self, drop_for: Duration, period: Duration) -> LossyLink {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns_ip, root_ip, name) = (self.ns_ip.clone(), self.root_ip.clone(), self.name.clone());
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut outages = 0;
            let route = |verb: &str| {
                run("ip", &["route", verb, "blackhole", &format!("{ns_ip}/32")]);
                run(
                    "ip",
                    &["netns", "exec", &name, "ip", "route", verb, "blackhole", &format!("{root_ip}/32")],
                );
            };
            while !flag.load(Ordering::Relaxed) {
                route("add");
                std::thread::sleep(drop_for);
                route("del");
                outages += 1;
                std::thread::sleep(period.saturating_sub(drop_for));
            }
            outages
        });
        LossyLink { stop, thread: Some(thread) }
    }

    /// The namespace's TCP counters: (segments sent, segments retransmitted).
    pub fn tcp_segments(&self) -> (u64, u64) {
        let out =
            Command::new("ip").args(["netns", "exec", &self.name, "cat", "/proc/net/snmp"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
        let field = |want: &str| {
            let i = names.split_whitespace().position(|n| n == want).unwrap();
            values.split_whitespace().nth(i).unwrap().parse::<u64>().unwrap()
        };
        (field("OutSegs"), field("RetransSegs"))
    }

    /// Limits the provider's upload (its response chunks) with a token bucket, or removes it.
    pub fn rate_limit(&self, rate: Option<&str>) {
        match rate {
            Some(rate) => self.exec_ok(&[
                "tc",
                "qdisc",
                "replace",
                "dev",
                &self.ns_dev,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "16kb",
                "latency",
                "2s",
            ]),
            None => self.exec_ok(&["tc", "qdisc", "del", "dev", &self.ns_dev, "root"]),
        }
    }

    fn teardown(&self) {
        run_quiet("ip", &["route", "del", "blackhole", &format!("{}/32", self.ns_ip)]);
        run_quiet("ip", &["link", "del", &self.root_dev]);
        run_quiet("ip", &["netns", "del", &self.name]);
    }
}

/// A link dropping packets in bursts (see [`NetNs::lossy`]); healthy again once dropped.
pub struct LossyLink {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl LossyLink {
    /// Heals the link; returns how many outages there were.
    pub fn heal(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(|t| t.join().unwrap()).unwrap_or(0)
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// An HTTP client whose sockets live in a network namespace: a thread that joined it (setns
/// changes only the calling thread) runs its own single-threaded runtime.
pub struct NsHttp {
    jobs: std::sync::mpsc::Sender<NsJob>,
}

type NsJob = (String, Option<String>, tokio::sync::oneshot::Sender<Result<(u16, String), String>>);

impl NsHttp {
    pub fn new(ns: &str) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<NsJob>();
        let path = format!("/var/run/netns/{ns}");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns handle");
            // SAFETY: a valid namespace fd; setns affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns failed: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
            ready_tx.send(()).unwrap();
            while let Ok((url, token, reply)) = rx.recv() {
                let result = rt.block_on(async {
                    let mut req = http.get(&url);
                    if let Some(t) = token {
                        req = req.bearer_auth(t);
                    }
                    let r = req.send().await.map_err(|e| e.to_string())?;
                    let status = r.status().as_u16();
                    Ok((status, r.text().await.map_err(|e| e.to_string())?))
                });
                let _ = reply.send(result);
            }
        });
        ready_rx.recv().unwrap();
        Self { jobs: tx }
    }

    pub async fn get(&self, url: &str, token: Option<&str>) -> Result<(u16, String), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs.send((url.to_string(), token.map(str::to_string), tx)).unwrap();
        rx.await.unwrap()
    }
}

/// A self-signed certificate for the pool, valid for loopback and the veth address (`ips`).
pub fn certs(dir: &Path, ips: &[&str]) -> Certs {
    let names: Vec<&str> = ips.iter().copied().chain(["localhost"]).collect();
    Certs::self_signed(dir, &names)
}

/// The noxious proxy between the provider and the pool. `cut` stops it (every connection through
/// it is closed and new ones are refused) until `restore`.
pub struct FaultProxy {
    config: ProxyConfig,
    running: Option<(Stopper, bmrng::RequestSender<ToxicEvent, ToxicEventResult>)>,
}

impl FaultProxy {
    pub async fn start(listen: String, upstream: String) -> Self {
        let config =
            ProxyConfig { name: "coordinator".into(), listen, upstream, enabled: true, rand_seed: Some(7) };
        let mut proxy = Self { config, running: None };
        proxy.restore().await;
        proxy
    }

    pub async fn restore(&mut self) {
        assert!(self.running.is_none(), "proxy already running");
        let (listener, info) = ProxyRunner::initialize_proxy::<NoxiousListener>(
            self.config.clone(),
            Toxics { upstream: vec![], downstream: vec![] },
        )
        .await
        .expect("proxy cannot listen");
        let (stop, stopper) = Stop::new();
        let (_close, closer) = Close::new();
        let (events, receiver) = bmrng::channel(4);
        tokio::spawn(async move {
            let _ = ProxyRunner::run_proxy(listener, info, receiver, stop, closer).await;
        });
        self.running = Some((stopper, events));
    }

    /// Closes every connection through the proxy and stops listening.
    pub async fn cut(&mut self) {
        let (stopper, _) = self.running.take().expect("proxy not running");
        stopper.stop();
        // Let the link tasks see the stop and drop their sockets before the caller measures.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    async fn event(&self, kind: ToxicEventKind) {
        let (_, events) = self.running.as_ref().expect("proxy not running");
        let event = ToxicEvent { proxy_name: self.config.name.clone(), kind };
        events.send_receive(event).await.expect("proxy gone").expect("toxic refused");
    }

    /// Latency ± jitter (ms) on both directions.
    pub async fn add_latency(&self, latency: u64, jitter: u64) {
        for (direction, name) in
            [(StreamDirection::Upstream, "lat-up"), (StreamDirection::Downstream, "lat-down")]
        {
            let toxic = Toxic {
                kind: ToxicKind::Latency { latency, jitter },
                name: name.into(),
                toxicity: 1.0,
                direction,
            };
            self.event(ToxicEventKind::AddToxic(toxic)).await;
        }
    }

    pub async fn clear(&self) {
        self.event(ToxicEventKind::RemoveAllToxics).await;
    }
}

/// The provider (`hearth serve`) inside the namespace, and how to reach its control API there.
pub struct NsProvider {
    pub home: PathBuf,
    pub proc: Proc,
    pub http: NsHttp,
    pub control_url: String,
    pub token: String,
}

impl NsProvider {
    pub async fn start(ns: &NetNs, home: &Path, coordinator: &str, ca: &Path, extra: &[&str]) -> Self {
        std::fs::create_dir_all(home).unwrap();
        let mut cmd = ns.command(HEARTH.path());
        cmd.env("HEARTH_HOME", home)
            .env("RUST_LOG", "info")
            .args(["serve", "--coordinator", coordinator, "--model-id", MODEL, "--ca-file"])
            .arg(ca)
            .args(["--pool-poll-interval", "0.5", "--earnings-poll-interval", "0.5"])
            .args(extra);
        let proc = Proc::spawn(cmd, home, "serve");
        let ControlFile { url, token } = ControlFile::wait(home, &proc, Duration::from_secs(20)).await;
        Self { home: home.to_path_buf(), proc, http: NsHttp::new(&ns.name), control_url: url, token }
    }

    pub async fn json(&self, path: &str) -> Value {
        let (code, body) = self
            .http
            .get(&format!("{}{path}", self.control_url), Some(&self.token))
            .await
            .unwrap_or_else(|e| panic!("control API {path}: {e}\n{}", self.proc.log_text()));
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub async fn status(&self) -> Value {
        self.json("/api/status").await
    }

    /// Polls the status until `pred` holds; returns it and how long that took. Panics after
    /// `timeout` with `what`, the last status and the provider's log.
    pub async fn until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&Value) -> bool,
    ) -> (Value, Duration) {
        let started = Instant::now();
        match try_poll_until(what, timeout, || self.status(), pred).await {
            Ok(s) => (s, started.elapsed()),
            Err(timed_out) => {
                timed_out.fail(format!("provider log tail:\n{}", tail(&self.proc.log_text(), 30)))
            }
        }
    }

    /// Every ledger row the control API reports, by request id.
    pub async fn ledger(&self) -> BTreeMap<String, Value> {
        let e = self.json("/api/earnings?range=all&limit=100000").await;
        e["recent_jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["request_id"].as_str().unwrap().to_string(), j.clone()))
            .collect()
    }
}

pub fn connected(s: &Value) -> bool {
    s["connection"]["connected"] == true
}

pub fn serving(s: &Value) -> bool {
    connected(s) && (s["phase"] == "ready" || s["phase"] == "busy")
}

/// p50 and max of a set of durations, as seconds.
pub fn p50_max(values: &[Duration]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut v: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[(v.len() - 1) / 2], v[v.len() - 1])
}
