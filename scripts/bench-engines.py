#!/usr/bin/env python3
"""Hearth's engine against its peers, measured in the same run on the same machine.

  * Gemma 3 270M GGUF (q4_k_m): `hearth bench` (the gguf engine: llama.cpp linked into hearth) vs
    llama.cpp through llama-cpp-python. Same library underneath, so a gap is hearth's overhead, or
    a different build of llama.cpp: each side's CPU variant (the instruction sets its CPU code was
    compiled for, from llama.cpp's system info) is printed beside its numbers.
  * The tiny MLX 4-bit fixture: `hearth bench` (cpu engine) vs mlx_lm on MLX's CPU backend.
  * Through `hearth local` (a real pool and session, real HTTP): N concurrent streamed requests
    against one (`--streams`), aggregate decode tok/s and each stream's time to first token; and
    the cold start, process start to the first completed request with the model cached, p50 of
    `--cold-starts` runs.

Every engine gets the same raw prompt (the words `hearth bench` uses, repeated), greedy decoding, the
same number of generated tokens, the same thread count, and the median of several runs. Prints one
table and, with --json, one JSON object. Needs a python with llama_cpp and mlx_lm.

    python scripts/bench-engines.py --hearth target/release/hearth --gguf G.gguf \
        --mlx-dir ../shared/fixtures/models/tiny-llama-4bit
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

# Both sides of the GGUF row get this context, so their KV caches (and RSS) are alike.
PEER_CONTEXT = 1024

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"]


def prompt_text(n_words):
    return " ".join(WORDS[i % len(WORDS)] for i in range(max(1, n_words)))


def hearth_bench(hearth, model, args, extra=()):
    # `--engine cpu`: a directory runs on candle, a .gguf file on llama.cpp (the JSON's `engine`).
    cmd = [hearth, "bench", "--model", model, "--engine", "cpu", "--json", "--context", str(PEER_CONTEXT),
           "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens),
           "--runs", str(args.runs)]
    # The same thread count as the peer gets: candle sizes its pools from RAYON_NUM_THREADS, the
    # gguf engine its llama.cpp context from HEARTH_THREADS.
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), HEARTH_THREADS=str(args.threads),
               RUST_LOG="info")
    done = subprocess.run(cmd + list(extra), check=True, capture_output=True, text=True, env=env)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    # The gguf engine logs which CPU code llama.cpp runs: `cpu="AVX AVX2 …"` (or "baseline").
    variant = re.search(r'cpu="([^"]*)"', re.sub(r"\x1b\[[0-9;]*m", "", done.stderr))
    return {"prompt_tps": r["prompt_tps"], "generation_tps": r["generation_tps"],
            "prompt_tokens": r["prompt_tokens"], "peak_rss_bytes": r["peak_rss_bytes"],
            "engine": r.get("engine"), "cpu_variant": variant.group(1) if variant else None}


def cpu_variant_of(system_info):
    """The ISA features that are on in the CPU section of llama.cpp's system info (as the gguf
    engine reports its own): e.g. `SSE3 SSSE3 AVX AVX2 F16C FMA`, or `baseline`."""
    not_isa = {"LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE", "CPU_ALL_VARIANTS"}
    on, in_cpu = [], False
    for item in system_info.split("|"):
        item = item.strip()
        if " : " in item:
            backend, item = item.split(" : ", 1)
            in_cpu = backend.strip() == "CPU"
        if in_cpu and "=" in item:
            name, value = (x.strip() for x in item.split("=", 1))
            if value == "1" and name not in not_isa:
                on.append(name)
    return " ".join(on) or "baseline"


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def llama_cpp_bench(gguf, args):
    """llama.cpp through its Python binding: prefill timed over one eval of the whole prompt,
    decode over single-token evals with greedy argmax (the binding's own sampler adds overhead
    that is not the engine's)."""
    import llama_cpp
    from llama_cpp import Llama
    import numpy as np

    llm = Llama(gguf, n_ctx=PEER_CONTEXT, n_threads=args.threads, n_threads_batch=args.threads, n_batch=512,
                verbose=False, logits_all=False)
    ids = llm.tokenize(prompt_text(args.prompt_tokens).encode(), add_bos=False, special=False)
    prefill, decode = [], []
    for _ in range(args.runs):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t2 = time.perf_counter()
        for _ in range(args.gen_tokens - 1):
            llm.eval([tok])
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t3 = time.perf_counter()
        prefill.append(len(ids) / (t1 - t0))
        decode.append((args.gen_tokens - 1) / (t3 - t2))
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return {"prompt_tps": statistics.median(prefill), "generation_tps": statistics.median(decode),
            "prompt_tokens": len(ids), "peak_rss_bytes": peak_rss_bytes(),
            "cpu_variant": cpu_variant_of(info)}


def llama_cpp_parallel_bench(gguf, args):
    """llama.cpp through the binding's low-level API, `--streams` sequences decoded together in
    one batch per step (each its own KV stream, as the gguf engine runs them): aggregate decode
    tok/s, greedy argmax per sequence, median of the runs."""
    import llama_cpp as L
    import numpy as np

    n_seq = args.streams
    model = L.llama_model_load_from_file(args.gguf.encode(), L.llama_model_default_params())
    cp = L.llama_context_default_params()
    # n_batch takes every prompt in one decode (llama.cpp splits it into micro-batches of n_ubatch).
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = PEER_CONTEXT * n_seq, 4096, 512, n_seq
    cp.n_threads = cp.n_threads_batch = args.threads
    ctx = L.llama_init_from_model(model, cp)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    text = prompt_text(args.prompt_tokens).encode()
    buf = (L.llama_token * 4096)()
    n = L.llama_tokenize(L.llama_model_get_vocab(model), text, len(text), buf, 4096, False, False)
    batch = L.llama_batch_init(n * n_seq, 0, 1)

    def put(i, tok, pos, seq, logits):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits

    def argmax(i):
        return int(np.argmax(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,))))

    speeds = []
    for _ in range(args.runs):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        for s in range(n_seq):
            for j in range(n):
                put(s * n + j, buf[j], j, s, j == n - 1)
        batch.n_tokens = n * n_seq
        L.llama_decode(ctx, batch)
        last = [argmax(s * n + n - 1) for s in range(n_seq)]
        t0 = time.perf_counter()
        for step in range(args.gen_tokens - 1):
            for s in range(n_seq):
                put(s, last[s], n + step, s, True)
            batch.n_tokens = n_seq
            L.llama_decode(ctx, batch)
            last = [argmax(s) for s in range(n_seq)]
        speeds.append((args.gen_tokens - 1) * n_seq / (time.perf_counter() - t0))
    return {"generation_tps": statistics.median(speeds), "prompt_tokens": n, "peak_rss_bytes": peak_rss_bytes()}


def mlx_lm_bench(model_dir, args):
    """mlx_lm's own streaming generator on MLX's CPU device; it reports both speeds itself."""
    import mlx.core as mx
    from mlx_lm import load, stream_generate

    mx.set_default_device(mx.cpu)
    model, tokenizer = load(model_dir)
    ids = tokenizer.encode(prompt_text(args.prompt_tokens), add_special_tokens=False)
    prefill, decode = [], []
    for _ in range(args.runs):
        last = None
        for last in stream_generate(model, tokenizer, ids, max_tokens=args.gen_tokens):
            pass
        prefill.append(last.prompt_tps)
        decode.append(last.generation_tps)
    return {"prompt_tps": statistics.median(prefill), "generation_tps": statistics.median(decode),
            "prompt_tokens": len(ids), "peak_rss_bytes": peak_rss_bytes()}


def in_child(fn, *a):
    """Each peer in its own process so peak RSS is its own."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=lambda: q.put(fn(*a)))
    p.start()
    r = q.get()
    p.join()
    return r


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalHearth:
    """`hearth local` in its own HEARTH_HOME, the default model already in its models folder (a
    hard link or copy of --gguf), so no download is timed."""

    def __init__(self, hearth, gguf, extra, threads):
        import shutil
        import tempfile
        self.home = tempfile.mkdtemp(prefix="hearth-bench-")
        models = os.path.join(self.home, "data", "models", "gemma-3-270m")
        os.makedirs(models)
        target = os.path.join(models, "gemma-3-270m-q4_k_m.gguf")
        try:
            os.link(gguf, target)
        except OSError:
            shutil.copy(gguf, target)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HEARTH_HOME=self.home, RUST_LOG="warn", HEARTH_THREADS=str(threads))
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([hearth, "local", "--listen", f"127.0.0.1:{self.port}", *extra],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._shutil = shutil

    def model(self, timeout=300):
        import urllib.request
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hearth local exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base}/v1/status", timeout=5) as r:
                    status = json.load(r)
                for m in status.get("models", []):
                    if m.get("slots_free", 0) > 0:
                        return m["id"]
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("hearth local was not serving in time")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._shutil.rmtree(self.home, ignore_errors=True)


def stream(base, model, prompt, max_tokens, start=None):
    """One streamed chat completion; (time to first token, decode tok/s, completion tokens,
    first and last token times). Decode speed counts the tokens after the first over the time
    after it, as the engine rows do."""
    import urllib.request
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(f"{base}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    if start is not None:
        start.wait()
    t0 = time.perf_counter()
    first = last = None
    tokens = None
    with urllib.request.urlopen(req, timeout=300) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
    if first is None or not tokens:
        raise RuntimeError("no tokens streamed")
    tps = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
    return {"ttft_s": first - t0, "decode_tps": tps, "tokens": tokens, "first": first, "last": last}


STORY = "Tell a long story about a lighthouse keeper and a storm, with many details."


def concurrent_streams(hearth, gguf, args):
    """One stream alone, then `--streams` at once, through `hearth local --slots N`."""
    import threading
    h = LocalHearth(hearth, gguf, ["--slots", str(args.streams)], args.threads)
    try:
        model = h.model()
        stream(h.base, model, STORY, 8)  # warm up
        singles = [stream(h.base, model, STORY, args.stream_tokens) for _ in range(3)]
        single = statistics.median(r["decode_tps"] for r in singles)
        start = threading.Barrier(args.streams)
        results = [None] * args.streams
        prompts = [f"{STORY} Story number {i + 1}." for i in range(args.streams)]

        def run(i):
            results[i] = stream(h.base, model, prompts[i], args.stream_tokens, start)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Aggregate decode: every token after each stream's first, over the span from the
        # earliest first token to the latest last one.
        span = max(r["last"] for r in results) - min(r["first"] for r in results)
        aggregate = sum(r["tokens"] - 1 for r in results) / span
        return {"threads": args.threads, "streams": args.streams, "single_stream_tps": single,
                "single_ttft_s": statistics.median(r["ttft_s"] for r in singles),
                "aggregate_tps": aggregate, "ratio": aggregate / single,
                "stream_ttft_s": [r["ttft_s"] for r in results],
                "stream_tokens": [r["tokens"] for r in results]}
    finally:
        h.close()


def cold_starts(hearth, gguf, args):
    """`hearth local` (no --model: the default model, already cached) from process start to the
    first completed request, `--cold-starts` times."""
    import urllib.request
    times = []
    for _ in range(args.cold_starts):
        h = LocalHearth(hearth, gguf, [], args.threads)
        try:
            model = h.model()
            body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}],
                               "max_tokens": 8, "temperature": 0}).encode()
            req = urllib.request.Request(f"{h.base}/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as r:
                json.load(r)
            times.append(time.perf_counter() - h.started)
        finally:
            h.close()
    return {"runs": len(times), "p50_s": statistics.median(times), "all_s": times}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hearth", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--mlx-dir", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for every engine (llama.cpp's n_threads/n_threads_batch, candle's pool)")
    ap.add_argument("--skip-mlx", action="store_true", help="only the GGUF row")
    ap.add_argument("--streams", type=int, default=4,
                    help="concurrent streams through `hearth local` (0 skips)")
    ap.add_argument("--stream-tokens", type=int, default=96, help="max_tokens of each stream")
    ap.add_argument("--cold-starts", type=int, default=5, help="timed cold starts (0 skips)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rows = []
    weights = os.path.getsize(args.gguf)
    h = hearth_bench(args.hearth, args.gguf, args)
    p = in_child(llama_cpp_bench, args.gguf, args)
    rows.append(("gemma-3-270m q4_k_m GGUF", "llama.cpp", h, p, weights))
    if args.streams > 1:
        # The engines alone, `--streams` jobs decoding together, against one job: the batching gain
        # of each side (llama.cpp's own is the ceiling for ours).
        one = h
        hp = hearth_bench(args.hearth, args.gguf, args, ["--parallel", str(args.streams)])
        pp_ = in_child(llama_cpp_parallel_bench, args.gguf, args)
        batched = {"streams": args.streams, "hearth_tps": hp["generation_tps"], "hearth_one_tps": one["generation_tps"],
                   "peer_tps": pp_["generation_tps"], "peer_one_tps": p["generation_tps"]}
    else:
        batched = None
    if not args.skip_mlx:
        mlx_weights = sum(os.path.getsize(os.path.join(args.mlx_dir, f))
                          for f in os.listdir(args.mlx_dir) if f.endswith(".safetensors"))
        h = hearth_bench(args.hearth, args.mlx_dir, args)
        p = in_child(mlx_lm_bench, args.mlx_dir, args)
        rows.append(("tiny-llama 4-bit MLX dir", "mlx_lm (CPU)", h, p, mlx_weights))

    report = []
    print(f"{'model':28} {'peer':14} {'hearth pp':>10} {'peer pp':>10} {'ratio':>6} "
          f"{'hearth tg':>10} {'peer tg':>10} {'ratio':>6} {'hearth RSS/weights':>19} {'peer RSS MiB':>13} {'RSS ratio':>9}")
    for model, peer, h, p, w in rows:
        pp = h["prompt_tps"] / p["prompt_tps"]
        tg = h["generation_tps"] / p["generation_tps"]
        rss = (h["peak_rss_bytes"] or 0) / w
        peer_rss = (p["peak_rss_bytes"] or 0) / 2**20
        rss_ratio = (h["peak_rss_bytes"] or 0) / max(1, p["peak_rss_bytes"] or 0)
        print(f"{model:28} {peer:14} {h['prompt_tps']:10.1f} {p['prompt_tps']:10.1f} {pp:6.2f} "
              f"{h['generation_tps']:10.1f} {p['generation_tps']:10.1f} {tg:6.2f} {rss:19.2f} {peer_rss:13.0f} "
              f"{rss_ratio:9.2f}")
        if h.get("cpu_variant") or p.get("cpu_variant"):
            print(f"{'':28} CPU variant: hearth ({h.get('engine')}) {h.get('cpu_variant')!r}, "
                  f"peer {p.get('cpu_variant')!r}")
        report.append({"model": model, "peer": peer, "hearth": h, "peer_result": p,
                       "prompt_ratio": pp, "generation_ratio": tg, "weights_bytes": w,
                       "hearth_rss_over_weights": rss})
    local = {}
    if batched:
        b = batched
        print(f"\n{b['streams']} jobs decoding together, engines alone: hearth {b['hearth_tps']:.1f} tok/s "
              f"({b['hearth_tps'] / b['hearth_one_tps']:.2f}x its one job), llama.cpp {b['peer_tps']:.1f} tok/s "
              f"({b['peer_tps'] / b['peer_one_tps']:.2f}x its one job); hearth/peer {b['hearth_tps'] / b['peer_tps']:.2f}")
        local["batched_engines"] = b
    if args.streams > 0:
        c = concurrent_streams(args.hearth, args.gguf, args)
        local["streams"] = c
        ttfts = ", ".join(f"{t:.2f}" for t in c["stream_ttft_s"])
        print(f"\n{c['streams']} concurrent streams through hearth local (--slots {c['streams']}): "
              f"aggregate {c['aggregate_tps']:.1f} tok/s vs one stream {c['single_stream_tps']:.1f} "
              f"= {c['ratio']:.2f}x; time to first token {ttfts} s (alone {c['single_ttft_s']:.2f} s); "
              f"tokens {c['stream_tokens']}")
    if args.cold_starts > 0:
        c = cold_starts(args.hearth, args.gguf, args)
        local["cold_start"] = c
        print(f"cold start (hearth local, model cached, to the first completed request): p50 "
              f"{c['p50_s']:.2f} s of {c['runs']} ({', '.join(f'{t:.2f}' for t in c['all_s'])})")
    if args.json:
        print(json.dumps({"engines": report, "local": local}))


if __name__ == "__main__":
    sys.exit(main())
