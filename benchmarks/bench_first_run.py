"""The first run chosen again (issue: your own tokenizer): which tokenizer, recipe and model size learn most in a fixed
wall time on this machine, judged by validation bits per byte on the held-out plays.

    python benchmarks/bench_first_run.py --seconds 165 --only NAME ...   # one row per config, appended to a JSONL

Each config runs in its own process, as `buildnanogpt-train` would: prepare its data folder (timed; a folder already
prepared is reused, and its preparation time measured once), a short calibration run for tokens/s, then the run
itself with `max_steps` chosen to fill `--seconds` of training. Printed: final val loss (nats per token), val bits
per byte, wall time, tokens seen, and two samples."""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

CONFIGS = { # name: (vocab_size or None for GPT-2's, recipe, model_kw, B, T, max_lr[, other TrainingConfig settings])
    "gpt2-narrow": (None, "lecture", dict(n_layer=4, n_head=4, n_embd=64), 8, 128, 5e-3), # today's default
    "bpe1024-w128": (1024, "lecture", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 5e-3),
    "bpe2048-w128": (2048, "lecture", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 5e-3),
    "bpe4096-w128": (4096, "lecture", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 5e-3),
    "bpe2048-w192": (2048, "lecture", dict(n_layer=4, n_head=4, n_embd=192), 8, 128, 3e-3),
    "bpe2048-6x192": (2048, "lecture", dict(n_layer=6, n_head=6, n_embd=192), 8, 128, 3e-3),
    "bpe2048-w256": (2048, "lecture", dict(n_layer=4, n_head=4, n_embd=256), 8, 128, 2e-3),
    "bpe2048-w128-T256": (2048, "lecture", dict(n_layer=4, n_head=4, n_embd=128, block_size=256), 4, 256, 5e-3),
    "bpe2048-w128-modern": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 5e-3),
    "bpe4096-w192-modern": (4096, "modern", dict(n_layer=4, n_head=4, n_embd=192), 8, 128, 5e-3),
    "bpe2048-w192-modern": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=192), 8, 128, 5e-3),
    "bpe1024-w192-modern": (1024, "modern", dict(n_layer=4, n_head=4, n_embd=192), 8, 128, 5e-3),
    "bpe2048-6x192-modern": (2048, "modern", dict(n_layer=6, n_head=6, n_embd=192), 8, 128, 5e-3),
    # the learning-rate sweep of the best config (Muon's rate for the blocks, AdamW's for embedding and head)
    "w128-modern-muon01": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 5e-3, dict(muon_lr=0.01)),
    "w128-modern-muon04": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 5e-3, dict(muon_lr=0.04)),
    "w128-modern-muon005": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 5e-3, dict(muon_lr=0.005)),
    "w128-modern-muon0075": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 5e-3, dict(muon_lr=0.0075)),
    "w128-modern-muon01-adam1e-2": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 1e-2, dict(muon_lr=0.01)),
    "w128-modern-muon01-adam2e-2": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 2e-2, dict(muon_lr=0.01)),
    "w128-modern-muon005-adam1e-2": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 1e-2, dict(muon_lr=0.005)),
    "w128-modern-adam1e-2": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 1e-2),
    "w128-modern-adam2.5e-3": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 8, 128, 2.5e-3),
    "w128-modern-T256": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128, block_size=256), 4, 256, 5e-3),
    "w128-modern-B16": (2048, "modern", dict(n_layer=4, n_head=4, n_embd=128), 16, 128, 5e-3),
}

RUN = r"""
import json, sys, time
t0 = time.perf_counter()
from buildNanoGPT import data
from buildNanoGPT.modern import recipe_kw
from buildNanoGPT.tokenizer import tokenizer_of
from buildNanoGPT.train import DDPConfig, TrainingConfig, create_model, set_random_seed, train_GPT
spec = json.loads(sys.argv[1])
kw = recipe_kw(spec["recipe"], "cpu_default")
bt = spec["B"] * spec["T"]
cf = TrainingConfig.cpu_default(**{**kw, "data_dir": spec["data_dir"], "B": spec["B"], "T": spec["T"],
     "total_batch_size": bt, "max_lr": spec["max_lr"], "max_steps": spec["steps"], "log_dir": spec["log_dir"],
     "val_interval": max(spec["steps"] // 4, 1), "val_loss_steps": max(24576 // bt, 1), "hellaswag_interval": 0,
     "sample_interval": 0, "checkpoint_interval": 0, "overwrite": True, "vocab_size": spec["vocab"],
     **spec["extra"]})
ddp = DDPConfig(device="cpu", verbose=False)
set_random_seed(cf.seed)
enc = tokenizer_of(cf.data_dir)
tl = data.DataLoaderLite(B=cf.B, T=cf.T, ddp_cf=ddp, split="train", data_root=cf.data_dir, verbose=False)
vl = data.DataLoaderLite(B=cf.B, T=cf.T, ddp_cf=ddp, split="val", data_root=cf.data_dir, verbose=False)
model = create_model(ddp, config=cf.gpt_config(**spec["model_kw"])) # width and depth: not a CLI setting yet
s = train_GPT(model, tl, vl, cf, ddp, enc=enc)
from buildNanoGPT.evals import generate_text
samples = generate_text(model, enc, ddp, prompt="KING.\n", num_return_sequences=2, max_length=96) if spec["sample"] else []
print("RESULT " + json.dumps(dict(val=s["final_val_loss"], val_bpb=s["evals"].get("val_bpb"), tok_s=s["tokens_per_sec"],
      tokens=s["tokens"], wall=time.perf_counter() - t0, params=s["params"], samples=samples)))
"""

def prep(vocab, root: Path) -> tuple[str, float]:
    "The data folder of `vocab` (None: GPT-2's), and how long its preparation took from an empty folder."
    d = root / ("shakespeare" if vocab is None else f"shakespeare_bpe{vocab}")
    cmd = [sys.executable, "-c", "from buildNanoGPT.cli import prep_cli; prep_cli()", "--data-dir", str(d)]
    t0 = time.perf_counter()
    subprocess.run(cmd + ([] if vocab is None else ["--vocab-size", str(vocab)]), check=True, capture_output=True)
    return str(d), time.perf_counter() - t0 # a folder prepared before: nothing to do (the first row has the time)

def run(spec) -> dict:
    r = subprocess.run([sys.executable, "-c", RUN, json.dumps(spec)], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if not line:
        raise SystemExit(r.stdout[-3000:] + r.stderr[-3000:])
    return json.loads(line[-1][7:])

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=165.0) # training time (prep and start-up come on top)
    p.add_argument("--steps", type=int, default=None) # fixed steps instead of --seconds: comparisons immune to load
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--root", default="/tmp/first_run")
    p.add_argument("--out", default="benchmarks/first_run_results.jsonl")
    a = p.parse_args()
    root = Path(a.root); root.mkdir(parents=True, exist_ok=True)
    for name in a.only or CONFIGS:
        vocab, recipe, model_kw, B, T, lr, *extra = CONFIGS[name]
        data_dir, prep_s = prep(vocab, root)
        base = dict(data_dir=data_dir, recipe=recipe, model_kw=model_kw, B=B, T=T, max_lr=lr,
                    vocab=50257 if vocab is None else -(-vocab // 64) * 64, log_dir=str(root / f"log_{name}"),
                    extra=extra[0] if extra else {})
        if a.steps is None:
            cal = run({**base, "steps": 30, "sample": False})
        steps = a.steps or int(a.seconds * cal["tok_s"] / (B * T))
        res = run({**base, "steps": steps, "sample": True})
        row = dict(name=name, seconds=None if a.steps else a.seconds, prep_s=round(prep_s, 1), steps=steps, load=os.getloadavg()[0], **res)
        print(json.dumps(row), flush=True)
        with open(a.out, "a") as f:
            f.write(json.dumps(row) + "\n")

if __name__ == "__main__":
    main()
