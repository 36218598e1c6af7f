//! Real-process harness: runs `hearth pool` and `hearth serve` as child processes on loopback ports,
//! each provider with its own HEARTH_HOME, and talks to them over HTTP like a user would.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const MODEL: &str = "hearth-scripted";

pub fn hearth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process, SIGKILLed when dropped; its stderr goes to a log file printed on request.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().expect("cannot start process");
        Self { child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Kills it for sure, even if a test left it stopped (SIGSTOP).
    pub fn kill9(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (VmHWM, VmRSS) in KiB from /proc.
    pub fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.child.id())
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Pool {
    pub port: u16,
    pub proc: Proc,
}

impl Pool {
    pub async fn start(dir: &Path, port: u16, args: &[&str]) -> Self {
        let mut cmd = hearth();
        cmd.args(["pool", "--listen", &format!("127.0.0.1:{port}")]).args(args);
        let proc =
            Proc::spawn(cmd, dir.join(format!("pool-{port}-{}.log", Instant::now().elapsed().as_nanos())));
        let pool = Self { port, proc };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if reqwest::get(pool.url("/healthz")).await.is_ok() {
                return pool;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("pool did not come up:\n{}", pool.proc.log_text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws/provider", self.port)
    }

    pub async fn status(&self) -> Value {
        reqwest::get(self.url("/v1/status")).await.unwrap().json().await.unwrap()
    }

    /// Waits until `n` providers are ready; returns how long that took.
    pub async fn wait_ready(&self, n: u64, timeout: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(r) = reqwest::get(self.url("/v1/status")).await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["pool"]["ready"].as_u64() == Some(n) {
                        return started.elapsed();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("pool never saw {n} ready provider(s):\n{}", self.proc.log_text());
    }
}

/// A `hearth serve` process with its own HEARTH_HOME.
pub struct Provider {
    pub home: PathBuf,
    pub proc: Proc,
}

impl Provider {
    pub fn start(home: &Path, coordinator: &str, args: &[&str]) -> Self {
        std::fs::create_dir_all(home).unwrap();
        let mut cmd = hearth();
        cmd.env("HEARTH_HOME", home)
            .env("RUST_LOG", "info")
            .args(["serve", "--coordinator", coordinator, "--model-id", MODEL])
            .args(args);
        let proc = Proc::spawn(cmd, home.join("serve.log"));
        Self { home: home.to_path_buf(), proc }
    }

    /// `hearth status --json`, as a user would run it.
    pub fn status(&self) -> Value {
        let out = hearth().env("HEARTH_HOME", &self.home).args(["status", "--json"]).output().unwrap();
        assert!(out.status.success(), "hearth status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status_eventually(&self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let control = self.home.join("data/control.json");
            if control.exists() {
                let s = self.status();
                if pred(&s) || Instant::now() > deadline {
                    return s;
                }
            } else if Instant::now() > deadline {
                panic!("provider never started its control API:\n{}", self.proc.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn chat(model: &str, prompt: &str, max_tokens: i64, stream: bool) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
}

/// Reads a whole SSE response into its `data:` payloads (comments dropped).
pub async fn read_sse(mut response: reqwest::Response) -> Vec<String> {
    let mut buf = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    buf.split("\n\n").filter_map(|e| e.strip_prefix("data: ").map(str::to_string)).collect()
}

pub fn sse_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| e.as_str() != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

/// `hearth serve` with its own HEARTH_HOME, any arguments and extra environment (for tests that
/// drive it through settings instead of flags).
pub fn serve(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = hearth();
    cmd.env("HEARTH_HOME", home).env("RUST_LOG", "info").arg("serve").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn(
        cmd,
        home.join(format!(
            "serve-{}.log",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        )),
    )
}

/// The control API of the provider in `home`, found the way local clients find it (control.json).
pub struct Control {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Control {
    /// Waits for `control.json` written by a process with pid `pid`.
    pub async fn wait(home: &Path, pid: u32, timeout: Duration) -> Control {
        let path = home.join("data/control.json");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(raw) = std::fs::read(&path) {
                if let Ok(v) = serde_json::from_slice::<Value>(&raw) {
                    if v["pid"].as_u64() == Some(pid as u64) {
                        let http = reqwest::Client::builder()
                            .redirect(reqwest::redirect::Policy::none())
                            .build()
                            .unwrap();
                        return Control {
                            url: v["url"].as_str().unwrap().to_string(),
                            token: v["token"].as_str().unwrap().to_string(),
                            http,
                        };
                    }
                }
            }
            assert!(Instant::now() < deadline, "no control API from pid {pid} in {}", home.display());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.put(format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn status(&self) -> Value {
        self.json("/api/status").await
    }

    /// Polls `/api/status` until `pred` holds; panics with the last snapshot after `timeout`.
    pub async fn status_until(&self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status().await;
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "status never matched:\n{s:#}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Reads an SSE response event by event.
pub struct SseReader {
    response: reqwest::Response,
    buf: String,
}

/// One SSE event: its `event:` name (empty for comments) and its `data:` or comment text.
#[derive(Debug)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
    pub comment: Option<String>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self { response, buf: String::new() }
    }

    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent { name: String::new(), data: String::new(), comment: None };
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev.name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data.push_str(v.trim_start());
                    } else if let Some(v) = line.strip_prefix(':') {
                        ev.comment = Some(v.trim().to_string());
                    }
                }
                return Some(ev);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `status` event's snapshot.
    pub async fn next_status(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next(left).await?;
            if ev.name == "status" {
                return serde_json::from_str(&ev.data).ok();
            }
        }
    }
}

/// Writes a file the way editors save: a temp file renamed over the original.
pub fn save_like_an_editor(path: &Path, text: &str) {
    let tmp = path.with_extension("editor-tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Peak and current resident memory of a process, KiB (`VmHWM`, `VmRSS`; 0 where unknown).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
