"""`buildnanogpt-train --recipe modern` end to end: checkpoints that record the modern options, a resumed run equal to
an uninterrupted one, a mismatched resume refused, and torchrun (2 ranks, gloo) equal to one process."""
import subprocess
import sys
from pathlib import Path

import torch

from test_ddp import _env, _write_shards
from limits import HANG_S

CLI = [sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()"]


def _args(data_dir, log_dir, max_steps, total=64):
    return ["--recipe", "modern", "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", "2", "-T", "32",
            "--total-batch-size", str(total), "--max-steps", str(max_steps), "--warmup-steps", "1", "--val-interval", "1000",
            "--val-loss-steps", "1", "--no-hellaswag", "--sample-interval", "0", "--checkpoint-interval", "0",
            "--device", "cpu", "--log-dir", str(log_dir), "--log-interval", "1"]


def _run(cmd, cwd, code=0):
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == code, f"{' '.join(map(str, cmd))}\nSTDOUT:\n{r.stdout}\nSTDERR:\n{r.stderr}"
    return r.stdout + r.stderr


def _train_losses(log_dir):
    return [float(l.split()[2]) for l in (Path(log_dir) / "log.txt").read_text().splitlines() if l.split()[1] == "train"]


def test_recipe_modern_checkpoints_and_resume(tmp_path):
    data_dir = _write_shards(tmp_path / "data")
    whole = _run(CLI + _args(data_dir, tmp_path / "whole", 5), tmp_path)
    assert "Muon:" in whole and "final validation loss:" in whole, whole
    ck = torch.load(tmp_path / "whole" / "model_00004.pt")
    assert ck["config"]["rotary"] and ck["config"]["qk_norm"] and not ck["config"]["tie_embeddings"]
    assert ck["train_config"]["optimizer"] == "muon" and set(ck["optimizer"]) == {"muon", "adamw"}
    assert "transformer.wpe.weight" not in ck["model"] and "lm_head.weight" in ck["model"]
    # stop after step 2 of the same 5-step schedule, then resume: the same losses as the uninterrupted run
    _run(CLI + _args(data_dir, tmp_path / "split", 5) + ["--stop-at-step", "2"], tmp_path)
    resumed = _run(CLI + _args(data_dir, tmp_path / "split", 5) + ["--resume"], tmp_path)
    assert "resuming from" in resumed, resumed
    assert _train_losses(tmp_path / "split") == _train_losses(tmp_path / "whole")
    # the lecture recipe cannot continue a modern run: the difference is named
    out = _run(CLI + [a if a != "modern" else "lecture" for a in _args(data_dir, tmp_path / "split", 8)] + ["--resume"],
               tmp_path, code=2)
    assert "model.rotary: checkpoint True, this run False" in out and "optimizer: checkpoint 'muon'" in out, out
    # sampling from the checkpoint builds the modern model
    s = _run([sys.executable, "-c", "from buildNanoGPT.cli import sample_cli; sample_cli()", str(tmp_path / "whole"),
              "--max-new-tokens", "4", "--num-samples", "1"], tmp_path)
    assert "--- sample 0 ---" in s, s


def test_recipe_modern_torchrun_equals_single_process(tmp_path):
    data_dir = _write_shards(tmp_path / "data")
    _run(CLI + _args(data_dir, tmp_path / "single", 3, total=128), tmp_path)
    script = str(Path(sys.executable).parent / "buildnanogpt-train")
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script,
          *_args(data_dir, tmp_path / "ddp", 3, total=128)], tmp_path)
    a, b = (torch.load(tmp_path / d / "model_00002.pt")["model"] for d in ("single", "ddp"))
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff < 1e-4, diff
