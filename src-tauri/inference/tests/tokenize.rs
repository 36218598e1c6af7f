//! Prompt token ids (raw and chat-templated) match the mlx_lm oracles exactly.

mod common;

use hearth_inference::job::ChatMessage;
use hearth_inference::model_dir::ModelDir;
use hearth_inference::text::TextCodec;
use hearth_inference::Prompt;

fn prompt_of(case: &serde_json::Value) -> Prompt {
    match case["kind"].as_str().unwrap() {
        "raw" => Prompt::Raw(case["text"].as_str().unwrap().to_string()),
        _ => Prompt::Chat(serde_json::from_value::<Vec<ChatMessage>>(case["messages"].clone()).unwrap()),
    }
}

fn check(name: &str) {
    let dir = ModelDir::open(&common::fixture_model(name)).unwrap();
    let codec = TextCodec::from_model_dir(&dir).unwrap();
    let oracle = common::oracle(name);
    for case in oracle["cases"].as_array().unwrap() {
        let want: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        let got = codec.encode_prompt(&prompt_of(case)).unwrap();
        assert_eq!(got, want, "{name}: {case}");
    }
}

#[test]
fn llama_prompt_ids_match_oracle() {
    check("tiny-llama-4bit");
}

#[test]
fn qwen2_prompt_ids_match_oracle() {
    check("tiny-qwen2-4bit");
}
