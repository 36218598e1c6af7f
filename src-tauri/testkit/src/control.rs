//! A running provider's control API, found the way local clients find it: the provider writes
//! `data/control.json` (its pid, URL and bearer token) under its HEARTH_HOME once the API listens.
//!
//! [`ControlFile`] is just that discovery, for callers with their own HTTP client (the fault rig
//! reaches the API from inside a network namespace); [`Control`] adds a client that speaks it.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::poll::{poll_until, try_poll_until};
use crate::process::{tail, Proc};

/// Where the control API of one process listens and the token it takes.
#[derive(Debug, Clone)]
pub struct ControlFile {
    pub url: String,
    pub token: String,
}

impl ControlFile {
    /// Waits until `home/data/control.json` names `proc` (a file left by an earlier process in the
    /// same home does not count); panics after `timeout` with the process's log.
    pub async fn wait(home: &Path, proc: &Proc, timeout: Duration) -> ControlFile {
        let path = home.join("data/control.json");
        let pid = proc.id();
        let what = format!("a control API from pid {pid} in {}", home.display());
        let read = || {
            let file = std::fs::read(&path).ok().and_then(|raw| serde_json::from_slice::<Value>(&raw).ok());
            std::future::ready(file)
        };
        let ours =
            |file: &Option<Value>| file.as_ref().is_some_and(|v| v["pid"].as_u64() == Some(pid as u64));
        match try_poll_until(&what, timeout, read, ours).await {
            Ok(file) => {
                let file = file.expect("matched");
                ControlFile {
                    url: file["url"].as_str().unwrap().to_string(),
                    token: file["token"].as_str().unwrap().to_string(),
                }
            }
            Err(timed_out) => timed_out.fail(format!("log tail:\n{}", tail(&proc.log_text(), 30))),
        }
    }
}

/// A client of one provider's control API.
pub struct Control {
    pub url: String,
    pub token: String,
    /// Follows no redirects, so tests see the API's own answers (the sign-in link's 303).
    pub http: reqwest::Client,
}

impl Control {
    /// Waits for the control API of `proc` (see [`ControlFile::wait`]).
    pub async fn wait(home: &Path, proc: &Proc, timeout: Duration) -> Control {
        let ControlFile { url, token } = ControlFile::wait(home, proc, timeout).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Control { url, token, http }
    }

    /// `GET path` with the bearer token.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    /// `POST path` with the bearer token.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    /// `PUT path` with the bearer token.
    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.put(format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    /// `GET path` as JSON; panics unless it answers 2xx.
    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The status snapshot, `GET /api/status`.
    pub async fn status(&self) -> Value {
        self.json("/api/status").await
    }

    /// Polls `/api/status` until `pred` holds and returns that snapshot; panics after `timeout`
    /// with `what` and the last snapshot.
    pub async fn status_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        poll_until(what, timeout, || self.status(), pred).await
    }

    /// Waits until the provider runs at least one job (a buyer's request has reached the engine).
    pub async fn job_running(&self) -> Value {
        self.status_until("a job running", Duration::from_secs(5), |s| {
            s["active_jobs"].as_array().is_some_and(|j| !j.is_empty())
        })
        .await
    }
}
