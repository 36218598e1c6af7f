#!/usr/bin/env python3
"""Independent reference for Gemma 3 270M (GGUF): a float64 numpy forward pass over the GGUF's
dequantized weights, following Hugging Face's Gemma 3 text model. Writes prompt ids, first-step
logits (top entries) and greedy ids for a few prompts, for tests/gemma_gguf.rs to compare against.

Usage: python3 scripts/gemma_reference.py GGUF TOKENIZER_DIR OUT.json
Needs: pip install gguf numpy tokenizers jinja2
"""
import json, lzma, sys
from pathlib import Path

import gguf
import jinja2
import numpy as np
from tokenizers import Tokenizer

gguf_path, tok_dir, out_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
r = gguf.GGUFReader(gguf_path)
T = {t.name: t for t in r.tensors}


def field(name):
    return r.fields[name].contents()


def W(name):
    t = T[name]
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float64)


H = field("gemma3.embedding_length")
L = field("gemma3.block_count")
NH = field("gemma3.attention.head_count")
NKV = field("gemma3.attention.head_count_kv")
HD = field("gemma3.attention.key_length")
EPS = field("gemma3.attention.layer_norm_rms_epsilon")
WINDOW = field("gemma3.attention.sliding_window")
THETA = field("gemma3.rope.freq_base")
emb = W("token_embd.weight")
layers = []
for i in range(L):
    p = f"blk.{i}."
    layers.append({k: W(p + k + ".weight") for k in [
        "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm", "attn_k_norm", "attn_norm",
        "post_attention_norm", "ffn_norm", "post_ffw_norm", "ffn_gate", "ffn_up", "ffn_down"]})
out_norm = W("output_norm.weight")


def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * w


def rope(x, theta):  # x: (t, heads, hd), rotate halves
    t = x.shape[0]
    inv = 1.0 / theta ** (np.arange(0, HD, 2) / HD)
    ang = np.arange(t)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def forward(ids):
    t = len(ids)
    h = emb[ids] * np.sqrt(H)
    qpos, kpos = np.arange(t)[:, None], np.arange(t)[None, :]
    for i, w in enumerate(layers):
        sliding = (i + 1) % 6 != 0
        x = rms(h, w["attn_norm"])
        q = (x @ w["attn_q"].T).reshape(t, NH, HD)
        k = (x @ w["attn_k"].T).reshape(t, NKV, HD)
        v = (x @ w["attn_v"].T).reshape(t, NKV, HD)
        q, k = rms(q, w["attn_q_norm"]), rms(k, w["attn_k_norm"])
        theta = 10000.0 if sliding else THETA
        q, k = rope(q, theta), rope(k, theta)
        k = np.repeat(k, NH // NKV, axis=1)
        v = np.repeat(v, NH // NKV, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(HD)
        mask = kpos > qpos
        if sliding:
            mask |= (qpos - kpos) >= WINDOW
        s = np.where(mask[None], -np.inf, s)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = np.einsum("hqk,khd->qhd", s, v).reshape(t, NH * HD) @ w["attn_output"].T
        h = h + rms(a, w["post_attention_norm"])
        x = rms(h, w["ffn_norm"])
        m = (gelu_tanh(x @ w["ffn_gate"].T) * (x @ w["ffn_up"].T)) @ w["ffn_down"].T
        h = h + rms(m, w["post_ffw_norm"])
    return rms(h[-1], out_norm) @ emb.T


tok_bytes = lzma.decompress((tok_dir / "tokenizer.json.xz").read_bytes())
tok = Tokenizer.from_str(tok_bytes.decode())
cfg = json.loads((tok_dir / "tokenizer_config.json").read_text())
env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])


def raise_exception(m):
    raise ValueError(m)


env.globals["raise_exception"] = raise_exception
tmpl = env.from_string(cfg["chat_template"])
EOS = {1, tok.token_to_id("<end_of_turn>")}

cases = []
for kind, payload in [
    ("chat", [{"role": "user", "content": "Name three colours of the rainbow."}]),
    ("chat", [{"role": "user", "content": "Reply with the single word: yes"}]),
    ("raw", "The capital of France is"),
]:
    if kind == "chat":
        text = tmpl.render(messages=payload, add_generation_prompt=True, bos_token=cfg["bos_token"], eos_token=cfg["eos_token"])
        ids = tok.encode(text, add_special_tokens=False).ids
    else:
        ids = tok.encode(payload, add_special_tokens=True).ids
    seq = list(ids)
    greedy, first = [], None
    for _ in range(12):
        logits = forward(seq)
        if first is None:
            first = logits
        nxt = int(np.argmax(logits))
        if nxt in EOS:
            break
        greedy.append(nxt)
        seq.append(nxt)
    top = np.argsort(-first)[:64]
    cases.append({
        "kind": kind,
        ("messages" if kind == "chat" else "text"): payload,
        "prompt_ids": ids,
        "first_step_top_ids": [int(i) for i in top],
        "first_step_top_logits": [round(float(first[i]), 5) for i in top],
        "greedy_ids": greedy,
        "stopped_on_eos": len(greedy) < 12,
    })
    print(kind, ids[:8], greedy, file=sys.stderr)
Path(out_path).write_text(json.dumps({"model": "gemma-3-270m-q4_k_m", "reference": "numpy float64 over dequantized GGUF weights", "cases": cases}, ensure_ascii=False))
