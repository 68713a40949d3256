"""Two machines that share no disk, simulated on one: two `torchrun --nnodes=2 --nproc_per_node=1` processes (one per
"node", c10d rendezvous), each in its own working folder with its own copy of the shards and its own `log/`. Only the
node of global rank 0 writes checkpoints. A run stopped and resumed on both nodes continues everywhere from the newest
checkpoint, whichever node holds it (also when the node that gets rank 0 on the resume has none), with DDP or FSDP
(the middle run shards the model over the two nodes), and gives the losses and weights of one process that trains the
same global batch in one go."""
import os
import signal
import socket
import subprocess
import sys
import shutil
from pathlib import Path

import numpy as np
import torch

from test_ddp import _env, _train_losses, _write_hellaswag, _write_shards
from limits import HANG_S

STEPS = 6 # stopped after step 1, resumed and stopped after step 3, resumed to the end with the nodes' roles swapped
B, T = 2, 32
ADDRS = ("127.0.0.1", "localhost") # c10d orders the nodes by address: the node given ADDRS[0] gets global rank 0


def _args(max_steps=STEPS):
    # paths relative to each node's own folder; 4 micro-batches per step: one process accumulates 4, each node 2
    return ["--recipe", "lecture", "--data-dir", "data", "--log-dir", "log", "--hellaswag-dir", "no_hellaswag", "--model", "cpu_tiny",
            "-B", str(B), "-T", str(T), "--total-batch-size", str(4 * B * T), "--max-steps", str(max_steps),
            "--warmup-steps", "1", "--max-lr", "1e-3", "--val-interval", "2", "--val-loss-steps", "2",
            "--sample-interval", "0", "--checkpoint-interval", "0", "--device", "cpu", "--log-interval", "1"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(nodes, extra, run_id, addrs=ADDRS, timeout=HANG_S):
    "Launch one torchrun per node folder (stdout in `node/out_<run_id>.txt`); kill both on any failure; return the outputs."
    script = Path(sys.executable).parent / "buildnanogpt-train"
    assert script.exists(), "buildnanogpt-train console script not installed (pip install -e .)"
    port, procs, files = _free_port(), [], []
    try:
        for d, addr in zip(nodes, addrs):
            f = open(d / f"out_{run_id}.txt", "w")
            files.append(f)
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
                   f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={run_id}", f"--local-addr={addr}", str(script),
                   *_args(), *extra]
            procs.append(subprocess.Popen(cmd, cwd=d, env=_env(), stdout=f, stderr=subprocess.STDOUT, start_new_session=True))
        for p in procs: p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in files: f.close()
    outs = [(d / f"out_{run_id}.txt").read_text() for d in nodes]
    for p, out in zip(procs, outs): assert p.returncode == 0, out
    return outs


def _ckpts(d): return sorted(p.name for p in (d / "log").glob("model_*.pt"))


def _log_steps(d, stream="train"):
    return [int(l.split()[0]) for l in (d / "log" / "log.txt").read_text().splitlines() if l.split()[1] == stream]


def test_two_nodes_without_shared_disk_resume(tmp_path):
    shards = _write_shards(tmp_path / "shards")
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for d in nodes: shutil.copytree(shards, d / "data") # each machine has its own copy of the data

    # the known answer: one process, the same global batch, all STEPS steps in one go
    ref = tmp_path / "single"
    shutil.copytree(shards, ref / "data")
    r = subprocess.run([sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()", *_args()], cwd=ref,
                       env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stdout + r.stderr

    # 1. stopped after step 1 (as Ctrl-C would): rank 0, on node 0, writes the only checkpoint
    out0, _ = _two_nodes(nodes, ["--stop-at-step", "1"], "run1")
    assert "stopped after step 1" in out0 and "=> calculated gradient accumulation steps: 2" in out0, out0
    assert _ckpts(nodes[0]) == ["model_00001.pt"] and not _ckpts(nodes[1])

    # 2. resumed on both nodes, with FSDP: node 1 has no checkpoint file; rank 0 reads its own (DDP's) and sends it to
    # rank 1; each loads its shard of it. Only node 0 has the HellaSwag file: the ranks agree to skip it (one evaluating
    # alone would wait for the other forever)
    _write_hellaswag(nodes[0] / "hellaswag", n=5)
    out0, _ = _two_nodes(nodes, ["--resume", "--stop-at-step", "3", "--hellaswag-dir", "hellaswag", "--hellaswag-interval", "1",
                                 "--strategy", "fsdp"], "run2")
    assert "resuming from log/model_00001.pt (step 1)" in out0 and "step     2 |" in out0 and "step     0 |" not in out0, out0
    assert "sharding: fsdp over 2 ranks" in out0, out0
    assert "is missing on another machine, so no rank evaluates it" in out0 and "HellaSwag accuracy" not in out0, out0
    assert _ckpts(nodes[0]) == ["model_00001.pt", "model_00003.pt"] and not _ckpts(nodes[1])

    # 3. resumed with the roles swapped (node 1 gets rank 0 and has no checkpoint), DDP again: rank 1 holds the newest
    # (FSDP's, gathered into the plain state dicts) and sends it
    _, out1 = _two_nodes(nodes, ["--resume"], "run3", addrs=ADDRS[::-1])
    assert "resuming from log/model_00003.pt (step 3)" in out1 and "the newest checkpoint is on rank 1's machine" in out1, out1
    assert "step     4 |" in out1 and "step     0 |" not in out1, out1
    assert _ckpts(nodes[1]) == [f"model_{STEPS - 1:05d}.pt"]

    # every step's loss (the mean over both nodes: a node on fresh weights or another step would change it) equals the
    # single run's; rank 0's log.txt is on node 0 for steps 0-3, on node 1 for steps 4-5
    assert _log_steps(nodes[0]) == [0, 1, 2, 3] and _log_steps(nodes[1]) == [4, 5]
    losses = _train_losses(nodes[0] / "log" / "log.txt") + _train_losses(nodes[1] / "log" / "log.txt")
    np.testing.assert_allclose(losses, _train_losses(ref / "log" / "log.txt"), rtol=0, atol=1e-5)
    ck_ref = torch.load(ref / "log" / f"model_{STEPS - 1:05d}.pt")
    ck = torch.load(nodes[1] / "log" / f"model_{STEPS - 1:05d}.pt")
    assert ck["world_size"] == 2 and [s["process_rank"] for s in ck["train_loader"]] == [0, 1]
    diff = max((ck_ref["model"][k] - ck["model"][k]).abs().max().item() for k in ck_ref["model"])
    assert diff < 1e-5, diff
