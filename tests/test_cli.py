"""buildnanogpt-train end to end: fast start-up, clean stop on SIGINT with a checkpoint, resume; the full CPU default
run (the README's main command) from an empty folder."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from test_ddp import _env, _write_shards

CLI = [sys.executable, "-c", "from buildNanoGPT.train import train_cli; train_cli()"]


def test_import_is_light():
    code = ("import sys, time; t = time.time(); import buildNanoGPT.train; dt = time.time() - t; "
            "bad = [m for m in ('transformers', 'datasets', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad; print(dt)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_data_import_and_prep_help_skip_torch():
    "Tokenizing and `buildnanogpt-prep --help` need neither torch nor requests: both are imported where used."
    code = ("import sys, buildNanoGPT.data as d; d.tokenize('Hello'); "
            "bad = [m for m in ('torch', 'requests', 'transformers', 'datasets', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", "from buildNanoGPT.data import prep_cli; prep_cli()", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--fineweb" in r.stdout, r.stdout + r.stderr


def test_help():
    r = subprocess.run(CLI + ["--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--preset" in r.stdout and "--init-from" in r.stdout and "--resume" in r.stdout


def _tiny_args(data_dir, log_dir, max_steps):
    return ["--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", "2", "-T", "32", "--total-batch-size", "64",
            "--max-steps", str(max_steps), "--val-interval", "1000", "--val-loss-steps", "1", "--no-hellaswag",
            "--sample-interval", "0", "--checkpoint-interval", "0", "--device", "cpu", "--log-dir", str(log_dir)]


def test_sigint_checkpoints_and_resume(tmp_path):
    data_dir = _write_shards(tmp_path / "data")
    log_dir = tmp_path / "log"
    p = subprocess.Popen(CLI + _tiny_args(data_dir, log_dir, 100000), cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout: # wait until training runs, then press "Ctrl-C"
        lines.append(line)
        if line.startswith("step     2 |"):
            p.send_signal(signal.SIGINT)
            break
    lines += p.stdout.readlines()
    rc = p.wait(timeout=120)
    out = "".join(lines)
    assert rc == 0, out
    assert "received SIGINT" in out and "stopped after step" in out, out
    ckpts = sorted(log_dir.glob("model_*.pt"))
    assert len(ckpts) == 1, out
    step = torch.load(ckpts[0])["step"]
    assert step >= 2 and not list(log_dir.glob("*.tmp"))
    r = subprocess.run(CLI + _tiny_args(data_dir, log_dir, step + 3) + ["--resume"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resuming from {ckpts[0]}" in r.stdout and f"step {step + 1:5d} |" in r.stdout, r.stdout
    assert (log_dir / f"model_{step + 2:05d}.pt").exists()
    steps = [int(l.split()[0]) for l in (log_dir / "log.txt").read_text().splitlines() if l.split()[1] == "train"]
    assert steps == list(range(step + 3)) # one record per step, none twice


def test_cpu_default_end_to_end(tmp_path):
    "The README's main command, `buildnanogpt-train` with no arguments, from an empty folder (~1-5 min on 2 cores)."
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", "from buildNanoGPT.train import train_cli; train_cli()"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=900)
    dt = time.time() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout[-3000:])
    val = float(r.stdout.split("final validation loss: ")[1].split()[0])
    assert val < 7.5, val # uniform guessing: ln(50257) = 10.82
    assert (tmp_path / "log" / "log.txt").exists() and list((tmp_path / "log").glob("model_*.pt"))
    assert "rank 0 sample 0:" in r.stdout
    assert (tmp_path / "log" / "loss.png").stat().st_size > 0
    assert dt < 600, dt


def test_init_from_pretrained_dir(tmp_path):
    "Fine-tuning is one flag: --init-from NAME_OR_DIR (here a tiny GPT-2 saved in Hugging Face's format)."
    from buildNanoGPT.model import GPT, GPTConfig
    torch.manual_seed(0)
    src = GPT(GPTConfig.cpu_tiny())
    hf_dir = src.save_hf(tmp_path / "tiny_hf")
    data_dir = _write_shards(tmp_path / "data")
    log_dir = tmp_path / "log"
    r = subprocess.run(CLI + _tiny_args(data_dir, log_dir, 2) + ["--init-from", str(hf_dir)], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"loading weights from pretrained gpt: {hf_dir}" in r.stdout
    assert "step     0 | loss" in r.stdout and "lr 1.0000e-04" in r.stdout # a tenth of max_lr 3e-3, warm-up 1/3
    png = log_dir / "loss.png" # the run ends by plotting its log
    assert f"plot: {png}" in r.stdout and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sd = torch.load(log_dir / "model_00001.pt")["model"]
    moved = (sd["transformer.wpe.weight"] - src.transformer.wpe.weight).abs().max().item()
    assert 0 < moved < 1e-2 # started from the saved weights, then trained a little
