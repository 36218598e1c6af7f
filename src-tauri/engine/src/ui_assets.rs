//! The web UI (the dashboard and settings pages built from `ui/`) served by the control API, so the
//! same bundle the Tauri shell embeds also works in an ordinary browser at `http://127.0.0.1:<port>/`.
//!
//! The bundle is compiled into the binary (rust-embed, with `debug-embed` so debug builds and
//! tests serve the embedded files too): an installed `hearth` needs nothing beside it. `build.rs`
//! picks what is embedded: `ui/dist` when built, else a placeholder page that shows the live
//! status and says how to build the UI. `$HEARTH_UI_DIR` names a folder to serve instead (tests
//! use stand-ins; a UI developer can point it at a fresh `ui/dist` without rebuilding `hearth`).
//!
//! `control.rs` mounts [`router`] as the API's fallback, inside the guard, so the files need the
//! same token/cookie and Host/Origin checks as the API (a browser signs in through the one-time
//! `/api/session?once=` link first).
//!
//! Every answer carries a strict Content-Security-Policy (the bundle has no inline script or style)
//! and headers that keep other sites from framing or sniffing it.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The policy for the UI's pages in a browser. `connect-src 'self'` covers `fetch` and the
/// `EventSource` on `/api/events`; uPlot sizes its canvas through the CSSOM, which `style-src
/// 'self'` allows.
pub const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Environment variable naming a built UI directory to serve instead of the embedded one.
pub const UI_DIR_ENV: &str = "HEARTH_UI_DIR";

/// True when the embedded bundle is the real UI (`ui/dist` was built when `hearth` was compiled),
/// false when it is the placeholder page.
pub const EMBEDS_BUILT_UI: bool = matches!(env!("HEARTH_UI_EMBEDDED").as_bytes(), b"built");

/// The files compiled into the binary; the folder is chosen by `build.rs`.
#[derive(rust_embed::Embed)]
#[folder = "$HEARTH_UI_EMBED_DIR"]
struct Embedded;

/// Where the UI's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiSource {
    /// The bundle compiled into the binary.
    Embedded,
    /// A folder on disk (`$HEARTH_UI_DIR`).
    Dir(PathBuf),
}

impl UiSource {
    /// `$HEARTH_UI_DIR` when it names a folder with an `index.html`, else the embedded bundle.
    pub fn from_env() -> UiSource {
        let Some(dir) = std::env::var_os(UI_DIR_ENV).filter(|v| !v.is_empty()).map(PathBuf::from) else {
            return UiSource::Embedded;
        };
        if dir.join("index.html").is_file() {
            UiSource::Dir(dir)
        } else {
            tracing::warn!(dir = %dir.display(), "{UI_DIR_ENV} has no index.html; serving the embedded UI");
            UiSource::Embedded
        }
    }

    /// The bytes of the file at `relative` (a path [`safe_relative`] accepted), `index.html` for a
    /// folder; `None` when there is none.
    async fn read(&self, relative: &Path) -> Option<(Cow<'static, [u8]>, PathBuf)> {
        match self {
            UiSource::Embedded => {
                let segments: Option<Vec<&str>> =
                    relative.components().map(|c| c.as_os_str().to_str()).collect();
                let key = segments?.join("/");
                let index =
                    if key.is_empty() { "index.html".to_string() } else { format!("{key}/index.html") };
                [key, index].into_iter().find_map(|k| Embedded::get(&k).map(|f| (f.data, PathBuf::from(k))))
            }
            UiSource::Dir(dir) => {
                let mut path = dir.join(relative);
                if path.is_dir() {
                    path = path.join("index.html");
                }
                let bytes = tokio::fs::read(&path).await.ok()?;
                Some((Cow::Owned(bytes), path))
            }
        }
    }
}

/// A router that serves the UI from `source` for any GET path (`/` → `index.html`), with the CSP.
/// Other methods get 405: nothing here takes a body.
pub fn router(source: UiSource) -> Router {
    if source == UiSource::Embedded && !EMBEDS_BUILT_UI {
        tracing::warn!("this hearth was built without the web UI: the control API serves a placeholder page");
    }
    Router::new().fallback(move |method: Method, uri: Uri| {
        let source = source.clone();
        async move {
            if method != Method::GET && method != Method::HEAD {
                return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
            }
            serve(&source, uri.path()).await
        }
    })
}

/// The file for a URL path, or why not.
pub async fn serve(source: &UiSource, url_path: &str) -> Response {
    let Some(relative) = safe_relative(url_path) else {
        return not_found();
    };
    let Some((bytes, path)) = source.read(&relative).await else {
        return not_found();
    };
    let body = match bytes {
        Cow::Borrowed(b) => Body::from(b),
        Cow::Owned(v) => Body::from(v),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
    // Vite fingerprints everything under assets/; the pages themselves must always be fresh.
    let cache =
        if relative.starts_with("assets") { "public, max-age=31536000, immutable" } else { "no-cache" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    secure(h);
    response
}

fn secure(h: &mut axum::http::HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(UI_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

fn not_found() -> Response {
    let mut r = (StatusCode::NOT_FOUND, "not found").into_response();
    secure(r.headers_mut());
    r
}

/// The URL path as a path under the UI directory: plain segments only (no `..`, no hidden files,
/// no percent-escapes, which the bundle never needs). `/` is the directory itself.
fn safe_relative(url_path: &str) -> Option<PathBuf> {
    if url_path.contains(['%', '\\', '\0']) {
        return None;
    }
    let trimmed = url_path.trim_start_matches('/');
    let relative = PathBuf::from(trimmed);
    let plain = relative.components().all(|c| match c {
        Component::Normal(s) => !s.to_string_lossy().starts_with('.'),
        _ => false,
    });
    plain.then_some(relative)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_inside_the_directory_are_served() {
        assert_eq!(safe_relative("/"), Some(PathBuf::new()));
        assert_eq!(safe_relative("/assets/app-1.js"), Some(PathBuf::from("assets/app-1.js")));
        for bad in ["/../etc/passwd", "/assets/../../x", "/.env", "/a/%2e%2e/b", "/a\\b", "//etc/passwd/.."] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn serves_index_assets_and_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html>hi").unwrap();
        std::fs::write(dir.path().join("assets/a.js"), "1").unwrap();
        let source = UiSource::Dir(dir.path().to_path_buf());
        let r = serve(&source, "/").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], UI_CSP);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let r = serve(&source, "/assets/a.js").await;
        assert!(r.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
        assert_eq!(serve(&source, "/missing.js").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(serve(&source, "/../x").await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_embedded_bundle_is_served_from_the_binary() {
        let names: Vec<String> = Embedded::iter().map(|n| n.into_owned()).collect();
        assert!(names.iter().any(|n| n == "index.html"), "{names:?}");
        let r = serve(&UiSource::Embedded, "/").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], UI_CSP);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("<title>Hearth</title>"));
        for name in &names {
            let r = serve(&UiSource::Embedded, &format!("/{name}")).await;
            assert_eq!(r.status(), StatusCode::OK, "{name}");
            assert_ne!(r.headers()[header::CONTENT_TYPE], "application/octet-stream", "{name}");
        }
        assert_eq!(serve(&UiSource::Embedded, "/missing.js").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(serve(&UiSource::Embedded, "/../index.html").await.status(), StatusCode::NOT_FOUND);
    }
}
