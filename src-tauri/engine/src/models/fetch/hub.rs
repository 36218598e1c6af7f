//! The Hugging Face hub's HTTP API, as much of it as a pull needs:
//!
//! * `GET {endpoint}/api/models/{repo}/revision/{revision}`: the commit (`sha`) and the files
//!   (`siblings[].rfilename`);
//! * `HEAD {endpoint}/{repo}/resolve/{commit}/{file}`: a file's metadata in headers —
//!   `X-Repo-Commit`, `ETag` (the git blob id) or, for an LFS file, `X-Linked-Etag` (the sha256 of
//!   its content) and `X-Linked-Size`. LFS files answer with a redirect to a CDN; the HEAD does not
//!   follow it (the headers that matter are on the redirect itself), except a relative one (a
//!   renamed repository);
//! * `GET` of the same URL, with `Range: bytes=N-` to resume, following redirects. Authorization
//!   goes to the hub only: reqwest drops it when a redirect leaves the host, so a CDN's pre-signed
//!   URL never sees the token.
//!
//! `HF_ENDPOINT` moves the hub (a mirror, or the tests' stand-in) and `HF_TOKEN` (or the older
//! `HUGGING_FACE_HUB_TOKEN`) is sent as a bearer token, as `huggingface_hub` does.

use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT_ENCODING, CONTENT_LENGTH, ETAG, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use super::error::FetchError;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Renamed repositories redirect their `resolve` URLs within the hub; more hops than this is a loop.
const MAX_RELATIVE_REDIRECTS: usize = 5;

/// What the revision API says about one revision of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The commit the revision points at (40 hex digits).
    pub commit: String,
    /// Every file in the repository at that commit (`rfilename`s, `/`-separated).
    pub files: Vec<String>,
}

/// One file's metadata from the `resolve` HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The path in the repository (`config.json`, `sub/model.gguf`).
    pub file: String,
    /// The blob's name in the cache: the ETag without quotes or `W/`.
    pub etag: String,
    pub size: u64,
    /// The sha256 of the content, for an LFS file (whose ETag is that hash); `None` for a small
    /// file kept in git, whose ETag is a git blob id, checked by size only.
    pub sha256: Option<String>,
    /// Where to GET it: the resolve URL at the commit (so a push meanwhile cannot mix two commits).
    pub url: Url,
}

#[derive(Deserialize)]
struct RevisionJson {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
}

/// A client of one hub.
#[derive(Clone)]
pub struct Hub {
    endpoint: Url,
    token: Option<String>,
    /// No redirects: HEADs read the redirect's own headers.
    api: reqwest::Client,
    /// Follows redirects (to the CDN), dropping Authorization when the host changes.
    download: reqwest::Client,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Hub").field("endpoint", &self.endpoint.as_str()).finish_non_exhaustive()
    }
}

impl Hub {
    /// The hub `HF_ENDPOINT` names (default huggingface.co), with `HF_TOKEN` if set.
    pub fn from_env() -> Result<Self, FetchError> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = var("HF_TOKEN").or_else(|| var("HUGGING_FACE_HUB_TOKEN"));
        Self::new(&endpoint, token)
    }

    pub fn new(endpoint: &str, token: Option<String>) -> Result<Self, FetchError> {
        let endpoint = Url::parse(endpoint.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                FetchError::InvalidSpec(format!("HF_ENDPOINT {endpoint:?} is not an http(s) URL"))
            })?;
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(20))
                .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
        };
        let build = |b: reqwest::ClientBuilder| {
            b.build().map_err(|e| FetchError::Network { url: endpoint.to_string(), message: e.to_string() })
        };
        let api = build(builder().redirect(reqwest::redirect::Policy::none()))?;
        let download = build(builder().redirect(reqwest::redirect::Policy::limited(10)))?;
        Ok(Hub { endpoint, token, api, download })
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str().trim_end_matches('/')
    }

    /// The commit and files of `repo` at `revision` (a branch, tag or commit).
    pub async fn revision(&self, repo: &str, revision: &str) -> Result<Revision, FetchError> {
        let mut url = self.endpoint.clone();
        segments(
            &mut url,
            ["api", "models"].into_iter().chain(repo.split('/')).chain(["revision", revision]),
        );
        let response = self.send(&self.api, Method::GET, url.clone(), None).await?;
        let response = self.check(response, repo, Some(revision), None).await?;
        let body: RevisionJson = response.json().await.map_err(|e| FetchError::BadResponse {
            url: url.to_string(),
            problem: format!("not the revision JSON ({e})"),
        })?;
        if body.sha.len() < 7 || !body.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FetchError::BadResponse {
                url: url.to_string(),
                problem: format!("`sha` {:?} is not a commit id", body.sha),
            });
        }
        Ok(Revision { commit: body.sha, files: body.siblings.into_iter().map(|s| s.rfilename).collect() })
    }

    /// The metadata of `file` at `commit`, from a HEAD of its resolve URL.
    pub async fn file_meta(&self, repo: &str, commit: &str, file: &str) -> Result<FileMeta, FetchError> {
        let url = self.resolve_url(repo, commit, file);
        let mut at = url.clone();
        let mut hops = 0;
        let response = loop {
            let response = self.send(&self.api, Method::HEAD, at.clone(), None).await?;
            let relative = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .filter(|l| l.starts_with('/') && !l.starts_with("//"))
                .map(str::to_string);
            match relative {
                Some(location) if response.status().is_redirection() && hops < MAX_RELATIVE_REDIRECTS => {
                    hops += 1;
                    at = at.join(&location).map_err(|e| FetchError::BadResponse {
                        url: at.to_string(),
                        problem: format!("bad redirect {location:?}: {e}"),
                    })?;
                }
                _ => break response,
            }
        };
        let response = if response.status().is_redirection() {
            response
        } else {
            self.check(response, repo, None, Some(file)).await?
        };
        let headers = response.headers();
        let bad = |problem: &str| FetchError::BadResponse { url: url.to_string(), problem: problem.into() };
        let linked_etag = header(headers, "x-linked-etag");
        let etag = linked_etag
            .or_else(|| header(headers, ETAG.as_str()))
            .map(normalize_etag)
            .filter(|e| !e.is_empty() && !e.contains(['/', '\\']) && e != "..")
            .ok_or_else(|| bad("no ETag: cannot name the file in the cache"))?;
        let size = header(headers, "x-linked-size")
            .or_else(|| header(headers, CONTENT_LENGTH.as_str()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("no X-Linked-Size or Content-Length: the file's size is unknown"))?;
        // LFS ETags are the content's sha256; git blob ids are 40 hex digits, never 64.
        let sha256 = (etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| etag.to_ascii_lowercase());
        Ok(FileMeta { file: file.to_string(), etag, size, sha256, url })
    }

    /// `GET` of a file from byte `from` on (a `Range` request when `from > 0`). Answers 200 (the
    /// whole file), 206 (the rest) or 416 (nothing left) as received; anything else is an error.
    pub async fn get_from(&self, repo: &str, meta: &FileMeta, from: u64) -> Result<Response, FetchError> {
        let range = (from > 0).then(|| format!("bytes={from}-"));
        let response = self.send(&self.download, Method::GET, meta.url.clone(), range).await?;
        if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(response);
        }
        self.check(response, repo, None, Some(&meta.file)).await
    }

    fn resolve_url(&self, repo: &str, commit: &str, file: &str) -> Url {
        let mut url = self.endpoint.clone();
        segments(&mut url, repo.split('/').chain(["resolve", commit]).chain(file.split('/')));
        url
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: Url,
        range: Option<String>,
    ) -> Result<Response, FetchError> {
        // Sizes and checksums are of the bytes as stored: no transparent compression.
        let mut request = client.request(method, url.clone()).header(ACCEPT_ENCODING, "identity");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(range) = range {
            request = request.header(RANGE, range);
        }
        request.send().await.map_err(|e| FetchError::Network { url: url.to_string(), message: describe(&e) })
    }

    /// A successful answer, or the error it means. The hub says what is missing in
    /// `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`, `GatedRepo`).
    async fn check(
        &self,
        response: Response,
        repo: &str,
        revision: Option<&str>,
        file: Option<&str>,
    ) -> Result<Response, FetchError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let code = header(response.headers(), "x-error-code").unwrap_or_default();
        let url = response.url().to_string();
        let endpoint = self.endpoint().to_string();
        let repo = repo.to_string();
        Err(match (status.as_u16(), code.as_str()) {
            (_, "GatedRepo") | (403, _) => FetchError::Gated { repo, endpoint },
            (401, _) => FetchError::Unauthorized { repo, endpoint, token_sent: self.token.is_some() },
            (_, "RepoNotFound") => FetchError::RepoNotFound { repo, endpoint },
            (_, "RevisionNotFound") => {
                FetchError::RevisionNotFound { repo, revision: revision.unwrap_or("?").to_string() }
            }
            (404, _) => match file {
                Some(file) => FetchError::FileNotFound { repo, file: file.to_string(), available: vec![] },
                None => FetchError::RepoNotFound { repo, endpoint },
            },
            (status, _) => {
                let message = header(response.headers(), "x-error-message")
                    .or(response.text().await.ok().map(|t| t.chars().take(200).collect()))
                    .unwrap_or_default();
                FetchError::Http { url, status, message }
            }
        })
    }
}

/// Appends path segments, each percent-encoded (a `/` inside a revision like `refs/pr/1` too).
fn segments<'a>(url: &mut Url, parts: impl IntoIterator<Item = &'a str>) {
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(parts);
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `W/"abc"` → `abc`: the form huggingface_hub names blobs by.
pub(crate) fn normalize_etag(etag: String) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

/// reqwest's message with its causes (the useful part — "connection refused" — is in a cause).
fn describe(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_lose_quotes_and_weakness() {
        assert_eq!(normalize_etag("\"abc\"".into()), "abc");
        assert_eq!(normalize_etag("W/\"abc\"".into()), "abc");
        assert_eq!(normalize_etag("abc".into()), "abc");
    }

    #[test]
    fn urls_encode_each_segment() {
        let hub = Hub::new("http://127.0.0.1:9/mirror/", None).unwrap();
        let url = hub.resolve_url("org/name", "abc", "sub dir/model.gguf");
        assert_eq!(url.as_str(), "http://127.0.0.1:9/mirror/org/name/resolve/abc/sub%20dir/model.gguf");
        let mut rev = hub.endpoint.clone();
        segments(&mut rev, ["api", "models", "org", "name", "revision", "refs/pr/1"]);
        assert!(rev.as_str().ends_with("/revision/refs%2Fpr%2F1"), "{rev}");
        assert!(Hub::new("ftp://x", None).is_err());
    }
}
