"""The packaged training loop's CPU speed, two source trees side by side (not a test; BENCHMARKS.md "The house").

    python benchmarks/bench_loop.py BEFORE_TREE AFTER_TREE [--runs 3] [--steps 40]

Each run is a fresh process with one torch thread that imports `buildNanoGPT` from the given tree and calls
`train_GPT` on the bundled plays (cpu_narrow, B=8, T=128, 1,024 tokens a step, no evals, no files); the runs of the
two trees alternate, so that load from other processes hits both alike. Reported: the summary's tokens/s (the
steps after the first), median over runs, and the ratio.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

CHILD = r'''
import json, sys, tempfile, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(1)
import contextlib, io
from buildNanoGPT import data
from buildNanoGPT.train import DDPConfig, TrainingConfig, create_model, set_random_seed, train_GPT
shk = data.shakespeare_prep(data_dir=sys.argv[2])
cf = TrainingConfig.cpu_default(max_steps=int(sys.argv[3]), val_interval=0, hellaswag=False, sample_interval=0,
                                log_dir=None, log_interval=1000)
ddp_cf = DDPConfig(device="cpu", verbose=False)
loader = data.DataLoaderLite(B=cf.B, T=cf.T, ddp_cf=ddp_cf, split="train", data_root=shk, verbose=False)
set_random_seed(cf.seed)
model = create_model(ddp_cf, config=cf.gpt_config())
with contextlib.redirect_stdout(io.StringIO()): s = train_GPT(model, loader, None, cf, ddp_cf)
print(json.dumps({"tokens_per_sec": s["tokens_per_sec"], "final_train_loss": s["final_train_loss"]}))
'''

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trees", nargs=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=40)
    a = p.parse_args()
    res = {t: [] for t in a.trees}
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.runs):
            for t in (a.trees if i % 2 == 0 else a.trees[::-1]):
                out = subprocess.run([sys.executable, "-c", CHILD, os.path.abspath(t), f"{d}/shk", str(a.steps)],
                                     capture_output=True, text=True, check=True).stdout
                res[t].append(json.loads(out.strip().splitlines()[-1]))
    print(f"load at end: {os.getloadavg()}")
    med = {}
    for t, rs in res.items():
        med[t] = statistics.median(r["tokens_per_sec"] for r in rs)
        print(f"{t}: tok/s {[round(r['tokens_per_sec']) for r in rs]} median {med[t]:.0f}; "
              f"final loss {[round(r['final_train_loss'], 6) for r in rs]}")
    before, after = a.trees
    print(f"after / before: {med[after] / med[before]:.3f}x")

if __name__ == "__main__":
    main()
