//! Switching models while serving, with real processes: `hearth pool` and `hearth serve`, the
//! model changed through the control API as the settings window changes it. The new model loads
//! beside the old, the job in flight finishes on the old, the pool hears the new model, and the
//! session never drops.

use std::path::Path;
use std::time::Duration;

use hearth_testkit::chat::chat;
use hearth_testkit::control::Control;
use hearth_testkit::hearth::{Hearth, PoolProcess};
use hearth_testkit::poll::poll_until;
use hearth_testkit::process::free_port;
use hearth_testkit::sse::{read_sse, sse_text};
use serde_json::{json, Value};

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

/// The model ids the pool's `/v1/status` lists with a provider.
async fn pool_models(pool: &PoolProcess) -> Vec<String> {
    let s = pool.status().await;
    s["models"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["provider_count"].as_u64() > Some(0))
                .map(|m| m["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn put_settings(control: &Control, body: Value) -> reqwest::Response {
    control.put("/api/settings").json(&body).send().await.unwrap()
}

fn settings(coordinator: &str, model: &Path) -> String {
    // The scripted engine announces its folder's name as the model id. The power rules are off:
    // this machine's own battery or keyboard must not decide the test.
    format!(
        "coordinator = \"{coordinator}\"\nprovider_id = \"switcher\"\nengine = \"scripted\"\nslots = 1\n\
         model_path = \"{}\"\n\n[power]\non_battery = \"never\"\nuser_active = \"ignore\"\n",
        model.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_switch_finishes_the_job_on_the_old_model_and_serves_the_next_on_the_new_without_a_disconnect(
) {
    let dir = tempfile::tempdir().unwrap();
    let (model_a, model_b) = (dir.path().join("models/model-a"), dir.path().join("models/model-b"));
    std::fs::create_dir_all(&model_a).unwrap();
    std::fs::create_dir_all(&model_b).unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    let file = home.join("config/settings.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, settings(&pool.ws_url(), &model_a)).unwrap();
    let proc = HEARTH.serve(&home, &["--pool-poll-interval", "0.3"], &[]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    pool.wait_ready(1, Duration::from_secs(10)).await;
    assert_eq!(pool_models(&pool).await, ["model-a"]);

    // Two seconds of streamed work on model-a when the switch is asked for.
    let response = pool.post_chat(&chat("model-a", "token_delay_ms=100", 20, true)).await;
    assert_eq!(response.status(), 200);
    let stream = tokio::spawn(read_sse(response));
    control.job_running().await;
    let r = put_settings(&control, json!({ "model_path": model_b })).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let events = stream.await.unwrap();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    assert_eq!(
        sse_text(&events).split_whitespace().count(),
        20,
        "the old model finished the job: {events:?}"
    );
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["model"], "model-a");

    poll_until(
        "the pool to hear model-b",
        Duration::from_secs(10),
        || pool_models(&pool),
        |m| m == &["model-b"],
    )
    .await;
    let next = pool.post_chat(&chat("model-b", "on the new model", 3, false)).await;
    assert_eq!(next.status(), 200);
    let body: Value = next.json().await.unwrap();
    assert_eq!(body["model"], "model-b");
    let old = pool.post_chat(&chat("model-a", "on the old model", 3, false)).await;
    assert_ne!(old.status(), 200, "model-a is gone from the pool");

    let s = control.status().await;
    assert_eq!(s["model_id"], "model-b");
    assert_eq!(s["connection"]["reconnects"], 0, "no reconnect: {:#}", s["connection"]);
    assert_eq!(s["connection"]["connected"], true);
    assert!(s["switching_to"].is_null());
    let jobs = s["recent_jobs"].as_array().unwrap();
    assert!(jobs.iter().any(|j| j["model"] == "model-a" && j["outcome"] == "complete"), "{jobs:#?}");

    // A model that cannot load: the switch fails, model-b keeps serving, the settings say why.
    let r = put_settings(&control, json!({ "model_path": dir.path().join("models/missing") })).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let s = control
        .status_until("the failed switch explained", Duration::from_secs(10), |s| {
            s["settings"]["errors"].as_array().is_some_and(|e| e.iter().any(|e| e["field"] == "model_path"))
        })
        .await;
    let error =
        s["settings"]["errors"].as_array().unwrap().iter().find(|e| e["field"] == "model_path").unwrap();
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("models/missing") && message.contains("still serving model-b"), "{message}");
    assert_eq!(s["model_id"], "model-b");
    assert_eq!(s["phase"], "ready");
    let still = pool.post_chat(&chat("model-b", "still here", 3, false)).await;
    assert_eq!(still.status(), 200);
    assert_eq!(control.status().await["connection"]["reconnects"], 0);
}

/// `hearth models use NAME` against a running `hearth serve` on a real model (the cpu engine on the
/// tiny MLX fixtures): the model Hearth's folder holds is found by name and swapped in, with real
/// completions before and after and no reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_models_use_switches_a_running_provider_between_real_models() {
    let Some(fixtures) = hearth_testkit::shared_fixtures::fixture_models_if_present() else {
        eprintln!("skipped: shared fixtures not found (set HEARTH_SHARED_DIR)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    let models = home.join("data/models");
    std::fs::create_dir_all(&models).unwrap();
    for name in ["tiny-llama-4bit", "tiny-qwen2-4bit"] {
        std::os::unix::fs::symlink(fixtures.join(name), models.join(name)).unwrap();
    }
    let file = home.join("config/settings.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let first = models.join("tiny-llama-4bit");
    let text = settings(&pool.ws_url(), &first).replace("engine = \"scripted\"", "engine = \"cpu\"");
    std::fs::write(&file, text).unwrap();
    let empty_hf = dir.path().join("hf");
    let hf = empty_hf.to_str().unwrap();
    let proc = HEARTH.serve(&home, &[], &[("HF_HOME", hf)]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    pool.wait_ready(1, Duration::from_secs(30)).await;
    assert_eq!(pool_models(&pool).await, ["tiny-llama-4bit"]);
    let before = pool.post_chat(&chat("tiny-llama-4bit", "hello", 4, false)).await;
    assert_eq!(before.status(), 200);

    let out = HEARTH
        .command()
        .env("HEARTH_HOME", &home)
        .env("HF_HOME", hf)
        .args(["models", "use", "tiny-qwen2-4bit"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("switching to") && said.contains("tiny-qwen2-4bit"), "{said}");
    poll_until(
        "the pool to hear the qwen model",
        Duration::from_secs(30),
        || pool_models(&pool),
        |m| m == &["tiny-qwen2-4bit"],
    )
    .await;
    let after = pool.post_chat(&chat("tiny-qwen2-4bit", "hello", 4, false)).await;
    assert_eq!(after.status(), 200);
    let body: Value = after.json().await.unwrap();
    assert!(body["usage"]["completion_tokens"].as_u64() > Some(0), "{body}");
    assert_eq!(control.status().await["connection"]["reconnects"], 0);

    // A name that is not here says what to do.
    let out = HEARTH
        .command()
        .env("HEARTH_HOME", &home)
        .env("HF_HOME", hf)
        .args(["models", "use", "no-such-model"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hearth models list") && err.contains("hearth models pull"), "{err}");
}
