//! Child processes under test: [`Proc`] runs one with its stdout and stderr captured to files and
//! kills it when dropped; around it, the small facts tests ask about processes (a free port, peak
//! and current memory, the tail of a log) and [`rerun_test_binary`] for helper-process tests.
//!
//! Output goes to files rather than pipes so a child can never block on a full pipe nobody reads,
//! and so a test can grep everything a process wrote after it is gone (the secrets review does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::poll::try_poll_until;

/// A child process, SIGKILLed when dropped. Its stderr (where Hearth logs) goes to [`Proc::log`],
/// its stdout to [`Proc::stdout`].
pub struct Proc {
    pub child: Child,
    /// The captured stderr.
    pub log: PathBuf,
    /// The captured stdout.
    pub stdout: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with its output in `dir/<name>-<stamp>.stderr` and `.stdout` (the stamp keeps
    /// restarts of the same process apart).
    pub fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let stem = format!("{name}-{}", unique_stamp());
        let log = dir.join(format!("{stem}.stderr"));
        let stdout = dir.join(format!("{stem}.stdout"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Self { child, log, stdout }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. `libc::SIGSTOP`) to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Kills it for sure, even if a test left it stopped (SIGSTOP), and reaps it.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How it exited, or `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("cannot query a child process")
    }

    /// Waits for the process to exit by itself; panics after `timeout` with `what` and its log.
    pub async fn wait_exit(&mut self, what: &str, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        let exited = try_poll_until(
            what,
            timeout,
            || std::future::ready(child.try_wait().expect("cannot query a child process")),
            Option::is_some,
        )
        .await;
        match exited {
            Ok(status) => status.expect("exited"),
            Err(timed_out) => timed_out.fail(format!("log tail:\n{}", tail(&self.log_text(), 30))),
        }
    }

    /// Sends SIGTERM and waits for the exit (a clean shutdown drains first, so give it time).
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let what = format!("process {} to exit after SIGTERM", self.id());
        self.wait_exit(&what, timeout).await
    }

    /// Everything it wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The files holding its output: `[stdout, stderr]`.
    pub fn log_files(&self) -> [PathBuf; 2] {
        [self.stdout.clone(), self.log.clone()]
    }

    /// (VmHWM, VmRSS) in KiB, see [`memory_kib`].
    pub fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.child.id())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A TCP port free on 127.0.0.1 right now (the OS picked it; a test binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Peak and current resident memory of a process, KiB (`VmHWM`, `VmRSS` from /proc; 0 where
/// unknown, e.g. off Linux).
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

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Nanoseconds since the epoch: a stamp that keeps file names of one run apart.
pub fn unique_stamp() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// This test binary again, running only the test `name`: the parent side of a *helper-process
/// test*, where a parent test needs a child it can kill mid-work (SIGKILL during a write, say).
///
/// The child's entry is a test marked `#[ignore = "helper process: …"]`, so a normal run lists it
/// as ignored instead of passing it vacuously; `--ignored` runs it here anyway, `--exact` runs
/// nothing else. The parent tells the child what to do through an environment variable it sets on
/// the returned command, and the child should panic when that variable is missing (someone ran it
/// by hand).
pub fn rerun_test_binary(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([name, "--exact", "--ignored", "--nocapture", "--test-threads=1"]);
    cmd
}
