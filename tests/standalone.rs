//! First run anywhere: `hearth` as a user installs it, with nothing outside the binary.
//!
//! Each run copies the built binary into an empty folder and starts it with a fresh `HOME` and
//! `HEARTH_HOME` in another, the working directory in a third and an environment holding nothing
//! but those and `PATH` (no `HEARTH_SHARED_DIR`, no `HEARTH_UI_DIR`, no XDG folders): so neither
//! the source tree nor `../shared` can be what makes it work. `PATH` stays because the default
//! model comes from a PyPI package through the first `python3` on it (`.ci/run` puts a venv with
//! the package first).
//!
//! Also here: a model that cannot load ends `hearth serve` and `hearth local` at start, non-zero,
//! with an error that names the file and says what to do.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use hearth_testkit::chat::chat;
use hearth_testkit::control::ControlFile;
use hearth_testkit::hearth::Hearth;
use hearth_testkit::poll::{poll_until, try_poll_until};
use hearth_testkit::process::{free_port, tail, Proc};
use serde_json::Value;

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));
/// Which UI hearth-engine's build script embedded: `built` (ui/dist) or `fallback`.
const EMBEDDED_UI: &str = env!("HEARTH_UI_EMBEDDED");

/// A copy of `hearth` run in its own world, and the folders it lives in.
struct Installed {
    proc: Proc,
    /// Its `HEARTH_HOME` (inside `_home`, which is its `HOME`).
    hearth_home: PathBuf,
    _bin: tempfile::TempDir,
    _home: tempfile::TempDir,
    _cwd: tempfile::TempDir,
    _logs: tempfile::TempDir,
}

impl Installed {
    /// Copies the binary into an empty folder and starts `hearth <args>` there as described above.
    fn start(args: &[&str]) -> Installed {
        let bin = tempfile::tempdir().unwrap();
        let exe = bin.path().join("hearth");
        std::fs::copy(HEARTH.path(), &exe).unwrap();
        let home = tempfile::tempdir().unwrap();
        let hearth_home = home.path().join("hearth");
        let cwd = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(&exe);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("HEARTH_HOME", &hearth_home)
            .env("RUST_LOG", "info")
            .current_dir(cwd.path())
            .args(args);
        let proc = Proc::spawn(cmd, logs.path(), "hearth");
        Installed { proc, hearth_home, _bin: bin, _home: home, _cwd: cwd, _logs: logs }
    }

    /// Waits for `hearth local` to print its gateway URL (`…through the local pool at http://…. Try:`)
    /// and returns it; panics with its log if it exits first or takes longer than `timeout`.
    async fn gateway_url(&mut self, timeout: Duration) -> String {
        let proc = &mut self.proc;
        let seen = try_poll_until(
            "hearth local to print its gateway URL",
            timeout,
            || std::future::ready((proc.stdout_text(), proc.exit_status())),
            |(out, exited): &(String, Option<ExitStatus>)| printed_url(out).is_some() || exited.is_some(),
        )
        .await;
        let (out, exited) =
            seen.unwrap_or_else(|t| t.fail(format!("log tail:\n{}", tail(&proc.log_text(), 30))));
        if let Some(status) = exited {
            panic!("hearth local exited early: {status}\n{}", tail(&proc.log_text(), 30));
        }
        printed_url(&out).expect("matched")
    }
}

/// The dashboard's sign-in link under `hearth local`'s greeting.
fn printed_sign_in(stdout: &str) -> Option<String> {
    let line = stdout.lines().skip_while(|l| !l.starts_with("The dashboard")).nth(1)?;
    Some(line.trim().to_string()).filter(|l| l.contains("/api/session?once="))
}

/// The gateway URL in `hearth local`'s greeting.
fn printed_url(stdout: &str) -> Option<String> {
    let rest = &stdout[stdout.find("through the local pool at ")? + "through the local pool at ".len()..];
    let url = &rest[..rest.find(". Try:")?];
    url.starts_with("http://127.0.0.1:").then(|| url.to_string())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap()
}

/// A chat completion through the gateway at `gateway`, for the one model it lists; its text.
async fn complete(gateway: &str, prompt: &str, max_tokens: i64) -> String {
    let models: Value =
        http().get(format!("{gateway}/v1/models")).send().await.unwrap().json().await.unwrap();
    let model = models["data"][0]["id"].as_str().expect("a model is listed").to_string();
    let r = http()
        .post(format!("{gateway}/v1/chat/completions"))
        .json(&chat(&model, prompt, max_tokens, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
    assert!(!text.trim().is_empty(), "no text: {body}");
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() >= 1, "{body}");
    text
}

/// How a browser is signed in to the control API.
enum SignIn {
    /// The link `hearth local` prints under its greeting.
    Printed,
    /// A fresh link from `POST /api/session` with the token in `control.json` (what the app and
    /// other local clients do).
    Minted,
}

/// The dashboard from the control API, the way a browser gets it: the one-time sign-in link for
/// the cookie, then `/` and every file the page links to. Returns the page.
async fn dashboard(installed: &Installed, sign_in: SignIn) -> String {
    let control = ControlFile::wait(&installed.hearth_home, &installed.proc, Duration::from_secs(30)).await;
    let client = http();
    let link = match sign_in {
        SignIn::Printed => {
            let printed = || std::future::ready(printed_sign_in(&installed.proc.stdout_text()));
            poll_until(
                "hearth local to print the dashboard link",
                Duration::from_secs(10),
                printed,
                Option::is_some,
            )
            .await
            .expect("matched")
        }
        SignIn::Minted => {
            let once: Value = client
                .post(format!("{}/api/session", control.url))
                .bearer_auth(&control.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            once["url"].as_str().unwrap().to_string()
        }
    };
    assert!(link.starts_with(&format!("{}/api/session?once=", control.url)), "{link}");
    let r = client.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 303, "the sign-in link answers with the cookie and a redirect to /");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();

    let r = client.get(format!("{}/", control.url)).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let page = r.text().await.unwrap();
    assert!(page.contains("<title>Hearth</title>"), "{page}");
    // The real dashboard whenever ui/dist was built for this build (CI builds it first).
    match EMBEDDED_UI {
        "built" => assert!(page.contains(r#"data-testid="state""#), "the dashboard: {page}"),
        _ => assert!(page.contains("was built without its dashboard"), "the placeholder: {page}"),
    }
    let linked = linked_files(&page);
    assert!(linked.iter().any(|f| f.ends_with(".js")), "the page loads a script: {page}");
    for file in linked {
        let r = client.get(format!("{}{file}", control.url)).header("Cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert!(!r.bytes().await.unwrap().is_empty(), "{file}");
    }
    page
}

/// The same-origin files a page links to (`src="/…"`, `href="/…"`).
fn linked_files(page: &str) -> Vec<String> {
    let mut files = Vec::new();
    for attr in ["src=\"/", "href=\"/"] {
        for (at, _) in page.match_indices(attr) {
            let rest = &page[at + attr.len() - 1..];
            if let Some(end) = rest.find('"') {
                files.push(rest[..end].to_string());
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_hearth_local_serves_the_default_model_and_its_dashboard() {
    let port = free_port();
    let mut installed = Installed::start(&["local", "--listen", &format!("127.0.0.1:{port}")]);
    // The first run fetches the default model, hence the long wait.
    let gateway = installed.gateway_url(Duration::from_secs(300)).await;
    let models = installed.hearth_home.join("data/models/gemma-3-270m");
    assert!(models.join("gemma-3-270m-q4_k_m.gguf").is_file());

    complete(&gateway, "Name a warm place in a house.", 12).await;
    dashboard(&installed, SignIn::Minted).await;

    let status = installed.proc.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "hearth local exited with {status}");
    let leftovers: Vec<_> = std::fs::read_dir(&models).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["gemma-3-270m-q4_k_m.gguf"], "only the GGUF: nothing copied from elsewhere");
}

/// The same world without a model (the scripted engine): the dashboard and the gateway need
/// nothing from outside either, and this runs where the default model cannot be fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_hearth_serves_its_dashboard_without_a_model() {
    let port = free_port();
    let mut installed =
        Installed::start(&["local", "--engine", "scripted", "--listen", &format!("127.0.0.1:{port}")]);
    let gateway = installed.gateway_url(Duration::from_secs(60)).await;
    assert_eq!(complete(&gateway, "hello", 3).await, "t0 t1 t2 ");
    dashboard(&installed, SignIn::Printed).await;
    let status = installed.proc.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "hearth local exited with {status}");
}

/// Runs `proc` to its exit, which must come within a few seconds and be a failure; its stderr.
async fn fails_fast(mut proc: Proc, what: &str) -> String {
    let started = Instant::now();
    let status = proc.wait_exit(what, Duration::from_secs(15)).await;
    let log = proc.log_text();
    assert!(!status.success(), "{what}: exited {status}\n{log}");
    assert!(started.elapsed() < Duration::from_secs(10), "{what}: took {:?}", started.elapsed());
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_cannot_load_ends_serve_and_local_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model.gguf");
    let missing_arg = missing.to_str().unwrap();
    let nobody = format!("ws://127.0.0.1:{}/ws/provider", free_port());

    let serve =
        HEARTH.serve(&dir.path().join("serve"), &["--coordinator", &nobody, "--model", missing_arg], &[]);
    let log = fails_fast(serve, "hearth serve with a missing model to exit").await;
    assert!(log.contains(missing_arg) && log.contains("does not exist"), "{log}");
    assert!(log.contains("check --model"), "says what to do: {log}");

    let mut cmd = HEARTH.command();
    cmd.env("HEARTH_HOME", dir.path().join("local")).args([
        "local",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--model",
        missing_arg,
    ]);
    let local = Proc::spawn(cmd, dir.path(), "local");
    let log = fails_fast(local, "hearth local with a missing model to exit").await;
    assert!(log.contains(missing_arg) && log.contains("does not exist"), "{log}");
    assert!(log.contains("check --model"), "says what to do: {log}");
}

#[test]
fn the_greeting_names_the_gateway() {
    let out = "Hearth is serving m through the local pool at http://127.0.0.1:8444. Try:\n";
    assert_eq!(printed_url(out).as_deref(), Some("http://127.0.0.1:8444"));
    assert_eq!(printed_url("Hearth is serving m"), None);
    let link = "\nThe dashboard (this link …):\n  http://127.0.0.1:9/api/session?once=ab\n";
    assert_eq!(printed_sign_in(link).as_deref(), Some("http://127.0.0.1:9/api/session?once=ab"));
    let page = r#"<script src="/assets/a.js"></script><link href="/assets/b.css"><a href="https://x">"#;
    assert_eq!(linked_files(page), ["/assets/a.js", "/assets/b.css"]);
}
