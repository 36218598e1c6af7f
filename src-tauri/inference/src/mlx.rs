//! The `mlx` backend (macOS, Apple Silicon): the production path, to be built on `mlx-rs` as a thin
//! [`ForwardModel`](crate::generate::ForwardModel) over MLX's quantized matmul, fast RMSNorm, RoPE
//! and attention kernels, reusing the shared generation core unchanged.
//!
//! Not implemented yet: it cannot be compiled or tested on the Linux machines this crate is
//! developed on, so it reports itself unavailable rather than shipping unverified tensor code. The
//! `cpu` engine runs the same model directories meanwhile.

use std::sync::Arc;

use crate::error::LoadError;
use crate::job::Engine;
use crate::load::EngineSpec;

pub fn load(_spec: &EngineSpec) -> Result<Arc<dyn Engine>, LoadError> {
    Err(LoadError::EngineUnavailable {
        engine: "mlx".into(),
        reason: "the MLX backend is not built yet; use the cpu engine (same model directories)".into(),
    })
}
