"""A rank that stops responding (not dying) under torchrun: the others end with one line that names it, and torchrun
ends. `torchrun --nproc_per_node=2` on the CPU (gloo); the test stops rank 1 with SIGSTOP, as a user's hung rank."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from limits import HANG_S

DIST_TIMEOUT_S = 5 # the --dist-timeout under test (not a limit on the test): small, so that rank 0 waits seconds

WORKER = r'''
import os, sys, time
from pathlib import Path
import torch, torch.distributed as tdist
from buildNanoGPT.dist import DDPConfig, DistTimeoutError, bounded_wait, end_torchrun_worker

hang_s, dist_timeout_s, here = float(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
rank = int(os.environ["RANK"])

def say(line): # one write: under `python -u` print() writes the text and its newline apart, and the ranks interleave
    os.write(1, (line + "\n").encode())

def wait_for(*names): # for the other process, or for the test
    deadline = time.monotonic() + hang_s
    while not all((here / n).exists() for n in names) and time.monotonic() < deadline:
        time.sleep(0.05)

(here / f"up_{rank}").touch() # start the group together: its own start is bounded by the timeout too
wait_for("up_0", "up_1")
ddp_cf = DDPConfig(timeout_s=dist_timeout_s, verbose=False)
t = torch.ones(1)
tdist.all_reduce(t) # a collective that works
say(f"rank {rank} pid {os.getpid()} all_reduce {t.item():g}")
if rank == 1:
    time.sleep(hang_s) # where the test stops this process
wait_for("stopped")
t0 = time.monotonic()
try:
    with bounded_wait(ddp_cf):
        tdist.all_reduce(t)
except DistTimeoutError as e:
    say(f"rank {rank} waited {time.monotonic() - t0:.1f} s")
    say(f"DistTimeoutError: {e}")
    ddp_cf.destroy() # an error is on its way: no barrier, and it returns although rank 1 is stopped
    end_torchrun_worker(1)
say(f"rank {rank}: all_reduce returned")
end_torchrun_worker(2)
'''


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill(p, pids):
    "torchrun and its workers, which run in sessions of their own (a stopped one is woken first)."
    for pid in pids.values():
        _signal(pid, signal.SIGCONT)
        _signal(pid, signal.SIGKILL)
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)


def test_a_stopped_rank_is_named(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(HANG_S), str(DIST_TIMEOUT_S), str(tmp_path)]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    lines, pids = [], {}
    t0 = time.monotonic()
    hang = threading.Timer(HANG_S, _kill, (p, pids)) # reading the output is bounded too
    hang.start()
    try:
        for line in p.stdout:
            lines.append(line)
            m = re.match(r"rank (\d) pid (\d+) all_reduce 2$", line.strip())
            if m:
                pids[int(m[1])] = int(m[2])
            if m and m[1] == "1":
                os.kill(pids[1], signal.SIGSTOP) # rank 1 stops answering, as a hung process does
                (tmp_path / "stopped").touch()
        p.wait(timeout=HANG_S) # torchrun ends: it kills the stopped rank once rank 0 has failed
        took = time.monotonic() - t0
    finally:
        hang.cancel()
        if p.poll() is None: # a failure above: stop what is left
            _kill(p, pids)
            p.wait()
    out = "".join(lines)
    assert 1 in pids, out
    expected = (f"DistTimeoutError: rank 1 (pid {pids[1]} on {socket.gethostname()}) of 2 did not reach the collective "
                f"within {DIST_TIMEOUT_S} s (--dist-timeout): it may be hung or stopped; see where it is with "
                f"`py-spy dump --pid {pids[1]}` on {socket.gethostname()}, or raise --dist-timeout if it is only slow")
    assert expected in out.splitlines(), out
    waited = float(re.search(r"rank 0 waited ([\d.]+) s", out)[1])
    print(f"rank 0 waited {waited:.1f} s for the stopped rank 1 (timeout {DIST_TIMEOUT_S} s + the roll call); "
          f"torchrun ended after {took:.0f} s")
    assert waited >= DIST_TIMEOUT_S, out # it waited out the timeout, it did not fail early for another reason
    assert "all_reduce returned" not in out and p.returncode != 0, out


def _rank_pid(root: int, rank: int) -> int | None:
    "The pid of torchrun worker `rank` among the descendants of `root` (read from /proc)."
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    def below(pid):
        while pid in parents and pid != root:
            pid = parents[pid]
        return pid == root
    for pid in parents:
        try:
            env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b" ".join(env) and below(pid):
            return pid
    return None


def test_buildnanogpt_train_names_a_stopped_rank(tmp_path):
    "The command as a user runs it: rank 1 stops answering mid-run; rank 0 says which rank, and the run ends."
    from test_ddp import _write_shards
    data_dir = _write_shards(tmp_path / "data")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(tmp_path / "train.py")]
    (tmp_path / "train.py").write_text("from buildNanoGPT.cli import train_cli; train_cli()\n")
    cmd += ["--recipe", "lecture", "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", "2", "-T", "32", "--total-batch-size", "128",
            "--max-steps", "100000", "--val-interval", "0", "--no-hellaswag", "--sample-interval", "0",
            "--checkpoint-interval", "0", "--device", "cpu", "--log-dir", str(tmp_path / "log"),
            "--dist-timeout", str(DIST_TIMEOUT_S), "--log-interval", "1"]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    lines, pids = [], {}
    hang = threading.Timer(HANG_S, _kill, (p, pids))
    hang.start()
    try:
        for line in p.stdout:
            lines.append(line)
            if line.startswith("step     2 |") and 1 not in pids:
                pids[1] = _rank_pid(p.pid, 1)
                assert pids[1], "".join(lines)
                os.kill(pids[1], signal.SIGSTOP) # rank 1 stops answering, as a hung process does
            if "did not reach" in line:
                _signal(pids[1], signal.SIGKILL) # what torchrun does to it 30 s later: spare the test the wait
        p.wait(timeout=HANG_S)
    finally:
        hang.cancel()
        if p.poll() is None:
            _kill(p, pids)
            p.wait()
    out = "".join(lines)
    host = socket.gethostname()
    expected = (f"buildnanogpt-train: error: rank 1 (pid {pids.get(1)} on {host}) of 2 did not reach a step of the "
                f"training loop within {DIST_TIMEOUT_S} s (--dist-timeout): it may be hung or stopped; see where it "
                f"is with `py-spy dump --pid {pids.get(1)}` on {host}, or raise --dist-timeout if it is only slow")
    assert expected in out.splitlines(), out
    assert p.returncode != 0 and "Traceback" not in out.split(expected)[0], out
