"""One writer per folder, delete only what we wrote, and what the OS says in one line (issue 18, items 1, 4 and 6),
as a user types it: the console scripts in subprocesses. A prep holds its data folder alone and a training run keeps
a prep out of the folder it reads; a read-only or full disk (a real one: a small tmpfs in a mount namespace of our
own, `unshare -rm`) is one line that names the path and says what to do, and leaves no temp file."""
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from limits import HANG_S, lines_until
from test_ddp import _env
from test_prep import PREP, _text
from test_run_safety import TRAIN, _args, _files, _ok, _one_line_error, _run


def _prep(*args, cwd):
    return subprocess.run(PREP + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=HANG_S,
                          env=_env())


def _wait_for(what, check):
    "Poll `check()` until it is true (a hang bound only)."
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < HANG_S, f"waited too long for {what}"
        time.sleep(0.02)


def _held(folder) -> bool:
    "Does some process hold `folder`'s lock (exclusively or shared)? Asked without taking it for long."
    import fcntl
    with open(Path(folder) / ".lock") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_a_prep_holds_its_data_folder_alone(tmp_path):
    "Two preps into one folder (another corpus, the same one, or --overwrite): the second is refused, naming the first."
    (tmp_path / "big.txt").write_text(_text(1_500_000, 1)) # seconds of tokenizing: the first prep is caught holding
    (tmp_path / "other.txt").write_text(_text(6000, 2))
    first = subprocess.Popen(PREP + ["--source", "big.txt", "--data-dir", "d"], cwd=tmp_path, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lock = tmp_path / "d" / ".lock"
        _wait_for("the first prep to take its folder",
                  lambda: lock.is_file() and lock.read_text().startswith(f"a prep (pid {first.pid} on "))
        os.kill(first.pid, signal.SIGSTOP) # caught while it holds the folder, however fast this machine is
        assert first.poll() is None and _held(tmp_path / "d")
        for source, extra in [("other.txt", []), ("big.txt", []), ("other.txt", ["--overwrite"])]:
            r = _prep("--source", source, "--data-dir", "d", *extra, cwd=tmp_path)
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            assert r.stderr.strip().splitlines() == [
                f"buildnanogpt-prep: error: data folder 'd' is in use by a prep (pid {first.pid} on "
                f"{r.stderr.split(' on ', 1)[1].split(')')[0]}); wait for it to finish or stop it, or use another "
                "--data-dir (data_dir=)"], r.stderr
        os.kill(first.pid, signal.SIGCONT)
        out, _ = first.communicate(timeout=HANG_S)
        assert first.returncode == 0, out
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGCONT); os.killpg(first.pid, signal.SIGKILL)
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert m["complete"] and [f["path"] for f in m["sources"]["files"]] == [str((tmp_path / "big.txt").resolve())]
    assert sorted(p.name for p in (tmp_path / "d").glob("*.npy")) == sorted(s["file"] for s in m["shards"])
    assert not list((tmp_path / "d").glob("*.tmp"))


def test_prep_overwrite_is_refused_while_a_run_reads_the_folder(tmp_path):
    (tmp_path / "a.txt").write_text(_text(20000, 3))
    (tmp_path / "b.txt").write_text(_text(20000, 4))
    assert _prep("--source", "a.txt", "--data-dir", "d", cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir() if p.name != ".lock"}
    run = subprocess.Popen(TRAIN + _args("d", "log", 100000, checkpoint_interval=0), cwd=tmp_path, env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = lines_until(run, "step     1 |") # it reads the folder (and holds its claim) once it trains
        assert lines and lines[-1].startswith("step     1 |"), "".join(lines)
        r = _prep("--source", "b.txt", "--data-dir", "d", "--overwrite", cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [
            "buildnanogpt-prep: error: data folder 'd' is in use by a training run that reads it; wait for it to "
            "finish or stop it, or use another --data-dir (data_dir=)"], r.stderr
        assert {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir() if p.name != ".lock"} == before
        run.send_signal(signal.SIGINT)
        lines += run.stdout.readlines()
        assert run.wait(timeout=HANG_S) == 0, "".join(lines)
    finally:
        if run.poll() is None: run.kill()
    r = _prep("--source", "b.txt", "--data-dir", "d", "--overwrite", cwd=tmp_path) # the run is over: now it may
    assert r.returncode == 0, r.stderr


# --- a read-only or full disk: a tmpfs of our own, in a user and mount namespace (no root needed) ---------------

def _can_unshare() -> bool:
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return r.returncode == 0


needs_unshare = pytest.mark.skipif(shutil.which("unshare") is None or not _can_unshare(),
                                   reason="needs unshare -rm and tmpfs mounts (Linux user namespaces)")


def _in_small_disk(mnt: Path, size: str, setup: str, cmd: list[str], cwd, listed: Path | None = None):
    """Run `cmd` with a fresh tmpfs of `size` at `mnt` (after the shell lines `setup`), seen by it alone; then list
    `listed` (a folder on it) into `cwd/listing.txt`, since the tmpfs goes with the namespace."""
    after = f"ls -A {shlex.quote(str(listed))} > listing.txt; " if listed else ""
    script = (f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(mnt))} && {setup} && "
              f"{{ {shlex.join(cmd)}; rc=$?; {after}exit $rc; }}")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=HANG_S, env=_env())


def _listing(cwd) -> list[str]:
    return sorted((Path(cwd) / "listing.txt").read_text().split())


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from test_ddp import _write_shards
    return _write_shards(tmp_path_factory.mktemp("shards") / "data")


@needs_unshare
def test_a_read_only_log_folder_is_one_line(shards, tmp_path):
    mnt = tmp_path / "ro"; mnt.mkdir()
    r = _in_small_disk(mnt, "1m", f"mount -o remount,ro {shlex.quote(str(mnt))}",
                       TRAIN + _args(shards, mnt / "log", 2), tmp_path)
    assert _one_line_error(r) == (f"{mnt / 'log'}: read-only file system, choose a folder on a disk that is not "
                                  "read-only\n")


@needs_unshare
def test_a_full_disk_at_start_is_one_line(shards, tmp_path):
    mnt = tmp_path / "full"; mnt.mkdir()
    fill = f"mkdir {shlex.quote(str(mnt / 'log'))} && (cat /dev/zero > {shlex.quote(str(mnt / 'filler'))} 2>/dev/null || true)"
    r = _in_small_disk(mnt, "256k", fill, TRAIN + _args(shards, mnt / "log", 2), tmp_path)
    assert _one_line_error(r) == (f"{mnt / 'log' / '.lock'}: no space left on device, free some space on that disk, "
                                  "or choose a folder on another one\n")


@needs_unshare
def test_no_checkpoint_is_started_without_room_for_it(shards, tmp_path):
    "A disk with room for the log but not for a checkpoint: one line with the sizes, before a byte of it is written."
    mnt = tmp_path / "small"; mnt.mkdir()
    r = _in_small_disk(mnt, "2m", "true", TRAIN + _args(shards, mnt / "log", 3), tmp_path, listed=mnt / "log")
    msg = _one_line_error(r)
    assert msg.startswith(f"{mnt / 'log'}: no space left for checkpoint model_00001.pt ("), msg
    assert msg.endswith(" MB free), free some space on that disk, or choose a folder on another one\n"), msg
    assert "step     1 |" in r.stdout # it trained; the checkpoint is what did not fit
    assert _listing(tmp_path) == [".lock", "log.txt", "run_files.json"] # not a byte of it, no temp file


CHECK_OFF = [sys.executable, "-c", "import buildNanoGPT.checkpoint as c; c.check_free_space = lambda *a, **k: None; "
                                   "from buildNanoGPT.cli import train_cli; train_cli()"]

@needs_unshare
def test_a_disk_that_fills_during_a_checkpoint_write_is_one_line(shards, tmp_path):
    "Without the check (as when another process fills the disk meanwhile): torch's write fails; said with the path."
    mnt = tmp_path / "small"; mnt.mkdir()
    log = mnt / "log"
    r = _in_small_disk(mnt, "4m", "true", CHECK_OFF + _args(shards, log, 3), tmp_path, listed=log)
    assert _one_line_error(r) == (f"{log / 'model_00001.pt'}: no space left on device, free some space on that "
                                  "disk, or choose a folder on another one\n")
    assert _listing(tmp_path) == [".lock", "log.txt", "run_files.json"] # the half-written temp file is gone

def test_init_from_gpt2_offline_is_one_line(shards, tmp_path):
    env = _env() | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")} # an empty cache, no network
    r = subprocess.run(TRAIN + ["--init-from", "gpt2", "--data-dir", str(shards), "-B", "2", "-T", "32",
                                "--total-batch-size", "64", "--max-steps", "1", "--no-hellaswag", "--device", "cpu",
                                "--log-dir", "log"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S)
    msg = _one_line_error(r)
    assert msg.startswith("could not load 'gpt2' from the Hugging Face hub or its local cache ("), msg
    assert "pass a local directory saved with save_pretrained" in msg, msg
    assert not (tmp_path / "log").exists() or _files(tmp_path / "log") in ([], [".lock"])
