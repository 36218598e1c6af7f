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
    #[arg(long, conflicts_with_all = ["chat", "messages"], required_unless_present_any = ["chat", "messages"])]
    prompt: Option<String>,
    /// A user message, rendered with the model's chat template.
    #[arg(long, conflicts_with = "messages")]
    chat: Option<String>,
    /// A whole conversation, rendered with the model's chat template: a JSON array of
    /// `{"role": …, "content": …}` objects, system message included, e.g.
    /// `[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]`.
    #[arg(long, value_name = "JSON", value_parser = parse_messages)]
    messages: Option<Conversation>,
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
    let request = GenerationRequest {
        prompt: prompt(args.prompt, args.chat, args.messages)?,
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

/// The conversation `--messages` gives (a newtype, so clap takes the array as one value).
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation(Vec<ChatMessage>);

/// Parses `--messages`; the error says what shape is expected (clap adds the flag's name).
fn parse_messages(json: &str) -> Result<Conversation, String> {
    const SHAPE: &str = r#"expected a JSON array of {"role": "...", "content": "..."} objects, e.g. [{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]"#;
    let messages: Vec<ChatMessage> = serde_json::from_str(json).map_err(|e| format!("{SHAPE}: {e}"))?;
    if messages.is_empty() {
        return Err(format!("the conversation is empty; {SHAPE}"));
    }
    Ok(Conversation(messages))
}

/// The prompt the flags give: raw text, one user message, or a whole conversation.
fn prompt(raw: Option<String>, chat: Option<String>, messages: Option<Conversation>) -> Result<Prompt> {
    Ok(match (raw, chat, messages) {
        (Some(p), None, None) => Prompt::Raw(p),
        (None, Some(c), None) => Prompt::Chat(vec![ChatMessage { role: "user".into(), content: c }]),
        (None, None, Some(Conversation(m))) => Prompt::Chat(m),
        _ => bail!("give exactly one of --prompt TEXT, --chat TEXT or --messages JSON"),
    })
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
    /// Jobs at once (as many slots): the generation speed is then their aggregate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    parallel: u32,
    #[arg(long)]
    json: bool,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let engine = args.engine.load_with_slots(args.parallel)?;
    let r = match args.parallel {
        1 => hearth_inference::bench_model(engine.as_ref(), args.prompt_tokens, args.gen_tokens, args.runs)?,
        n => hearth_inference::bench_parallel(
            engine.as_ref(),
            n as usize,
            args.prompt_tokens,
            args.gen_tokens,
            args.runs,
        )?,
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model_id": engine.descriptor().model_id,
                "engine": engine.descriptor().engine,
                "prompt_tokens": r.prompt_tokens,
                "generated_tokens": r.generated_tokens,
                "runs": r.runs,
                "parallel": args.parallel,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenerateArgs,
    }

    fn parse(flags: &[&str]) -> Result<GenerateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("generate").chain(flags.iter().copied())).map(|c| c.args)
    }

    fn message(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }

    #[test]
    fn messages_give_the_whole_conversation_system_message_included() {
        let json = r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},
            {"role":"assistant","content":"Hello."},{"role":"user","content":"Again"}]"#;
        let args = parse(&["--messages", json]).unwrap();
        let want = vec![
            message("system", "Be brief."),
            message("user", "Hi"),
            message("assistant", "Hello."),
            message("user", "Again"),
        ];
        assert_eq!(prompt(args.prompt, args.chat, args.messages).unwrap(), Prompt::Chat(want));
    }

    #[test]
    fn chat_and_prompt_still_work() {
        let args = parse(&["--chat", "Hi"]).unwrap();
        assert_eq!(
            prompt(args.prompt, args.chat, args.messages).unwrap(),
            Prompt::Chat(vec![message("user", "Hi")])
        );
        let args = parse(&["--prompt", "Once"]).unwrap();
        assert_eq!(prompt(args.prompt, args.chat, args.messages).unwrap(), Prompt::Raw("Once".into()));
    }

    #[test]
    fn bad_messages_name_the_flag_and_the_expected_shape() {
        for bad in [
            "{not json",
            r#"{"role":"user","content":"Hi"}"#,
            r#"[{"role":"user"}]"#,
            r#"[{"role":"user","content":["parts"]}]"#,
            "[]",
        ] {
            let err = parse(&["--messages", bad]).err().unwrap_or_else(|| panic!("{bad} was accepted"));
            let text = err.to_string();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}: {text}");
            assert!(text.contains("--messages"), "{bad}: {text}");
            assert!(
                text.contains(r#"JSON array of {"role": "...", "content": "..."} objects"#),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn exactly_one_prompt_flag() {
        let messages = r#"[{"role":"user","content":"Hi"}]"#;
        for flags in [
            &["--prompt", "x", "--messages", messages][..],
            &["--chat", "x", "--messages", messages],
            &["--prompt", "x", "--chat", "y"],
        ] {
            let err = parse(flags).err().unwrap_or_else(|| panic!("{flags:?} was accepted"));
            assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict, "{flags:?}: {err}");
        }
        let err = parse(&["--max-tokens", "4"]).err().expect("no prompt was accepted");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{err}");
    }
}
