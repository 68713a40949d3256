"""Issue 6 targets, ours against a peer in the same run (not a test; results go to BENCHMARKS.md "Targets").

    python benchmarks/bench_targets.py train      # 1. training step tokens/s (fwd+bwd+clip+AdamW) vs GPT2LMHeadModel
    python benchmarks/bench_targets.py memory     # 2. peak RSS of one training step, fresh subprocess per side
    python benchmarks/bench_targets.py hellaswag  # 4. HellaSwag examples/s: batched evaluator vs the per-example loop
    python benchmarks/bench_targets.py startup    # 6. import / --help start-up times (hyperfine when installed)

Generation (3) is `benchmarks/bench_model.py`, data preparation (5) `benchmarks/bench_data_prep.py`.
Sides alternate iteration by iteration so that load from other processes hits both alike; medians are reported.
"""
from __future__ import annotations

import argparse, json, os, platform, random, resource, shutil, statistics, subprocess, sys, tempfile, time

import torch
import torch.nn.functional as F

from buildNanoGPT.model import GPT, GPTConfig


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception: return platform.processor() or "unknown"

def load(): return ", ".join(f"{x:.2f}" for x in os.getloadavg())

def header(what):
    print(f"== {what} ==\ndate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  torch {torch.__version__}  "
          f"cpu: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}  load: {load()}")


def hf_peer(cfg):
    from transformers import GPT2Config, GPT2LMHeadModel
    hc = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                    n_head=cfg.n_head, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    m = GPT2LMHeadModel(hc).train()
    return m


def make_steps(args, sides):
    """One training step per side (zero_grad, forward, loss, backward, clip 1.0, AdamW step), like train_GPT's."""
    cfg = GPTConfig.from_name(args.config)
    B, T = args.batch, min(args.seq, cfg.block_size)
    torch.manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (B, T)); y = torch.randint(0, cfg.vocab_size, (B, T))
    steps, info = {}, {}
    def mk(model, loss_fn, opt=None):
        opt = opt or torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss.detach()
        return step
    for side in sides:
        if side.startswith("ours"):
            torch.manual_seed(0)
            m = GPT(cfg).train()
            opt = m.configure_optimizers(0.1, 1e-4, "cpu", master_process=False) # as train_GPT
            if side == "ours":           # the CLI's CPU default (train_GPT): eager fp32, loss only -> chunked head + CE
                steps[side] = mk(m, lambda m=m: m(x, y, return_logits=False)[1], opt)
            elif side == "ours_logits":  # eager fp32, full logits + F.cross_entropy (the lecture's forward)
                steps[side] = mk(m, lambda m=m: m(x, y)[1], opt)
            elif side == "ours_compiled":
                cm = torch.compile(m)
                steps[side] = mk(m, lambda cm=cm: cm(x, y, return_logits=False)[1], opt)
            elif side == "ours_bf16":    # bf16 autocast on the CPU (not the CLI default; the plain head under autocast)
                def f(m=m):
                    with torch.autocast("cpu", dtype=torch.bfloat16): return m(x, y, return_logits=False)[1]
                steps[side] = mk(m, f, opt)
            else: raise ValueError(side)
            info[side] = "SDPA (F.scaled_dot_product_attention)"
        elif side.startswith("hf"):
            m = hf_peer(cfg)
            info[side] = f"attn_implementation={m.config._attn_implementation!r}"
            if side == "hf":            # the peer's default training call: labels= (HF shifts and upcasts inside)
                steps[side] = mk(m, lambda m=m: m(input_ids=x, labels=x).loss)
            elif side == "hf_ce":       # same loss computation as ours: CE over all B*T positions
                steps[side] = mk(m, lambda m=m: F.cross_entropy(m(input_ids=x).logits.flatten(0, 1), y.flatten()))
            elif side == "hf_compiled":
                cm = torch.compile(m)
                steps[side] = mk(m, lambda cm=cm: cm(input_ids=x, labels=x).loss)
            else: raise ValueError(side)
    return steps, info, cfg, B, T


def bench_train(args):
    if args.threads: torch.set_num_threads(args.threads)
    header("1. training step tokens/s (zero_grad + forward + loss + backward + clip + AdamW)")
    steps, info, cfg, B, T = make_steps(args, args.sides)
    print(f"config {args.config} {cfg}, B={B}, T={T}, fp32 unless the side says otherwise, dropout 0")
    for k, v in info.items(): print(f"  {k:>14}: attention {v}")
    for k, f in steps.items():
        t0 = time.perf_counter()
        for _ in range(args.warmup): f()
        print(f"  {k:>14}: {args.warmup} warm-up steps {time.perf_counter() - t0:.1f} s")
    ts = {k: [] for k in steps}
    for i in range(args.iters):
        order = list(steps.items()); order = order if i % 2 == 0 else order[::-1]
        for k, f in order:
            t0 = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t0)
    res = {}
    for k in steps:
        dt = statistics.median(ts[k]); res[k] = B * T / dt
        print(f"  {k:>14}: {dt * 1e3:8.1f} ms/step median (min {min(ts[k]) * 1e3:.1f}, max {max(ts[k]) * 1e3:.1f})  {res[k]:8.0f} tok/s")
    print("  ratios (tokens/s):")
    for a in res:
        for b in res:
            if a.startswith("ours") and b.startswith("hf"): print(f"    {a} / {b}: {res[a] / res[b]:.2f}x")
    print(f"load at end: {load()}")
    return res


# ---------------------------------------------------------------------------------------------------------------
def memory_one(args):
    "Child process: build one side, record maxrss, run one training step, record maxrss again."
    torch.set_num_threads(args.threads or 2)
    side = args.sides[0]
    steps, _, cfg, B, T = make_steps(args, [side])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steps[side]()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"side": side, "before_MiB": before / 1024, "after_MiB": after / 1024}))


def bench_memory(args):
    header("2. peak memory (max RSS) of one training step, each side in a fresh subprocess")
    cfg = GPTConfig.from_name(args.config); T = min(args.seq, cfg.block_size)
    print(f"config {args.config}, B={args.batch}, T={T}; logits (B*T x {cfg.vocab_size}) fp32 = "
          f"{args.batch * T * cfg.vocab_size * 4 / 2**20:.0f} MiB")
    rows = {}
    for rep in range(args.reps):
        for side in args.sides:
            cmd = [sys.executable, __file__, "memory-one", "--sides", side, "--config", args.config,
                   "--batch", str(args.batch), "--seq", str(args.seq), "--threads", "2"]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode: print(out.stderr[-2000:]); continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.setdefault(side, []).append(r)
    for side, rs in rows.items():
        b = statistics.median(r["before_MiB"] for r in rs); a = statistics.median(r["after_MiB"] for r in rs)
        print(f"  {side:>14}: max RSS before the step {b:7.0f} MiB, after {a:7.0f} MiB, step adds {a - b:7.0f} MiB  (median of {len(rs)})")


# ---------------------------------------------------------------------------------------------------------------
WORDS = None
def synthetic_hellaswag(path, n, seed=0, max_tokens=128):
    """n examples in the real HellaSwag jsonl format, text cut from the bundled plays at HellaSwag-like lengths
    (context ~ 18-52 words, endings ~ 8-25 words; real HellaSwag rows are ~ 40-140 tokens), at most `max_tokens`
    tokens per rendered row (the small model's context)."""
    from buildNanoGPT.data import shakespeare_docs
    from buildNanoGPT.evals import render_example
    words = " ".join(d["text"] for d in shakespeare_docs()[:5]).split()
    rng = random.Random(seed)
    take = lambda k: " ".join(words[(s := rng.randrange(len(words) - k)):s + k])
    with open(path, "w") as f:
        i = 0
        while i < n:
            ctx_a, ctx_b = take(rng.randint(15, 40)), take(rng.randint(3, 12))
            ex = {"ind": i, "activity_label": "Reading", "ctx_a": ctx_a, "ctx_b": ctx_b, "ctx": f"{ctx_a} {ctx_b}",
                  "split": "val", "split_type": "indomain", "label": rng.randrange(4),
                  "endings": [take(rng.randint(8, 25)) for _ in range(4)], "source_id": f"synthetic~{i}"}
            if render_example(ex)[1].size(1) > max_tokens: continue
            f.write(json.dumps(ex) + "\n"); i += 1


def bench_hellaswag(args):
    if args.threads: torch.set_num_threads(args.threads)
    from buildNanoGPT.data import get_tokenizer
    from buildNanoGPT.dist import DDPConfig
    from buildNanoGPT.evals import evaluate_hellaswag, get_most_likely_row, iterate_examples, render_example
    header("4. HellaSwag examples/s: batched evaluator vs the original per-example loop")
    cfg = GPTConfig.from_name(args.config)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    enc = get_tokenizer()
    ddp_cf = DDPConfig(device="cpu", verbose=False)
    with tempfile.TemporaryDirectory() as d:
        synthetic_hellaswag(os.path.join(d, "hellaswag_val.jsonl"), args.examples, max_tokens=cfg.block_size)
        examples = list(iterate_examples("val", data_dir=d))
        lens = [render_example(ex, enc)[1].size(1) for ex in examples]
        print(f"model {args.config} ({sum(p.numel() for p in model.parameters()):,} params), {len(examples)} synthetic "
              f"examples, rendered length (tokens) median {statistics.median(lens)}, max {max(lens)}; "
              f"batched: {args.hs_batch} examples (x4 rows) per forward")
        if max(lens) > cfg.block_size: raise SystemExit("examples longer than the model's context; lower the lengths")

        @torch.no_grad()
        def per_example():  # the lecture's loop: render, forward the 4 rows, pick the row
            correct = 0
            for ex in iterate_examples("val", data_dir=d):
                _, tokens, mask, label = render_example(ex, enc)
                logits, _ = model(tokens)
                correct += int(get_most_likely_row(tokens, mask, logits) == label)
            return correct, len(examples)

        batched = lambda: evaluate_hellaswag(model, ddp_cf, data_dir=d, batch_examples=args.hs_batch, enc=enc)
        per_example(); batched()  # warm-up
        ts = {"per-example": [], "batched": []}; results = {}
        for i in range(args.iters):
            for k, f in ([("per-example", per_example), ("batched", batched)][:: 1 if i % 2 == 0 else -1]):
                t0 = time.perf_counter(); results[k] = f(); ts[k].append(time.perf_counter() - t0)
        assert results["per-example"] == results["batched"], f"the two disagree: {results}"
        eps = {}
        for k, t in ts.items():
            eps[k] = len(examples) / statistics.median(t)
            print(f"  {k:>12}: {statistics.median(t):6.2f} s median (min {min(t):.2f})  {eps[k]:7.1f} examples/s  "
                  f"accuracy {results[k][0]}/{results[k][1]}")
        print(f"  ratio batched / per-example: {eps['batched'] / eps['per-example']:.2f}x  (same predictions count: True)")
    print(f"load at end: {load()}")


# ---------------------------------------------------------------------------------------------------------------
STARTUP = {
    "import buildNanoGPT": [sys.executable, "-c", "import buildNanoGPT"],
    "import buildNanoGPT.data": [sys.executable, "-c", "import buildNanoGPT.data"],
    "import buildNanoGPT.model": [sys.executable, "-c", "import buildNanoGPT.model"],
    "import buildNanoGPT.train": [sys.executable, "-c", "import buildNanoGPT.train"],
    "import buildNanoGPT.viz": [sys.executable, "-c", "import buildNanoGPT.viz"],
    "buildnanogpt-prep --help": ["buildnanogpt-prep", "--help"],
    "buildnanogpt-train --help": ["buildnanogpt-train", "--help"],
    "buildnanogpt-plot --help": ["buildnanogpt-plot", "--help"],
}
HEAVY = ("transformers", "datasets", "matplotlib", "pandas", "requests", "tqdm")

def bench_startup(args):
    header("6. start-up: imports and each CLI's --help (target < 2 s)")
    bindir = os.path.dirname(sys.executable)
    hf = shutil.which("hyperfine")
    for name, cmd in STARTUP.items():
        if not os.path.isabs(cmd[0]): cmd = [os.path.join(bindir, cmd[0])] + cmd[1:]
        if hf:
            with tempfile.NamedTemporaryFile(suffix=".json") as t:
                subprocess.run([hf, "-N", "--warmup", "1", "--runs", str(args.runs), "--export-json", t.name, "--",
                                " ".join(cmd)], capture_output=True, text=True, check=True)
                r = json.load(open(t.name))["results"][0]
                med, lo, hi = r["median"], r["min"], r["max"]
        else:
            ts = []
            for _ in range(args.runs + 1):
                t0 = time.perf_counter(); subprocess.run(cmd, capture_output=True, check=True); ts.append(time.perf_counter() - t0)
            ts = ts[1:]; med, lo, hi = statistics.median(ts), min(ts), max(ts)
        print(f"  {name:28s} median {med:5.2f} s (min {lo:.2f}, max {hi:.2f})  {'< 2 s: met' if med < 2 else '>= 2 s: NOT met'}")
    for mod in ("buildNanoGPT", "buildNanoGPT.data", "buildNanoGPT.model", "buildNanoGPT.train", "buildNanoGPT.viz"):
        code = f"import sys, {mod}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        print(f"  heavy modules loaded by `import {mod}`: {out or 'none'}")
    print(f"  measured with: {'hyperfine ' + subprocess.run([hf, '--version'], capture_output=True, text=True).stdout.strip() if hf else 'a subprocess loop'}"
          f", {args.runs} runs after 1 warm-up; load at end: {load()}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["train", "memory", "memory-one", "hellaswag", "startup"])
    p.add_argument("--config", default="cpu_small")
    p.add_argument("--batch", type=int, default=16, help="the cpu_default preset's B")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's, as the CLI)")
    p.add_argument("--sides", nargs="+", default=None)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--examples", type=int, default=300)
    p.add_argument("--hs-batch", type=int, default=16)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    if args.sides is None:
        args.sides = {"train": ["ours", "ours_logits", "ours_compiled", "hf"],
                      "memory": ["ours", "ours_logits", "hf"]}.get(args.what, ["ours"])
    {"train": bench_train, "memory": bench_memory, "memory-one": memory_one, "hellaswag": bench_hellaswag,
     "startup": bench_startup}[args.what](args)


if __name__ == "__main__":
    main()
