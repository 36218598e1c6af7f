//! The web UI (`ui/dist`, built by `npm --prefix ui run build`) served by the control API, so the
//! same bundle the Tauri shell embeds also works in an ordinary browser at `http://127.0.0.1:<port>/`.
//!
//! `control.rs` mounts [`router`] as the API's fallback, inside the guard, so the files need the
//! same token/cookie and Host/Origin checks as the API (a browser signs in through the one-time
//! `/api/session?once=` link first).
//!
//! Every answer carries a strict Content-Security-Policy (the bundle has no inline script or style)
//! and headers that keep other sites from framing or sniffing it.
//!
//! Files are read with plain `tokio::fs` rather than a static-file crate: the UI is a handful of
//! small files, and this keeps the engine's dependencies as they are.

use std::path::{Component, Path, PathBuf};

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The policy for the UI's pages in a browser. `connect-src 'self'` covers `fetch` and the
/// `EventSource` on `/api/events`; uPlot sizes its canvas through the CSSOM, which `style-src
/// 'self'` allows.
pub const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Environment variable naming the built UI directory (overrides the search below).
pub const UI_DIR_ENV: &str = "HEARTH_UI_DIR";

/// Where the built UI is: `$HEARTH_UI_DIR`; else `ui/` beside the executable or in
/// `../share/hearth/ui` from it (installed layouts); else the repository's `ui/dist` (development
/// and tests). `None` when none of them has an `index.html`.
pub fn ui_dir() -> Option<PathBuf> {
    let has_index = |p: &Path| p.join("index.html").is_file();
    if let Some(dir) = std::env::var_os(UI_DIR_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir)).filter(|p| has_index(p));
    }
    let mut candidates = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        candidates.push(exe_dir.join("ui"));
        candidates.push(exe_dir.join("../share/hearth/ui"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist"));
    candidates.into_iter().find(|p| has_index(p))
}

/// A router that serves the files under `dir` for any GET path (`/` → `index.html`), with the CSP.
/// Other methods get 405: nothing here takes a body.
pub fn router(dir: PathBuf) -> Router {
    Router::new().fallback(move |method: Method, uri: Uri| {
        let dir = dir.clone();
        async move {
            if method != Method::GET && method != Method::HEAD {
                return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
            }
            serve(&dir, uri.path()).await
        }
    })
}

/// The file for a URL path, or why not.
pub async fn serve(dir: &Path, url_path: &str) -> Response {
    let Some(relative) = safe_relative(url_path) else {
        return not_found();
    };
    let mut path = dir.join(&relative);
    if path.is_dir() {
        path = path.join("index.html");
    }
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return not_found();
    };
    let mut response = (StatusCode::OK, bytes).into_response();
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
        let r = serve(dir.path(), "/").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], UI_CSP);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let r = serve(dir.path(), "/assets/a.js").await;
        assert!(r.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
        assert_eq!(serve(dir.path(), "/missing.js").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(serve(dir.path(), "/../x").await.status(), StatusCode::NOT_FOUND);
    }
}
