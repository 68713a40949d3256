"""Nothing a user types silently corrupts data or loses a run (the training and plotting side), checked as a user
types it: the console scripts in subprocesses. One run per log folder (a lock, --resume or --overwrite), only whole
checkpoints are resumed from, a resume that does not fit says what differs, user errors are one line and exit 2,
a non-finite loss stops the run without a checkpoint of it, and the plot skips nan values and says so."""
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_ddp import _env, _write_shards
from limits import HANG_S, lines_until

TRAIN = [sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()"]
PLOT = [sys.executable, "-c", "from buildNanoGPT.cli import plot_cli; plot_cli()"]


def _args(data_dir, log_dir, max_steps, checkpoint_interval=1):
    return ["--recipe", "lecture", "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", "2", "-T", "32", "--total-batch-size", "64",
            "--max-steps", str(max_steps), "--val-interval", "1000", "--val-loss-steps", "1", "--no-hellaswag",
            "--sample-interval", "0", "--checkpoint-interval", str(checkpoint_interval), "--device", "cpu",
            "--log-dir", str(log_dir), "--log-interval", "1"]


def _run(cmd, cwd, env=None):
    return subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=HANG_S)


def _ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _one_line_error(r, code=2, prog="buildnanogpt-train"):
    "The error is one line on stderr, `<prog>: error: ...`, exit `code`, no traceback; returns the message."
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr
    err = "".join(l for l in r.stderr.splitlines(keepends=True) if not l.startswith(f"{prog}: warning: ")) # said first
    assert err.startswith(f"{prog}: error: "), r.stderr
    return err[len(f"{prog}: error: "):]


def _files(d):
    return sorted(p.name for p in Path(d).iterdir())


def _train_steps(log_dir):
    return [int(l.split()[0]) for l in (Path(log_dir) / "log.txt").read_text().splitlines() if l.split()[1] == "train"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    "Shards, and a finished 3-step run (checkpoints at steps 1 and 2) to copy: (data_dir, run folder)."
    root = tmp_path_factory.mktemp("finished")
    data_dir = _write_shards(root / "data")
    _ok(_run(TRAIN + _args(data_dir, root / "log", 3), root))
    assert _files(root / "log") == [".lock", "log.txt", "loss.png", "model_00001.pt", "model_00002.pt", "run_files.json"]
    return data_dir, root / "log"


def _copy_run(finished, tmp_path):
    data_dir, log = finished
    return data_dir, Path(shutil.copytree(log, tmp_path / "log"))


def test_second_run_refused_then_overwrite_removes_what_the_run_wrote(finished, tmp_path):
    data_dir, log = _copy_run(finished, tmp_path)
    (log / "model_00007.pt.999999.tmp").write_bytes(b"half a checkpoint") # the leftover of a killed write
    before = {n: (log / n).read_bytes() for n in _files(log) if n != ".lock"}
    # the same command again, without --resume or --overwrite: refused, the old run untouched
    msg = _one_line_error(_run(TRAIN + _args(data_dir, log, 2), tmp_path))
    assert msg == (f"log folder {str(log)!r} already holds a run (2 checkpoint(s) up to model_00002.pt, log.txt with 7 "
                   "records); continue it with --resume (resume=True), delete it and start over with --overwrite "
                   "(overwrite=True), or use another --log-dir (log_dir=)\n"), msg
    assert {n: (log / n).read_bytes() for n in _files(log) if n != ".lock"} == before
    # --overwrite: every file the old run wrote goes (not just the ones the new run rewrites), and nothing of yours
    yours = {"notes.txt": b"mine", "model_best.pt": b"a copy", "model_00042.pt": b"from another run"}
    for n, b in yours.items(): (log / n).write_bytes(b)
    out = _ok(_run(TRAIN + _args(data_dir, log, 2) + ["--overwrite"], tmp_path))
    assert (f"removed 1 temp file(s) left in {str(log)!r} by a writer that was stopped: model_00007.pt.999999.tmp"
            in out), out
    assert (f"overwrite: removed 5 file(s) of the previous run in {str(log)!r}; left 3 it did not write: "
            "model_00042.pt, model_best.pt, notes.txt") in out, out
    assert _files(log) == sorted([".lock", "log.txt", "loss.png", "model_00001.pt", "run_files.json", *yours])
    assert {n: (log / n).read_bytes() for n in yours} == yours
    assert _train_steps(log) == [0, 1]
    assert torch.load(log / "model_00001.pt")["train_config"]["max_steps"] == 2 # the new run's checkpoint


def test_concurrent_run_refused_naming_the_pid(finished, tmp_path):
    data_dir, _ = finished
    log = tmp_path / "log"
    first = subprocess.Popen(TRAIN + _args(data_dir, log, 100000, checkpoint_interval=0), cwd=tmp_path, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = lines_until(first, "step     1 |") # wait until the first run trains (it holds the folder by then)
        assert lines and lines[-1].startswith("step     1 |"), "".join(lines)
        for extra in ([], ["--overwrite"]): # not even --overwrite lets a second run in
            msg = _one_line_error(_run(TRAIN + _args(data_dir, log, 3) + extra, tmp_path))
            assert msg.startswith(f"log folder {str(log)!r} is in use by another run (pid {first.pid} on "), msg
        first.send_signal(signal.SIGINT) # the first run is not disturbed: it stops cleanly when asked
        lines += first.stdout.readlines()
        assert first.wait(timeout=HANG_S) == 0, "".join(lines)
    finally:
        if first.poll() is None: first.kill()
    steps = _train_steps(log)
    assert steps == list(range(len(steps))) and len(steps) >= 2 # one writer: no interleaved records
    assert [p.name for p in log.glob("model_*")] == [f"model_{steps[-1]:05d}.pt"]


def test_resume_with_another_model_and_batch_size_lists_the_differences(finished, tmp_path):
    data_dir, log = _copy_run(finished, tmp_path)
    log_before = (log / "log.txt").read_text()
    args = _args(data_dir, log, 5) + ["--resume", "--model", "cpu_small", "--total-batch-size", "128"]
    msg = _one_line_error(_run(TRAIN + args, tmp_path))
    assert msg.splitlines() == [
        f"cannot resume from {log / 'model_00002.pt'}: this run differs from it in what continuing needs:",
        "  model.block_size: checkpoint 64, this run 128", "  model.n_layer: checkpoint 2, this run 4",
        "  model.n_head: checkpoint 2, this run 4", "  model.n_embd: checkpoint 64, this run 128",
        "  total_batch_size: checkpoint 64, this run 128",
        "resume with the checkpoint's settings, or start a new run (--overwrite, or another --log-dir)"], msg
    assert (log / "log.txt").read_text() == log_before


def test_corrupt_newest_checkpoint_is_reported_and_the_previous_one_used(finished, tmp_path):
    data_dir, log = _copy_run(finished, tmp_path)
    newest = log / "model_00002.pt"
    newest.write_bytes(newest.read_bytes()[:1000]) # a copy that did not finish
    out = _ok(_run(TRAIN + _args(data_dir, log, 4) + ["--resume"], tmp_path))
    assert f"skipping checkpoint {newest}: not a zip archive (1,000 bytes): truncated, or not a PyTorch checkpoint\n" in out
    assert f"resuming from {log / 'model_00001.pt'} (step 1)" in out and "step     2 |" in out, out
    assert _train_steps(log) == [0, 1, 2, 3]
    for p in sorted(log.glob("model_*.pt")): # whole again, and plain torch.load (weights_only=True by default) reads them
        ck = torch.load(p)
        assert set(ck) >= {"model", "optimizer", "config", "train_config", "train_loader", "world_size", "data", "rng"}
        assert ck["data"] == dict(dir=str(data_dir), name="tiny", tokens=None, shards=2, tokenizer=None) and ck["world_size"] == 1
    # an empty newest file: reported too
    (log / "model_00003.pt").write_bytes(b"")
    out = _ok(_run(TRAIN + _args(data_dir, log, 4) + ["--resume"], tmp_path))
    assert f"skipping checkpoint {log / 'model_00003.pt'}: empty file (0 bytes)" in out
    assert f"resuming from {newest} (step 2)" in out, out


def test_user_errors_are_one_line_exit_2_and_debug_shows_the_traceback(tmp_path):
    nosuch = tmp_path / "nosuch"
    args = ["--recipe", "lecture", "--data-dir", str(nosuch), "--model", "cpu_tiny", "--device", "cpu", "--log-dir", str(tmp_path / "log")]
    msg = _one_line_error(_run(TRAIN + args, tmp_path))
    assert msg.startswith(f"data directory {str(nosuch)!r} does not exist; prepare data first") and msg.count("\n") == 1
    for r in (_run(TRAIN + args + ["--debug"], tmp_path), _run(TRAIN + args, tmp_path, env={**_env(), "BUILDNANOGPT_DEBUG": "1"})):
        assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr and "FileNotFoundError" in r.stderr, r.stderr
    msg = _one_line_error(_run(TRAIN + ["--max-lr", "-1", "--data-dir", str(nosuch)], tmp_path))
    assert msg == "TrainingConfig.max_lr must be a finite number > 0, got -1.0\n", msg
    msg = _one_line_error(_run(TRAIN + ["--device", "gpu0"], tmp_path))
    assert msg.startswith("device 'gpu0' is not a valid torch device"), msg
    r = _run(TRAIN + ["--resume", "--overwrite"], tmp_path) # argparse's own errors keep their form
    assert r.returncode == 2 and "error: argument --overwrite: not allowed with argument --resume" in r.stderr, r.stderr
    # plot: the same form
    msg = _one_line_error(_run(PLOT + [str(tmp_path / "missing.txt")], tmp_path), prog="buildnanogpt-plot")
    assert msg.startswith(f"no log file at {str(tmp_path / 'missing.txt')!r}"), msg
    r = _run(PLOT + [str(tmp_path / "missing.txt"), "--debug"], tmp_path)
    assert r.returncode == 1 and "Traceback" in r.stderr and "FileNotFoundError" in r.stderr, r.stderr


def _help_entries(text):
    "The argument entries of an argparse `--help` text: each entry's lines joined (first line: the flags)."
    entries = []
    for line in text.splitlines():
        if re.match(r"^  \S", line): entries.append(line.strip())
        elif re.match(r"^\s{3,}\S", line) and entries: entries[-1] += " " + line.strip()
    return [e for e in entries if not e.startswith("-h, --help")]


@pytest.mark.parametrize("cmd", [TRAIN, PLOT], ids=["train", "plot"])
def test_help_shows_every_default(cmd, tmp_path):
    r = _run(cmd + ["--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    entries = _help_entries(r.stdout)
    assert len(entries) >= (28 if cmd is TRAIN else 4), r.stdout
    assert [e for e in entries if "(default: " not in e] == [], r.stdout
    assert any(e.startswith("--max-steps") and "(default: 3400 with cpu_default, 19073 with gpt2_124m)" in e for e in entries) \
        or cmd is PLOT


def test_nan_loss_stops_with_a_message_and_no_nan_checkpoint_and_the_plot_skips_it(finished, tmp_path):
    data_dir, log = _copy_run(finished, tmp_path)
    (log / "model_00002.pt").unlink() # continue from step 1 ...
    # ... with a learning rate a billion times too high: the loss is nan within a step or two
    r = _run(TRAIN + _args(data_dir, log, 8, checkpoint_interval=0) + ["--resume", "--max-lr", "1e9"], tmp_path)
    msg = _one_line_error(r, code=1)
    m = re.fullmatch(r"step (\d+): the training loss is nan \(gradient norm nan\): training diverged; stopped without writing "
                     r"a checkpoint of this step\. The last good checkpoint is (.+): continue from it with --resume "
                     r"\(resume=True\) after lowering --max-lr \(now 1e\+09\) or checking the data\n", msg)
    assert m, msg
    bad_step = int(m.group(1))
    assert m.group(2) == str(log / "model_00001.pt") and bad_step >= 2
    assert _files(log) == [".lock", "log.txt", "loss.png", "model_00001.pt", "run_files.json"] # no checkpoint of a nan model
    assert all(torch.isfinite(v).all() for v in torch.load(log / "model_00001.pt")["model"].values())
    assert (log / "log.txt").read_text().splitlines()[-1] == f"{bad_step} train nan"
    # the plot of that log: a warning names the nan values, the minimum is over the finite ones
    r = _run(PLOT + [str(log / "log.txt"), "--sz", "none", "--out", str(tmp_path / "nan.png")], tmp_path)
    assert r.returncode == 0, r.stderr
    finite = [float(l.split()[2]) for l in (log / "log.txt").read_text().splitlines() if " train " in l and "nan" not in l]
    n_nan = sum(l.endswith(" train nan") for l in (log / "log.txt").read_text().splitlines())
    assert f"Min Train Loss: {min(finite)}\n" in r.stdout, r.stdout
    assert r.stderr == (f"buildnanogpt-plot: warning: {log / 'log.txt'}: {n_nan} non-finite train value{'s' if n_nan > 1 else ''} "
                        f"(nan), the first at step {bad_step}; plots and minima leave them out\n"), r.stderr
    assert (tmp_path / "nan.png").read_bytes()[:4] == b"\x89PNG"


def test_torchrun_every_rank_refuses_a_folder_that_holds_a_run(finished, tmp_path):
    """Under torchrun rank 0 alone takes the lock and checks the folder; the verdict reaches rank 1, so both stop
    (nobody waits forever on the other) and the error is printed once."""
    data_dir, log = _copy_run(finished, tmp_path)
    script = str(Path(sys.executable).parent / "buildnanogpt-train")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script]
    r = _run(launch + _args(data_dir, log, 3), tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert out.count("buildnanogpt-train: error: log folder") == 1 and "already holds a run" in out, out
    # torchrun reports the first failed rank's exit code (2); it may stop the other rank itself, so that one's code varies
    assert "exitcode  : 2" in out and "buildNanoGPT/train.py" not in out, out # no traceback of ours
    assert _files(log) == [".lock", "log.txt", "loss.png", "model_00001.pt", "model_00002.pt", "run_files.json"]


CLAIM = """
import sys
from pathlib import Path
from buildNanoGPT.model import GPTConfig
from buildNanoGPT.checkpoint import RunDirError, claim_log_dir
from buildNanoGPT.train import DDPConfig, TrainingConfig
ddp = DDPConfig(device="cpu", verbose=False)
seen = []
for log_dir in sys.argv[1:]:
    cf = TrainingConfig(B=2, T=32, total_batch_size=128, log_dir=log_dir)
    try:
        with claim_log_dir(cf, GPTConfig.cpu_tiny(), None, ddp) as resume_from: seen.append("claimed")
    except RunDirError as e: seen.append(f"RunDirError: {str(e)[:60]}")
    ddp.barrier()
Path(f"rank{ddp.ddp_rank}.txt").write_text("\\n".join(seen)) # one file per rank: no interleaved output
ddp.destroy()
"""


def test_torchrun_the_verdict_reaches_every_rank(finished, tmp_path):
    "Each rank reports what `claim_log_dir` gave it: the same verdict on both ranks, for a folder that holds a run and an empty one."
    data_dir, log = _copy_run(finished, tmp_path)
    (tmp_path / "claim.py").write_text(CLAIM)
    r = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(tmp_path / "claim.py"),
              str(log), str(tmp_path / "empty")], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    refused = f"RunDirError: {f'log folder {str(log)!r} already holds a run'[:60]}"
    for rank in (0, 1): assert (tmp_path / f"rank{rank}.txt").read_text().splitlines() == [refused, "claimed"], rank
    assert _files(tmp_path / "empty") == [".lock"] # created by rank 0 alone, released
    assert _files(log) == [".lock", "log.txt", "loss.png", "model_00001.pt", "model_00002.pt", "run_files.json"]


def test_values_are_checked_where_they_enter(tmp_path):
    "Settings that make no sense are one-line errors before any work; odd but legal ones are one warning line."
    data_dir = _write_shards(tmp_path / "data")
    base = ["--recipe", "lecture", "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", "2", "-T", "32", "--total-batch-size", "64",
            "--device", "cpu", "--log-dir", str(tmp_path / "log"), "--no-hellaswag", "--sample-interval", "0"]
    for flag, value, msg in (("--weight-decay", "-0.1", "TrainingConfig.weight_decay must be a finite number >= 0, got -0.1"),
                             ("--weight-decay", "nan", "TrainingConfig.weight_decay must be a finite number >= 0, got nan"),
                             ("--seed", "-1", "TrainingConfig.seed must be an int >= 0, got -1")):
        assert _one_line_error(_run(TRAIN + base + [flag, value], tmp_path)) == msg + "\n"
    msg = _one_line_error(_run(TRAIN + base + ["--init-from", "gpt2"], tmp_path)) # refused before any download
    assert msg.startswith("--model cpu_tiny and --init-from gpt2 both choose the model"), msg
    assert not (tmp_path / "log").exists()
    r = _run(TRAIN + base + ["--max-steps", "2", "--warmup-steps", "4", "--val-interval", "0"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert ("buildnanogpt-train: warning: TrainingConfig: warmup_steps=4 is longer than max_steps=2: the learning rate "
            "stops at 0.0025, short of max_lr=0.005\n") in r.stderr, r.stderr
    sample = [sys.executable, "-c", "from buildNanoGPT.cli import sample_cli; sample_cli()"]
    msg = _one_line_error(_run(sample + [str(tmp_path / "log"), "--temperature", "nan"], tmp_path), prog="buildnanogpt-sample")
    assert msg == "temperature must be a finite number >= 0, got nan\n", msg


def test_resume_at_or_past_the_end_has_nothing_to_do(finished, tmp_path):
    "A finished run (steps 0-2 of 3) resumed with --max-steps 3 or 2: one line, exit 0, no file touched."
    data_dir, log = _copy_run(finished, tmp_path)
    files = lambda: {p.name: p.read_bytes() for p in log.iterdir() if p.is_file() and p.name != ".lock"} # the lock: ours
    before = files()
    for steps in (3, 2):
        out = _ok(_run(TRAIN + _args(data_dir, log, steps) + ["--resume"], tmp_path))
        assert f"already at step 2 of {steps}: nothing to do (train longer with a larger max_steps, --max-steps)\n" in out
        assert "run summary" not in out and not re.search(r"^step +\d+ \|", out, flags=re.M), out
        assert files() == before


def test_an_empty_hellaswag_file_is_said_not_scored(tmp_path):
    "An empty hellaswag_val.jsonl is no measurement: said once, and no `hella` record (not a 0/0 = 0.0 accuracy)."
    data_dir = _write_shards(tmp_path / "data")
    (tmp_path / "hs").mkdir(); (tmp_path / "hs" / "hellaswag_val.jsonl").write_text("")
    args = [a for a in _args(data_dir, tmp_path / "log", 3) if a != "--no-hellaswag"]
    out = _ok(_run(TRAIN + args + ["--hellaswag-dir", str(tmp_path / "hs"), "--hellaswag-interval", "1"], tmp_path))
    msg = f"HellaSwag: {tmp_path / 'hs' / 'hellaswag_val.jsonl'} holds no examples, skipping the HellaSwag evaluation"
    assert out.count(msg) == 1 and "HellaSwag accuracy" not in out, out
    assert " hella " not in (tmp_path / "log" / "log.txt").read_text()


def test_an_update_that_blows_the_weights_up_is_never_checkpointed(tmp_path):
    """The loss is measured before the update: a learning rate of 1e30 leaves finite but useless weights (~5e28) after
    a step whose own loss is fine. The checkpoint check and the sampler see it: a clean stop (exit 1), no checkpoint."""
    data_dir = _write_shards(tmp_path / "data")
    for name, steps, interval, sample, what in (
            ("last", 1, 1, "0", "step 0: after its update the model's loss is nan (on the step's last batch)"), # the last step
            ("sample", 4, 0, "1", "step 1: the model's logits are not finite (nan or inf) before this step's update")):
        log = tmp_path / name
        args = _args(data_dir, log, steps, interval) + ["--max-lr", "1e30", "--sample-interval", sample]
        msg = _one_line_error(_run(TRAIN + args, tmp_path), code=1)
        assert msg.startswith(what + ": training diverged; stopped without writing a checkpoint of this step"), msg
        assert not list(log.glob("model_*.pt*")), sorted(p.name for p in log.iterdir())
    msg = _one_line_error(_run(TRAIN + _args(data_dir, tmp_path / "inf", 1) + ["--max-lr", "inf"], tmp_path))
    assert msg == "TrainingConfig.max_lr must be a finite number > 0, got inf\n", msg


def test_sampling_a_diverged_checkpoint_says_so(finished, tmp_path):
    import torch
    _, log = _copy_run(finished, tmp_path)
    ckpt = torch.load(log / "model_00002.pt")
    ckpt["model"] = {k: v * 1e30 if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    torch.save(ckpt, log / "model_00002.pt")
    sample = [sys.executable, "-c", "from buildNanoGPT.cli import sample_cli; sample_cli()"]
    msg = _one_line_error(_run(sample + [str(log / "model_00002.pt")], tmp_path), prog="buildnanogpt-sample")
    assert msg == ("the model's logits are not finite (nan or inf): its weights have diverged; sample from an "
                   "earlier checkpoint\n"), msg
