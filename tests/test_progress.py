"""What a learner watches: step lines with elapsed time and ETA, tqdm bars only on a terminal, the run report at the
end, and `buildnanogpt-sample` on the run's checkpoints (console scripts through subprocesses)."""
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

from test_cli import CLI, _tiny_args
from test_ddp import _env, _write_shards
from limits import HANG_S

SAMPLE = [sys.executable, "-c", "from buildNanoGPT.cli import sample_cli; sample_cli()"]


def _train(tmp_path, *extra, stderr=subprocess.PIPE):
    data_dir = _write_shards(tmp_path / "data")
    args = _tiny_args(data_dir, tmp_path / "log", 4) + ["--val-interval", "2", "--val-loss-steps", "3", *extra]
    return subprocess.run(CLI + args, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=HANG_S)


def test_step_lines_eta_and_report(tmp_path):
    r = _train(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    steps = [l for l in r.stdout.splitlines() if l.startswith("step ")]
    assert len(steps) == 4, r.stdout
    for i, line in enumerate(steps): # the original line's start, then elapsed and ETA
        assert re.fullmatch(rf"step {i:5d} \| loss: \d+\.\d{{6}} \| lr .* \| tok/sec: \d+\.\d\d \| elapsed \d+:\d\d \| eta \d+:\d\d", line), line
    assert steps[-1].endswith("| eta 0:00"), steps[-1]
    log = tmp_path / "log"
    report = r.stdout.split("run summary:\n", 1)[1].splitlines()
    assert re.fullmatch(r"  steps:         4 \(steps 0-3 of 4\), 256 tokens in \d+:\d\d \([\d,]+ tok/sec\)", report[0]), report
    assert re.fullmatch(r"  best val loss: \d+\.\d{4} \(last \d+\.\d{4}\)", report[1]), report
    assert report[2:4] == [f"  checkpoint:    {log / 'model_00003.pt'}", f"  plot:          {log / 'loss.png'}"], report
    assert report[4].startswith("  train longer:  buildnanogpt-train --recipe lecture --data-dir ") and report[4].endswith(" --resume --max-steps 8"), report
    assert report[5] == f"  sample:        buildnanogpt-sample {log}", report
    # the printed command continues the run as it says
    cont = report[4].split("buildnanogpt-train ", 1)[1].split()
    r2 = subprocess.run(CLI + cont, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert r2.returncode == 0 and f"resuming from {log / 'model_00003.pt'}" in r2.stdout and "step     7 |" in r2.stdout, r2.stdout + r2.stderr


def test_no_bars_when_stderr_is_not_a_terminal(tmp_path):
    r = _train(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\r" not in r.stderr and "validation" not in r.stderr and "it/s" not in r.stderr, repr(r.stderr)


def test_bars_on_a_terminal(tmp_path):
    "The same run with stderr on a pseudo-terminal shows the validation bar there (and stdout is unchanged)."
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0)) # a 100-column terminal (a new pty has 0)
    p = subprocess.Popen(CLI + _tiny_args(_write_shards(tmp_path / "data"), tmp_path / "log", 4)
                         + ["--val-interval", "2", "--val-loss-steps", "3"],
                         cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready: break
        try: b = os.read(master, 4096)
        except OSError: break # the child closed the terminal
        if not b: break
        chunks.append(b)
    out = p.stdout.read(); rc = p.wait(timeout=HANG_S); os.close(master)
    err = b"".join(chunks).decode(errors="replace")
    assert rc == 0, out + err
    assert "\rvalidation:   0%|" in err and "| 0/3 [" in err, repr(err) # the bar, redrawn in place
    assert "validation" not in out.replace("validation loss:", "") # bars go to stderr only


def test_sample_cli_from_a_run(tmp_path):
    r = _train(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    args = [str(tmp_path / "log"), "--prompt", "Hello", "--max-new-tokens", "8", "--num-samples", "2", "--seed", "3", "--device", "cpu"]
    a = subprocess.run(SAMPLE + args, capture_output=True, text=True, timeout=HANG_S, env=_env())
    b = subprocess.run(SAMPLE + args, capture_output=True, text=True, timeout=HANG_S, env=_env())
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.count("--- sample ") == 2, a.stdout # same seed, same text
    assert a.stdout.startswith(f"{tmp_path / 'log' / 'model_00003.pt'} (step 3), prompt 'Hello'"), a.stdout
    g = subprocess.run(SAMPLE + args[:-6] + ["--temperature", "0", "--num-samples", "1", "--device", "cpu"],
                       capture_output=True, text=True, timeout=HANG_S, env=_env())
    k = subprocess.run(SAMPLE + args[:-6] + ["--top-k", "1", "--num-samples", "1", "--seed", "9", "--device", "cpu"],
                       capture_output=True, text=True, timeout=HANG_S, env=_env())
    assert g.returncode == 0 and g.stdout.split("---", 1)[1] == k.stdout.split("---", 1)[1], g.stdout + k.stdout # both greedy


def test_sample_cli_errors(tmp_path):
    r = subprocess.run(SAMPLE + [str(tmp_path / "nope")], capture_output=True, text=True, timeout=HANG_S, env=_env())
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr == (f"buildnanogpt-sample: error: {str(tmp_path / 'nope')!r} is neither a log folder nor a checkpoint file: "
                        "pass the --log-dir of a run (default: log) or one of its model_XXXXX.pt files\n"), r.stderr
    (tmp_path / "run").mkdir()
    r = subprocess.run(SAMPLE + [str(tmp_path / "run")], capture_output=True, text=True, timeout=HANG_S, env=_env())
    assert r.returncode == 2 and "holds no checkpoint" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    (tmp_path / "run" / "model_00001.pt").write_bytes(b"")
    r = subprocess.run(SAMPLE + [str(tmp_path / "run" / "model_00001.pt")], capture_output=True, text=True, timeout=HANG_S, env=_env())
    assert r.returncode == 2 and "is broken: empty file (0 bytes)" in r.stderr, r.stderr
    r = subprocess.run(SAMPLE + [str(tmp_path / "nope"), "--debug"], capture_output=True, text=True, timeout=HANG_S, env=_env())
    assert r.returncode == 1 and "Traceback" in r.stderr and "FileNotFoundError" in r.stderr, r.stderr
    h = subprocess.run(SAMPLE + ["--help"], capture_output=True, text=True, timeout=HANG_S, env=_env())
    assert h.returncode == 0 and "LOG_DIR_OR_CHECKPOINT" in h.stdout and "(default: 64)" in h.stdout, h.stdout
