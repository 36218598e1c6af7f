//! The headless app with real processes: `hearth pool` and `hearth serve` on loopback, each provider
//! with its own HEARTH_HOME, driven through the control API, the settings file and buyer requests
//! the way a user, the UI and buyers do.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_testkit::chat::chat;
use hearth_testkit::control::Control;
use hearth_testkit::files::save_like_an_editor;
use hearth_testkit::hearth::{Hearth, PoolProcess, MODEL};
use hearth_testkit::poll::poll_until;
use hearth_testkit::process::free_port;
use hearth_testkit::shared_fixtures::fixture_models_if_present;
use hearth_testkit::sse::{read_sse, SseReader};
use serde_json::Value;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));

const FAST_POLLS: &[&str] = &["--pool-poll-interval", "0.3", "--earnings-poll-interval", "0.3"];

fn serve_args<'a>(coordinator: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--coordinator", coordinator, "--model-id", MODEL];
    a.extend_from_slice(FAST_POLLS);
    a.extend_from_slice(extra);
    a
}

/// The provider's share of a scripted job under the default card: prompt tokens are the prompt's
/// words, completion tokens are `max_tokens`.
fn expected_credits(prompt_words: i64, completion: i64) -> i64 {
    let rhe = |n: i128, d: i128| {
        let (q, r) = (n / d, n % d);
        match (2 * r).cmp(&d) {
            std::cmp::Ordering::Less => q,
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal => q + (q % 2),
        }
    };
    let gross = rhe(prompt_words as i128 * 500_000 + completion as i128 * 1_000_000, 1_000_000);
    rhe(gross * 9_000, 10_000) as i64
}

async fn complete(pool: &PoolProcess, prompt: &str, max_tokens: i64) -> String {
    let r = pool.post_chat(&chat(MODEL, prompt, max_tokens, false)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["id"].as_str().unwrap().strip_prefix("chatcmpl-").unwrap().to_string()
}

async fn earnings(control: &Control, range: &str) -> Value {
    control.json(&format!("/api/earnings?range={range}&limit=1000")).await
}

fn journal_files(home: &Path) -> usize {
    std::fs::read_dir(home.join("data/inflight")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_survives_kill_9_mid_job_with_no_loss_and_no_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    let ws = pool.ws_url();
    let mut proc = HEARTH.serve(&home, &serve_args(&ws, &["--slots", "3"]), &[]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    // Estimates are priced from the coordinator's card, so wait for it before serving.
    control
        .status_until("ready, with the coordinator's rate card", Duration::from_secs(10), |s| {
            s["phase"] == "ready" && s["earnings"]["rate_card_source"] == "coordinator"
        })
        .await;

    let mut completed = Vec::new();
    for prompt in ["hello there", "one two three", "a b c d e", "x"] {
        completed.push(complete(&pool, prompt, 3).await);
    }
    let expected: i64 = [2, 3, 5, 1].iter().map(|w| expected_credits(*w, 3)).sum();

    // Two long streamed jobs in flight at the kill.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let r = pool.post_chat(&chat(MODEL, "token_delay_ms=50", 1000, true)).await;
        let mut sse = SseReader::new(r);
        let first = sse.next(Duration::from_secs(5)).await.expect("first chunk");
        let v: Value = serde_json::from_str(&first.data).unwrap();
        streams.push((v["id"].as_str().unwrap().strip_prefix("chatcmpl-").unwrap().to_string(), sse));
    }
    let journalled = || std::future::ready(journal_files(&home));
    poll_until("both running jobs journalled", Duration::from_secs(5), journalled, |n| *n >= 2).await;
    let before = earnings(&control, "all").await;
    assert_eq!(before["period"]["jobs"], 4, "{before:#}");
    proc.kill9();

    // Restart on the same HEARTH_HOME.
    let mut proc = HEARTH.serve(&home, &serve_args(&ws, &["--slots", "3"]), &[]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    control.status_until("ready after the restart", Duration::from_secs(10), |s| s["phase"] == "ready").await;
    let after = earnings(&control, "all").await;
    let jobs = after["recent_jobs"].as_array().unwrap();
    let by_id: HashMap<&str, &Value> = jobs.iter().map(|j| (j["request_id"].as_str().unwrap(), j)).collect();
    assert_eq!(jobs.len(), 6, "4 complete + 2 cut by the kill, each once: {after:#}");
    assert_eq!(by_id.len(), 6);
    for id in &completed {
        let j = by_id[id.as_str()];
        assert_eq!(j["outcome"], "complete", "{j}");
        assert_eq!(j["rate_card_version"], "local-default-1", "priced from the pool's card: {j}");
        assert!(!j["assigned_id"].as_str().unwrap().is_empty(), "{j}");
    }
    for (id, _) in &streams {
        let j = by_id[id.as_str()];
        assert_eq!(j["outcome"], "lost", "{j}");
        assert_eq!(j["estimated_credits"], 0);
        assert!(j["reason"].as_str().unwrap().contains("crash"), "{j}");
    }
    assert_eq!(after["period"]["lost_jobs"], 2);
    assert_eq!(after["period"]["estimated_credits"], expected);
    assert_eq!(journal_files(&home), 0);

    // Reconciled with what the pool credited: the cut jobs earned nothing there either.
    let s = control
        .status_until("the credited figure from the pool", Duration::from_secs(10), |s| {
            s["earnings"]["credited_total_credits"].is_number()
        })
        .await;
    assert_eq!(s["earnings"]["credited_total_credits"], expected, "{:#}", s["earnings"]);
    assert_eq!(s["earnings"]["estimated_minus_credited"], 0);
    assert_eq!(s["earnings"]["total_estimated_credits"], expected);

    // It keeps recording, and a clean restart changes nothing.
    completed.push(complete(&pool, "after the crash", 2).await);
    let expected = expected + expected_credits(3, 2);
    control
        .status_until("seven jobs recorded", Duration::from_secs(5), |s| s["earnings"]["total_jobs"] == 7)
        .await;
    assert!(proc.terminate(Duration::from_secs(10)).await.success());
    let proc = HEARTH.serve(&home, &serve_args(&ws, &[]), &[]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    let last = earnings(&control, "all").await;
    assert_eq!(last["period"]["jobs"], 7, "{last:#}");
    assert_eq!(last["period"]["lost_jobs"], 2);
    assert_eq!(last["period"]["estimated_credits"], expected);
    let today = earnings(&control, "today").await;
    let hourly_jobs: u64 =
        today["hourly"].as_array().unwrap().iter().map(|b| b["jobs"].as_u64().unwrap()).sum();
    assert_eq!(hourly_jobs, today["period"]["jobs"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_delivers_state_changes_fast_coalesced_and_the_api_guards_its_door() {
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    let ws = pool.ws_url();
    // A stand-in for the built web UI (ui/dist), which the control API serves behind its door.
    let ui = dir.path().join("ui");
    std::fs::create_dir_all(ui.join("assets")).unwrap();
    std::fs::write(ui.join("index.html"), "<!doctype html><title>stand-in dashboard</title>").unwrap();
    std::fs::write(ui.join("assets/app-1.js"), "console.log(1)").unwrap();
    let ui_env = ui.to_str().unwrap();
    let proc = HEARTH.serve(&home, &serve_args(&ws, &["--slots", "3"]), &[("HEARTH_UI_DIR", ui_env)]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;

    let r = control.get("/api/events").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut events = SseReader::new(r);
    let first = events.next_status(Duration::from_secs(2)).await.expect("a snapshot at once");
    assert!(first["phase"].is_string());
    loop {
        let s = events.next_status(Duration::from_secs(10)).await.expect("ready via SSE");
        if s["phase"] == "ready" {
            break;
        }
    }

    // Busy: three streams push progress updates far faster than 5/s; clients get at most ~5/s.
    let url = pool.chat_url();
    let buyers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .post(url)
                    .json(&chat(MODEL, "token_delay_ms=5", 400, true))
                    .send()
                    .await
                    .unwrap();
                read_sse(r).await
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut saw_tps = false;
    let busy_started = Instant::now();
    while busy_started.elapsed() < Duration::from_millis(1500) {
        if let Some(s) = events.next_status(Duration::from_secs(1)).await {
            times.push(Instant::now());
            saw_tps |= s["active_jobs"].as_array().unwrap().iter().any(|j| j["tokens_per_s"].is_number());
        }
    }
    for b in buyers {
        assert_eq!(b.await.unwrap().last().map(String::as_str), Some("[DONE]"));
    }
    assert!(saw_tps, "live tokens/s reached the stream");
    assert!(times.len() >= 3, "updates kept flowing: {}", times.len());
    let max_per_second = (0..times.len())
        .map(|i| {
            times[i..].iter().take_while(|t| t.duration_since(times[i]) < Duration::from_secs(1)).count()
        })
        .max()
        .unwrap();
    assert!(max_per_second <= 6, "{max_per_second} snapshots within one second");

    // Idle again (older snapshots may still be queued in the stream; they are read through).
    loop {
        let s = events.next_status(Duration::from_secs(5)).await.expect("idle via SSE");
        if s["phase"] == "ready" && s["active_jobs"].as_array().unwrap().is_empty() {
            break;
        }
    }

    // A state change reaches the stream within 500 ms.
    let t0 = Instant::now();
    let r = control.post("/api/stop").send().await.unwrap();
    assert_eq!(r.status(), 202);
    let changed = loop {
        let s = events.next_status(Duration::from_secs(2)).await.expect("the stop was streamed");
        if s["phase"] == "draining" || s["phase"] == "stopped" {
            break s;
        }
    };
    let latency = t0.elapsed();
    println!("SSE state-change latency: {latency:?} (phase {})", changed["phase"]);
    assert!(latency < Duration::from_millis(500), "state change took {latency:?}");
    let stopped = loop {
        let s = events.next_status(Duration::from_secs(5)).await.expect("stopped via SSE");
        if s["phase"] == "stopped" {
            break s;
        }
    };
    assert!(stopped["not_earning"].as_str().unwrap().contains("stopped by the user"), "{stopped:#}");
    pool.wait_ready(0, Duration::from_secs(5)).await;
    control.post("/api/start").send().await.unwrap();
    pool.wait_ready(1, Duration::from_secs(10)).await;

    // The door: token, Host and Origin.
    let bare = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let status_url = format!("{}/api/status", control.url);
    assert_eq!(bare.get(&status_url).send().await.unwrap().status(), 401);
    assert_eq!(bare.get(&status_url).bearer_auth("nope").send().await.unwrap().status(), 401);
    let r = control.get("/api/status").header("Host", "evil.example:80").send().await.unwrap();
    assert_eq!(r.status(), 403, "DNS rebinding: a foreign Host is refused");
    let r = control.get("/api/status").header("Origin", "http://evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403, "a foreign Origin is refused");
    let port = control.url.rsplit(':').next().unwrap().to_string();
    let r =
        control.get("/api/status").header("Origin", format!("http://127.0.0.1:{port}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(bare.post(format!("{}/api/stop", control.url)).send().await.unwrap().status(), 401);

    // The browser's way in: a one-time URL trades for an HttpOnly, SameSite=Strict cookie.
    let once: Value = control.post("/api/session").send().await.unwrap().json().await.unwrap();
    let once = once["url"].as_str().unwrap().to_string();
    let r = bare.get(&once).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(bare.get(&once).send().await.unwrap().status(), 403, "single use");
    let r = bare.get(&status_url).header("Cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The web UI is behind the same door: nothing without the cookie, the files with it, under a
    // strict CSP; the API's own paths never fall through to it.
    let page = format!("{}/", control.url);
    assert_eq!(bare.get(&page).send().await.unwrap().status(), 401);
    assert_eq!(bare.get(format!("{}/assets/app-1.js", control.url)).send().await.unwrap().status(), 401);
    let r = bare.get(&page).header("Cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(r.text().await.unwrap().contains("stand-in dashboard"));
    let r =
        bare.get(format!("{}/assets/app-1.js", control.url)).header("Cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(bare.post(&page).header("Cookie", &pair).send().await.unwrap().status(), 405);
    let r =
        bare.get(format!("{}/api/nothing-here", control.url)).header("Cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r =
        bare.get(format!("{}/../control-token", control.url)).header("Cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = bare.get(format!("{}/api/session?once=guess", control.url)).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // `hearth status` goes through the same API.
    let out = HEARTH.command().env("HEARTH_HOME", &home).args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("earnings:") && text.contains("pool:"), "{text}");
}

fn settings_toml(coordinator: &str, slots: u32) -> String {
    format!("coordinator = \"{coordinator}\"\nprovider_id = \"hot-reload-1\"\nengine = \"scripted\"\nslots = {slots}\n")
}

/// The slots the pool's `/v1/status` lists for our model.
fn pool_slots(status: &Value) -> Option<u64> {
    status["models"].as_array()?.iter().find(|m| m["id"] == MODEL).and_then(|m| m["total_slots"].as_u64())
}

async fn wait_pool_slots(pool: &PoolProcess, n: u64) {
    let what = format!("the pool to see {n} slots");
    poll_until(&what, Duration::from_secs(10), || pool.status(), |s| pool_slots(s) == Some(n)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_edits_apply_live_and_invalid_ones_are_rejected_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let pool = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let pool2 = HEARTH.pool(dir.path(), free_port(), &[]).await;
    let home = dir.path().join("p1");
    let file = home.join("config/settings.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, settings_toml(&pool.ws_url(), 1)).unwrap();
    // No --coordinator, --slots or --provider-id: everything comes from the file.
    let proc = HEARTH.serve(&home, &["--model-id", MODEL, "--pool-poll-interval", "0.3"], &[]);
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;
    let s = control.status_until("ready", Duration::from_secs(10), |s| s["phase"] == "ready").await;
    assert_eq!(s["provider_id"], "hot-reload-1");
    wait_pool_slots(&pool, 1).await;

    // An external edit of slots restarts the session with the new capacity.
    save_like_an_editor(&file, &settings_toml(&pool.ws_url(), 2));
    wait_pool_slots(&pool, 2).await;
    let s = control
        .status_until("ready with two slots", Duration::from_secs(5), |s| {
            s["slots_total"] == 2 && s["phase"] == "ready"
        })
        .await;
    let session = s["connection"]["assigned_id"].clone();

    // An invalid edit is shown and ignored: the last good settings keep serving, untouched.
    save_like_an_editor(&file, &settings_toml(&pool.ws_url(), 12));
    let s = control
        .status_until("the invalid edit shown", Duration::from_secs(5), |s| {
            !s["settings"]["errors"].as_array().unwrap().is_empty()
        })
        .await;
    let err = &s["settings"]["errors"][0];
    assert_eq!(err["field"], "slots");
    assert!(err["message"].as_str().unwrap().contains("between 1 and 8"), "{err}");
    assert_eq!(s["phase"], "ready");
    assert_eq!(s["slots_total"], 2);
    assert_eq!(s["connection"]["assigned_id"], session, "no restart for a rejected edit");
    let view = control.json("/api/settings").await;
    assert_eq!(view["settings"]["slots"], 2, "{view:#}");
    assert_eq!(view["errors"][0]["field"], "slots");

    // Moving to another coordinator moves the provider.
    save_like_an_editor(&file, &settings_toml(&pool2.ws_url(), 2));
    pool2.wait_ready(1, Duration::from_secs(10)).await;
    pool.wait_ready(0, Duration::from_secs(10)).await;
    let s = control
        .status_until("the settings errors cleared", Duration::from_secs(5), |s| {
            s["settings"]["errors"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(s["connection"]["coordinator_url"], pool2.ws_url().as_str());

    // PUT: invalid → 422 with every field error, file untouched; valid → saved and applied.
    let before = std::fs::read(&file).unwrap();
    let r = control
        .put("/api/settings")
        .json(&serde_json::json!({"slots": 0, "coordinator": "ws://example.com/ws/provider"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let fields: HashSet<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, HashSet::from(["slots", "coordinator"]), "{body:#}");
    let r = control.put("/api/settings").json(&serde_json::json!({"slots": "two"})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["field"], "slots");
    assert_eq!(std::fs::read(&file).unwrap(), before, "nothing saved when invalid");
    let r = control.put("/api/settings").json(&serde_json::json!({"slots": 3})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    wait_pool_slots(&pool2, 3).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("slots = 3"), "{text}");
    assert!(!text.to_lowercase().contains("token"), "no token in the settings file: {text}");
}

/// Lays out `src`'s files the way huggingface_hub does: blobs, a snapshot of symlinks, refs/main.
fn fake_hf_repo(hub: &Path, repo: &str, src: &Path) -> u64 {
    let root = hub.join(format!("models--{}", repo.replace('/', "--")));
    let snap = root.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs/main"), "0123abcd").unwrap();
    // An older snapshot that refs/main does not point at.
    std::fs::create_dir_all(root.join("snapshots/old")).unwrap();
    let mut size = 0;
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        std::os::unix::fs::symlink(entry.path(), snap.join(entry.file_name())).unwrap();
        size += entry.metadata().unwrap().len();
    }
    size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_models_are_found_in_the_hf_cache_and_hearths_folder_and_offline_is_explained() {
    let Some(fixtures) = fixture_models_if_present() else {
        eprintln!("skipped: shared fixtures not found (set HEARTH_SHARED_DIR)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hf_home = dir.path().join("hf");
    let llama_size = fake_hf_repo(
        &hf_home.join("hub"),
        "mlx-community/tiny-llama-4bit",
        &fixtures.join("tiny-llama-4bit"),
    );
    let home = dir.path().join("p1");
    let models = home.join("data/models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(fixtures.join("tiny-qwen2-4bit"), models.join("tiny-qwen2-4bit")).unwrap();
    // A family the loader does not run: its inspection (not a list of discovery's own) says so.
    let odd = models.join("phi-8bit");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(
        odd.join("config.json"),
        r#"{"model_type":"phi3","hidden_size":64,"num_attention_heads":4,"num_hidden_layers":2,
            "vocab_size":100,"intermediate_size":128,"quantization":{"bits":8,"group_size":32}}"#,
    )
    .unwrap();
    std::fs::write(odd.join("model.safetensors"), "x").unwrap();
    std::fs::copy(fixtures.join("tiny-llama-4bit/tokenizer.json"), odd.join("tokenizer.json")).unwrap();
    // The user's HOME, with LM Studio's folder; Ollama's store named by OLLAMA_MODELS, holding a
    // manifest whose blob is gone.
    let user = dir.path().join("user");
    let lm = user.join(".lmstudio/models/lmstudio-community");
    std::fs::create_dir_all(&lm).unwrap();
    std::os::unix::fs::symlink(fixtures.join("tiny-qwen2-4bit"), lm.join("tiny-qwen2-4bit")).unwrap();
    let ollama = dir.path().join("ollama");
    let manifest = ollama.join("manifests/registry.ollama.ai/library/llama3.2/3b");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::create_dir_all(ollama.join("blobs")).unwrap();
    let digest = "e".repeat(64);
    std::fs::write(
        &manifest,
        format!(r#"{{"layers":[{{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:{digest}","size":9}}]}}"#),
    )
    .unwrap();

    // Nothing listens on this port: the provider stays offline and says why.
    let dead = format!("ws://127.0.0.1:{}/ws/provider", free_port());
    let (hf, user_home, store) =
        (hf_home.to_str().unwrap(), user.to_str().unwrap(), ollama.to_str().unwrap());
    let proc = HEARTH.serve(
        &home,
        &["--coordinator", &dead, "--model-id", MODEL],
        &[("HF_HOME", hf), ("HF_HUB_CACHE", ""), ("HOME", user_home), ("OLLAMA_MODELS", store)],
    );
    let control = Control::wait(&home, &proc, Duration::from_secs(10)).await;

    let found = control.json("/api/models").await;
    let list = found["models"].as_array().unwrap();
    let by_name: HashMap<&str, &Value> = list.iter().map(|m| (m["name"].as_str().unwrap(), m)).collect();
    assert_eq!(by_name.len(), 5, "{found:#}");
    let llama = by_name["mlx-community/tiny-llama-4bit"];
    assert_eq!(llama["source"], "hugging_face_cache");
    assert_eq!(llama["family"], "llama");
    assert_eq!(llama["quantization"]["bits"], 4);
    assert_eq!(llama["quantization"]["group_size"], 64);
    assert_eq!(llama["loadable"], true, "{llama:#}");
    assert_eq!(llama["size_bytes"], llama_size);
    assert!(llama["path"].as_str().unwrap().ends_with("snapshots/0123abcd"), "refs/main wins: {llama}");
    assert!(llama["estimated_memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(llama["fit"], "fits");
    assert_eq!(llama["engine"], if cfg!(target_os = "macos") { "mlx" } else { "cpu" });
    let qwen = by_name["tiny-qwen2-4bit"];
    assert_eq!((qwen["source"].as_str(), qwen["family"].as_str()), (Some("hearth_models"), Some("qwen2")));
    assert_eq!(qwen["loadable"], true, "{qwen:#}");
    let phi = by_name["phi-8bit"];
    assert_eq!(phi["loadable"], false);
    let problems = phi["problems"].to_string();
    assert!(problems.contains("phi-8bit: unsupported model architecture `phi3`"), "{problems}");
    let lm_qwen = by_name["lmstudio-community/tiny-qwen2-4bit"];
    assert_eq!((lm_qwen["source"].as_str(), lm_qwen["loadable"].as_bool()), (Some("lm_studio"), Some(true)));
    let gone = by_name["llama3.2:3b"];
    assert_eq!((gone["source"].as_str(), gone["loadable"].as_bool()), (Some("ollama"), Some(false)));
    let problems = gone["problems"].to_string();
    assert!(
        problems.contains(&format!("sha256-{digest}")) && problems.contains("ollama pull llama3.2:3b"),
        "{problems}"
    );

    // Folders added in Settings are searched from the next listing on; a missing one is listed as
    // such (not a settings error), a relative one is refused.
    let extra = dir.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::os::unix::fs::symlink(fixtures.join("tiny-llama-4bit"), extra.join("my-llama")).unwrap();
    let unplugged = dir.path().join("unplugged");
    let r = control
        .put("/api/settings")
        .json(&serde_json::json!({"model_folders": ["models"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["field"], "model_folders");
    let r = control
        .put("/api/settings")
        .json(&serde_json::json!({"model_folders": [extra, unplugged]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let found = control.json("/api/models").await;
    let list = found["models"].as_array().unwrap();
    let mine: Vec<&Value> = list.iter().filter(|m| m["source"] == "user_folder").collect();
    assert_eq!(mine.len(), 2, "{found:#}");
    let (my_llama, note) = match mine[0]["name"] == "my-llama" {
        true => (mine[0], mine[1]),
        false => (mine[1], mine[0]),
    };
    assert_eq!((my_llama["name"].as_str(), my_llama["loadable"].as_bool()), (Some("my-llama"), Some(true)));
    assert_eq!((note["format"].clone(), note["loadable"].as_bool()), (Value::Null, Some(false)));
    assert_eq!(note["path"], unplugged.to_str().unwrap());
    assert!(note["problems"][0].as_str().unwrap().contains("does not exist"), "{note:#}");

    let s = control.status_until("offline", Duration::from_secs(10), |s| s["phase"] == "offline").await;
    let why = s["not_earning"].as_str().unwrap();
    assert!(why.starts_with("not connected to the coordinator"), "{why}");
    assert!(why.contains("127.0.0.1"), "{why}");
    assert!(s["pool"]["error"].as_str().unwrap().contains("cannot reach"), "{:#}", s["pool"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_open_gives_a_one_time_link_that_signs_the_browser_in() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("p1");
    let dead = format!("ws://127.0.0.1:{}/ws/provider", free_port());
    let proc = HEARTH.serve(&home, &["--coordinator", &dead, "--model-id", MODEL], &[]);
    Control::wait(&home, &proc, Duration::from_secs(10)).await;
    let out = HEARTH.command().env("HEARTH_HOME", &home).args(["open", "--print"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(link.starts_with("http://127.0.0.1:") && link.contains("/api/session?once="), "{link}");
    // A browser: takes the cookie the redirect sets, and with it gets the dashboard.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = browser.get(&link).send().await.unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let origin = link.split("/api/").next().unwrap();
    let page = browser.get(format!("{origin}/")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"), "the dashboard's page");
    // The link is spent.
    let again = reqwest::Client::new().get(&link).send().await.unwrap();
    assert!(!again.status().is_success(), "{}", again.status());
}
