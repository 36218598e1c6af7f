//! The power policy end to end with real processes: `hearth pool` and `hearth serve`, the provider's
//! Linux probes reading a fake sysfs tree (`HEARTH_SYSFS_ROOT`) that the test rewrites the way the
//! kernel would when a charger is pulled or plugged in.

use std::path::Path;
use std::time::{Duration, Instant};

use hearth_testkit::chat::chat;
use hearth_testkit::control::Control;
use hearth_testkit::hearth::{Hearth, MODEL};
use hearth_testkit::process::free_port;
use hearth_testkit::sse::{read_sse, sse_text};

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

/// Writes `value` to `path` by rename, so a probe never reads a half-written file.
fn put(path: &Path, value: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{value}\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A laptop's power supplies: the charger `AC` and the battery `BAT0`.
fn power_supply(sys: &Path, plugged_in: bool, percent: u8) {
    let ac = sys.join("class/power_supply/AC");
    put(&ac.join("type"), "Mains");
    put(&ac.join("online"), if plugged_in { "1" } else { "0" });
    let bat = sys.join("class/power_supply/BAT0");
    put(&bat.join("type"), "Battery");
    put(&bat.join("present"), "1");
    put(&bat.join("status"), if plugged_in { "Charging" } else { "Discharging" });
    put(&bat.join("capacity"), &percent.to_string());
}

fn hearth_status_text(home: &Path) -> String {
    let out = HEARTH.command().env("HEARTH_HOME", home).arg("status").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplugged_below_the_threshold_the_provider_leaves_routing_finishes_its_job_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    power_supply(&sys, true, 45);
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    let settings = home.join("config/settings.toml");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(
        &settings,
        format!(
            "coordinator = \"{}\"\nprovider_id = \"laptop-1\"\nengine = \"scripted\"\nslots = 2\n\n[power]\n\
             on_battery = \"pause_below\"\nbattery_threshold_percent = 50\nuser_active = \"ignore\"\n",
            pool.ws_url()
        ),
    )
    .unwrap();
    let sys_env = sys.to_str().unwrap();
    let args = ["--model-id", MODEL, "--power-poll-interval", "0.5", "--power-relax-after", "1"];
    let proc = HEARTH.serve(&home, &args, &[("HEARTH_SYSFS_ROOT", sys_env)]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    pool.wait_ready(1, Duration::from_secs(10)).await;
    let s = control.status().await;
    assert_eq!(s["power"]["power_source"], "external", "{:#}", s["power"]);
    assert_eq!(s["power"]["charge_percent"], 45);
    assert_eq!(s["power"]["rule"], "none");

    // A streamed job of about 3 s is running when the charger is pulled.
    let body = chat(MODEL, "token_delay_ms=100", 30, true);
    let response = pool.post_chat(&body).await;
    assert_eq!(response.status(), 200);
    let stream = tokio::spawn(read_sse(response));
    control.job_running().await;
    power_supply(&sys, false, 38);
    let pulled = Instant::now();
    pool.wait_ready(0, Duration::from_secs(10)).await;
    let out_of_routing = pulled.elapsed();
    let s = control
        .status_until("the pause in the status", Duration::from_secs(10), |s| s["power"]["rule"] == "battery")
        .await;
    assert_eq!(s["power"]["reason"], "Paused: on battery at 38 %, below 50 %");
    // A new buyer meanwhile finds no provider.
    let refused = pool.post_chat(&chat(MODEL, "while paused", 3, false)).await;
    assert_eq!(refused.status(), 503, "no provider while paused");

    // The job in flight at the switch completes, whole, and is recorded as earned.
    let events = stream.await.unwrap();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    assert_eq!(sse_text(&events).split_whitespace().count(), 30, "{events:?}");
    let s = control
        .status_until("paused once the job finished", Duration::from_secs(10), |s| s["phase"] == "paused")
        .await;
    assert_eq!(s["reason"], "Paused: on battery at 38 %, below 50 %");
    assert_eq!(s["power"]["mode"], "paused");
    assert_eq!(s["power"]["keep_awake"], false, "no keep-awake while paused");
    let earned = control.json("/api/earnings?range=all&limit=10").await;
    let job = &earned["recent_jobs"][0];
    assert_eq!(
        (job["outcome"].as_str(), job["completion_tokens"].as_u64()),
        (Some("complete"), Some(30)),
        "{job}"
    );
    assert!(job["estimated_credits"].as_i64().unwrap() > 0, "{job}");
    let text = hearth_status_text(&home);
    assert!(text.contains("power:       Paused: on battery at 38 %, below 50 % (rule: battery"), "{text}");
    assert!(text.contains("battery power, 38 %"), "{text}");

    // Plugged back in: back in routing, and the status says so.
    power_supply(&sys, true, 39);
    let plugged = Instant::now();
    pool.wait_ready(1, Duration::from_secs(20)).await;
    let back = plugged.elapsed();
    let s = control.status_until("serving again", Duration::from_secs(5), |s| s["phase"] == "ready").await;
    assert_eq!(s["power"]["rule"], "none");
    assert!(hearth_status_text(&home).contains("power:       Serving: no power rule applies"));
    let served = pool.post_chat(&chat(MODEL, "after the charger", 3, false)).await;
    assert_eq!(served.status(), 200);
    eprintln!("out of routing {out_of_routing:?} after the pull; back {back:?} after plugging in");
}
