//! Standard chat templates for GGUF files that carry none (`tokenizer.chat_template` absent, as in
//! base models such as Gemma 3 270M): the conversation format each architecture's instruction-
//! tuned models use, written here as Jinja for the shared renderer.
//!
//! An entry may also require a token in the vocabulary: the `llama` architecture covers both
//! Llama 3 (`<|start_header_id|>` turns) and Llama 2 / Mistral (`[INST]` turns), and the
//! vocabulary tells them apart. The first matching entry wins.

/// One architecture's standard template.
#[derive(Debug, Clone, Copy)]
pub struct StandardTemplate {
    /// GGUF architectures (`general.architecture`) it serves.
    pub architectures: &'static [&'static str],
    /// A token the vocabulary must have for this entry to apply.
    pub needs_token: Option<&'static str>,
    pub source: &'static str,
}

/// Gemma (1, 2, 3): `<start_of_turn>user … <end_of_turn>` turns, the assistant as `model`, a
/// system message folded into the first user turn; contents trimmed, as Gemma's own template does.
const GEMMA: &str = "{{ bos_token }}\
{%- if messages[0]['role'] == 'system' -%}\
{%- set prefix = messages[0]['content'] | trim + '\n\n' -%}{%- set turns = messages[1:] -%}\
{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}\
{%- for m in turns -%}\
{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\n' }}\
{{- (prefix if loop.first else '') + m['content'] | trim + '<end_of_turn>\n' }}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// Llama 3: header-delimited turns ending in `<|eot_id|>`, contents trimmed.
const LLAMA3: &str = "{{ bos_token }}\
{%- for m in messages -%}\
{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif -%}";

/// Llama 2: `[INST] … [/INST]` turns, a system message in `<<SYS>>` inside the first one, each
/// exchange closed by EOS and the next opened by BOS.
const LLAMA2: &str = "\
{%- if messages[0]['role'] == 'system' -%}\
{%- set prefix = '<<SYS>>\n' + messages[0]['content'] | trim + '\n<</SYS>>\n\n' -%}{%- set turns = messages[1:] -%}\
{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}\
{%- for m in turns -%}\
{%- if m['role'] == 'user' -%}\
{{ bos_token + '[INST] ' + (prefix if loop.first else '') + m['content'] | trim + ' [/INST]' }}\
{%- else -%}{{ ' ' + m['content'] | trim + ' ' + eos_token }}{%- endif -%}\
{%- endfor -%}";

/// Mistral: `[INST] … [/INST]` turns after one BOS, answers closed by EOS, a system message
/// placed before the first user message.
const MISTRAL: &str = "{{ bos_token }}\
{%- if messages[0]['role'] == 'system' -%}\
{%- set prefix = messages[0]['content'] | trim + '\n\n' -%}{%- set turns = messages[1:] -%}\
{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}\
{%- for m in turns -%}\
{%- if m['role'] == 'user' -%}{{ '[INST] ' + (prefix if loop.first else '') + m['content'] | trim + ' [/INST]' }}\
{%- else -%}{{ ' ' + m['content'] | trim + eos_token }}{%- endif -%}\
{%- endfor -%}";

/// ChatML (Qwen 2): `<|im_start|>role … <|im_end|>` turns; Qwen 2 adds its default system
/// message when the conversation has none.
const CHATML_QWEN2: &str = "\
{%- if messages[0]['role'] != 'system' -%}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{%- endif -%}\
{%- for m in messages -%}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}";

/// ChatML without a default system message (Qwen 3, Phi-3's successors that use it, …).
const CHATML: &str = "\
{%- for m in messages -%}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}";

/// Phi-3: `<|role|>` turns ending in `<|end|>`.
const PHI3: &str = "\
{%- for m in messages -%}{{ '<|' + m['role'] + '|>\n' + m['content'] + '<|end|>\n' }}{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}";

pub const STANDARD_TEMPLATES: &[StandardTemplate] = &[
    StandardTemplate { architectures: &["gemma", "gemma2", "gemma3"], needs_token: None, source: GEMMA },
    StandardTemplate { architectures: &["llama"], needs_token: Some("<|start_header_id|>"), source: LLAMA3 },
    StandardTemplate { architectures: &["llama"], needs_token: Some("[INST]"), source: MISTRAL },
    StandardTemplate { architectures: &["llama"], needs_token: None, source: LLAMA2 },
    StandardTemplate { architectures: &["mistral", "mistral3"], needs_token: None, source: MISTRAL },
    StandardTemplate { architectures: &["qwen2"], needs_token: None, source: CHATML_QWEN2 },
    StandardTemplate { architectures: &["qwen2moe", "qwen3", "qwen3moe"], needs_token: None, source: CHATML },
    StandardTemplate { architectures: &["phi3"], needs_token: None, source: PHI3 },
];

/// The standard template for `architecture`, given a test for whether the vocabulary has a token.
pub fn standard_template(architecture: &str, has_token: impl Fn(&str) -> bool) -> Option<&'static str> {
    STANDARD_TEMPLATES
        .iter()
        .find(|t| t.architectures.contains(&architecture) && t.needs_token.is_none_or(&has_token))
        .map(|t| t.source)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::job::ChatMessage;
    use crate::template::ChatTemplate;

    fn render(source: &str, bos: &str, eos: &str, messages: &[(&str, &str)]) -> String {
        let specials: BTreeMap<String, String> =
            [("bos_token".to_string(), bos.to_string()), ("eos_token".to_string(), eos.to_string())].into();
        let messages: Vec<ChatMessage> = messages
            .iter()
            .map(|(r, c)| ChatMessage { role: r.to_string(), content: c.to_string() })
            .collect();
        ChatTemplate::new(source, specials).unwrap().render(&messages).unwrap()
    }

    const CONVERSATION: &[(&str, &str)] = &[("system", "Be brief."), ("user", " Hi there ")];

    fn entry(arch: &str, has: &[&str]) -> &'static str {
        standard_template(arch, |t| has.contains(&t)).unwrap()
    }

    #[test]
    fn gemma() {
        let out = render(entry("gemma3", &[]), "<bos>", "<eos>", CONVERSATION);
        assert_eq!(
            out,
            "<bos><start_of_turn>user\nBe brief.\n\nHi there<end_of_turn>\n<start_of_turn>model\n"
        );
        // Without a system message, and with an earlier answer: the assistant's turn is `model`.
        let out = render(
            entry("gemma2", &[]),
            "<bos>",
            "<eos>",
            &[("user", "a"), ("assistant", "b"), ("user", "c")],
        );
        assert_eq!(
            out,
            "<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n\
             <start_of_turn>user\nc<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn llama3() {
        let out = render(
            entry("llama", &["<|start_header_id|>", "[INST]"]),
            "<|begin_of_text|>",
            "<|eot_id|>",
            CONVERSATION,
        );
        assert_eq!(
            out,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn llama2() {
        let out = render(entry("llama", &[]), "<s>", "</s>", CONVERSATION);
        assert_eq!(out, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST]");
        let out =
            render(entry("llama", &[]), "<s>", "</s>", &[("user", "a"), ("assistant", "b"), ("user", "c")]);
        assert_eq!(out, "<s>[INST] a [/INST] b </s><s>[INST] c [/INST]");
    }

    #[test]
    fn mistral() {
        // A llama-architecture GGUF with Mistral's vocabulary, and the mistral architecture.
        for arch in [entry("llama", &["[INST]"]), entry("mistral", &[])] {
            let out = render(arch, "<s>", "</s>", CONVERSATION);
            assert_eq!(out, "<s>[INST] Be brief.\n\nHi there [/INST]");
        }
        let out = render(
            entry("mistral3", &[]),
            "<s>",
            "</s>",
            &[("user", "a"), ("assistant", "b"), ("user", "c")],
        );
        assert_eq!(out, "<s>[INST] a [/INST] b</s>[INST] c [/INST]");
    }

    #[test]
    fn qwen2() {
        let out = render(entry("qwen2", &[]), "", "<|endoftext|>", CONVERSATION);
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi there <|im_end|>\n<|im_start|>assistant\n"
        );
        let out = render(entry("qwen2", &[]), "", "<|endoftext|>", &[("user", "a")]);
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn chatml() {
        let out = render(entry("qwen3", &[]), "", "<|im_end|>", CONVERSATION);
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi there <|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn phi3() {
        let out = render(entry("phi3", &[]), "<s>", "<|endoftext|>", CONVERSATION);
        assert_eq!(out, "<|system|>\nBe brief.<|end|>\n<|user|>\n Hi there <|end|>\n<|assistant|>\n");
    }

    #[test]
    fn every_entry_compiles_and_unknown_architectures_have_none() {
        for t in STANDARD_TEMPLATES {
            render(t.source, "<s>", "</s>", CONVERSATION);
        }
        assert!(standard_template("bert", |_| true).is_none());
    }
}
