"""GPU training throughput of GPT-2 124M at T=1024: ours (the exact step `train_GPT` runs) vs Hugging Face GPT2LMHeadModel.

Not a test: run it on a CUDA machine and copy the table into BENCHMARKS.md. For each side it reports ms/step (median),
tokens/s, MFU against the GPU's dense bf16 peak (`buildNanoGPT.model.peak_flops_of`) and peak GPU memory:

    ours/eager, ours/compiled   `train_GPT` itself on random-token shards: loss-only forward (`return_logits=False`),
                                bf16 autocast, TF32, fused AdamW, grad clipping, LR schedule, `torch.compile` when compiled;
                                times are read from the step lines it prints (`dt: ...ms`)
    hf/eager, hf/compiled       GPT2LMHeadModel (dropout 0, vocab 50257, SDPA attention), the same step written out:
                                bf16 autocast, full logits + cross-entropy, clip, fused AdamW

B starts at --batch (64) and halves on out-of-memory (dynamo reset between tries); a side that does not fit at B=1 is
reported as such. One optimizer step = one micro-batch of B x T tokens (no accumulation), so ms/step is per micro-batch.

    python benchmarks/bench_gpu.py                        # all four sides, B=64, 20 timed steps each
    python benchmarks/bench_gpu.py --sides ours/compiled --steps 50
"""
from __future__ import annotations

import argparse, contextlib, io, re, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from buildNanoGPT.plan import halve_on_oom # the halving search -B auto uses too


def random_shards(folder: Path, n_tokens: int, seed: int = 0) -> Path:
    "A val and a train shard of random GPT-2 token ids in the shard layout DataLoaderLite reads."
    rng = np.random.default_rng(seed)
    for i, split in enumerate(["val", "train"]):
        np.save(folder / f"bench_{split}_{i:06d}.npy", rng.integers(0, 50257, n_tokens, dtype=np.int64).astype(np.uint16))
    return folder


def run_ours(compiled: bool, B: int, T: int, steps: int, warmup: int, shards: Path, device: str = "cuda",
             model_name: str = "gpt2_124m") -> list[float]:
    "Seconds per step of `train_GPT` itself (the first `warmup` steps, compilation included, are dropped)."
    from buildNanoGPT import data
    from buildNanoGPT.train import DDPConfig, TrainingConfig, create_model, train_GPT
    ddp_cf = DDPConfig(device=device, verbose=False)
    cf = TrainingConfig.gpt2_124m(model_name=model_name, B=B, T=T, total_batch_size=B * T, max_steps=warmup + steps, warmup_steps=warmup,
                                  compile=compiled, autocast=True, val_interval=0, hellaswag=False, sample_interval=0,
                                  checkpoint_interval=0, log_dir=None, log_interval=1)
    loader = data.DataLoaderLite(B=B, T=T, ddp_cf=ddp_cf, split="train", data_root=shards, verbose=False)
    model = create_model(ddp_cf, config=cf.gpt_config())
    out = io.StringIO()
    with contextlib.redirect_stdout(out): train_GPT(model, loader, None, cf, ddp_cf)
    dts = [float(m) / 1e3 for m in re.findall(r"\| dt: ([\d.]+)ms", out.getvalue())]
    if len(dts) != warmup + steps: raise RuntimeError(f"expected {warmup + steps} step lines, got {len(dts)}:\n{out.getvalue()[-2000:]}")
    return dts[warmup:]


def run_hf(compiled: bool, B: int, T: int, steps: int, warmup: int) -> list[float]:
    "Seconds per step of GPT2LMHeadModel trained the usual way (full logits, cross-entropy)."
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.backends.cuda.matmul.allow_tf32 = True
    hc = GPT2Config(n_positions=1024, n_embd=768, n_layer=12, n_head=12, activation_function="gelu_new",
                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    m = GPT2LMHeadModel(hc).cuda().train()
    opt = torch.optim.AdamW(m.parameters(), lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
    cm = torch.compile(m) if compiled else m
    x = torch.randint(0, 50257, (B, T), device="cuda"); y = torch.randint(0, 50257, (B, T), device="cuda")
    dts = []
    for _ in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(cm(input_ids=x).logits.flatten(0, 1).float(), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        dts.append(time.perf_counter() - t0)
    return dts[warmup:]


def measure(side: str, B: int, args, shards: Path):
    "(B, seconds per step, peak GiB) for `side`, halving B on out-of-memory; None if even B=1 does not fit."
    who, mode = side.split("/")
    cuda, ran = args.device.startswith("cuda"), {}

    def trial(B):
        torch._dynamo.reset()
        if cuda: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        if who == "ours": dts = run_ours(mode == "compiled", B, args.seq, args.steps, args.warmup, shards, args.device, args.model)
        else: dts = run_hf(mode == "compiled", B, args.seq, args.steps, args.warmup)
        ran[B] = statistics.median(dts), (torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"))

    B = halve_on_oom(trial, B, say=lambda line: print(f"{side}: {line}", flush=True))
    return (B, *ran[B]) if B else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64, help="micro-batch B to start from (default: 64)")
    p.add_argument("--seq", type=int, default=1024, help="sequence length T (default: 1024)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per side (default: 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first, compilation included (default: 5)")
    p.add_argument("--sides", nargs="+", default=["ours/eager", "ours/compiled", "hf/eager", "hf/compiled"],
                   choices=["ours/eager", "ours/compiled", "hf/eager", "hf/compiled"])
    p.add_argument("--device", default="cuda", help="cuda (default); 'cpu' only checks this script (with --model cpu_tiny)")
    p.add_argument("--model", default="gpt2_124m", help="GPTConfig preset of our side (default: gpt2_124m)")
    args = p.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 1: p.error("--batch, --steps and --warmup must be >= 1")
    if args.device == "cpu":
        if any(s.startswith("hf/") for s in args.sides): p.error("--device cpu checks our side only: pass --sides ours/eager")
    elif not torch.cuda.is_available():
        sys.exit("bench_gpu.py: no CUDA device (torch.cuda.is_available() is False; torch "
                 f"{torch.__version__}). This benchmark needs an NVIDIA GPU; on a CPU run "
                 "benchmarks/bench_targets.py and benchmarks/bench_model.py instead.")
    from buildNanoGPT.model import GPT, GPTConfig, peak_flops_of

    name = torch.cuda.get_device_name() if args.device != "cpu" else "cpu"
    peak = peak_flops_of(name)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  torch {torch.__version__}  GPU: {name}  "
          f"bf16 peak: {f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'}", flush=True)
    with torch.device("meta"):
        flops_tok = {"ours": GPT(GPTConfig.from_name(args.model, vocab_size=50304)).flops_per_token(args.seq),
                     "hf": GPT(GPTConfig.gpt2_124m(vocab_size=50257)).flops_per_token(args.seq)}
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        shards = random_shards(Path(tmp), n_tokens=args.batch * args.seq * 4 + 1)
        for side in args.sides:
            r = measure(side, args.batch, args, shards)
            if r is None:
                print(f"{side:>14}: does not fit in GPU memory even at B=1", flush=True); continue
            B, dt, mem = r
            tps = B * args.seq / dt
            mfu = flops_tok[side.split("/")[0]] * tps / peak if peak else None
            res[side] = tps
            print(f"{side:>14}: B={B} T={args.seq}; {dt * 1e3:.1f} ms/step median of {args.steps}; {tps:,.0f} tok/s; "
                  f"MFU {f'{mfu:.1%}' if mfu else 'n/a'}; peak memory {mem:.1f} GiB", flush=True)
    for a, b in [("ours/compiled", "hf/eager"), ("ours/eager", "hf/eager"), ("ours/compiled", "hf/compiled"),
                 ("ours/compiled", "ours/eager")]:
        if a in res and b in res: print(f"  {a} / {b}: {res[a] / res[b]:.2f}x")


if __name__ == "__main__":
    main()
