//! Hearth's earnings ledger.
//!
//! The coordinator acknowledges neither heartbeats nor usage, and a job cut by a disconnect is
//! dropped on its side, unpaid (PROTOCOL.md, "Requests" and "Earnings"). So what a provider *earned*
//! cannot be learned from the WebSocket at all. This crate keeps two honest, separately labelled
//! figures instead of one invented one:
//!
//! * **estimated** — every job is recorded locally at the moment its end frame is written (or when
//!   it is known to be lost), with its outcome and an estimate priced from the coordinator's rate
//!   card ([`pricing`]). The rate-card version used is stored beside each figure as its source.
//! * **credited** — what the coordinator's `/providers/{id}/earnings` endpoint says, polled by the
//!   caller and stored as [`CreditedSnapshot`]s over time.
//!
//! The UI shows both and the gap ([`EarningsSummary`]). Nothing here re-sends usage: the protocol has
//! no such mechanism, and a lost job is shown as lost, never counted as earned.
//!
//! Credits are shown as dollars too ([`money`], at the card's `usd_per_million_credits`), and the
//! jobs can be written out as CSV ([`export`]), by one writer for every way out.
//!
//! # Threading
//! The API is blocking (SQLite on the local disk). [`Ledger`] is `Send + Sync` (one connection behind
//! a mutex), so share it as `Arc<Ledger>` and call it from `tokio::task::spawn_blocking`, or from a
//! dedicated ledger thread fed by a channel. Never call it on the task that reads the WebSocket: a
//! disk write must not delay reading frames.

pub mod error;
pub mod export;
pub mod job;
pub mod ledger;
pub mod money;
pub mod pricing;
pub mod schema;
pub mod summary;

pub use error::LedgerError;
pub use export::{jobs_csv, write_jobs_csv, ExportError, CSV_COLUMNS, CSV_CONTENT_TYPE};
pub use job::{JobOutcome, JobRecord};
pub use ledger::Ledger;
pub use pricing::{estimate_provider_credits, RateCard, RateRow, BUILTIN_RATE_CARD_VERSION};
pub use summary::{CreditedSnapshot, CreditedView, EarningsSummary, HourBucket, ModelTotals, PeriodTotals};
