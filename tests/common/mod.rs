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

/// A child process, killed when dropped; its stderr goes to a log file printed on request.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().expect("cannot start hearth");
        Self { child, log }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        unsafe { libc_kill(self.child.id() as i32, 15) };
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

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let proc = Proc::spawn(cmd, dir.join(format!("pool-{port}-{}.log", Instant::now().elapsed().as_nanos())));
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
