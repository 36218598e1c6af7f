//! Prompt token ids (raw and chat-templated) match the mlx_lm oracles exactly.

use hearth_inference::job::ChatMessage;
use hearth_inference::model_dir::ModelDir;
use hearth_inference::text::TextCodec;
use hearth_inference::Prompt;
use hearth_testkit::shared_fixtures;

fn prompt_of(case: &serde_json::Value) -> Prompt {
    match case["kind"].as_str().unwrap() {
        "raw" => Prompt::Raw(case["text"].as_str().unwrap().to_string()),
        _ => Prompt::Chat(serde_json::from_value::<Vec<ChatMessage>>(case["messages"].clone()).unwrap()),
    }
}

fn check(name: &str) {
    let dir = ModelDir::open(&shared_fixtures::fixture_model(name)).unwrap();
    let codec = TextCodec::from_model_dir(&dir).unwrap();
    let oracle = shared_fixtures::oracle(name);
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

/// The lean tokenizer.json parser (text::parse_tokenizer) builds the same tokenizer as
/// tokenizers' own deserializer: the Gemma 3 fixture (262k-token BPE with 6k added tokens) and the
/// tiny fixtures' tokenizers.
#[test]
fn lean_tokenizer_parse_matches_tokenizers() {
    let files = [
        shared_fixtures::shared_dir().join("fixtures/gemma3-270m/tokenizer.json.xz"),
        shared_fixtures::fixture_model("tiny-llama-4bit").join("tokenizer.json"),
        shared_fixtures::fixture_model("tiny-qwen2-4bit").join("tokenizer.json"),
    ];
    let texts = [
        "Hello world! This is a test of the emergency broadcast system.",
        "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
        "  leading spaces, tabs\tand ünïcödé — 漢字 🦀 <bos> <unused3> 12345",
    ];
    for file in files {
        let json = hearth_inference::text::read_tokenizer_file(&file).unwrap();
        let ours =
            hearth_inference::text::lean_bpe_tokenizer(&json).expect("a BPE tokenizer the lean parser reads");
        let theirs = tokenizers::Tokenizer::from_bytes(&json).unwrap();
        assert_eq!(ours.get_vocab_size(true), theirs.get_vocab_size(true), "{file:?}");
        assert_eq!(ours.get_added_tokens_decoder(), theirs.get_added_tokens_decoder(), "{file:?}");
        for text in texts {
            for special in [false, true] {
                let a = ours.encode(text, special).unwrap();
                let b = theirs.encode(text, special).unwrap();
                assert_eq!(a.get_ids(), b.get_ids(), "{file:?}: {text:?}");
                assert_eq!(
                    ours.decode(a.get_ids(), false).unwrap(),
                    theirs.decode(b.get_ids(), false).unwrap()
                );
            }
        }
    }
}
