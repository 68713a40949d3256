"""buildnanogpt-train end to end: fast start-up, clean stop on SIGINT with a checkpoint, resume; the CPU default
run (the README's main command) from an empty folder, shortened."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from test_ddp import _env, _write_shards
from limits import HANG_S, lines_until

CLI = [sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()"]


def test_import_is_light():
    code = ("import sys, time; t = time.time(); import buildNanoGPT.train; dt = time.time() - t; "
            "bad = [m for m in ('transformers', 'datasets', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad; print(dt)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stderr


def test_data_import_and_prep_help_skip_torch():
    "Tokenizing and `buildnanogpt-prep --help` need neither torch nor requests: both are imported where used."
    code = ("import sys, buildNanoGPT.data as d; d.tokenize('Hello'); "
            "bad = [m for m in ('torch', 'requests', 'transformers', 'datasets', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", "from buildNanoGPT.cli import prep_cli; prep_cli()", "--help"],
                       capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0 and "--fineweb" in r.stdout, r.stdout + r.stderr


def test_help():
    r = subprocess.run(CLI + ["--help"], capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0 and "--preset" in r.stdout and "--init-from" in r.stdout and "--resume" in r.stdout


def _tiny_args(data_dir, log_dir, max_steps):
    return ["--recipe", "lecture", "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", "2", "-T", "32", "--total-batch-size", "64",
            "--max-steps", str(max_steps), "--val-interval", "1000", "--val-loss-steps", "1", "--no-hellaswag",
            "--sample-interval", "0", "--checkpoint-interval", "0", "--device", "cpu", "--log-dir", str(log_dir), "--log-interval", "1"]


def test_sigint_checkpoints_and_resume(tmp_path):
    data_dir = _write_shards(tmp_path / "data")
    log_dir = tmp_path / "log"
    p = subprocess.Popen(CLI + _tiny_args(data_dir, log_dir, 100000), cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = lines_until(p, "step     2 |") # wait until training runs, then press "Ctrl-C"
    p.send_signal(signal.SIGINT)
    lines += p.stdout.readlines()
    rc = p.wait(timeout=HANG_S)
    out = "".join(lines)
    assert rc == 0, out
    assert "received SIGINT" in out and "stopped after step" in out, out
    ckpts = sorted(log_dir.glob("model_*.pt"))
    assert len(ckpts) == 1, out
    step = torch.load(ckpts[0])["step"]
    assert step >= 2 and not list(log_dir.glob("*.tmp"))
    r = subprocess.run(CLI + _tiny_args(data_dir, log_dir, step + 3) + ["--resume"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resuming from {ckpts[0]}" in r.stdout and f"step {step + 1:5d} |" in r.stdout, r.stdout
    assert (log_dir / f"model_{step + 2:05d}.pt").exists()
    steps = [int(l.split()[0]) for l in (log_dir / "log.txt").read_text().splitlines() if l.split()[1] == "train"]
    assert steps == list(range(step + 3)) # one record per step, none twice


# measured: val 4.7074 nats per token, 2.4889 bits per byte at step 199 of a 200-step run (2026-12-03); the unigram
# distribution of the train tokens scores 6.07 nats, 3.21 bits per byte on the val text
E2E_STEPS, E2E_BPB_BELOW = 200, 2.75


def test_cpu_default_end_to_end(tmp_path):
    """The README's main command, `buildnanogpt-train`, from an empty folder, cut to E2E_STEPS steps (the full
    3,400-step run takes 3-5 min): it prepares the plays in their own tokenizer, learns past what a model without
    context can do, keeps improving on held-out text, and ends with samples, a checkpoint, a plot and the report."""
    r = subprocess.run(CLI + ["--max-steps", str(E2E_STEPS)], cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout[-3000:])
    log = tmp_path / "log"
    rows = [l.split() for l in (log / "log.txt").read_text().splitlines()]
    vals, bpb = ([float(v) for _, s, v in rows if s == k] for k in ("val", "val_bpb"))
    assert len(vals) == 2 and vals[-1] < vals[0] and bpb[-1] < E2E_BPB_BELOW, (vals, bpb) # steps 0 and 199
    assert (tmp_path / "data" / "shakespeare_bpe2048" / "tokenizer.tiktoken").exists() # the plays' own tokenizer
    samples = [l for l in r.stdout.split("rank 0 sample ")[1:]]
    assert len(samples) == 2 and all(s[3:].startswith("KING.\n") for s in samples), r.stdout # the bundled corpus's prompt
    assert re.search(r"\b(the|and|my|you|of|to)\b", " ".join(samples)), samples # words, not punctuation soup
    assert f"checkpoint:    log/model_{E2E_STEPS - 1:05d}.pt" in r.stdout and "plot:          log/loss.png" in r.stdout
    assert "sample:        buildnanogpt-sample log" in r.stdout and "val_bpb: " in r.stdout
    assert (log / "loss.png").stat().st_size > 0
    steps = [l for l in r.stdout.splitlines() if l.startswith("step ")]
    assert [l[:10] for l in steps] == ["step     0", "step   100", "step   199"], steps # every 100th, and the last
    assert all(" | elapsed " in l and " | eta " in l for l in steps)


def test_init_from_pretrained_dir(tmp_path):
    "Fine-tuning is one flag: --init-from NAME_OR_DIR (here a tiny GPT-2 saved in Hugging Face's format)."
    from buildNanoGPT.model import GPT, GPTConfig
    torch.manual_seed(0)
    src = GPT(GPTConfig.cpu_tiny())
    hf_dir = src.save_hf(tmp_path / "tiny_hf")
    data_dir = _write_shards(tmp_path / "data")
    log_dir = tmp_path / "log"
    args = [a for a in _tiny_args(data_dir, log_dir, 2) if a not in ("--model", "cpu_tiny")] # the weights choose it
    r = subprocess.run(CLI + args + ["--init-from", str(hf_dir)], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"loading weights from pretrained gpt: {hf_dir}" in r.stdout
    assert "step     0 | loss" in r.stdout and "lr 8.3333e-06" in r.stdout # a tenth of max_lr 5e-3, warm-up step 1 of 60
    png = log_dir / "loss.png" # the run ends by plotting its log
    assert f"plot: {png}" in r.stdout and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sd = torch.load(log_dir / "model_00001.pt")["model"]
    moved = (sd["transformer.wpe.weight"] - src.transformer.wpe.weight).abs().max().item()
    assert 0 < moved < 1e-2 # started from the saved weights, then trained a little


def test_init_from_a_folder_whose_config_disagrees_with_its_weights(tmp_path):
    "A config.json with the wrong n_layer or width is a one-line error, not a model with random or dropped layers."
    import json, shutil
    from buildNanoGPT.model import GPT, GPTConfig
    good = GPT(GPTConfig.cpu_tiny()).save_hf(tmp_path / "good") # 2 layers, width 64
    data_dir = _write_shards(tmp_path / "data")
    args = [a for a in _tiny_args(data_dir, tmp_path / "log", 2) if a not in ("--model", "cpu_tiny")]
    config = json.loads((good / "config.json").read_text())
    for change, says in (({"n_layer": 1}, "its config.json (n_layer=1) disagrees with its weights: 11 weights in the "
                                          "file are not used (e.g. transformer.h.1."), # 12 less c_attn.bias, which HF's mask pattern hides
                         ({"n_layer": 3}, "its config.json (n_layer=3) disagrees with its weights: 12 weights it needs "
                                          "are not in the file (e.g. transformer.h.2."), # layer 2's
                         ({"n_embd": 128}, "its config.json disagrees with the shapes of its weights")):
        bad = tmp_path / f"bad{len(says)}"
        shutil.copytree(good, bad)
        (bad / "config.json").write_text(json.dumps({**config, **change}))
        r = subprocess.run(CLI + args + ["--init-from", str(bad)], cwd=tmp_path, env=_env(), capture_output=True,
                           text=True, timeout=HANG_S)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
        assert last.startswith(f"buildnanogpt-train: error: {str(bad)!r}: ") and says in last, last
        assert not (tmp_path / "log" / "model_00001.pt").exists()


def test_init_from_a_folder_that_is_not_a_model(tmp_path):
    "A folder without config.json, or without weights, says which (not transformers' hub-and-cache error)."
    from buildNanoGPT.model import GPT, GPTConfig
    (tmp_path / "empty").mkdir()
    (GPT(GPTConfig.cpu_tiny()).save_hf(tmp_path / "noweights") / "model.safetensors").unlink()
    data_dir = _write_shards(tmp_path / "data")
    args = [a for a in _tiny_args(data_dir, tmp_path / "log", 2) if a not in ("--model", "cpu_tiny")]
    for name, says in (("empty", "is not a Hugging Face model folder: it holds no config.json"),
                       ("noweights", "holds a config.json but no weights (model.safetensors or pytorch_model.bin)")):
        r = subprocess.run(CLI + args + ["--init-from", name], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=HANG_S)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 2 and last.startswith(f"buildnanogpt-train: error: {name!r} {says}; save "), r.stderr
        assert "Traceback" not in r.stderr and "hub" not in r.stderr, r.stderr
