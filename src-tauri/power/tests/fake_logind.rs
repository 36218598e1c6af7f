//! The logind probes against a fake logind on a private bus (`dbus-daemon`, skipped where it is not
//! installed): the idle hint read afresh each poll, and the inhibitor's descriptor held by the guard
//! and closed when it drops. Its own test binary, because `DBUS_SYSTEM_BUS_ADDRESS` is process-wide.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_power::Probes;
use zbus::zvariant::OwnedFd;

#[derive(Default)]
struct Idle {
    hint: bool,
    since_monotonic_us: u64,
}

struct Session(Arc<Mutex<Idle>>);

#[zbus::interface(name = "org.freedesktop.login1.Session")]
impl Session {
    #[zbus(property)]
    fn idle_hint(&self) -> bool {
        self.0.lock().unwrap().hint
    }

    #[zbus(property)]
    fn idle_since_hint_monotonic(&self) -> u64 {
        self.0.lock().unwrap().since_monotonic_us
    }

    #[zbus(property)]
    fn idle_since_hint(&self) -> u64 {
        0
    }
}

/// The logind end of each inhibitor, with the arguments it was asked with.
#[derive(Default)]
struct Inhibitors(Vec<(String, UnixStream)>);

struct Manager(Arc<Mutex<Inhibitors>>);

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    fn inhibit(&self, what: &str, who: &str, why: &str, mode: &str) -> zbus::fdo::Result<OwnedFd> {
        let (ours, theirs) = UnixStream::pair().map_err(|err| zbus::fdo::Error::Failed(err.to_string()))?;
        self.0.lock().unwrap().0.push((format!("{what}|{who}|{why}|{mode}"), ours));
        Ok(OwnedFd::from(std::os::fd::OwnedFd::from(theirs)))
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn monotonic_now_us() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) }, 0);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

#[test]
fn idle_hint_and_inhibitor_through_a_fake_logind() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus");
    let address = format!("unix:path={}", socket.display());
    // The session configuration lets any peer own any name, login1's included.
    let daemon = match Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile", &format!("--address={address}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => Daemon(child),
        // CI installs dbus-daemon (.ci/run), so there a missing one is a failure, not a skip.
        Err(err) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: cannot start dbus-daemon ({err})");
            return;
        }
        Err(err) => panic!("cannot start dbus-daemon ({err}); .ci/run installs it"),
    };
    let started = Instant::now();
    while !socket.exists() {
        assert!(started.elapsed() < Duration::from_secs(10), "dbus-daemon did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }

    let idle = Arc::new(Mutex::new(Idle::default()));
    let inhibitors = Arc::new(Mutex::new(Inhibitors::default()));
    let _logind = zbus::blocking::connection::Builder::address(address.as_str())
        .unwrap()
        .serve_at("/org/freedesktop/login1/session/auto", Session(idle.clone()))
        .unwrap()
        .serve_at("/org/freedesktop/login1", Manager(inhibitors.clone()))
        .unwrap()
        .name("org.freedesktop.login1")
        .unwrap()
        .build()
        .unwrap();

    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &address);
    let probes = Probes::system();

    // Active: logind says not idle.
    assert_eq!(probes.activity.idle_for(), Some(Duration::ZERO));

    // Idle for 90 s, read on the next poll (no stale cached property).
    *idle.lock().unwrap() = Idle { hint: true, since_monotonic_us: monotonic_now_us() - 90_000_000 };
    let idle_for = probes.activity.idle_for().expect("an idle time");
    assert!(idle_for >= Duration::from_secs(90) && idle_for < Duration::from_secs(100), "{idle_for:?}");

    // The inhibitor: asked for as an idle block by Hearth, open while the guard lives.
    let guard = probes.keep_awake.hold("serving 2 requests").expect("an inhibitor");
    let mut ours = {
        let mut held = inhibitors.lock().unwrap();
        assert_eq!(held.0.len(), 1);
        let (args, stream) = held.0.pop().unwrap();
        assert_eq!(args, "idle|Hearth|serving 2 requests|block");
        stream
    };
    ours.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut byte = [0u8; 1];
    let open = ours.read(&mut byte).expect_err("still open: the read times out");
    assert!(matches!(open.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{open}");

    drop(guard);
    ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ours.read(&mut byte).expect("end of stream once released"), 0);

    drop(daemon);
}
