//! The `hearth` commands that need a real model: choosing and loading an engine, `generate`,
//! `bench` and `local`; how `serve` and `local` judge their first start; `earnings export`,
//! `doctor` and `models`; and the running app those ask (`running_app`).

pub mod doctor;
pub mod earnings;
pub mod engine;
pub mod generate;
pub mod local;
pub mod models;
pub mod running_app;
pub mod startup;
