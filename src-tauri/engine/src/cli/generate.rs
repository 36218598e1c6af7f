//! `hearth generate` and `hearth bench`: one model, no network.

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use hearth_inference::{CancelToken, GenerationEvent, GenerationRequest, Prompt, SamplingParams, StopReason};
use hearth_protocol::openai::ChatMessage;

use crate::EngineArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Raw prompt text, tokenized as is.
    #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
    prompt: Option<String>,
    /// A user message, rendered with the model's chat template.
    #[arg(long)]
    chat: Option<String>,
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long)]
    top_k: Option<u32>,
    #[arg(long)]
    seed: Option<u64>,
    /// Stop before this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Print one JSON object: prompt_ids, token_ids, text, finish_reason and timings.
    #[arg(long)]
    json: bool,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let loaded_at = Instant::now();
    let engine = args.engine.load()?;
    let load_time = loaded_at.elapsed();
    let prompt = match (args.prompt, args.chat) {
        (Some(p), _) => Prompt::Raw(p),
        (None, Some(c)) => Prompt::Chat(vec![ChatMessage { role: "user".into(), content: c }]),
        (None, None) => bail!("give --prompt TEXT or --chat TEXT"),
    };
    let request = GenerationRequest {
        prompt,
        max_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: args.top_k,
            seed: args.seed,
        },
        stop: args.stop,
    };
    let mut text = String::new();
    let json = args.json;
    let outcome = engine.generate(&request, &CancelToken::new(), &mut |event| {
        if let GenerationEvent::Delta(delta) = event {
            if !json {
                print!("{delta}");
                let _ = std::io::stdout().flush();
            }
            text.push_str(&delta);
        }
    })?;
    let finish_reason = match outcome.stop_reason {
        StopReason::Stop => "stop",
        StopReason::Length => "length",
        StopReason::Cancelled => "cancelled",
    };
    let prefill_s = outcome.prefill_time.as_secs_f64();
    let decode_s = outcome.decode_time.as_secs_f64();
    if json {
        let report = serde_json::json!({
            "model_id": engine.descriptor().model_id,
            "engine": engine.descriptor().engine,
            "prompt_ids": outcome.prompt_ids,
            "token_ids": outcome.token_ids,
            "text": text,
            "finish_reason": finish_reason,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "load_ms": load_time.as_secs_f64() * 1000.0,
            "prefill_ms": prefill_s * 1000.0,
            "decode_ms": decode_s * 1000.0,
            "prompt_tps": outcome.prompt_tokens as f64 / prefill_s.max(1e-9),
            "generation_tps": outcome.completion_tokens as f64 / decode_s.max(1e-9),
        });
        println!("{report}");
    } else {
        println!();
        eprintln!(
            "[{} prompt tokens in {:.0} ms, {} generated in {:.0} ms ({:.1} tok/s), finish: {finish_reason}]",
            outcome.prompt_tokens,
            prefill_s * 1000.0,
            outcome.completion_tokens,
            decode_s * 1000.0,
            outcome.completion_tokens as f64 / decode_s.max(1e-9)
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens to generate per run.
    #[arg(long, default_value_t = 64)]
    gen_tokens: u32,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long)]
    json: bool,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let engine = args.engine.load()?;
    let r = hearth_inference::bench_model(engine.as_ref(), args.prompt_tokens, args.gen_tokens, args.runs)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model_id": engine.descriptor().model_id,
                "engine": engine.descriptor().engine,
                "prompt_tokens": r.prompt_tokens,
                "generated_tokens": r.generated_tokens,
                "runs": r.runs,
                "prompt_tps": r.prompt_tps,
                "generation_tps": r.generation_tps,
                "peak_rss_bytes": r.peak_rss_bytes,
            })
        );
    } else {
        println!(
            "{} ({}): prompt {:.1} tok/s, generation {:.1} tok/s (median of {} runs, {} prompt tokens), peak RSS {}",
            engine.descriptor().model_id,
            engine.descriptor().engine,
            r.prompt_tps,
            r.generation_tps,
            r.runs,
            r.prompt_tokens,
            r.peak_rss_bytes.map(|b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64)).unwrap_or_else(|| "?".into())
        );
    }
    Ok(())
}
