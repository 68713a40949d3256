"""Checkpoints outlive the world size: a run saved by 2 processes continues on 1, and one saved by 1 continues on 2,
with DDP and with FSDP, and ends with the parameters of a run that trained the same global batch in one go.

One chain of runs in one log folder, each leg resumed from the last one's checkpoint, covers the four changes:
1 process (steps 0-2: the uninterrupted run's checkpoint at step 2) -> 2, DDP (3-4) -> 1 (5-6) -> 2, FSDP (7-8) -> 1 (9). The shards hold an odd number of
`B*T` chunks, so a step of two ranks often reads the end of one shard and the start of the next, and the run
passes epoch ends too: the token stream, not just the weights, has to continue where it was."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from test_ddp import _env, _train_losses, _write_shards
from limits import HANG_S

STEPS, B, T = 10, 2, 32
CLI = [sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(Path(sys.executable).parent / "buildnanogpt-train")]
START = 2 # the chain starts from the one-process run's checkpoint at this step
# (launcher, extra options, the step it stops after): the legs of the chain, each resumed from the one before
LEGS = [(TORCHRUN, [], 4), (CLI, [], 6), (TORCHRUN, ["--strategy", "fsdp"], 8), (CLI, [], None)]


def _args(data_dir, log_dir, recipe="lecture"):
    # 4 micro-batches of B*T per step: one process accumulates 4, each of 2 ranks 2; a checkpoint every 2 steps. The
    # modern recipe's AdamW (embeddings, head) at a small rate, as in tests/test_fsdp.py: Adam gives an embedding row
    # whose gradient nearly cancels its full step, so the last bits of any all-reduce show there at 1e-3
    lr = "1e-3" if recipe == "lecture" else "3e-5"
    return ["--recipe", recipe, "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", str(B), "-T", str(T),
            "--total-batch-size", str(4 * B * T), "--max-steps", str(STEPS), "--warmup-steps", "2", "--max-lr", lr,
            "--val-interval", "5", "--val-loss-steps", "2", "--hellaswag-dir", "no_hellaswag", "--sample-interval", "0",
            "--checkpoint-interval", "2", "--device", "cpu", "--log-dir", str(log_dir), "--log-interval", "1"]


def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\nSTDOUT:\n{r.stdout}\nSTDERR:\n{r.stderr}"
    return r.stdout


def _params(log_dir, step):
    return torch.load(Path(log_dir) / f"model_{step:05d}.pt")["model"]


def _chain(tmp_path, legs, recipe="lecture", muon_bound=1e-4):
    "Resume a copy of the one-process run's step-START checkpoint leg by leg; each leg's weights against that run's."
    # 7 chunks of B*T per shard (an odd number): 2 train shards are 14 chunks, an epoch every 3.5 steps
    data_dir = _write_shards(tmp_path / "data", n_train=2, n_tokens=7 * B * T + 1)
    ref, log_dir = tmp_path / "ref", tmp_path / "log"
    _run(CLI + _args(data_dir, ref, recipe), tmp_path) # the known answer: one process, all steps in one go
    shutil.copytree(ref, log_dir) # the chain's first leg: one process up to step START (its later checkpoints go)
    for p in log_dir.glob("model_*.pt"):
        if p.name != f"model_{START:05d}.pt": p.unlink()
    for i, (launcher, extra, stop) in enumerate(legs):
        out = _run(launcher + _args(data_dir, log_dir, recipe) + extra + ["--resume"]
                   + ([] if stop is None else ["--stop-at-step", str(stop)]), tmp_path)
        # it says it continues on another number of processes, with the gradient accumulation that keeps the batch
        was, now = (2, 1) if launcher is CLI else (1, 2)
        line = f"resume: saved by {was} process{'es' * (was > 1)}, continuing on {now} (gradient accumulation {4 // was} -> {4 // now})"
        resumed = log_dir / f"model_{legs[i - 1][2] if i else START:05d}.pt"
        assert line in out and f"resuming from {resumed}" in out, out
        step = STEPS - 1 if stop is None else stop
        want, got = _params(ref, step), _params(log_dir, step)
        muon = {k for k, v in want.items() if recipe == "modern" and v.dim() == 2 and ".h." in f".{k}"}
        diff = max((want[k] - p).abs().max().item() for k, p in got.items() if k not in muon)
        muon_diff = max([(want[k] - got[k]).abs().max().item() for k in muon] or [0.0])
        print(f"{recipe} leg {i} ({'2 processes' if launcher is TORCHRUN else '1 process'} {' '.join(extra)}): max "
              f"parameter difference at step {step} vs the uninterrupted run: {diff:.3e} (Muon's matrices {muon_diff:.3e})")
        assert diff < 1e-4 and muon_diff < muon_bound, (i, step, diff, muon_diff)
    # every step's loss (the mean over the ranks: another token stream would change it) is the uninterrupted run's
    steps = [int(l.split()[0]) for l in (log_dir / "log.txt").read_text().splitlines() if l.split()[1] == "train"]
    assert steps == list(range(STEPS))
    np.testing.assert_allclose(_train_losses(log_dir / "log.txt"), _train_losses(ref / "log.txt"), rtol=0, atol=1e-4)
    assert len(set(_train_losses(ref / "log.txt"))) == STEPS # it trained: not a comparison of equal numbers
    ck = torch.load(log_dir / f"model_{STEPS - 1:05d}.pt")
    assert ck["world_size"] == 1 and ck["train_loader"][0]["position"] == "global"


def test_resume_on_another_number_of_processes(tmp_path):
    _chain(tmp_path, LEGS)


def test_modern_recipe_resumes_on_another_number_of_processes(tmp_path):
    """Muon's momentum and AdamW's moments come back too, through an FSDP leg: 1 process -> 2 (FSDP) -> 1. Muon's
    Newton-Schulz runs in bf16: gradients summed in another order (any all-reduce) move an element of its update by a
    bf16 step, about 1e-4 after a few steps (tests/test_fsdp.py measures DDP's and FSDP's alike)."""
    _chain(tmp_path, [(TORCHRUN, ["--strategy", "fsdp"], 4), (CLI, [], None)], recipe="modern", muon_bound=2e-4)
