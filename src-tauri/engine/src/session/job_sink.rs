//! Where a job's start and end go besides the status snapshot: the [`JobSink`] trait the relay
//! calls and the app's recorder implements (the earnings ledger), with what a start carries.
//! It sits at the bottom of the session so the relay, the session's shared state and the app can
//! all name it without importing one another.

use crate::status::FinishedJob;

/// Where finished jobs go besides the status snapshot: the app's earnings ledger.
///
/// Both calls come from the job's relay task, right after the event; an implementation must return
/// at once (hand the work to its own thread) because that task also feeds the session's writer.
pub trait JobSink: Send + Sync {
    /// An admitted job is about to run (so a crash mid-job can later be recorded as lost).
    fn job_started(&self, job: &StartedJob);
    /// A job ended: its end frame was handed to the writer, or the connection was already gone.
    fn job_finished(&self, job: &FinishedJob);
}

/// What is known about a job when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedJob {
    pub request_id: String,
    pub assigned_id: Option<String>,
    pub model: String,
    pub started_ms: u64,
}
