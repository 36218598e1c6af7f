//! The loopback engine against a scripted OpenAI-compatible server (always), and against a real
//! `mlx_lm.server` serving the tiny fixture when mlx-lm is installed (`HEARTH_MLX_LM_PYTHON` names
//! the Python that has it; default `python3`).

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_inference::job::ChatMessage;
use hearth_inference::{
    load_engine, Backend, CancelToken, EngineError, GenerationEvent, GenerationRequest, LoadSpec, Prompt,
    SamplingParams, StopReason,
};
use hearth_testkit::poll::poll_until;
use hearth_testkit::process::{free_port, Proc};
use hearth_testkit::shared_fixtures;

/// Serves a fixed stream; a prompt containing "slow" stalls before answering; "fail" gets a 500.
fn start_mock() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route(
                    "/v1/models",
                    get(|| async { Json(serde_json::json!({"data": [{"id": "mock-model"}]})) }),
                )
                .route("/v1/chat/completions", post(chat));
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{addr}/v1")
}

async fn chat(Json(body): Json<serde_json::Value>) -> axum::response::Response {
    let text = body["messages"][0]["content"].as_str().unwrap_or_default().to_string();
    assert_eq!(body["model"], "mock-model");
    assert_eq!(body["stream"], true);
    if text.contains("fail") {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": {"message": "boom"}})),
        )
            .into_response();
    }
    if text.contains("slow") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let mut sse = String::from(": keepalive 3/4\n\n");
    for piece in ["Hel", "lo", " wor", "ld", "!"] {
        sse += &format!(
            "data: {}\n\n",
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]})
        );
    }
    sse += &format!(
        "data: {}\n\n",
        serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    );
    sse += &format!(
        "data: {}\n\n",
        serde_json::json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}})
    );
    sse += "data: [DONE]\n\n";
    ([(axum::http::header::CONTENT_TYPE, "text/event-stream")], sse).into_response()
}

fn chat_request(text: &str, stop: &[&str]) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(vec![ChatMessage { role: "user".into(), content: text.into() }]),
        max_tokens: 16,
        sampling: SamplingParams::default(),
        stop: stop.iter().map(|s| s.to_string()).collect(),
    }
}

fn collect(
    engine: &dyn hearth_inference::Engine,
    req: &GenerationRequest,
    cancel: &CancelToken,
) -> (Result<hearth_inference::GenerationOutcome, EngineError>, String, Vec<GenerationEvent>) {
    let mut text = String::new();
    let mut events = vec![];
    let out = engine.generate(req, cancel, &mut |e| {
        if let GenerationEvent::Delta(d) = &e {
            text.push_str(d);
        }
        events.push(e);
    });
    (out, text, events)
}

#[test]
fn streams_from_mock_server() {
    let base = start_mock();
    let mut spec = LoadSpec::new("", Backend::Loopback { base_url: base, upstream_model: None });
    spec.model_id = Some("served".into());
    let engine = load_engine(&spec).unwrap();
    assert_eq!(engine.descriptor().model_id, "served");
    assert_eq!(engine.descriptor().engine, "loopback");

    let (out, text, events) = collect(engine.as_ref(), &chat_request("hi", &[]), &CancelToken::new());
    let out = out.unwrap();
    assert_eq!(text, "Hello world!");
    assert_eq!((out.prompt_tokens, out.completion_tokens), (9, 5));
    assert_eq!(out.stop_reason, StopReason::Stop);
    assert!(events.contains(&GenerationEvent::PrefillProgress { done: 3, total: 4 }));

    // A stop sequence split across deltas ("wor" + "ld") is enforced locally.
    let (out, text, _) = collect(engine.as_ref(), &chat_request("hi", &["world"]), &CancelToken::new());
    assert_eq!(text, "Hello ");
    assert_eq!(out.unwrap().stop_reason, StopReason::Stop);

    let (out, _, _) = collect(engine.as_ref(), &chat_request("please fail", &[]), &CancelToken::new());
    match out {
        Err(EngineError::Internal(m)) => assert!(m.contains("500") && m.contains("boom"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cancel_interrupts_a_stalled_server() {
    let base = start_mock();
    let spec =
        LoadSpec::new("", Backend::Loopback { base_url: base, upstream_model: Some("mock-model".into()) });
    let engine = load_engine(&spec).unwrap();
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        c2.cancel();
    });
    let started = Instant::now();
    let (out, _, _) = collect(engine.as_ref(), &chat_request("slow please", &[]), &cancel);
    assert_eq!(out.unwrap().stop_reason, StopReason::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let spec = LoadSpec::new("", Backend::Loopback { base_url: base.clone(), upstream_model: None });
    let err = load_engine(&spec).err().expect("no server");
    assert!(err.to_string().contains("not reachable"), "{err}");

    let spec = LoadSpec::new("", Backend::Loopback { base_url: base, upstream_model: Some("m".into()) });
    let engine = load_engine(&spec).unwrap();
    let (out, _, _) = collect(engine.as_ref(), &chat_request("hi", &[]), &CancelToken::new());
    assert!(matches!(out, Err(EngineError::ModelNotLoaded(ref m)) if m.contains("not reachable")), "{out:?}");
}

/// A real mlx_lm.server serving the tiny llama fixture reproduces the oracle's greedy text through
/// the loopback engine.
#[test]
fn real_mlx_lm_server_matches_oracle() {
    let Some(python) = shared_fixtures::mlx_lm_python() else { return };
    let model = shared_fixtures::fixture_model("tiny-llama-4bit");
    let port = free_port();
    let logs = tempfile::tempdir().unwrap();
    let mut server = Command::new(&python);
    server
        .args(["-m", "mlx_lm", "server", "--host", "127.0.0.1", "--port", &port.to_string(), "--model"])
        .arg(&model);
    let _server = Proc::spawn(server, logs.path(), "mlx_lm-server");
    let base = format!("http://127.0.0.1:{port}/v1");
    // (Its /v1/models lists the Hugging Face cache, not the served model, so probe the port.) The
    // engine below runs its own runtime, so only this wait runs on one.
    let listening = || std::future::ready(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let wait = poll_until("mlx_lm.server to listen", Duration::from_secs(90), listening, |up| *up);
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(wait);
    let mut spec = LoadSpec::new(
        &model,
        Backend::Loopback { base_url: base, upstream_model: Some(model.to_string_lossy().into_owned()) },
    );
    spec.max_context = Some(2048);
    let engine = load_engine(&spec).unwrap();
    assert_eq!(engine.descriptor().model_id, "tiny-llama-4bit");
    let oracle = shared_fixtures::oracle("tiny-llama-4bit");
    for case in oracle["cases"].as_array().unwrap().iter().filter(|c| c["kind"] == "chat") {
        let messages: Vec<ChatMessage> = serde_json::from_value(case["messages"].clone()).unwrap();
        let req = GenerationRequest {
            prompt: Prompt::Chat(messages),
            max_tokens: 16,
            sampling: SamplingParams::default(),
            stop: vec![],
        };
        let (out, text, _) = collect(engine.as_ref(), &req, &CancelToken::new());
        let out = out.unwrap();
        assert_eq!(text, case["greedy_text"].as_str().unwrap());
        assert_eq!(out.completion_tokens, 16);
        assert_eq!(out.prompt_tokens, case["prompt_ids"].as_array().unwrap().len() as u64);
    }
}
