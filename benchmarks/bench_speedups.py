"""The lecture's speed-ups, one added at a time: ms per training step and tokens/s for
fp32 -> TF32 -> bf16 autocast -> flash attention (SDPA) -> torch.compile -> vocabulary 50304.

Not a test: it prints a markdown table to paste into BENCHMARKS.md, with the machine and its load. It runs
`buildNanoGPT.train.speedup_ladder`, the function the `#| cuda` cell of 02_train runs, so the notebook and this script
measure the same thing. Each row builds the model afresh with the same seed and times forward + backward + AdamW on one
fixed batch (median of `--steps` steps after `--warmup` untimed ones, compilation included in those).

    python benchmarks/bench_speedups.py                                   # GPU: GPT-2 124M, B=16, T=1024
    python benchmarks/bench_speedups.py --device cpu --model cpu_small -B 8 -T 128 --threads 2
"""
from __future__ import annotations

import argparse, os, platform, time

import torch

from buildNanoGPT.model import GPTConfig
from buildNanoGPT.train import speedup_ladder


def machine(device: str) -> str:
    if device.startswith("cuda"): return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"): name = line.split(":", 1)[1].strip(); break
    except OSError: pass
    return f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="gpt2_124m", help="GPTConfig preset (default: gpt2_124m)")
    p.add_argument("-B", type=int, default=16)
    p.add_argument("-T", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    args = p.parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)
    config = GPTConfig.from_name(args.model)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    rows = speedup_ladder(args.device, config, B=args.B, T=args.T, steps=args.steps, warmup=args.warmup,
                          compile_backend=args.compile_backend)
    print(f"machine: {machine(args.device)}; torch {torch.__version__}; load average at start {load}, "
          f"at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {time.perf_counter() - t0:.0f} s in all")
    print(f"model {args.model}, B={args.B}, T={args.T}, median of {args.steps} steps after {args.warmup} untimed\n")
    print("| speed-up added | ms/step | tokens/s | vs fp32 | first loss |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['speedup']} | {r['ms']:.1f} | {r['tokens_per_sec']:,.0f} | {rows[0]['ms'] / r['ms']:.2f}x | {r['loss']:.4f} |")


if __name__ == "__main__":
    main()
