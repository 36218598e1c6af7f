//! Chooses the web UI that the `hearth` binary embeds (see `src/ui_assets.rs`), so an installed
//! binary serves its dashboard with nothing beside it.
//!
//! * `ui/dist` of the repository when it is built (`npm ci && npm run build` in `ui/`; CI and
//!   `scripts/test-ui.sh` build it before any cargo command);
//! * else, on a fresh clone where npm is installed, this script runs that build once (a first
//!   `cargo run -p hearth-engine -- local` then gets the real dashboard too);
//! * else a small page in `ui-fallback/` that shows the live status and says how to build the UI,
//!   with a cargo warning: the engine must build on a clone where only cargo is at hand.
//!
//! The chosen folder reaches `ui_assets.rs` as `HEARTH_UI_EMBED_DIR` (rust-embed reads it at
//! compile time) and which one it is as `HEARTH_UI_EMBEDDED` (`built` or `fallback`). Nothing of
//! this path is read at run time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ui = manifest.join("../../ui");
    let dist = ui.join("dist");
    let fallback = manifest.join("ui-fallback");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", fallback.display());

    if !is_built(&dist) && ui.join("package-lock.json").is_file() {
        build_with_npm_once(&ui, &out);
    }
    let (embed, kind) = if is_built(&dist) {
        // A rebuilt UI (new fingerprinted file names) must be embedded anew.
        println!("cargo:rerun-if-changed={}", dist.display());
        (dist, "built")
    } else {
        println!(
            "cargo:warning=the web UI is not built (no ui/dist/index.html): `hearth` embeds a placeholder page. \
             For the dashboard run `npm --prefix ui ci && npm --prefix ui run build` (Node.js >= 20) and build again."
        );
        // Not ui/dist itself: a path that does not exist would rerun this script (and rebuild the
        // crate) on every build. The whole ui/ folder shows when dist/ appears.
        if ui.is_dir() {
            println!("cargo:rerun-if-changed={}", ui.display());
        }
        (fallback, "fallback")
    };
    let embed = embed.canonicalize().unwrap_or(embed);
    println!("cargo:rustc-env=HEARTH_UI_EMBED_DIR={}", embed.display());
    println!("cargo:rustc-env=HEARTH_UI_EMBEDDED={kind}");
}

fn is_built(dist: &Path) -> bool {
    dist.join("index.html").is_file()
}

/// `npm ci && npm run build` in `ui`, tried once per build directory (a machine without network
/// must not retry it on every build). Its output goes to this script's stderr (cargo keeps it in
/// the build's `output` files), never to stdout, where cargo reads instructions.
fn build_with_npm_once(ui: &Path, out: &Path) {
    let marker = out.join("ui-npm-build-tried");
    if marker.exists() || !has_npm() {
        return;
    }
    let _ = std::fs::write(&marker, b"");
    let run = |args: &[&str]| {
        Command::new("npm")
            .args(args)
            .current_dir(ui)
            .stdin(Stdio::null())
            .stdout(std::io::stderr())
            .status()
            .is_ok_and(|s| s.success())
    };
    if run(&["ci", "--no-audit", "--no-fund"]) && run(&["run", "build"]) {
        println!("cargo:warning=built the web UI with npm (ui/dist) to embed it in `hearth`");
    }
}

fn has_npm() -> bool {
    Command::new("npm")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
