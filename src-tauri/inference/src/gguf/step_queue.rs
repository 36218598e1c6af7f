//! Which waiting forward passes go into the next llama.cpp decode: the continuous-batching policy,
//! kept apart from llama.cpp so it can be tested with plain values.
//!
//! Every open job submits one forward pass at a time and waits for its logits. The decode thread
//! collects submissions until every open job has one waiting (or a short wait runs out, so a job
//! that is slow between steps, say a buyer's stream that is not being read, only misses a step
//! rather than holding the others), then packs them first come, first served up to the batch's
//! token capacity. A job that starts joins at the next step; one that ends leaves at once, since it
//! no longer submits. A submission that does not fit waits at the front of the queue, so a long
//! prefill chunk neither starves nor is starved by the decoders.

use std::collections::VecDeque;
use std::time::Duration;

/// How long the decode thread waits for the open jobs that have not yet submitted their next
/// step. Between steps a job samples, detokenizes and hands text on, well under this; a
/// decode step of the smallest model takes longer (about 15 ms on two cores).
pub const GATHER_WAIT: Duration = Duration::from_millis(4);

/// Something with a token count: a forward pass waiting its turn.
pub trait Tokens {
    fn tokens(&self) -> usize;
}

/// Forward passes waiting for a decode, oldest first.
#[derive(Debug)]
pub struct StepQueue<T> {
    waiting: VecDeque<T>,
    /// The most tokens one decode takes.
    capacity: usize,
}

impl<T: Tokens> StepQueue<T> {
    pub fn new(capacity: usize) -> Self {
        Self { waiting: VecDeque::new(), capacity: capacity.max(1) }
    }

    pub fn push(&mut self, step: T) {
        self.waiting.push_back(step);
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether to decode now rather than wait for more: every open job has submitted, or the
    /// waiting steps already fill a decode.
    pub fn ready(&self, open_jobs: usize) -> bool {
        self.waiting.len() >= open_jobs
            || self.waiting.iter().map(Tokens::tokens).sum::<usize>() >= self.capacity
    }

    /// The steps for the next decode: first come, first served, while they fit. The first always
    /// goes (a step larger than the capacity is the caller's error, reported by llama.cpp).
    pub fn take_batch(&mut self) -> Vec<T> {
        let mut batch = Vec::new();
        let mut used = 0;
        while let Some(next) = self.waiting.front() {
            let n = next.tokens();
            if !batch.is_empty() && used + n > self.capacity {
                break;
            }
            used += n;
            batch.extend(self.waiting.pop_front());
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Step(&'static str, usize);

    impl Tokens for Step {
        fn tokens(&self) -> usize {
            self.1
        }
    }

    #[test]
    fn decoders_share_a_step_and_a_prefill_chunk_waits_its_turn_at_the_front() {
        let mut q = StepQueue::new(515);
        q.push(Step("a", 1));
        assert!(!q.ready(3), "two open jobs have not submitted");
        q.push(Step("b", 1));
        q.push(Step("prefill", 512));
        assert!(q.ready(3));
        q.push(Step("c", 1));
        q.push(Step("d", 1));
        // a, b and the 512-token chunk fill 514 of 515; c fits, d does not.
        assert_eq!(q.take_batch(), [Step("a", 1), Step("b", 1), Step("prefill", 512), Step("c", 1)]);
        assert_eq!(q.take_batch(), [Step("d", 1)]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_decode_is_ready_before_every_job_submits_and_an_oversized_step_still_goes() {
        let mut q = StepQueue::new(8);
        q.push(Step("big", 20));
        assert!(q.ready(4));
        q.push(Step("small", 1));
        assert_eq!(q.take_batch(), [Step("big", 20)]);
        assert_eq!(q.take_batch(), [Step("small", 1)]);
        assert!(q.take_batch().is_empty());
    }
}
