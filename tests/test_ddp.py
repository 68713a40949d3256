"""DDP known answer: `torchrun --nproc_per_node=2` on the CPU (gloo) ends with the same parameters as one process
that sees the same global batch; its checkpoint loads into a plain model."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from buildNanoGPT.model import GPT, GPTConfig
from limits import HANG_S, lines_until

STEPS = 3
B, T = 2, 32


def _write_shards(d: Path, n_train=2, n_tokens=8192, seed=0):
    "Tiny uint16 token shards in the `{name}_{split}_{index:06d}.npy` layout (shard 0 is val)."
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(1 + n_train):
        split = "val" if i == 0 else "train"
        np.save(d / f"tiny_{split}_{i:06d}.npy", rng.integers(0, 50257, n_tokens, dtype=np.int64).astype(np.uint16))
    return d


def _write_hellaswag(d: Path, n=10, seed=0):
    "A small `hellaswag_val.jsonl` in HellaSwag's real format."
    import json, random
    rng = random.Random(seed)
    words = "the a man woman dog ball runs jumps kitchen slowly then throws catches water over".split()
    phrase = lambda k: " ".join(rng.choice(words) for _ in range(k))
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "hellaswag_val.jsonl", "w") as f:
        for i in range(n):
            ctx = phrase(rng.randint(4, 10)).capitalize() + "."
            f.write(json.dumps({"ind": i, "activity_label": "Test", "ctx_a": ctx, "ctx_b": "", "ctx": ctx, "split": "val",
                                "split_type": "indomain", "label": rng.randint(0, 3), "source_id": f"t~{i}",
                                "endings": [phrase(rng.randint(2, 6)) + "." for _ in range(4)]}) + "\n")
    return d


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _args(data_dir, log_dir, hellaswag_dir):
    # 4 micro-batches of B*T per step: one process accumulates 4, each of 2 ranks accumulates 2 (no_sync on the first)
    return ["--recipe", "lecture", "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", str(B), "-T", str(T),
            "--total-batch-size", str(4 * B * T), "--max-steps", str(STEPS), "--warmup-steps", "1", "--max-lr", "1e-3",
            "--val-interval", "2", "--val-loss-steps", "2", "--hellaswag-interval", "2", "--sample-interval", "0",
            "--checkpoint-interval", "0", "--device", "cpu", "--log-dir", str(log_dir), "--hellaswag-dir", str(hellaswag_dir), "--log-interval", "1"]


def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, f"{' '.join(cmd)}\nSTDOUT:\n{r.stdout}\nSTDERR:\n{r.stderr}"
    return r.stdout


def _train_losses(log_file):
    return [float(l.split()[2]) for l in Path(log_file).read_text().splitlines() if l.split()[1] == "train"]


def test_ddp_two_ranks_equal_single_process(tmp_path):
    data_dir = _write_shards(tmp_path / "data")
    hs = _write_hellaswag(tmp_path / "hellaswag", n=11) # odd: the ranks get 6 and 5 examples
    single = _run([sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()",
                   *_args(data_dir, tmp_path / "single", hs)], tmp_path)
    assert "=> calculated gradient accumulation steps: 4" in single
    script = Path(sys.executable).parent / "buildnanogpt-train" # the console script, as a user would launch it
    launcher = [str(script)] if script.exists() else ["-c", "from buildNanoGPT.cli import train_cli; train_cli()"]
    assert script.exists(), "buildnanogpt-train console script not installed (pip install -e .)"
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *launcher,
                *_args(data_dir, tmp_path / "ddp", hs)], tmp_path)
    assert "=> calculated gradient accumulation steps: 2" in ddp
    assert ddp.count("using device: cpu") == 1 # only the master prints
    assert ddp.count("final validation loss:") == 1
    # HellaSwag split across the ranks (i % world == rank) and the counts summed: the same accuracy lines
    hella = lambda out: [l for l in out.splitlines() if l.startswith("HellaSwag accuracy:")]
    assert len(hella(single)) == 2 and all("/11=" in l for l in hella(single)), single
    assert hella(ddp) == hella(single), (hella(ddp), hella(single))

    ck1 = torch.load(tmp_path / "single" / f"model_{STEPS - 1:05d}.pt")
    ck2 = torch.load(tmp_path / "ddp" / f"model_{STEPS - 1:05d}.pt")
    assert ck2["world_size"] == 2 and len(ck2["train_loader"]) == 2
    assert ck1["model"].keys() == ck2["model"].keys()
    diff = max((ck1["model"][k] - ck2["model"][k]).abs().max().item() for k in ck1["model"])
    print(f"max parameter difference DDP(2) vs single process: {diff:.3e}")
    assert diff < 1e-5, diff
    # the parameters moved (the comparison is not trivially true)
    torch.manual_seed(0)
    assert (ck1["model"]["lm_head.weight"] - GPT(GPTConfig.cpu_tiny(vocab_size=50304)).lm_head.weight).abs().max() > 1e-4
    np.testing.assert_allclose(_train_losses(tmp_path / "single" / "log.txt"), _train_losses(tmp_path / "ddp" / "log.txt"),
                               rtol=0, atol=1e-5)
    # a checkpoint written under DDP loads into a plain model (no `module.` prefix)
    plain = GPT(GPTConfig(**ck2["config"]))
    plain.load_state_dict(ck2["model"])


def test_ddp_ctrl_c_checkpoints_and_resumes(tmp_path):
    """Ctrl-C in a torchrun terminal (SIGINT to the whole process group): every rank finishes the step, rank 0 writes a
    checkpoint with both ranks' loader states, and a torchrun --resume run continues from it."""
    import os, signal
    data_dir = _write_shards(tmp_path / "data")
    hs = tmp_path / "no_hellaswag"
    log_dir = tmp_path / "log"
    script = str(Path(sys.executable).parent / "buildnanogpt-train")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script]
    args = lambda max_steps: [a if a != str(STEPS) else str(max_steps) for a in _args(data_dir, log_dir, hs)]
    p = subprocess.Popen(launch + args(100000), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    lines = lines_until(p, "step     2 |")
    os.killpg(p.pid, signal.SIGINT) # what the terminal does on Ctrl-C
    lines += p.stdout.readlines()
    p.wait(timeout=HANG_S) # torchrun itself reports the signal with a non-zero exit; the workers stop cleanly
    out = "".join(lines)
    ckpts = sorted(log_dir.glob("model_*.pt"))
    assert len(ckpts) == 1 and "stopped after step" in out, out
    ck = torch.load(ckpts[0])
    assert ck["world_size"] == 2 and [s["process_rank"] for s in ck["train_loader"]] == [0, 1]
    step = ck["step"]
    resumed = _run(launch + args(step + 3) + ["--resume"], tmp_path)
    assert f"resuming from {ckpts[0]}" in resumed and f"step {step + 1:5d} |" in resumed, resumed
    steps = [int(l.split()[0]) for l in (log_dir / "log.txt").read_text().splitlines() if l.split()[1] == "train"]
    assert steps == list(range(step + 3))
