//! A benchmark the CLI can run against any engine: prompt (prefill) and generation speed as the
//! median of several runs, plus the process's peak memory where the OS reports it.

use crate::job::*;

#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// Prompt tokens per run, as the engine counted them.
    pub prompt_tokens: u64,
    /// Generated tokens in the median-speed run (EOS may end a run early).
    pub generated_tokens: u64,
    pub runs: usize,
    /// Median prefill speed, tokens/s.
    pub prompt_tps: f64,
    /// Median decode speed, tokens/s (the first token is prefill's, so it is not counted).
    pub generation_tps: f64,
    /// Peak resident memory of this process, bytes (Linux: VmHWM).
    pub peak_rss_bytes: Option<u64>,
}

/// Runs `runs` greedy raw-prompt jobs of about `prompt_tokens` prompt tokens and `gen_tokens`
/// generated tokens each, one at a time.
pub fn bench_model(
    engine: &dyn Engine,
    prompt_tokens: usize,
    gen_tokens: u32,
    runs: usize,
) -> Result<BenchResult, EngineError> {
    bench_parallel(engine, 1, prompt_tokens, gen_tokens, runs)
}

/// `jobs` greedy jobs of the same shape at once, each on its own thread: the aggregate decode
/// speed (every job's tokens after its first — the first is prefill's — over the longest decode)
/// and the aggregate prefill (every prompt over the slowest prefill), the median over `runs`.
pub fn bench_parallel(
    engine: &dyn Engine,
    jobs: usize,
    prompt_tokens: usize,
    gen_tokens: u32,
    runs: usize,
) -> Result<BenchResult, EngineError> {
    let request = raw_request(prompt_tokens, gen_tokens);
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let start = std::sync::Barrier::new(jobs.max(1));
        let outs: Vec<Result<GenerationOutcome, EngineError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..jobs.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        engine.generate(&request, &CancelToken::new(), &mut |_| {})
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a bench job panicked")).collect()
        });
        let outs = outs.into_iter().collect::<Result<Vec<_>, _>>()?;
        let longest = outs.iter().map(|o| o.decode_time.as_secs_f64()).fold(1e-9, f64::max);
        let tokens: u64 = outs.iter().map(|o| o.completion_tokens.saturating_sub(1)).sum();
        decode.push(tokens as f64 / longest);
        let slowest = outs.iter().map(|o| o.prefill_time.as_secs_f64()).fold(1e-9, f64::max);
        prefill.push(outs.iter().map(|o| o.prompt_tokens as f64).sum::<f64>() / slowest);
        last = outs.into_iter().next();
    }
    let last = last.expect("at least one run");
    Ok(BenchResult {
        prompt_tokens: last.prompt_tokens,
        generated_tokens: last.completion_tokens,
        runs: runs.max(1),
        prompt_tps: median(&mut prefill),
        generation_tps: median(&mut decode),
        peak_rss_bytes: peak_rss(),
    })
}

fn raw_request(prompt_tokens: usize, gen_tokens: u32) -> GenerationRequest {
    let words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"];
    let prompt: Vec<&str> = words.iter().cycle().take(prompt_tokens.max(1)).copied().collect();
    GenerationRequest {
        prompt: Prompt::Raw(prompt.join(" ")),
        max_tokens: gen_tokens,
        sampling: SamplingParams::default(),
        stop: vec![],
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Peak resident set size, from `/proc/self/status` (None elsewhere).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::ScriptedEngine;

    #[test]
    fn bench_scripted() {
        let r = bench_model(&ScriptedEngine::new("m"), 16, 8, 3).unwrap();
        assert_eq!(r.runs, 3);
        assert_eq!(r.generated_tokens, 8);
        assert!(r.generation_tps > 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        let r = bench_parallel(&ScriptedEngine::new("m"), 3, 16, 8, 2).unwrap();
        assert_eq!((r.runs, r.generated_tokens), (2, 8));
        assert!(r.generation_tps > 0.0);
    }
}
