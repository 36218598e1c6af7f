"""Generates tiny random 4-bit MLX model directories for the paths the shared fixtures (Llama,
Qwen 2) do not reach: Gemma 3 (sliding window shorter than the prompt, sandwich norms, GELU,
embedding scale, linear rope scaling; f32 and bf16), Qwen 3 (q/k norms) and Llama 3 (rope scaling,
untied head). Next to each it writes `<name>.raw-oracle.json`: mlx_lm's first-step logits and 16
greedy ids over raw token ids (tensor math only; the tokenizer is the tiny llama fixture's).

    python family_models.py OUT_DIR TOKENIZER_DIR
"""
import json, os, shutil, sys, importlib
import mlx.core as mx, mlx.nn as nn
from mlx.utils import tree_flatten, tree_map
from mlx_lm.models.cache import make_prompt_cache

OUT, TOK = sys.argv[1], sys.argv[2]
base = dict(vocab_size=387, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            intermediate_size=128, rms_norm_eps=1e-6, max_position_embeddings=2048)
models = {
  "tiny-gemma3-4bit": dict(base, model_type="gemma3_text", hidden_size=192, num_hidden_layers=4,
      sliding_window=6, sliding_window_pattern=2, query_pre_attn_scalar=24, rope_theta=1e6,
      rope_local_base_freq=1e4, rope_scaling={"rope_type": "linear", "factor": 2.0}),
  "tiny-gemma3-bf16-4bit": dict(base, model_type="gemma3_text", hidden_size=192, num_hidden_layers=4,
      sliding_window=6, sliding_window_pattern=2, query_pre_attn_scalar=24, rope_theta=1e6,
      rope_local_base_freq=1e4, dtype="bfloat16"),
  "tiny-qwen3-4bit": dict(base, model_type="qwen3", hidden_size=64, num_hidden_layers=2,
      rope_theta=1e6, tie_word_embeddings=True),
  "tiny-llama3-4bit": dict(base, model_type="llama", hidden_size=64, num_hidden_layers=2,
      rope_theta=1e4, tie_word_embeddings=False,
      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
}
mx.random.seed(7)
prompts = [[int(x) for x in mx.random.randint(5, 387, (n,)).tolist()] for n in (20, 9)]
for name, cfg in models.items():
    cfg = dict(cfg); dtype = getattr(mx, cfg.pop("dtype", "float32"))
    mod = importlib.import_module(f"mlx_lm.models.{cfg['model_type']}")
    model = mod.Model(mod.ModelArgs.from_dict(cfg))
    if cfg["model_type"] == "gemma3_text":
        model.tie_word_embeddings = True; model.pop("lm_head")
    # Random weights with some spread; norm weights away from their init.
    params = tree_map(lambda p: (mx.random.normal(p.shape) * 0.3 / (p.shape[-1] ** 0.25)), model.parameters())
    model.update(params)
    model.set_dtype(dtype)
    nn.quantize(model, group_size=64, bits=4)
    d = os.path.join(OUT, name); shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
    mx.save_safetensors(os.path.join(d, "model.safetensors"), dict(tree_flatten(model.parameters())), metadata={"format": "mlx"})
    cfg.update(quantization={"group_size": 64, "bits": 4}, eos_token_id=[4, 1], bos_token_id=0,
               torch_dtype=str(dtype).split(".")[-1])
    if cfg["model_type"] == "gemma3_text": cfg["tie_word_embeddings"] = True
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, f), d)
    cases = []
    for ids in prompts:
        cache = make_prompt_cache(model)
        logits = model(mx.array([ids]), cache=cache)[0, -1].astype(mx.float32)
        first = logits.tolist()
        greedy = []
        tok = int(mx.argmax(logits))
        for _ in range(16):
            greedy.append(tok)
            logits = model(mx.array([[tok]]), cache=cache)[0, -1]
            tok = int(mx.argmax(logits))
        cases.append(dict(prompt_ids=ids, greedy_ids=greedy, first_step_logits=first))
    json.dump(dict(model=name, cases=cases), open(os.path.join(OUT, name + ".raw-oracle.json"), "w"))
    print(name, "greedy", cases[0]["greedy_ids"])
