"""Generates tiny random 4-bit MLX model directories for the paths the shared fixtures (Llama,
Qwen 2) do not reach: Gemma 3 (sliding window shorter than the prompt, sandwich norms, GELU,
embedding scale, linear rope scaling; f32 and bf16), Qwen 3 (q/k norms), Llama 3 (rope scaling,
untied head) and a Gemma 3 whose config says `tie_word_embeddings: true` but whose checkpoint keeps
its own `lm_head` (mlx_lm's gemma3_text lets the weights decide). Next to each it writes `<name>.raw-oracle.json`: mlx_lm's first-step logits and 16
greedy ids over raw token ids (tensor math only; the tokenizer is the tiny llama fixture's).

    python family_models.py OUT_DIR TOKENIZER_DIR
"""
import json, os, shutil, sys, importlib
from pathlib import Path
import mlx.core as mx, mlx.nn as nn
from mlx.utils import tree_flatten, tree_map
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.utils import load_model, save_model

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
# Saved by mlx_lm's own save path with the head the model holds, then read back by mlx_lm's loader for
# the oracle, so the oracle is what mlx_lm does with such a directory. Last, so the models above keep
# their random draws.
models["tiny-gemma3-untied-head-4bit"] = dict(models["tiny-gemma3-4bit"], keep_head=True)
mx.random.seed(7)
prompts = [[int(x) for x in mx.random.randint(5, 387, (n,)).tolist()] for n in (20, 9)]
for name, cfg in models.items():
    cfg = dict(cfg); dtype = getattr(mx, cfg.pop("dtype", "float32")); keep_head = cfg.pop("keep_head", False)
    mod = importlib.import_module(f"mlx_lm.models.{cfg['model_type']}")
    model = mod.Model(mod.ModelArgs.from_dict(cfg))
    if cfg["model_type"] == "gemma3_text" and not keep_head:
        model.tie_word_embeddings = True; model.pop("lm_head")
    # Random weights with some spread; norm weights away from their init.
    params = tree_map(lambda p: (mx.random.normal(p.shape) * 0.3 / (p.shape[-1] ** 0.25)), model.parameters())
    model.update(params)
    model.set_dtype(dtype)
    nn.quantize(model, group_size=64, bits=4)
    d = os.path.join(OUT, name); shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
    if keep_head:
        save_model(d, model)
    else:
        mx.save_safetensors(os.path.join(d, "model.safetensors"), dict(tree_flatten(model.parameters())), metadata={"format": "mlx"})
    cfg.update(quantization={"group_size": 64, "bits": 4}, eos_token_id=[4, 1], bos_token_id=0,
               torch_dtype=str(dtype).split(".")[-1])
    if cfg["model_type"] == "gemma3_text": cfg["tie_word_embeddings"] = True
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, f), d)
    if keep_head:
        model, _ = load_model(Path(d))
        # The case only shows anything if mlx_lm really decodes through a head unlike the embedding.
        assert not model.tie_word_embeddings and "lm_head" in model, name
        assert not mx.array_equal(model.lm_head.weight, model.model.embed_tokens.weight), name
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
