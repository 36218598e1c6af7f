//! The `hearth` commands that need a real model: choosing and loading an engine, `generate`,
//! `bench` and `local`; and how `serve` and `local` judge their first start.

pub mod engine;
pub mod generate;
pub mod local;
pub mod startup;
