//! The `hearth` commands that need a real model: choosing and loading an engine, `generate`,
//! `bench` and `local`.

pub mod engine;
pub mod generate;
pub mod local;
