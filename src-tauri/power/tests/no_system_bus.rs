//! Without a system bus the logind probes answer at once: idle time unknown, keep-awake refused
//! with a reason. Its own test binary, because `DBUS_SYSTEM_BUS_ADDRESS` is process-wide.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use hearth_power::Probes;

#[test]
fn logind_probes_give_up_fast_without_a_system_bus() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-such-bus");
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", nowhere.display()));

    let probes = Probes::system();
    let started = Instant::now();
    assert_eq!(probes.activity.idle_for(), None);
    let refused = probes.keep_awake.hold("serving a test").err().expect("no hold without a bus");
    assert!(refused.contains("system bus"), "{refused}");
    assert!(refused.contains("sleep"), "{refused}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    // The failure is remembered: polling again does not reconnect each time.
    let again = Instant::now();
    for _ in 0..100 {
        assert_eq!(probes.activity.idle_for(), None);
        assert!(probes.keep_awake.hold("again").is_err());
    }
    assert!(again.elapsed() < Duration::from_secs(1), "took {:?}", again.elapsed());
}
