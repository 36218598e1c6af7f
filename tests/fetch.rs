//! `hearth models pull` against a stand-in for the Hugging Face hub that each test starts on
//! loopback: the revision API, `resolve` URLs with the hub's headers (`X-Repo-Commit`, `ETag`,
//! `X-Linked-Etag`, `X-Linked-Size`), LFS files redirected to a "CDN" on another port, `Range`
//! requests, and throttling so a test can kill a pull halfway. The real binary runs with
//! `HF_ENDPOINT` pointed at it and `HF_HOME` at a temp dir; the cache it leaves is then read back
//! byte for byte and through `hearth models list` (discovery).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hearth_testkit::control::Control;
use hearth_testkit::hearth::{Hearth, MODEL};
use hearth_testkit::poll::poll_until;
use hearth_testkit::process::free_port;
use hearth_testkit::shared_fixtures::fixture_models_if_present;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const HEARTH: Hearth = Hearth::at(env!("CARGO_BIN_EXE_hearth"));
const TOKEN: &str = "hf_test_token";
const COMMIT: &str = "4f3c1d2e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";

// ---------------------------------------------------------------------------------------------
// The hub stand-in.

#[derive(Clone)]
struct FakeFile {
    name: String,
    bytes: Arc<Vec<u8>>,
    /// An LFS file: sha256 ETag, `X-Linked-*` headers, served from the CDN after a redirect.
    lfs: bool,
    /// What the CDN sends instead of `bytes` (a corrupted copy).
    served: Option<Arc<Vec<u8>>>,
    /// The size the hub claims instead of the real one.
    advertised: Option<u64>,
}

impl FakeFile {
    fn new(name: &str, bytes: Vec<u8>) -> Self {
        let lfs = name.ends_with(".safetensors") || name.ends_with(".gguf");
        FakeFile { name: name.into(), bytes: Arc::new(bytes), lfs, served: None, advertised: None }
    }

    fn etag(&self) -> String {
        if self.lfs {
            sha256_hex(&self.bytes)
        } else {
            // Stands in for a git blob id: 40 hex digits.
            sha256_hex(&[b"blob ".as_slice(), &self.bytes].concat())[..40].to_string()
        }
    }
}

struct FakeRepo {
    files: Vec<FakeFile>,
    /// Answers only with the token.
    private: bool,
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    range: Option<String>,
    auth: Option<String>,
    cdn: bool,
}

#[derive(Default)]
struct HubState {
    repos: HashMap<String, FakeRepo>,
    /// Pause before each KiB of a file body.
    throttle: Option<Duration>,
    seen: Vec<Seen>,
    cdn_port: u16,
}

type Shared = Arc<Mutex<HubState>>;

struct FakeHub {
    state: Shared,
    addr: SocketAddr,
}

impl FakeHub {
    async fn start() -> FakeHub {
        let state: Shared = Arc::default();
        let hub = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cdn = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        state.lock().unwrap().cdn_port = cdn.local_addr().unwrap().port();
        let addr = hub.local_addr().unwrap();
        let hub_app = Router::new()
            .route("/api/models/{org}/{name}/revision/{rev}", get(revision))
            .route("/{org}/{name}/resolve/{rev}/{*file}", get(resolve))
            .with_state(state.clone());
        let cdn_app =
            Router::new().route("/cdn/{org}/{name}/{*file}", get(cdn_file)).with_state(state.clone());
        tokio::spawn(async move { axum::serve(hub, hub_app).await.unwrap() });
        tokio::spawn(async move { axum::serve(cdn, cdn_app).await.unwrap() });
        FakeHub { state, addr }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn add(&self, repo: &str, files: Vec<FakeFile>) {
        self.state.lock().unwrap().repos.insert(repo.into(), FakeRepo { files, private: false });
    }

    fn set_throttle(&self, gap: Option<Duration>) {
        self.state.lock().unwrap().throttle = gap;
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn clear_seen(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

fn record(state: &Shared, method: &Method, path: String, headers: &HeaderMap, cdn: bool) {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    state.lock().unwrap().seen.push(Seen {
        method: method.to_string(),
        path,
        range: h("range"),
        auth: h("authorization"),
        cdn,
    });
}

fn hub_error(status: StatusCode, code: &str) -> Response {
    (status, [("x-error-code", code)], code.to_string()).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn revision(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    UrlPath((org, name, rev)): UrlPath<(String, String, String)>,
) -> Response {
    record(&state, &method, format!("/api/models/{org}/{name}/revision/{rev}"), &headers, false);
    let hub = state.lock().unwrap();
    let repo_id = format!("{org}/{name}");
    let Some(repo) = hub.repos.get(&repo_id) else {
        return hub_error(StatusCode::NOT_FOUND, "RepoNotFound");
    };
    if repo.private && !authorized(&headers) {
        return hub_error(StatusCode::UNAUTHORIZED, "RepoNotFound");
    }
    if rev != "main" && rev != COMMIT {
        return hub_error(StatusCode::NOT_FOUND, "RevisionNotFound");
    }
    let siblings: Vec<Value> = repo.files.iter().map(|f| json!({ "rfilename": f.name })).collect();
    axum::Json(json!({ "id": repo_id, "sha": COMMIT, "siblings": siblings })).into_response()
}

async fn resolve(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    UrlPath((org, name, rev, file)): UrlPath<(String, String, String, String)>,
) -> Response {
    record(&state, &method, format!("/{org}/{name}/resolve/{rev}/{file}"), &headers, false);
    let hub = state.lock().unwrap();
    let Some(repo) = hub.repos.get(&format!("{org}/{name}")) else {
        return hub_error(StatusCode::NOT_FOUND, "RepoNotFound");
    };
    if repo.private && !authorized(&headers) {
        return hub_error(StatusCode::UNAUTHORIZED, "RepoNotFound");
    }
    let Some(f) = repo.files.iter().find(|f| f.name == file) else {
        return hub_error(StatusCode::NOT_FOUND, "EntryNotFound");
    };
    let etag = format!("\"{}\"", f.etag());
    if f.lfs {
        let size = f.advertised.unwrap_or(f.bytes.len() as u64).to_string();
        let location = format!("http://127.0.0.1:{}/cdn/{org}/{name}/{file}", hub.cdn_port);
        return Response::builder()
            .status(StatusCode::FOUND)
            .header("location", location)
            .header("x-repo-commit", COMMIT)
            .header("etag", &etag)
            .header("x-linked-etag", &etag)
            .header("x-linked-size", size)
            .body(Body::empty())
            .unwrap();
    }
    let throttle = hub.throttle;
    serve_bytes(&method, &headers, f.bytes.clone(), throttle, &etag)
}

async fn cdn_file(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    UrlPath((org, name, file)): UrlPath<(String, String, String)>,
) -> Response {
    record(&state, &method, format!("/cdn/{org}/{name}/{file}"), &headers, true);
    let hub = state.lock().unwrap();
    let Some(f) =
        hub.repos.get(&format!("{org}/{name}")).and_then(|r| r.files.iter().find(|f| f.name == file))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let bytes = f.served.clone().unwrap_or_else(|| f.bytes.clone());
    serve_bytes(&method, &headers, bytes, hub.throttle, "\"cdn\"")
}

/// A body with `Range: bytes=N-` support (206 / 416), throttled per KiB if asked.
fn serve_bytes(
    method: &Method,
    headers: &HeaderMap,
    bytes: Arc<Vec<u8>>,
    throttle: Option<Duration>,
    etag: &str,
) -> Response {
    let len = bytes.len();
    let start = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok());
    let builder = Response::builder().header("x-repo-commit", COMMIT).header("etag", etag);
    let (builder, from) = match start {
        Some(from) if from >= len => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header("content-range", format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap()
        }
        Some(from) => (
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header("content-range", format!("bytes {from}-{}/{len}", len - 1)),
            from,
        ),
        None => (builder.status(StatusCode::OK), 0),
    };
    let builder = builder.header("content-length", (len - from).to_string());
    if method == Method::HEAD {
        return builder.body(Body::empty()).unwrap();
    }
    let body = match throttle {
        None => Body::from(bytes[from..].to_vec()),
        Some(gap) => Body::from_stream(futures_util::stream::unfold(from, move |pos| {
            let bytes = bytes.clone();
            async move {
                if pos >= bytes.len() {
                    return None;
                }
                tokio::time::sleep(gap).await;
                let end = (pos + 1024).min(bytes.len());
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(&bytes[pos..end])), end))
            }
        })),
    };
    builder.body(body).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The tiny MLX fixture's files as a repository, plus a README and a file in a subfolder.
fn mlx_repo_files(fixture: &Path) -> Vec<FakeFile> {
    let mut files: Vec<FakeFile> = std::fs::read_dir(fixture)
        .unwrap()
        .flatten()
        .map(|e| FakeFile::new(&e.file_name().to_string_lossy(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.push(FakeFile::new("README.md", b"# tiny llama\n".to_vec()));
    files.push(FakeFile::new("docs/notes.txt", b"a file in a folder\n".to_vec()));
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// Bytes that start like a GGUF file: discovery lists it (as a model it could not read, which
/// is all the listing needs here).
fn fake_gguf(size: usize, seed: u8) -> Vec<u8> {
    let mut bytes = b"GGUF\x03\x00\x00\x00".to_vec();
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    while bytes.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push(x as u8);
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// The binary under test.

struct Machine {
    dir: tempfile::TempDir,
    endpoint: String,
}

impl Machine {
    fn new(hub: &FakeHub) -> Machine {
        Machine { dir: tempfile::tempdir().unwrap(), endpoint: hub.endpoint() }
    }

    fn hf_home(&self) -> PathBuf {
        self.dir.path().join("hf")
    }

    fn hub_cache(&self) -> PathBuf {
        self.hf_home().join("hub")
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.hub_cache().join(format!("models--{}", repo.replace('/', "--")))
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Everything Hearth reads from the environment, pointed into the temp dir.
    fn env(&self) -> Vec<(&'static str, String)> {
        let p = |rel: &str| self.dir.path().join(rel).display().to_string();
        vec![
            ("HF_HOME", self.hf_home().display().to_string()),
            ("HF_HUB_CACHE", String::new()),
            ("HF_ENDPOINT", self.endpoint.clone()),
            ("HF_TOKEN", TOKEN.to_string()),
            ("HEARTH_HOME", self.home().display().to_string()),
            ("HOME", p("user")),
            ("OLLAMA_MODELS", p("ollama")),
            ("RUST_LOG", "warn".into()),
        ]
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(HEARTH.path());
        cmd.args(args).envs(self.env()).kill_on_drop(true);
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        let run = self.command(args).output();
        tokio::time::timeout(Duration::from_secs(120), run).await.expect("hearth timed out").unwrap()
    }

    /// `hearth models list --json`'s models.
    async fn listed(&self) -> Vec<Value> {
        let out = self.run(&["models", "list", "--json"]).await;
        assert!(out.status.success(), "models list failed: {}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["models"].as_array().unwrap().clone()
    }

    async fn listed_names(&self) -> Vec<String> {
        self.listed().await.iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
    }

    /// Every file under the repository's folder, relative, with `.incomplete` ones included.
    fn files_under(&self, repo: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        let root = self.repo_dir(repo);
        walk(&root, &root, &mut out);
        out.sort();
        out
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn both(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr))
}

/// The snapshot holds exactly `files`, each a relative link into blobs/ with the same bytes.
fn assert_snapshot_matches(machine: &Machine, repo: &str, files: &[FakeFile]) {
    let root = machine.repo_dir(repo);
    assert_eq!(std::fs::read_to_string(root.join("refs/main")).unwrap(), COMMIT);
    let snapshot = root.join("snapshots").join(COMMIT);
    for f in files {
        let path = snapshot.join(&f.name);
        let target = std::fs::read_link(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let ups = f.name.matches('/').count() + 2;
        let expected = format!("{}blobs/{}", "../".repeat(ups), f.etag());
        assert_eq!(target, PathBuf::from(expected), "{}", f.name);
        assert!(std::fs::read(&path).unwrap() == *f.bytes, "{} differs from the hub's", f.name);
    }
    let leftovers: Vec<String> = machine
        .files_under(repo)
        .into_iter()
        .filter(|f| f.contains("incomplete") || f.contains(".hearth"))
        .collect();
    assert!(leftovers.is_empty(), "nothing temporary left: {leftovers:?}");
}

macro_rules! fixture_or_skip {
    () => {
        match fixture_models_if_present() {
            Some(f) => f.join("tiny-llama-4bit"),
            None => {
                eprintln!("skipped: shared fixtures not found (set HEARTH_SHARED_DIR)");
                return;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mlx_repository_is_pulled_into_the_hf_cache_listed_and_removed() {
    let fixture = fixture_or_skip!();
    let hub = FakeHub::start().await;
    let files = mlx_repo_files(&fixture);
    hub.add("mlx-test/tiny-llama-4bit", files.clone());
    let machine = Machine::new(&hub);

    let out = machine.run(&["models", "pull", "mlx-test/tiny-llama-4bit"]).await;
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("disk: ") && stdout.contains("free on"), "{stdout}");
    assert!(stdout.contains("memory: fits — mlx-test/tiny-llama-4bit needs about"), "{stdout}");
    assert!(stdout.contains("of RAM"), "{stdout}");
    let snapshot = machine.repo_dir("mlx-test/tiny-llama-4bit").join("snapshots").join(COMMIT);
    assert!(stdout.contains(&format!("model_path: {}", snapshot.display())), "{stdout}");
    assert_snapshot_matches(&machine, "mlx-test/tiny-llama-4bit", &files);

    // The token went to the hub, never to the CDN the LFS file was redirected to.
    let seen = hub.seen();
    assert!(seen.iter().filter(|s| !s.cdn).all(|s| s.auth.as_deref() == Some(&*format!("Bearer {TOKEN}"))));
    let cdn: Vec<&Seen> = seen.iter().filter(|s| s.cdn).collect();
    assert_eq!(cdn.len(), 1, "one LFS download via the CDN: {seen:#?}");
    assert_eq!((cdn[0].method.as_str(), cdn[0].auth.as_deref()), ("GET", None));

    let listed = machine.listed().await;
    let model = listed.iter().find(|m| m["name"] == "mlx-test/tiny-llama-4bit").expect("listed");
    assert_eq!(model["source"], "hugging_face_cache");
    assert_eq!(model["loadable"], true, "{model:#}");
    assert_eq!(model["path"], snapshot.display().to_string());
    assert_eq!(model["fit"], "fits");
    let table = text(&machine.run(&["models", "list"]).await.stdout);
    let line = table.lines().find(|l| l.starts_with("mlx-test/tiny-llama-4bit")).expect(&table);
    assert!(line.contains("4-bit") && line.contains("fits") && line.contains("ready"), "{line}");

    // Pulling again downloads nothing: every blob is there.
    hub.clear_seen();
    let again = machine.run(&["models", "pull", "mlx-test/tiny-llama-4bit"]).await;
    assert!(again.status.success(), "{}", both(&again));
    let gets: Vec<Seen> =
        hub.seen().into_iter().filter(|s| s.method == "GET" && !s.path.contains("/api/")).collect();
    assert!(gets.is_empty(), "{gets:#?}");

    let removed = machine.run(&["models", "remove", "mlx-test/tiny-llama-4bit"]).await;
    assert!(removed.status.success(), "{}", both(&removed));
    assert!(text(&removed.stdout).contains("freed"), "{}", both(&removed));
    assert!(!machine.repo_dir("mlx-test/tiny-llama-4bit").exists());
    assert!(!machine.listed_names().await.iter().any(|n| n.starts_with("mlx-test/")));
    // Nothing outside the cache, and nothing that is not a repository.
    let refused = machine.run(&["models", "remove", "../../etc"]).await;
    assert!(!refused.status.success());
    let missing = machine.run(&["models", "remove", "mlx-test/never-pulled"]).await;
    assert!(text(&missing.stderr).contains("not in the Hugging Face cache"), "{}", both(&missing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_killed_mid_download_is_never_listed_and_resumes_with_a_range_request() {
    let fixture = fixture_or_skip!();
    let hub = FakeHub::start().await;
    let files = mlx_repo_files(&fixture);
    let weights = files.iter().find(|f| f.name == "model.safetensors").unwrap().clone();
    hub.add("mlx-test/resumable", files.clone());
    let machine = Machine::new(&hub);
    // ~50 KiB/s: the 66 KiB weights take over a second.
    hub.set_throttle(Some(Duration::from_millis(20)));

    let mut cmd = machine.command(&["models", "pull", "mlx-test/resumable"]);
    cmd.stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let partial =
        machine.repo_dir("mlx-test/resumable").join("blobs").join(format!("{}.incomplete", weights.etag()));
    let size = || std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    poll_until(
        "16 KiB of the weights on disk",
        Duration::from_secs(30),
        || std::future::ready(size()),
        |n| *n >= 16 << 10,
    )
    .await;
    child.kill().await.unwrap();
    let kept = size();
    assert!(kept > 0 && kept < weights.bytes.len() as u64, "{kept}");

    // Half a download is not a model: no snapshot, nothing listed.
    assert!(!machine.repo_dir("mlx-test/resumable").join("snapshots").join(COMMIT).exists());
    assert!(!machine.listed_names().await.iter().any(|n| n.contains("resumable")));

    // Ctrl-C: the pull stops, says how to resume, and keeps what it had (more than before).
    let mut cmd = machine.command(&["models", "pull", "mlx-test/resumable"]);
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    poll_until(
        "more of the weights on disk",
        Duration::from_secs(30),
        || std::future::ready(size()),
        |n| *n >= kept + (8 << 10),
    )
    .await;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let out = child.wait_with_output().await.unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cancelled; what was downloaded is kept"), "{}", both(&out));
    let kept = size();
    assert!(kept > 24 << 10 && kept < weights.bytes.len() as u64, "{kept}");
    assert!(!machine.repo_dir("mlx-test/resumable").join("snapshots").join(COMMIT).exists());

    hub.set_throttle(None);
    hub.clear_seen();
    let started = Instant::now();
    let out = machine.run(&["models", "pull", "mlx-test/resumable"]).await;
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        text(&out.stdout).contains(&format!("model.safetensors: resuming at byte {kept}")),
        "{}",
        both(&out)
    );
    let ranged: Vec<Seen> = hub.seen().into_iter().filter(|s| s.cdn && s.method == "GET").collect();
    assert_eq!(ranged.len(), 1, "{ranged:#?}");
    assert_eq!(ranged[0].range.as_deref(), Some(&*format!("bytes={kept}-")));
    assert_snapshot_matches(&machine, "mlx-test/resumable", &files);
    assert!(machine.listed_names().await.contains(&"mlx-test/resumable".to_string()));
    eprintln!("resumed the rest in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_lfs_file_fails_its_checksum_and_leaves_no_model() {
    let fixture = fixture_or_skip!();
    let hub = FakeHub::start().await;
    let mut files = mlx_repo_files(&fixture);
    let weights = files.iter_mut().find(|f| f.name == "model.safetensors").unwrap();
    let mut damaged = weights.bytes.to_vec();
    damaged[1000] ^= 0xff;
    weights.served = Some(Arc::new(damaged));
    let etag = weights.etag();
    hub.add("mlx-test/damaged", files);
    let machine = Machine::new(&hub);

    let out = machine.run(&["models", "pull", "mlx-test/damaged"]).await;
    assert!(!out.status.success(), "{}", both(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("model.safetensors arrived damaged") && stderr.contains(&etag), "{stderr}");
    let root = machine.repo_dir("mlx-test/damaged");
    assert!(!root.join("snapshots").join(COMMIT).exists(), "no snapshot link");
    assert!(!root.join("refs/main").exists());
    let left = machine.files_under("mlx-test/damaged");
    assert!(!left.iter().any(|f| f.contains(&etag)), "the damaged download is deleted: {left:?}");
    assert!(!machine.listed_names().await.iter().any(|n| n.contains("damaged")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_larger_than_the_free_disk_is_refused_before_anything_is_written() {
    let hub = FakeHub::start().await;
    let mut huge = FakeFile::new("huge-Q4_K_M.gguf", fake_gguf(4096, 1));
    huge.advertised = Some(1_000_000_000_000_000);
    hub.add("gguf-test/huge-GGUF", vec![FakeFile::new("README.md", b"big".to_vec()), huge]);
    let machine = Machine::new(&hub);

    let out = machine.run(&["models", "pull", "gguf-test/huge-GGUF:huge-Q4_K_M.gguf", "--force"]).await;
    assert!(!out.status.success(), "{}", both(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not enough disk space for gguf-test/huge-GGUF: it needs 909.5 TiB more and")
            && stderr.contains(" free"),
        "{stderr}"
    );
    assert!(!machine.repo_dir("gguf-test/huge-GGUF").exists(), "nothing written");
    let gets: Vec<Seen> =
        hub.seen().into_iter().filter(|s| s.method == "GET" && !s.path.contains("/api/")).collect();
    assert!(gets.is_empty(), "no download started: {gets:#?}");
    assert!(machine.listed_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gguf_file_of_a_repository_is_pulled_alone_and_hub_errors_say_what_to_do() {
    let hub = FakeHub::start().await;
    let q4 = FakeFile::new("tiny-Q4_K_M.gguf", fake_gguf(32 << 20, 2));
    let q8 = FakeFile::new("tiny-Q8_0.gguf", fake_gguf(4096, 3));
    hub.add("gguf-test/tiny-GGUF", vec![FakeFile::new("README.md", b"ggufs".to_vec()), q4.clone(), q8]);
    let machine = Machine::new(&hub);

    let started = Instant::now();
    let out = machine.run(&["models", "pull", "gguf-test/tiny-GGUF:tiny-Q4_K_M.gguf"]).await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("memory: fits — tiny-Q4_K_M.gguf needs about 32.0 MiB (its weights"), "{stdout}");
    eprintln!(
        "pulled 32 MiB in {elapsed:?} ({:.0} MiB/s end to end): {}",
        32.0 / elapsed.as_secs_f64(),
        stdout.lines().find(|l| l.starts_with("pulled")).unwrap_or_default()
    );
    assert_snapshot_matches(&machine, "gguf-test/tiny-GGUF", std::slice::from_ref(&q4));
    let snapshot = machine.repo_dir("gguf-test/tiny-GGUF").join("snapshots").join(COMMIT);
    let in_snapshot: Vec<String> = std::fs::read_dir(&snapshot)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(in_snapshot, ["tiny-Q4_K_M.gguf"], "only the file asked for");
    let listed = machine.listed().await;
    let gguf = listed.iter().find(|m| m["name"] == "gguf-test/tiny-GGUF/tiny-Q4_K_M.gguf").expect("listed");
    assert_eq!((gguf["format"].as_str(), gguf["size_bytes"].as_u64()), (Some("gguf"), Some(32 << 20)));

    // No file named, several GGUFs: which one?
    let out = machine.run(&["models", "pull", "gguf-test/tiny-GGUF"]).await;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "holds 2 GGUF files: name one, e.g. `hearth models pull gguf-test/tiny-GGUF:tiny-Q4_K_M.gguf`"
        ),
        "{stderr}"
    );
    let out = machine.run(&["models", "pull", "gguf-test/tiny-GGUF:tiny-Q2_K.gguf"]).await;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("has no file tiny-Q2_K.gguf; it has: tiny-Q4_K_M.gguf, tiny-Q8_0.gguf"),
        "{stderr}"
    );
    let out = machine.run(&["models", "pull", "gguf-test/no-such-repo"]).await;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no repository gguf-test/no-such-repo on http://127.0.0.1:")
            && stderr.contains("(404)"),
        "{stderr}"
    );
    // A private repository without a token: 401, and the way out is HF_TOKEN.
    hub.state.lock().unwrap().repos.insert(
        "gguf-test/private".into(),
        FakeRepo { files: vec![FakeFile::new("p.gguf", fake_gguf(1024, 4))], private: true },
    );
    let mut cmd = machine.command(&["models", "pull", "gguf-test/private"]);
    cmd.env_remove("HF_TOKEN");
    let out = cmd.output().await.unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("(401)") && stderr.contains("set HF_TOKEN"), "{stderr}");
    let out = machine.run(&["models", "pull", "gguf-test/private"]).await;
    assert!(out.status.success(), "with the token it works: {}", both(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_through_the_control_api_reports_progress_until_done_and_can_be_cancelled() {
    let fixture = fixture_or_skip!();
    let hub = FakeHub::start().await;
    let files = mlx_repo_files(&fixture);
    hub.add("mlx-test/via-api", files.clone());
    hub.add("gguf-test/slow-GGUF", vec![FakeFile::new("slow.gguf", fake_gguf(1 << 20, 5))]);
    let machine = Machine::new(&hub);
    let dead = format!("ws://127.0.0.1:{}/ws/provider", free_port());
    let env = machine.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let proc = HEARTH.serve(&machine.home(), &["--coordinator", &dead, "--model-id", MODEL], &env);
    let control = Control::wait(&machine.home(), &proc, Duration::from_secs(15)).await;

    // The token guards these routes like every other.
    let anonymous =
        reqwest::Client::new().get(format!("{}/api/models/pulls", control.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let bad = control.post("/api/models/pull").json(&json!({"repo": "no-slash"})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("org/name"));

    hub.set_throttle(Some(Duration::from_millis(10)));
    let r = control.post("/api/models/pull").json(&json!({"repo": "mlx-test/via-api"})).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let pull = r.json::<Value>().await.unwrap()["pull"].clone();
    let id = pull["id"].as_str().unwrap().to_string();
    assert_eq!((pull["repo"].as_str(), pull["state"].as_str()), (Some("mlx-test/via-api"), Some("running")));

    let saw_progress = Mutex::new(None);
    let done = poll_until(
        "the pull to end",
        Duration::from_secs(60),
        || async {
            let pulls = control.json("/api/models/pulls").await;
            let p = pulls["pulls"].as_array().unwrap().iter().find(|p| p["id"] == *id).unwrap().clone();
            if p["state"] == "running"
                && p["rate_bps"].as_u64() > Some(0)
                && p["bytes_done"].as_u64() > Some(0)
            {
                *saw_progress.lock().unwrap() = Some(p.clone());
            }
            p
        },
        |p| p["state"] != "running",
    )
    .await;
    assert_eq!(done["state"], "done", "{done:#}");
    let total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    assert_eq!((done["bytes_done"].as_u64(), done["bytes_total"].as_u64()), (Some(total), Some(total)));
    let snapshot = machine.repo_dir("mlx-test/via-api").join("snapshots").join(COMMIT);
    assert_eq!(done["path"], snapshot.display().to_string());
    assert_eq!(done["name"], "mlx-test/via-api");
    assert_eq!(done["memory"]["fit"], "fits", "{done:#}");
    assert!(done["disk"]["free_bytes"].as_u64().unwrap() > 0);
    let running = saw_progress.into_inner().unwrap().expect("progress seen while running");
    assert!(running["bytes_total"].as_u64() == Some(total) && running["eta_s"].is_u64(), "{running:#}");
    assert_snapshot_matches(&machine, "mlx-test/via-api", &files);
    let models = control.json("/api/models").await;
    assert!(models["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "mlx-test/via-api" && m["loadable"] == true));

    // A slow pull, cancelled: the part downloaded stays, no snapshot, and it can be forgotten.
    let r = control
        .post("/api/models/pull")
        .json(&json!({"repo": "gguf-test/slow-GGUF", "file": "slow.gguf"}))
        .send()
        .await
        .unwrap();
    let slow = r.json::<Value>().await.unwrap()["pull"]["id"].as_str().unwrap().to_string();
    poll_until(
        "some bytes of the slow pull",
        Duration::from_secs(30),
        || async {
            let pulls = control.json("/api/models/pulls").await;
            pulls["pulls"].as_array().unwrap().iter().find(|p| p["id"] == *slow).unwrap()["bytes_done"]
                .as_u64()
        },
        |n| *n > Some(0),
    )
    .await;
    let r = control
        .http
        .delete(format!("{}/api/models/pulls/{slow}", control.url))
        .bearer_auth(&control.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cancelled = poll_until(
        "the cancel to take",
        Duration::from_secs(10),
        || async {
            let pulls = control.json("/api/models/pulls").await;
            pulls["pulls"].as_array().unwrap().iter().find(|p| p["id"] == *slow).unwrap().clone()
        },
        |p| p["state"] != "running",
    )
    .await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    assert!(cancelled["error"].as_str().unwrap().contains("resume"));
    let root = machine.repo_dir("gguf-test/slow-GGUF");
    assert!(!root.join("snapshots").join(COMMIT).exists());
    assert!(machine.files_under("gguf-test/slow-GGUF").iter().any(|f| f.ends_with(".incomplete")));
    let r = control
        .http
        .delete(format!("{}/api/models/pulls/{slow}", control.url))
        .bearer_auth(&control.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "an ended pull is forgotten");
    let r = control
        .http
        .delete(format!("{}/api/models/pulls/{slow}", control.url))
        .bearer_auth(&control.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(proc);
}
