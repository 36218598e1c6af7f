"""Generates tiny random GGUF models for the llama.cpp backend's oracle test (tests/gguf_oracle.rs)
and, next to each `<name>.gguf`, `<name>.oracle.json` written by llama-cpp-python on that file.

Each model carries its own tokenizer (tokenizer.ggml.*: a byte-level "gpt2" BPE that this script
trains on a paragraph of text, plus the architecture's special tokens, with its pre-tokenizer:
"llama-bpe" or "qwen2") and its own `tokenizer.chat_template`: Llama 3's for llama, Qwen 2's
ChatML for qwen2. Weights are random with fixed seeds, so every run writes the same files. Nothing
outside this script is read.

    python gguf_models.py OUT_DIR

Needs `gguf` and `llama-cpp-python` (both on PyPI).

How the oracle tokenizes — the rules the Rust engine follows (crate src/text.rs), spelled in
llama.cpp's terms:
- raw prompt: `tokenize(text, add_bos=A, special=True)`, A = the file's
  `tokenizer.ggml.add_bos_token` and the text does not already start with the BOS token's text;
- chat: the template rendered with `messages`, `bos_token`/`eos_token` (the texts of the BOS/EOS
  ids) and `add_generation_prompt=True` (jinja2 with trim_blocks and lstrip_blocks, as
  llama-cpp-python's and Hugging Face's formatters do), then `tokenize(rendered, add_bos=False,
  special=True)`: the template writes the BOS itself where the model wants one;
- greedy: argmax of the last position's logits, at most 16 tokens, ending before the first
  end-of-generation token (llama.cpp's `is_eog`), which is not part of `greedy_ids`;
- text: the greedy ids detokenized with special tokens rendered (as `tokenizers` decodes them).
"""
import json
import os
import re
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, LlamaFileType, TokenType

OUT = sys.argv[1]

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Qwen 2 Instruct's: ChatML with a default system message when the conversation has none.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# name -> architecture, tokenizer pre-tokenizer, tensor type, whether the head is the embedding.
MODELS = {
    "tiny-llama-f32": dict(arch="llama", pre="llama-bpe", qtype=Q.F32, tied=False),
    "tiny-llama-q8_0": dict(arch="llama", pre="llama-bpe", qtype=Q.Q8_0, tied=False),
    "tiny-qwen2-f16": dict(arch="qwen2", pre="qwen2", qtype=Q.F16, tied=True),
    "tiny-qwen2-q8_0": dict(arch="qwen2", pre="qwen2", qtype=Q.Q8_0, tied=True),
}
FILE_TYPE = {Q.F32: LlamaFileType.ALL_F32, Q.F16: LlamaFileType.MOSTLY_F16, Q.Q8_0: LlamaFileType.MOSTLY_Q8_0}
HIDDEN, HEADS, KV_HEADS, LAYERS, FFN, CONTEXT = 128, 4, 2, 3, 256, 2048
HEAD_DIM = HIDDEN // HEADS

RAW_PROMPTS = {
    "llama": [
        "Hello world",
        "The year 2024 had 366 days; 12345 + 678 = 13023.",
        "<|begin_of_text|>A prompt that brings its own BOS",
        "caf\u00e9 na\u00efve \u2014 \u65e5\u672c\u8a9e\n\ttabs  and   spaces<|eot_id|>",
    ],
    "qwen2": [
        "Hello world",
        "The year 2024 had 366 days; 12345 + 678 = 13023.",
        "<|im_start|>user\nraw text with special tokens<|im_end|>\n<|im_start|>assistant\n",
        "caf\u00e9 na\u00efve \u2014 \u65e5\u672c\u8a9e\n\ttabs  and   spaces",
    ],
}
CHATS = [
    [{"role": "user", "content": "Hi there! What's up?"}],
    [{"role": "system", "content": "You are a terse assistant. Answer in 3 words."},
     {"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "  Be kind.  "},
     {"role": "user", "content": "Tell me a story."},
     {"role": "assistant", "content": "Once upon a time..."},
     {"role": "user", "content": "And then?"}],
]


# The text the tiny BPE learns its merges from: English, digits, punctuation and a few non-ASCII
# words, so prompts tokenize to multi-byte tokens as well as single bytes.
CORPUS = """Hello world! Hello there, what is up? The year 2024 had 366 days, and 12345 + 678 = 13023.
You are a helpful assistant. You are a terse assistant; answer in three words. Tell me a story:
once upon a time there was a small house with a warm hearth, and everyone who came in from the
cold sat by the fire and told stories. What is the capital of France? Paris is the capital of
France. The quick brown fox jumps over the lazy dog. Be kind, be brief, and then be done.
caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 \u65e5\u672c\u8a9e \u6771\u4eac; tabs\tand  spaces\n\nnew lines
"""
N_MERGES = 240


def byte_symbols():
    """GPT-2's printable stand-in for each byte, the alphabet of a byte-level BPE."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def base_vocab():
    """A byte-level BPE trained on CORPUS: the 256 byte tokens, then one token per merge
    (most frequent pair first, ties broken by the pair's text, so always the same)."""
    b2s = byte_symbols()
    words = {}
    for piece in re.findall(r" ?[A-Za-z\u00c0-\uffff]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+|\s+", CORPUS):
        word = tuple(b2s[b] for b in piece.encode("utf-8"))
        words[word] = words.get(word, 0) + 1
    tokens = [b2s[b] for b in range(256)]
    known, merges = set(tokens), []
    for _ in range(N_MERGES):
        pairs = {}
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(f"{best[0]} {best[1]}")
        joined = best[0] + best[1]
        if joined not in known:
            known.add(joined)
            tokens.append(joined)
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return tokens, merges


def tokenizer_for(arch):
    """Tokens, types, merges and the special ids of one architecture's tokenizer."""
    tokens, merges = base_vocab()
    if arch == "qwen2":
        # Qwen 2's specials; its BOS is <|endoftext|>, never added to a prompt.
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                    "<|eot_id|>"]
    tokens = tokens + specials
    if arch == "qwen2":
        ids = dict(bos=tokens.index("<|endoftext|>"), eos=tokens.index("<|im_end|>"),
                   pad=tokens.index("<|endoftext|>"), add_bos=False)
    else:
        ids = dict(bos=tokens.index("<|begin_of_text|>"), eos=tokens.index("<|eot_id|>"),
                   pad=tokens.index("<|end_of_text|>"), add_bos=True)
    types = [TokenType.CONTROL if t in specials else TokenType.NORMAL for t in tokens]
    return tokens, types, merges, ids


def tensor(rng, shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def write_model(path, name, spec, rng):
    arch, qtype = spec["arch"], spec["qtype"]
    tokens, types, merges, ids = tokenizer_for(arch)
    n_vocab = len(tokens)
    w = gguf.GGUFWriter(path, arch)
    w.add_name(name)
    w.add_file_type(FILE_TYPE[qtype])
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(10000.0 if arch == "llama" else 1000000.0)
    w.add_layer_norm_rms_eps(1e-5 if arch == "llama" else 1e-6)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(spec["pre"])
    w.add_token_list(tokens)
    w.add_token_types([int(t) for t in types])
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["bos"])
    w.add_eos_token_id(ids["eos"])
    w.add_pad_token_id(ids["pad"])
    w.add_add_bos_token(ids["add_bos"])
    w.add_add_eos_token(False)
    w.add_chat_template(LLAMA3_TEMPLATE if arch == "llama" else CHATML_TEMPLATE)

    def matrix(tname, rows, cols, scale):
        data = tensor(rng, (rows, cols), scale)
        if qtype == Q.F32:
            w.add_tensor(tname, data)
        elif qtype == Q.F16:
            w.add_tensor(tname, data.astype(np.float16))
        else:
            w.add_tensor(tname, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    def vector(tname, n, mean, scale):
        # Norms and biases stay f32, as llama.cpp's converter writes them.
        w.add_tensor(tname, (mean + tensor(rng, (n,), scale)).astype(np.float32))

    kv_dim = KV_HEADS * HEAD_DIM
    # A tied head scores every token by its embedding, so a large embedding would make the input
    # token win every step (a greedy run of one token). Small embeddings let the blocks decide, and
    # a large output norm gives the logits the spread of an untied head: clear greedy margins.
    tied = spec["tied"]
    matrix("token_embd.weight", n_vocab, HIDDEN, 0.1 if tied else 1.0)
    for i in range(LAYERS):
        b = f"blk.{i}"
        vector(f"{b}.attn_norm.weight", HIDDEN, 1.0, 0.2)
        matrix(f"{b}.attn_q.weight", HIDDEN, HIDDEN, 1.5 / HIDDEN ** 0.5)
        matrix(f"{b}.attn_k.weight", kv_dim, HIDDEN, 1.5 / HIDDEN ** 0.5)
        matrix(f"{b}.attn_v.weight", kv_dim, HIDDEN, 1.0 / HIDDEN ** 0.5)
        if arch == "qwen2":
            vector(f"{b}.attn_q.bias", HIDDEN, 0.0, 0.1)
            vector(f"{b}.attn_k.bias", kv_dim, 0.0, 0.1)
            vector(f"{b}.attn_v.bias", kv_dim, 0.0, 0.1)
        matrix(f"{b}.attn_output.weight", HIDDEN, HIDDEN, 1.0 / HIDDEN ** 0.5)
        vector(f"{b}.ffn_norm.weight", HIDDEN, 1.0, 0.2)
        matrix(f"{b}.ffn_gate.weight", FFN, HIDDEN, 1.0 / HIDDEN ** 0.5)
        matrix(f"{b}.ffn_up.weight", FFN, HIDDEN, 1.0 / HIDDEN ** 0.5)
        matrix(f"{b}.ffn_down.weight", HIDDEN, FFN, 1.0 / FFN ** 0.5)
    vector("output_norm.weight", HIDDEN, 30.0 if tied else 1.0, 0.2)
    if not tied:
        matrix("output.weight", n_vocab, HIDDEN, 3.0 / HIDDEN ** 0.5)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def oracle(path, arch):
    """llama-cpp-python on the file: prompt ids, greedy ids and text for every case."""
    from llama_cpp import Llama, llama_cpp as C
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=2, seed=0, verbose=False)
    model = llm._model
    vocab = C.llama_model_get_vocab(model.model)
    n_vocab = llm.n_vocab()
    eog = [t for t in range(n_vocab) if C.llama_vocab_is_eog(vocab, t)]
    bos_id, eos_id = llm.token_bos(), llm.token_eos()
    bos_text = model.token_get_text(bos_id) if bos_id != -1 else ""
    eos_text = model.token_get_text(eos_id) if eos_id != -1 else ""
    add_bos = C.llama_vocab_get_add_bos(vocab)
    template = llm.metadata["tokenizer.chat_template"]
    formatter = Jinja2ChatFormatter(template=template, eos_token=eos_text, bos_token=bos_text)

    def greedy(prompt_ids):
        llm.reset()
        llm.eval(prompt_ids)
        ids, margins, scale = [], [], 0.0
        for _ in range(16):
            last = C.llama_get_logits_ith(llm._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(last, shape=(n_vocab,)).astype(np.float32)
            top2 = np.sort(logits)[-2:]
            margins.append(round(float(top2[1] - top2[0]), 6))
            scale = max(scale, float(np.abs(logits).max()))
            tok = int(np.argmax(logits))
            if tok in eog:
                break
            ids.append(tok)
            llm.eval([tok])
        text = llm.detokenize(ids, special=True).decode("utf-8", errors="replace")
        # margins[i]: how far the winner of step i led the runner-up (the EOG step included);
        # logit_scale: the largest |logit| of the case. Together they say how near a tie each
        # step was, which bounds where a build whose kernels round differently may diverge.
        return dict(greedy_ids=ids, ended_by_eog=len(ids) < 16, text=text, margins=margins,
                    logit_scale=round(scale, 4))

    cases = []
    for text in RAW_PROMPTS[arch]:
        bos = bool(add_bos) and not (bos_text and text.startswith(bos_text))
        ids = llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True)
        cases.append(dict(kind="raw", prompt=text, prompt_ids=ids, **greedy(ids)))
    for messages in CHATS:
        rendered = formatter(messages=messages).prompt
        ids = llm.tokenize(rendered.encode("utf-8"), add_bos=False, special=True)
        cases.append(dict(kind="chat", messages=messages, rendered=rendered, prompt_ids=ids,
                          **greedy(ids)))
    info = dict(architecture=arch, n_vocab=n_vocab, bos_id=bos_id, eos_id=eos_id, add_bos=bool(add_bos),
                eog_ids=eog, llama_cpp_python=__import__("llama_cpp").__version__)
    del llm
    return info, cases


def main():
    os.makedirs(OUT, exist_ok=True)
    for n, (name, spec) in enumerate(MODELS.items()):
        rng = np.random.default_rng(1200 + n)
        path = os.path.join(OUT, name + ".gguf")
        write_model(path, name, spec, rng)
        info, cases = oracle(path, spec["arch"])
        info["tensor_type"] = spec["qtype"].name
        with open(os.path.join(OUT, name + ".oracle.json"), "w") as f:
            json.dump(dict(model=name, **info, cases=cases), f, indent=1, ensure_ascii=False)
        nearest = min(min(c["margins"]) / c["logit_scale"] for c in cases)
        print(f"{name}: {os.path.getsize(path)} bytes, greedy {cases[0]['greedy_ids']}, "
              f"nearest tie {nearest:.2g} of the logit scale")


if __name__ == "__main__":
    main()
