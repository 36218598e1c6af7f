//! Job records for ledger tests: one builder, priced from the built-in rate card the way the
//! engine prices what it records.

use hearth_ledger::{JobOutcome, JobRecord, RateCard};

/// The model every fixture job ran.
pub const JOB_MODEL: &str = "mlx-community/Llama-3.2-3B-Instruct-4bit";

/// A job of session `sess-1` that ended at `ended_at` (Unix ms, after 500 ms of work) with
/// `outcome`, priced from [`RateCard::builtin`]: with it, 41 prompt + 1 completion tokens earn
/// 20 credits, and outcomes that do not earn are priced 0. Change fields on the result for anything
/// else (a `reason`, cached tokens).
pub fn job(request_id: &str, ended_at: i64, outcome: JobOutcome, prompt: u64, completion: u64) -> JobRecord {
    JobRecord {
        request_id: request_id.into(),
        assigned_id: "sess-1".into(),
        model_id: JOB_MODEL.into(),
        prompt_tokens: prompt,
        cached_prompt_tokens: 0,
        completion_tokens: completion,
        started_at: ended_at - 500,
        ended_at,
        prefill_ms: 40,
        decode_ms: 460,
        outcome,
        reason: None,
        estimated_credits: 0,
        rate_card_version: String::new(),
    }
    .priced(&RateCard::builtin())
}
