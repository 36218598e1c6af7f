//! [`RunningApp`]: the provider running on this machine, reached through its control API the way
//! the UI reaches it (`control.json` in the data folder names the address and the token). The
//! commands that ask it something — `status`, `doctor`, `earnings export`, `models use` — share it.

use std::time::Duration;

use anyhow::{bail, Result};
use hearth_engine::control::{self, ControlError, Endpoint};
use serde::de::DeserializeOwned;

pub struct RunningApp {
    endpoint: Endpoint,
    http: reqwest::Client,
}

impl RunningApp {
    /// The app `control.json` names; an error says none runs (or where it looked).
    pub fn find() -> Result<RunningApp, ControlError> {
        let endpoint = control::find_endpoint(&control::data_dir())?;
        Ok(RunningApp { endpoint, http: reqwest::Client::new() })
    }

    /// A request to `path` on the control API, with the token.
    pub fn request(&self, method: reqwest::Method, path: &str, timeout: Duration) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.endpoint.url))
            .bearer_auth(&self.endpoint.token)
            .timeout(timeout)
    }

    /// `GET path` as JSON: an error names an app that does not answer, or what it answered.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, timeout: Duration) -> Result<T> {
        let url = format!("{}{path}", self.endpoint.url);
        let response = self
            .request(reqwest::Method::GET, path, timeout)
            .send()
            .await
            .map_err(|e| ControlError::Unreachable { url, problem: e.to_string() })?;
        if !response.status().is_success() {
            bail!(
                "the control API answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }
}
