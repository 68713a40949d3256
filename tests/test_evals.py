"""A new eval, written outside the library: one function passed to `train_GPT(evals=...)`. It is run on schedule,
logged to log.txt (`step stream value`), kept in the summary, and drawn by `viz.plot_log` in a panel of its own.
And bits per byte under torchrun: the ranks sum their nats and bytes before dividing."""
import contextlib
import io
import os

import torch
from matplotlib.figure import Figure

from buildNanoGPT import data
from buildNanoGPT.dist import DDPConfig, raw_model
from buildNanoGPT.evals import Eval, default_evals
from buildNanoGPT.model import GPTConfig
from buildNanoGPT.train import TrainingConfig, create_model, set_random_seed, train_GPT
from buildNanoGPT.viz import _draw, plot_log, read_log


def weight_norm_eval(model, ctx):
    "A toy eval: the RMS of the token embedding (stream `wte_rms`), a number the loop knows nothing about."
    w = raw_model(model).transformer.wte.weight
    return {"wte_rms": w.detach().pow(2).mean().sqrt().item()}


def test_a_toy_eval_is_logged_and_plotted(tmp_path):
    torch.set_num_threads(1)
    shards = tmp_path / "plays"
    from buildNanoGPT import prep
    prep.write_shards(data.shakespeare_docs()[:2], shards, "plays", shard_size=2**14, progress=False)
    cf = TrainingConfig(total_batch_size=64, B=2, T=32, max_steps=5, warmup_steps=1, val_interval=2, val_loss_steps=1,
                        hellaswag=False, sample_interval=0, checkpoint_interval=0, log_dir=str(tmp_path / "log"))
    cpu = DDPConfig.local()
    loaders = [data.DataLoaderLite(B=2, T=32, split=s, data_root=shards, verbose=False) for s in ("train", "val")]
    set_random_seed(0)
    model = create_model(cpu, config=GPTConfig.cpu_tiny())
    evals = default_evals(cf) + [Eval(weight_norm_eval, interval=2)] # the one line that adds it
    with contextlib.redirect_stdout(io.StringIO()):
        summary = train_GPT(model, *loaders, cf, cpu, evals=evals)
    streams = read_log(tmp_path / "log" / "log.txt")
    assert sorted(streams) == ["train", "val", "val_bpb", "wte_rms"]
    assert streams["wte_rms"][0].tolist() == [0, 2, 4] # every 2 steps and the last
    assert abs(streams["wte_rms"][1][-1] - summary["evals"]["wte_rms"]) < 1e-4
    assert abs(summary["evals"]["wte_rms"] - weight_norm_eval(model, None)["wte_rms"]) > 0 # measured before step 4
    fig = Figure()
    _draw(fig, streams, None, {}, None)
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "val bits per byte", "wte_rms"] # no HellaSwag: no panel
    assert fig.axes[2].lines[0].get_xdata().tolist() == [0, 2, 4]
    with contextlib.redirect_stdout(io.StringIO()):
        png = plot_log(tmp_path / "log" / "log.txt", sz=None, out=tmp_path / "loss.png", show=False)
    assert png.read_bytes()[:4] == b"\x89PNG"


BPB_WORKER = r'''
import sys, torch
from buildNanoGPT import data
from buildNanoGPT.dist import DDPConfig
from buildNanoGPT.evals import evaluate_loss_bpb
from buildNanoGPT.model import GPT, GPTConfig
torch.set_num_threads(1)
ddp_cf = DDPConfig(device="cpu", verbose=False) # under torchrun: joins the gloo group; alone: one process
torch.manual_seed(0)
model = GPT(GPTConfig.cpu_tiny())
val = data.DataLoaderLite(B=2, T=32, ddp_cf=ddp_cf, split="val", data_root=sys.argv[1], verbose=False)
loss, bpb = evaluate_loss_bpb(model, val, ddp_cf, steps=int(sys.argv[2]))
if ddp_cf.master_process:
    print(f"result {loss!r} {bpb!r}", flush=True)
ddp_cf.destroy()
'''


def test_val_bpb_under_ddp_sums_nats_and_bytes_over_ranks(tmp_path):
    "2 ranks x 2 batches read the 4 batches one process reads (rank r takes every other one): the same loss and bpb."
    import subprocess, sys
    from buildNanoGPT import prep
    from limits import HANG_S
    shards = tmp_path / "plays"
    prep.write_shards(data.shakespeare_docs()[:2], shards, "plays", shard_size=2**14, progress=False)
    (tmp_path / "worker.py").write_text(BPB_WORKER)
    def result(*launch, steps):
        r = subprocess.run([sys.executable, *launch, str(tmp_path / "worker.py"), str(shards), str(steps)],
                           capture_output=True, text=True, timeout=HANG_S, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, f"STDOUT:\n{r.stdout}\nSTDERR:\n{r.stderr}"
        return [float(v) for v in next(l for l in r.stdout.splitlines() if l.startswith("result ")).split()[1:]]
    single = result(steps=4)
    ddp = result("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", steps=2)
    assert abs(ddp[0] - single[0]) < 1e-5 and abs(ddp[1] - single[1]) < 1e-5, (ddp, single)
    assert 1.0 < single[1] < 10.0, single # bits per byte of English text through a fresh model: a few bits
