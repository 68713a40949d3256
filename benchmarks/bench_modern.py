"""Lecture recipe vs the changes of nbs/05_beyond on the bundled plays, on CPU (one thread per run).

    python benchmarks/bench_modern.py ablation   # each change alone and the modern set, at equal tokens, per seed
    python benchmarks/bench_modern.py sweep      # peak learning rates of the lecture recipe and of the modern set
    python benchmarks/bench_modern.py walltime   # lecture vs modern at equal wall time, per seed
    python benchmarks/bench_modern.py plot       # benchmarks/modern_ablation.png from the saved results

Two runs go at a time, one thread each (the machine has 2 cores): the two arms of a wall-time comparison run side by
side, so they see the same load. Results go to benchmarks/modern_results.json (one record per run, with its curve).
"""
from __future__ import annotations

import argparse, json, math, os, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "modern_results.json"
DATA = Path(os.environ.get("BENCH_DATA", "data/shakespeare"))

# model options and optimizer of each arm, on top of the lecture recipe (cpu_default: cpu_narrow, AdamW)
ARMS = {
    "lecture": {},
    "rotary": dict(model=dict(rotary=True)),
    "qk_norm": dict(model=dict(qk_norm=True)),
    "relu2": dict(model=dict(relu2=True)),
    "untied": dict(model=dict(tie_embeddings=False)),
    "zero_init": dict(model=dict(zero_init_proj=True)),
    "softcap": dict(model=dict(logit_softcap=15.0)),
    "muon": dict(optimizer="muon"),
}
MODERN = dict(model=dict(rotary=True, qk_norm=True, relu2=True, tie_embeddings=False, zero_init_proj=True), optimizer="muon")


def worker(spec: dict) -> dict:
    "Train one arm; return its curve [(step, tokens, train_seconds, val_loss)]."
    import torch
    torch.set_num_threads(1)
    from buildNanoGPT import data
    from buildNanoGPT.model import GPTConfig
    from buildNanoGPT.modern import build_model, muon_adamw
    from buildNanoGPT.train import set_random_seed
    B, T, steps, warmup = spec["B"], spec["T"], spec["steps"], spec["warmup"]
    budget = spec.get("seconds") # equal wall time: the schedule runs on the fraction of the budget used
    set_random_seed(spec["seed"])
    model = build_model(GPTConfig.cpu_narrow(vocab_size=50257, **spec.get("model", {})))
    lr, min_lr = spec["lr"], 0.1 * spec["lr"]
    if spec.get("optimizer") == "muon": opt = muon_adamw(model, lr, spec["muon_lr"], weight_decay=0.1, master_process=False)
    else: opt = model.configure_optimizers(weight_decay=0.1, learning_rate=lr, device_type="cpu", master_process=False)
    class Q: ddp_rank, ddp_world_size, master_process = 0, 1, True
    train = data.DataLoaderLite(B=B, T=T, ddp_cf=Q(), split="train", data_root=str(DATA), verbose=False)
    val = data.DataLoaderLite(B=B, T=T, ddp_cf=Q(), split="val", data_root=str(DATA), verbose=False)

    @torch.no_grad()
    def val_loss():
        model.eval(); val.reset()
        tot = sum(model(*val.next_batch(), return_logits=False)[1].item() for _ in range(spec["val_steps"]))
        model.train()
        return tot / spec["val_steps"]

    def lr_at(step, elapsed):
        if step < warmup: return lr * (step + 1) / warmup
        frac = elapsed / budget if budget else (step - warmup) / max(1, steps - warmup)
        return min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, frac))) * (lr - min_lr)

    curve, elapsed, step = [(0, 0, 0.0, val_loss())], 0.0, 0
    evals = spec["evals"]
    next_eval = 1
    while (elapsed < budget) if budget else (step < steps):
        t0 = time.perf_counter()
        x, y = train.next_batch()
        _, loss = model(x, y, return_logits=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        s = lr_at(step, elapsed)
        for g in opt.param_groups: g["lr"] = s * g.get("lr_scale", 1.0)
        opt.step()
        elapsed += time.perf_counter() - t0
        step += 1
        if not math.isfinite(loss.item()): curve.append((step, step * B * T, elapsed, float("nan"))); break
        done = elapsed / budget if budget else step / steps
        if done >= next_eval / evals or (not budget and step == steps):
            curve.append((step, step * B * T, elapsed, val_loss())); next_eval = math.floor(done * evals) + 1
    if budget and curve[-1][0] != step: curve.append((step, step * B * T, elapsed, val_loss()))
    return dict(spec=spec, curve=curve, final=curve[-1][3], steps=step, seconds=elapsed)


def run_pair(specs: list[dict]) -> list[dict]:
    "Run up to two specs side by side, one subprocess each."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, "worker", json.dumps(s)], stdout=subprocess.PIPE, env=env, text=True)
             for s in specs]
    out = []
    for p in procs:
        o, _ = p.communicate()
        if p.returncode: raise RuntimeError(f"worker failed ({p.returncode})")
        out.append(json.loads(o.strip().splitlines()[-1]))
    return out


def load(): return json.loads(RESULTS.read_text()) if RESULTS.exists() else []
def save(recs):
    tmp = RESULTS.with_suffix(".tmp"); tmp.write_text(json.dumps(recs, indent=0)); os.replace(tmp, RESULTS)


def base(**kw):
    return {**dict(B=8, T=128, steps=200, warmup=20, val_steps=12, evals=5, lr=5e-3, muon_lr=0.02), **kw}


def schedule(specs, tag, recs):
    done = {json.dumps(r["spec"], sort_keys=True) for r in recs}
    todo = [s | {"tag": tag} for s in specs if json.dumps(s | {"tag": tag}, sort_keys=True) not in done]
    for i in range(0, len(todo), 2):
        load1 = os.getloadavg()[0]
        for r in run_pair(todo[i:i + 2]):
            r["load_before"] = load1
            recs.append(r); save(recs)
            s = r["spec"]
            print(f"{tag:8s} {s.get('arm', ''):10s} seed {s['seed']} lr {s['lr']:g} muon_lr {s.get('muon_lr')}: "
                  f"val {r['final']:.4f} after {r['steps']} steps, {r['seconds']:.0f}s (load {load1:.1f})", flush=True)


def arm_spec(name, **kw):
    a = MODERN if name == "modern" else ARMS[name]
    return base(arm=name, model=a.get("model", {}), optimizer=a.get("optimizer", "adamw"), **kw)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["worker", "sweep", "ablation", "walltime", "all", "plot", "report"])
    p.add_argument("spec", nargs="?")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--lr", type=float, default=5e-3, help="AdamW peak LR of every arm")
    p.add_argument("--muon-lr", type=float, default=0.02)
    p.add_argument("--modern-lr", type=float, help="AdamW peak LR of the modern arm (default: --lr)")
    p.add_argument("--seconds", type=float, default=100)
    p.add_argument("--arms", nargs="+", default=list(ARMS) + ["modern"])
    args = p.parse_args(argv)
    if args.what == "worker": print(json.dumps(worker(json.loads(args.spec)))); return
    if args.what == "plot": return plot(load())
    if args.what == "report": return print(report(load()))
    from buildNanoGPT.data import shakespeare_prep
    shakespeare_prep(str(DATA))
    recs = load()
    if args.what == "all": # the sweep, then wall time and the ablation at each recipe's best learning rates
        main(["sweep"])
        lec, mod = best(load(), "lecture"), best(load(), "modern")
        print(f"best: lecture lr {lec['lr']:g}; modern lr {mod['lr']:g}, muon_lr {mod['muon_lr']:g}", flush=True)
        common = ["--lr", str(lec["lr"]), "--modern-lr", str(mod["lr"]), "--muon-lr", str(mod["muon_lr"])]
        main(["walltime", *common, "--seconds", str(args.seconds), "--seeds", "0", "1", "2"])
        recs = load() # the sweep's best runs are the ablation's seed-0 runs of both recipes (the same spec)
        for r in (x for x in list(recs) if x["spec"]["tag"] == "sweep" and x["spec"] in (lec, mod)):
            recs.append({**r, "spec": {**r["spec"], "tag": "ablation"}, "copied_from": "sweep"})
        save(recs)
        singles = [a for a in ARMS if a != "lecture"]
        for seeds, arms in (([1], ["lecture", "modern"]), ([0], singles), ([2], ["lecture", "modern"]), ([1], singles)):
            main(["ablation", *common, "--seeds", *map(str, seeds), "--arms", *arms])
        return plot(load())
    if args.what == "sweep":
        specs = [arm_spec("lecture", lr=lr, seed=0) for lr in (2.5e-3, 5e-3, 1e-2, 1.25e-3)]
        specs += [arm_spec("modern", lr=lr, muon_lr=mlr, seed=0)
                  for lr, mlr in ((5e-3, 0.02), (5e-3, 0.05), (1e-2, 0.05), (2.5e-3, 0.02))]
        schedule(specs, "sweep", recs)
    elif args.what == "ablation":
        specs = [arm_spec(a, seed=s, lr=(args.modern_lr or args.lr) if a == "modern" else args.lr, muon_lr=args.muon_lr)
                 for s in args.seeds for a in args.arms]
        schedule(specs, "ablation", recs)
    elif args.what == "walltime":
        specs = []
        for s in args.seeds: # the two arms of one seed side by side
            specs += [arm_spec("lecture", seed=s, lr=args.lr, seconds=args.seconds, evals=8),
                      arm_spec("modern", seed=s, lr=args.modern_lr or args.lr, muon_lr=args.muon_lr, seconds=args.seconds, evals=8)]
        schedule(specs, "walltime", recs)


def report(recs) -> str:
    "Markdown tables: the sweep, the ablation (final validation loss per seed, mean, mean difference to the lecture recipe), wall time."
    import statistics as st
    out = ["| sweep run (seed 0, 200 steps) | AdamW peak LR | Muon LR | final val loss |", "|---|---|---|---|"]
    for r in (x for x in recs if x["spec"]["tag"] == "sweep"):
        s = r["spec"]
        out.append(f"| {s['arm']} | {s['lr']:g} | {s['muon_lr'] if s['optimizer'] == 'muon' else '-'} | {r['final']:.4f} |")
    abl = [r for r in recs if r["spec"]["tag"] == "ablation"]
    by = {}
    for r in abl: by.setdefault(r["spec"]["arm"], {})[r["spec"]["seed"]] = r["final"]
    lec = by.get("lecture", {})
    out += ["", "| arm (equal tokens: 200 steps, 204,800 tokens) | val loss per seed | mean | mean diff vs lecture (same seeds) |",
            "|---|---|---|---|"]
    for arm, d in by.items():
        common = [k for k in d if k in lec]
        diff = st.mean(d[k] - lec[k] for k in common) if common else float("nan")
        out.append(f"| {arm} | " + ", ".join(f"s{k}: {v:.4f}" for k, v in sorted(d.items())) +
                   f" | {st.mean(d.values()):.4f} | {diff:+.4f} ({len(common)} seeds) |")
    wt = {}
    for r in (x for x in recs if x["spec"]["tag"] == "walltime"): wt.setdefault(r["spec"]["seed"], {})[r["spec"]["arm"]] = r
    if wt:
        out += ["", "| seed (equal wall time) | lecture: val loss, steps | modern: val loss, steps | modern - lecture | load before |",
                "|---|---|---|---|---|"]
        diffs = []
        for seed, d in sorted(wt.items()):
            if set(d) != {"lecture", "modern"}: continue
            l, m = d["lecture"], d["modern"]; diffs.append(m["final"] - l["final"])
            out.append(f"| {seed} | {l['final']:.4f}, {l['steps']} ({l['seconds']:.0f} s) | {m['final']:.4f}, {m['steps']} "
                       f"({m['seconds']:.0f} s) | {diffs[-1]:+.4f} | {l.get('load_before', float('nan')):.1f} |")
        if diffs:
            sd = st.stdev(diffs) if len(diffs) > 1 else float("nan")
            out.append(f"\nmean difference modern - lecture at equal wall time: {st.mean(diffs):+.4f} "
                       f"(sd {sd:.4f}, {len(diffs)} seeds)")
    return "\n".join(out)


def best(recs, arm) -> dict:
    "The sweep's spec of `arm` with the lowest final validation loss."
    runs = [r for r in recs if r["spec"]["tag"] == "sweep" and r["spec"]["arm"] == arm and math.isfinite(r["final"])]
    return min(runs, key=lambda r: r["final"])["spec"]


def plot(recs, out=HERE / "modern_ablation.png"):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 2, figsize=(13, 4.8))
    abl = [r for r in recs if r["spec"]["tag"] == "ablation"]
    arms = list(dict.fromkeys(r["spec"]["arm"] for r in abl))
    cmap = plt.get_cmap("tab10")
    for i, a in enumerate(arms):
        for j, r in enumerate(x for x in abl if x["spec"]["arm"] == a):
            c = r["curve"]
            axs[0].plot([t[1] / 1e3 for t in c], [t[3] for t in c], color=cmap(i % 10), lw=2.2 if a in ("lecture", "modern") else 1,
                        ls="-" if j == 0 else "--", label=a if j == 0 else None)
    axs[0].set(xlabel="training tokens (thousands)", ylabel="validation loss", title="equal tokens: each change alone, and the modern set")
    wt = [r for r in recs if r["spec"]["tag"] == "walltime"]
    for r in wt:
        a = r["spec"]["arm"]; c = r["curve"]
        axs[1].plot([t[2] for t in c], [t[3] for t in c], color="C0" if a == "lecture" else "C3",
                    label=f"{a} (seed {r['spec']['seed']})", ls=["-", "--", ":"][r["spec"]["seed"] % 3])
    axs[1].set(xlabel="training seconds (one thread)", ylabel="validation loss", title="equal wall time: lecture vs modern")
    for ax in axs:
        ax.grid(alpha=.3); ax.legend(fontsize=8)
        lo = min([t[3] for r in recs if r["spec"]["tag"] in ("ablation", "walltime") for t in r["curve"] if math.isfinite(t[3])] or [3])
        ax.set_ylim(lo - 0.1, lo + 2.5)
    fig.tight_layout(); fig.savefig(out, dpi=110)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
