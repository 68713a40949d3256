"""GPU training throughput: GPT-2 124M, T=1024, bf16 autocast, eager vs torch.compile, ours vs GPT2LMHeadModel.

Ready to run on a CUDA machine (not a test; results go to BENCHMARKS.md). Reports tokens/s, MFU against the
GPU's dense bf16 peak (`buildNanoGPT.model.PEAK_BF16_FLOPS`: H100 SXM 989 TFLOP/s) and peak GPU memory for:

    ours/eager, ours/compiled, hf/eager, hf/compiled

One training step = forward + loss + backward + clip + AdamW (fused), like train_GPT, on random tokens.
vocab_size 50304 for ours (the lecture's padded vocabulary, what the 124M preset trains) and, with --same-vocab,
50257 for both. B defaults to 64 and is halved until a step fits.

    python benchmarks/bench_gpu.py                   # B=64, T=1024, 20 timed steps per side
    python benchmarks/bench_gpu.py --sides ours/compiled --steps 50
"""
from __future__ import annotations

import argparse, statistics, sys, time

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--sides", nargs="+", default=["ours/eager", "ours/compiled", "hf/eager", "hf/compiled"])
    p.add_argument("--same-vocab", action="store_true", help="50257 for ours too (default: ours 50304, hf 50257)")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py: no CUDA device (torch.cuda.is_available() is False; torch "
                 f"{torch.__version__}). This benchmark needs an NVIDIA GPU; on a CPU run "
                 "benchmarks/bench_targets.py and benchmarks/bench_model.py instead.")
    from buildNanoGPT.model import GPT, GPTConfig, get_peak_flops

    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    name, peak = torch.cuda.get_device_name(dev), get_peak_flops(dev)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  torch {torch.__version__}  GPU: {name}  "
          f"bf16 peak: {peak / 1e12 if peak else 'unknown'} TFLOP/s")
    T = args.seq
    ref = GPT(GPTConfig.gpt2_124m(vocab_size=50257 if args.same_vocab else 50304)) # for FLOPs/token
    flops_tok = ref.flops_per_token(T); del ref

    def build(side):
        who, mode = side.split("/")
        if who == "ours":
            m = GPT(GPTConfig.gpt2_124m(vocab_size=50257 if args.same_vocab else 50304)).to(dev)
            loss_fn = lambda m, x, y: m(x, y)[1]
            attn = "SDPA"
        else:
            from transformers import GPT2Config, GPT2LMHeadModel
            hc = GPT2Config(n_positions=1024, n_embd=768, n_layer=12, n_head=12, activation_function="gelu_new",
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
            m = GPT2LMHeadModel(hc).to(dev)
            attn = m.config._attn_implementation
            loss_fn = lambda m, x, y: F.cross_entropy(m(input_ids=x).logits.flatten(0, 1).float(), y.flatten())
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
        cm = torch.compile(m) if mode == "compiled" else m
        def step(x, y):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16): loss = loss_fn(cm, x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
        return step, attn

    res = {}
    for side in args.sides:
        B = args.batch
        while B >= 1:
            try:
                torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
                step, attn = build(side)
                x = torch.randint(0, 50257, (B, T), device=dev); y = torch.randint(0, 50257, (B, T), device=dev)
                t0 = time.perf_counter()
                for _ in range(args.warmup): step(x, y)
                torch.cuda.synchronize(); wt = time.perf_counter() - t0
                ts = []
                for _ in range(args.steps):
                    t0 = time.perf_counter(); step(x, y); torch.cuda.synchronize(); ts.append(time.perf_counter() - t0)
                break
            except torch.OutOfMemoryError:
                step = None; B //= 2; print(f"{side}: out of memory, trying B={B}")
        dt = statistics.median(ts); tps = B * T / dt
        mfu = flops_tok * tps / peak if peak else None
        res[side] = tps
        print(f"{side:>14}: B={B} T={T} attention {attn}; warm-up {wt:.1f} s; {dt * 1e3:.1f} ms/step median; "
              f"{tps:,.0f} tok/s; MFU {f'{mfu:.1%}' if mfu else 'n/a'}; peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
        del step; torch.cuda.empty_cache()
    for a, b in [("ours/compiled", "hf/eager"), ("ours/eager", "hf/eager"), ("ours/compiled", "hf/compiled"),
                 ("ours/compiled", "ours/eager")]:
        if a in res and b in res: print(f"  {a} / {b}: {res[a] / res[b]:.2f}x")


if __name__ == "__main__":
    main()
