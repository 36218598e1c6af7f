//! Hearth's test kit: everything the integration tests of the workspace share, in one dev-only crate.
//!
//! A test picks the pieces it needs by concern:
//!
//! | module | what it gives a test |
//! | --- | --- |
//! | [`poll`] | [`poll_until`](poll::poll_until): wait for a condition, or fail saying what and the last value seen |
//! | [`process`] | [`Proc`](process::Proc): a child process with captured logs, killed when dropped; free ports, memory |
//! | [`hearth`] | the `hearth` binary as users run it: `hearth pool` and `hearth serve` processes |
//! | [`control`] | a running provider's control API, found through its `control.json` |
//! | [`chat`] | the one OpenAI chat-completions body builder |
//! | [`sse`] | reading server-sent events (buyer streams, the control API's event stream) |
//! | [`buyer`] | what a buyer got back from a streamed or plain request, parsed |
//! | [`fake_coordinator`] | a scriptable coordinator a real provider connects to |
//! | [`fake_provider`] | a scriptable provider that connects to a real pool |
//! | [`pool`] | the in-process local pool with test-friendly timings |
//! | [`certs`] | self-signed certificates for `wss://` and `https://` |
//! | [`ledger_fixtures`] | job records for ledger tests |
//! | [`shared_fixtures`] | where the shared model fixtures live; the Pythons that generate the others |
//! | [`files`] | writing files the way editors do |
//!
//! Why a crate and not a `tests/common` module: a module included with `mod common;` is compiled
//! into each test binary separately and can only be shared across crates by `#[path]` tricks; a
//! crate is built once and every test imports the same names. The kit depends on the protocol, the
//! pool and the ledger, never on hearth-engine or hearth-app (their unit tests would then build the
//! engine twice), so engine-specific helpers take what they need as arguments, for instance the
//! path of the `hearth` binary in [`hearth::Hearth`].
//!
//! Conventions that hold across the kit: waits take a timeout and panic when it passes (never
//! return quietly); processes are killed when their handle drops, so a failing test leaves nothing
//! running; everything listens on 127.0.0.1 only.

pub mod buyer;
pub mod certs;
pub mod chat;
pub mod control;
pub mod fake_coordinator;
pub mod fake_provider;
pub mod files;
pub mod hearth;
pub mod ledger_fixtures;
pub mod poll;
pub mod pool;
pub mod process;
pub mod shared_fixtures;
pub mod sse;
