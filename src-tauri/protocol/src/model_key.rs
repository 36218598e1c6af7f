//! How the coordinator names models: the rate card's and the warm-up gate's *model key*, and which
//! names a request may use for the model a provider serves. Written once here so the provider's
//! routing, the local pool's rate card and the ledger's estimates cannot disagree.
//!
//! The key (PROTOCOL.md, "Earnings"): lower-cased, the namespace (`mlx-community/`, `openai/`, …)
//! dropped, and trailing quantisation or storage suffixes (`-4bit`, `-8bit`, `-mxfp4-q8`, `-bf16`,
//! `-q4_k_m`, …) removed: `mlx-community/Llama-3.2-3B-Instruct-4bit` → `llama-3.2-3b-instruct`.

/// The model key of `model`.
pub fn model_key(model: &str) -> String {
    let lower = model.trim().to_lowercase();
    let base = lower.rsplit('/').next().unwrap_or_default();
    let mut parts: Vec<&str> = base.split('-').collect();
    // Keep at least one segment so a name that *is* a suffix (odd, but possible) is not erased.
    while parts.len() > 1 && parts.last().is_some_and(|p| is_quant_suffix(p)) {
        parts.pop();
    }
    parts.join("-")
}

/// Whether a request naming `requested` is for the model served as `served`, as the production
/// coordinator routes: the same name in any letter case (it passes such a body through
/// untouched), or the served model's key (its warm-up gate may name a model so). Any other name,
/// a different quantisation of the same model included, is another model.
pub fn names_served_model(requested: &str, served: &str) -> bool {
    let requested = requested.trim();
    requested == served || requested.to_lowercase() == served.to_lowercase() || requested == model_key(served)
}

/// Whether one `-`-separated segment names a quantisation or storage format rather than a model.
fn is_quant_suffix(seg: &str) -> bool {
    const WORDS: &[&str] =
        &["bf16", "fp16", "f16", "fp32", "f32", "fp8", "int4", "int8", "dwq", "awq", "gptq", "gguf", "mlx"];
    if WORDS.contains(&seg) {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // 4bit, 8bit, 3bit …
    if seg.strip_suffix("bit").is_some_and(digits) {
        return true;
    }
    // mxfp4, nvfp4
    if ["mxfp", "nvfp"].iter().any(|p| seg.strip_prefix(p).is_some_and(digits)) {
        return true;
    }
    // q8, q4_k_m, q4_0, q5_k
    if let Some(rest) = seg.strip_prefix('q') {
        let mut it = rest.splitn(2, '_');
        if it.next().is_some_and(digits) {
            return it.next().is_none_or(|tail| tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_case_namespace_and_quantisation() {
        assert_eq!(model_key("mlx-community/Llama-3.2-3B-Instruct-4bit"), "llama-3.2-3b-instruct");
        assert_eq!(model_key("openai/gpt-oss-20b-MXFP4-Q8"), "gpt-oss-20b");
        assert_eq!(model_key("Qwen2.5-0.5B-Instruct-8bit"), "qwen2.5-0.5b-instruct");
        assert_eq!(model_key("gemma-3-270m-it-Q4_K_M"), "gemma-3-270m-it");
        assert_eq!(model_key("mistral-7b-instruct-v0.3-bf16"), "mistral-7b-instruct-v0.3");
        assert_eq!(model_key("tiny-llama-4bit"), "tiny-llama");
        assert_eq!(model_key("tiny-llama"), "tiny-llama");
        // Size and version segments are not quantisation.
        assert_eq!(model_key("phi-3-mini-4k"), "phi-3-mini-4k");
        assert_eq!(model_key("qwen3-30b-a3b"), "qwen3-30b-a3b");
        assert_eq!(model_key("4bit"), "4bit");
    }

    #[test]
    fn a_request_may_name_the_model_in_any_case_or_by_its_key() {
        let served = "mlx-community/Llama-3.2-3B-Instruct-4bit";
        assert!(names_served_model(served, served));
        assert!(names_served_model("MLX-COMMUNITY/llama-3.2-3b-instruct-4BIT", served));
        assert!(names_served_model("llama-3.2-3b-instruct", served));
        assert!(
            !names_served_model("mlx-community/Llama-3.2-3B-Instruct-8bit", served),
            "another quantisation"
        );
        assert!(!names_served_model("Llama-3.2-3B-Instruct", served), "the key is lower-case");
        assert!(!names_served_model("llama-3.2-1b-instruct", served));
        assert!(!names_served_model("", served));
    }
}
