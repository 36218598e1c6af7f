//! What the protocol crate's tests share: where `../shared` is.

use std::path::PathBuf;

/// `$HEARTH_SHARED_DIR`, else the `shared` folder beside the checkout (tests only: the product
/// never reads it).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("HEARTH_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}
