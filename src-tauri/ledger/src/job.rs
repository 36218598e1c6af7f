//! One served (or lost) job, as the ledger stores it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pricing::{estimate_provider_credits, RateCard};

/// How a job ended, from the provider's side.
///
/// Which outcomes earn an estimate (see [`JobOutcome::earns`]): the coordinator pays on the usage
/// the provider reports in `inference_response_end` for non-error statuses, and `error_*` statuses
/// earn nothing. So `complete` earns, and `cancelled` earns on the usage *so far* that its end frame
/// carries (a buyer disconnect or timeout still consumed compute the coordinator bills). Every other
/// status (`error_*`, and newer non-success statuses such as `provider_timeout`) earns 0 in the
/// estimate. `lost` — the session died before the end frame could be delivered, so the coordinator
/// dropped the request — earns 0: there is no retransmit in the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum JobOutcome {
    Complete,
    Cancelled,
    /// Any other end status, kept verbatim (`error_internal`, `error_queue_full`, `provider_timeout` …).
    Error(String),
    /// Cut by a disconnect before the end frame reached the coordinator.
    Lost,
}

impl JobOutcome {
    /// Maps the `status` of an `inference_response_end` frame.
    pub fn from_end_status(status: &str) -> Self {
        match status {
            "complete" => JobOutcome::Complete,
            "cancelled" => JobOutcome::Cancelled,
            other => JobOutcome::Error(other.to_string()),
        }
    }

    /// Whether the coordinator pays for this outcome (so the estimate is non-zero).
    pub fn earns(&self) -> bool {
        matches!(self, JobOutcome::Complete | JobOutcome::Cancelled)
    }

    /// The stored text form: `complete`, `cancelled`, `error:<status>`, `lost`.
    pub fn as_db_string(&self) -> String {
        self.to_string()
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "complete" => Some(JobOutcome::Complete),
            "cancelled" => Some(JobOutcome::Cancelled),
            "lost" => Some(JobOutcome::Lost),
            _ => s.strip_prefix("error:").filter(|r| !r.is_empty()).map(|r| JobOutcome::Error(r.to_string())),
        }
    }
}

impl fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobOutcome::Complete => f.write_str("complete"),
            JobOutcome::Cancelled => f.write_str("cancelled"),
            JobOutcome::Error(s) => write!(f, "error:{s}"),
            JobOutcome::Lost => f.write_str("lost"),
        }
    }
}

impl From<JobOutcome> for String {
    fn from(o: JobOutcome) -> String {
        o.to_string()
    }
}

impl TryFrom<String> for JobOutcome {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        JobOutcome::parse(&s).ok_or_else(|| format!("unknown job outcome {s:?}"))
    }
}

/// A job as recorded at the moment its end frame was written (or it was known lost).
///
/// `estimated_credits` and `rate_card_version` travel together: the figure and its source. Fill
/// them with [`JobRecord::price`] rather than by hand so non-earning outcomes are priced at 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The coordinator's `request_id`; the ledger's idempotency key.
    pub request_id: String,
    /// The session's `assigned_id` from `hello_ack` (which connection served it).
    pub assigned_id: String,
    pub model_id: String,
    pub prompt_tokens: u64,
    /// Of `prompt_tokens`, how many were prompt-cache hits (0 when unknown).
    pub cached_prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Unix milliseconds; the time the end frame was written (or the loss was noticed). Aggregates
    /// bucket by this.
    pub ended_at: i64,
    pub prefill_ms: u64,
    pub decode_ms: u64,
    pub outcome: JobOutcome,
    /// Free text: the cancel reason, the error message, the close reason that lost it …
    pub reason: Option<String>,
    /// Provider credits *estimated* from the rate card; 0 for outcomes that do not earn.
    pub estimated_credits: i64,
    /// The `version` of the rate card the estimate came from.
    pub rate_card_version: String,
}

impl JobRecord {
    /// Sets `estimated_credits` and `rate_card_version` from `card`, honouring
    /// [`JobOutcome::earns`].
    pub fn price(&mut self, card: &RateCard) {
        self.estimated_credits = if self.outcome.earns() {
            estimate_provider_credits(
                card,
                &self.model_id,
                self.prompt_tokens,
                self.cached_prompt_tokens,
                self.completion_tokens,
            )
        } else {
            0
        };
        self.rate_card_version = card.version.clone();
    }

    /// Builder-style [`JobRecord::price`].
    pub fn priced(mut self, card: &RateCard) -> Self {
        self.price(card);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(outcome: JobOutcome) -> JobRecord {
        JobRecord {
            request_id: "req-1".into(),
            assigned_id: "sess".into(),
            model_id: "mlx-community/Llama-3.2-3B-Instruct-4bit".into(),
            prompt_tokens: 41,
            cached_prompt_tokens: 0,
            completion_tokens: 1,
            started_at: 1,
            ended_at: 2,
            prefill_ms: 0,
            decode_ms: 0,
            outcome,
            reason: None,
            estimated_credits: 999,
            rate_card_version: String::new(),
        }
    }

    #[test]
    fn outcome_round_trips_through_text() {
        for o in [
            JobOutcome::Complete,
            JobOutcome::Cancelled,
            JobOutcome::Lost,
            JobOutcome::Error("error_internal".into()),
            JobOutcome::Error("provider_timeout".into()),
        ] {
            assert_eq!(JobOutcome::parse(&o.as_db_string()), Some(o.clone()));
        }
        assert_eq!(JobOutcome::from_end_status("error_queue_full").to_string(), "error:error_queue_full");
        assert_eq!(JobOutcome::parse("error:"), None);
        assert_eq!(JobOutcome::parse("done"), None);
    }

    #[test]
    fn only_complete_and_cancelled_earn() {
        let card = RateCard::builtin();
        assert_eq!(job(JobOutcome::Complete).priced(&card).estimated_credits, 20);
        assert_eq!(job(JobOutcome::Cancelled).priced(&card).estimated_credits, 20);
        assert_eq!(job(JobOutcome::Lost).priced(&card).estimated_credits, 0);
        let e = job(JobOutcome::Error("error_internal".into())).priced(&card);
        assert_eq!(e.estimated_credits, 0);
        assert_eq!(e.rate_card_version, "builtin-default");
    }
}
