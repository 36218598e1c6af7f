//! Test helpers: where the shared fixtures live.
#![allow(dead_code)]

use std::path::PathBuf;

/// `shared/` sits beside the repository clone; `HEARTH_SHARED_DIR` overrides.
pub fn shared_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HEARTH_SHARED_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

pub fn fixture_model(name: &str) -> PathBuf {
    shared_dir().join("fixtures/models").join(name)
}

pub fn oracle(name: &str) -> serde_json::Value {
    let p = shared_dir().join("fixtures/models").join(format!("{name}.oracle.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}
