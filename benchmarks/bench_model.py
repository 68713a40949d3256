"""Model benchmarks, ours against a peer in one run (not a test; results go to BENCHMARKS.md).

(a) generation: B sequences x N new tokens, GPT-2 124M shape, random weights, greedy:
    KV cache vs re-running the full context every step (what `generate(use_cache=False)` does), the two
    timed step by step in alternation so that load from other processes hits both alike.
(b) forward+backward tokens/s, small config: our GPT vs transformers' GPT2LMHeadModel with the same shapes
    and dropout 0, eager and torch.compile, median of several iterations (ours and hf alternating).

    python benchmarks/bench_model.py                    # the full run (CPU: several minutes)
    python benchmarks/bench_model.py --gen-tokens 32    # a quick look
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
import traceback

import torch
import torch.nn.functional as F

from buildNanoGPT.model import GPT, GPTConfig, KVCache


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


def load():
    try: return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError: return "n/a"


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception: return platform.processor() or "unknown"


@torch.no_grad()
def bench_generation(args, device):
    """Greedy decoding, KV cache vs full context, timed step by step in alternation: the two do the same
    steps as `generate(use_cache=True)` / `generate(use_cache=False)`, and load from other processes on a
    shared machine hits both alike. The end-to-end `generate()` call with the cache is timed as a check."""
    B, N = args.gen_batch, args.gen_tokens
    print(f"\n== (a) generation: {B} x {N} new tokens after a {args.prompt_len}-token prompt, GPT-2 124M shape, "
          f"random weights, greedy; cache and full-context steps alternate ==")
    torch.manual_seed(0)
    model = GPT(GPTConfig.gpt2_124m()).to(device).eval()
    bs = model.config.block_size
    if args.prompt_len + N > bs: raise SystemExit(f"prompt_len + gen_tokens must be <= {bs} for this benchmark")
    prompt = torch.randint(0, 50257, (B, args.prompt_len), device=device)
    model.generate(prompt, 4, temperature=0) # warm-up (allocator, kernels)

    def timed(f):
        sync(device); t0 = time.perf_counter(); out = f(); sync(device)
        return out, time.perf_counter() - t0

    next_tok = lambda h: model.lm_head(h[:, -1, :]).argmax(-1, keepdim=True)
    cache = KVCache(model.config.n_layer, max_len=args.prompt_len + N)
    idx, t = prompt, {"kv_cache": 0.0, "full_context": 0.0}
    for i in range(N):
        a, dt = timed(lambda: next_tok(model.hidden(idx if i == 0 else idx[:, -1:], kv_cache=cache)))
        t["kv_cache"] += dt
        b, dt = timed(lambda: next_tok(model.hidden(idx[:, -bs:])))
        t["full_context"] += dt
        assert bool((a == b).all()), f"cache and full context disagree at step {i}"
        idx = torch.cat((idx, a), dim=1)
    n = B * N
    for k, v in t.items(): print(f"{k:>13}: {v:8.2f} s  {n / v:8.1f} tok/s")
    print(f"    speed-up (full_context / kv_cache): {t['full_context'] / t['kv_cache']:.1f}x   (same {N} tokens: True)")
    out, dt = timed(lambda: model.generate(prompt, N, temperature=0))
    print(f"    check: model.generate(..., use_cache=True) end to end {dt:.2f} s, {n / dt:.1f} tok/s, "
          f"same tokens: {bool((out == idx).all())}")
    return t


def hf_peer(cfg, device):
    from transformers import GPT2Config, GPT2LMHeadModel
    hc = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                    n_head=cfg.n_head, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(hc).to(device).train()


def bench_train(args, device):
    cfg = GPTConfig.from_name(args.train_config)
    B, T = args.batch, min(args.seq, cfg.block_size)
    print(f"\n== (b) forward+backward, config {args.train_config} ({cfg}), B={B}, T={T}, "
          f"median of {args.iters} iterations after {args.warmup} warm-up, ours and hf alternating ==")
    torch.manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (B, T), device=device)
    y = torch.randint(0, cfg.vocab_size, (B, T), device=device)
    ours = GPT(cfg).to(device).train()
    hf = hf_peer(cfg, device)
    V = cfg.vocab_size

    def step_ours(m):
        def f():
            _, loss = m(x, y); loss.backward(); ours.zero_grad(set_to_none=True)
        return f

    def step_hf(m):
        def f():
            logits = m(input_ids=x).logits # same loss computation as ours: CE over all B*T positions
            loss = F.cross_entropy(logits.view(-1, V), y.view(-1)); loss.backward(); hf.zero_grad(set_to_none=True)
        return f

    results = {}
    for mode in args.modes:
        steps = {}
        for name, model, mk in [("ours", ours, step_ours), ("hf", hf, step_hf)]:
            key = f"{name}/{mode}"
            try:
                m = torch.compile(model) if mode == "compiled" else model
                t0 = time.perf_counter()
                for _ in range(args.warmup): mk(m)()
                sync(device)
                if mode == "compiled": print(f"{key:>14}: compile + {args.warmup} warm-up steps {time.perf_counter() - t0:.1f} s")
                steps[key] = mk(m)
            except Exception as e:
                results[key] = None
                print(f"{key:>14}: FAILED: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                if args.verbose: traceback.print_exc()
        # alternate ours and hf iteration by iteration, so that load from other processes hits both alike
        ts = {k: [] for k in steps}
        for _ in range(args.iters):
            for k, f in steps.items():
                sync(device); t0 = time.perf_counter(); f(); sync(device); ts[k].append(time.perf_counter() - t0)
        for k in steps:
            dt = statistics.median(ts[k])
            results[k] = B * T / dt
            print(f"{k:>14}: {dt * 1e3:8.1f} ms/iter (median; min {min(ts[k]) * 1e3:.1f})  {results[k]:9.0f} tok/s")
    print("    ratios (ours / hf tokens/s):")
    for mode in args.modes:
        a, b = results.get(f"ours/{mode}"), results.get(f"hf/{mode}")
        print(f"      {mode:>9}: " + (f"{a / b:.2f}x" if a and b else "n/a"))
    if results.get("ours/compiled") and results.get("ours/eager"):
        print(f"    ours compiled / ours eager: {results['ours/compiled'] / results['ours/eager']:.2f}x")
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU")
    p.add_argument("--gen-batch", type=int, default=4)
    p.add_argument("--gen-tokens", type=int, default=256)
    p.add_argument("--prompt-len", type=int, default=8)
    p.add_argument("--train-config", default="cpu_small")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    p.add_argument("--skip", nargs="*", default=[], choices=["gen", "train"])
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu": torch.set_num_threads(args.threads)
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_name()}, {torch.get_num_threads()} threads"
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  torch {torch.__version__}  device: {dev}")
    print(f"load average at start (1, 5, 15 min): {load()}")
    t0 = time.perf_counter()
    if "gen" not in args.skip: bench_generation(args, device)
    if "train" not in args.skip: bench_train(args, device)
    print(f"\ntotal wall time: {time.perf_counter() - t0:.0f} s; load average at end: {load()}")


if __name__ == "__main__":
    main()
