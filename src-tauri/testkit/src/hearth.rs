//! The `hearth` binary as its users run it: `hearth pool` and `hearth serve` as child processes on
//! loopback ports, each provider with its own HEARTH_HOME, talked to over HTTP and WebSocket.
//!
//! The kit cannot find the binary itself: cargo builds it and names its path only for
//! hearth-engine's own integration tests, and the kit must not depend on hearth-engine. So a test
//! file hands the path over once, and everything here takes it from there:
//!
//! ```ignore
//! const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));
//!
//! let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
//! let provider = HEARTH.provider(&dir.path().join("p1"), &pool.ws_url(), &[]);
//! pool.wait_ready(1, Duration::from_secs(10)).await;
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::certs::Certs;
use crate::poll::try_poll_until;
use crate::process::{tail, Proc};

/// The model id tests serve with the scripted engine (`hearth serve --model-id`, or
/// `ScriptedEngine::new(MODEL)` in process). The scripted engine answers `t0 t1 …`, one token per
/// `max_tokens`, paced by a `token_delay_ms=N` in the prompt.
pub const MODEL: &str = "hearth-scripted";

/// The `hearth` binary under test.
#[derive(Debug, Clone, Copy)]
pub struct Hearth {
    bin: &'static str,
}

impl Hearth {
    /// The binary at `bin`; in hearth-engine's integration tests, `env!("CARGO_BIN_EXE_hearth")`.
    pub const fn at(bin: &'static str) -> Self {
        Self { bin }
    }

    pub fn path(&self) -> &Path {
        Path::new(self.bin)
    }

    /// A bare command for the binary, for subcommands the kit has no helper for.
    pub fn command(&self) -> Command {
        Command::new(self.bin)
    }

    /// `hearth pool --listen 127.0.0.1:<port> <args>`, once it answers `/healthz`.
    pub async fn pool(&self, dir: &Path, port: u16, args: &[&str]) -> PoolProcess {
        self.start_pool(dir, port, args, &[], None).await
    }

    /// The pool serving TLS with `certs` (https for buyers, wss for providers).
    pub async fn tls_pool(&self, dir: &Path, port: u16, certs: &Certs, args: &[&str]) -> PoolProcess {
        self.start_pool(dir, port, args, &[], Some(certs)).await
    }

    /// The pool with everything spelled out: extra environment (`RUST_LOG=debug`, say) and TLS or
    /// not. Its output goes to `dir/pool-<port>-*.{stdout,stderr}`.
    pub async fn start_pool(
        &self,
        dir: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
        tls: Option<&Certs>,
    ) -> PoolProcess {
        let mut cmd = self.command();
        cmd.env("RUST_LOG", "info").args(["pool", "--listen", &format!("127.0.0.1:{port}")]);
        if let Some(certs) = tls {
            cmd.arg("--tls-cert").arg(&certs.cert).arg("--tls-key").arg(&certs.key);
        }
        cmd.args(args);
        cmd.envs(env.iter().copied());
        let proc = Proc::spawn(cmd, dir, &format!("pool-{port}"));
        let http = match tls {
            Some(certs) => certs.client(),
            None => reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap(),
        };
        let pool = PoolProcess { port, proc, http, tls: tls.is_some() };
        let healthz = pool.url("/healthz");
        let up = try_poll_until(
            "the pool to answer /healthz",
            Duration::from_secs(15),
            || async { pool.http.get(&healthz).send().await.map(|r| r.status()) },
            Result::is_ok,
        )
        .await;
        if let Err(timed_out) = up {
            timed_out.fail(format!("pool log:\n{}", pool.proc.log_text()));
        }
        pool
    }

    /// `hearth serve <args>` with its own HEARTH_HOME (created) and `RUST_LOG=info`, plus `env`
    /// (which may override it); its output goes to `home/serve-*.{stdout,stderr}`. For tests that
    /// drive it through settings instead of flags, give no `--coordinator`.
    pub fn serve(&self, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        std::fs::create_dir_all(home).unwrap();
        let mut cmd = self.command();
        cmd.env("HEARTH_HOME", home).env("RUST_LOG", "info").arg("serve").args(args);
        cmd.envs(env.iter().copied());
        Proc::spawn(cmd, home, "serve")
    }

    /// A provider serving [`MODEL`] for `coordinator` (a `ws://` or `wss://` URL).
    pub fn provider(&self, home: &Path, coordinator: &str, args: &[&str]) -> Provider {
        let mut all = vec!["--coordinator", coordinator, "--model-id", MODEL];
        all.extend_from_slice(args);
        let proc = self.serve(home, &all, &[]);
        Provider { hearth: *self, home: home.to_path_buf(), proc }
    }
}

/// A `hearth pool` process.
pub struct PoolProcess {
    pub port: u16,
    pub proc: Proc,
    /// A client for this pool (trusting its certificate when it serves TLS).
    pub http: reqwest::Client,
    tls: bool,
}

impl PoolProcess {
    /// `http(s)://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Where providers connect: `ws(s)://127.0.0.1:<port>/ws/provider`.
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://127.0.0.1:{}/ws/provider", self.port)
    }

    /// The buyers' endpoint, `/v1/chat/completions`.
    pub fn chat_url(&self) -> String {
        self.url("/v1/chat/completions")
    }

    /// Posts a chat body (see [`crate::chat::chat`]) to the gateway as a buyer would; panics if
    /// the request cannot be sent at all.
    pub async fn post_chat(&self, body: &Value) -> reqwest::Response {
        self.http.post(self.chat_url()).json(body).send().await.unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `GET /v1/status`; panics if the pool does not answer.
    pub async fn status(&self) -> Value {
        self.http.get(self.url("/v1/status")).send().await.unwrap().json().await.unwrap()
    }

    /// Ready providers according to the gateway, or `None` if it does not answer (within 2 s).
    pub async fn ready(&self) -> Option<u64> {
        let r = self.http.get(self.url("/v1/status")).timeout(Duration::from_secs(2)).send().await.ok()?;
        r.json::<Value>().await.ok()?["pool"]["ready"].as_u64()
    }

    /// Waits until exactly `n` providers are ready; returns how long that took. Panics after
    /// `timeout` with the pool's log.
    pub async fn wait_ready(&self, n: u64, timeout: Duration) -> Duration {
        let started = Instant::now();
        let what = format!("the pool to see {n} ready provider(s)");
        match try_poll_until(&what, timeout, || self.ready(), |r| *r == Some(n)).await {
            Ok(_) => started.elapsed(),
            Err(timed_out) => timed_out.fail(format!("pool log tail:\n{}", tail(&self.proc.log_text(), 30))),
        }
    }
}

/// A `hearth serve` process serving [`MODEL`], with its own HEARTH_HOME.
pub struct Provider {
    hearth: Hearth,
    pub home: PathBuf,
    pub proc: Proc,
}

impl Provider {
    /// `hearth status --json`, as a user would run it; panics if the command fails.
    pub fn status(&self) -> Value {
        let out =
            self.hearth.command().env("HEARTH_HOME", &self.home).args(["status", "--json"]).output().unwrap();
        assert!(out.status.success(), "hearth status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs `hearth status --json` until `pred` holds and returns that status. Panics after
    /// `timeout` with `what`, the last status (`None`: the control API never came up) and the
    /// provider's log: a caller can rely on `pred` having held.
    pub async fn status_eventually(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let control = self.home.join("data/control.json");
        let probe = || std::future::ready(control.exists().then(|| self.status()));
        match try_poll_until(what, timeout, probe, |s| s.as_ref().is_some_and(&mut pred)).await {
            Ok(status) => status.expect("matched"),
            Err(timed_out) => {
                timed_out.fail(format!("provider log tail:\n{}", tail(&self.proc.log_text(), 30)))
            }
        }
    }
}
