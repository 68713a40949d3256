"""kill -9 at any moment loses nothing: buildnanogpt-prep and buildnanogpt-train, SIGKILLed again and again (as a
temp file is created, while it is being written, just after a rename, at a random moment) and then simply run again
(prep) or resumed (train --resume), end with what an uninterrupted run writes, byte for byte where bytes can be the
same, and no temp files.

The kills are timed by the folder's own events (Linux inotify): the test SIGKILLs the process group the moment a temp
file of the process is created, once it holds bytes, or just after the n-th finished file is renamed into place. Each
round records whether a temp file of the killed process was still there after the kill (the kill landed mid-write)."""
import ctypes
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from limits import HANG_S
from test_ddp import _env, _write_shards
from test_run_safety import TRAIN, _args, _ok, _run

PREP = [sys.executable, "-c", "from buildNanoGPT.cli import prep_cli; prep_cli()"]
WORDS = "the a cat dog sat on mat and ran far away over hill while sun went down".split()

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kills are timed with Linux inotify")


class _Watch:
    "What is created in a folder, or renamed into it, as it happens (inotify through ctypes: no extra package)."
    IN_MOVED_TO, IN_CREATE = 0x80, 0x100

    def __init__(self, d):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0: raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, os.fsencode(str(d)), self.IN_CREATE | self.IN_MOVED_TO) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")

    def events(self, wait_s):
        "[(event, name)], event 'created' or 'renamed'; waits up to `wait_s` seconds for the first one."
        if not select.select([self.fd], [], [], wait_s)[0]: return []
        buf, out, i = os.read(self.fd, 1 << 16), [], 0
        while i < len(buf):
            _, mask, _, n = struct.unpack_from("iIII", buf, i)
            out.append(("created" if mask & self.IN_CREATE else "renamed", buf[i + 16:i + 16 + n].rstrip(b"\0").decode()))
            i += 16 + n
        return out

    def close(self):
        os.close(self.fd)


def _wait_for_bytes(path: Path, p):
    "Until the file at `path` holds bytes, is gone (renamed: the write is over) or the process has ended."
    while p.poll() is None:
        try:
            if path.stat().st_size > 0: return
        except FileNotFoundError:
            return
        time.sleep(0.0002)


def _kill_round(cmd, cwd, watched, plan, out_file):
    """Run `cmd` (its own session) and SIGKILL its process group at the moment `plan` names, `(event, regex, n)` with
    'PID' in regex standing for the process's pid: event 'created': when the n-th file matching regex is created;
    'writing': that, once the file holds bytes; 'renamed': just after the n-th matching file is renamed into place;
    'after' (regex: seconds): that long after the start. -> (pid, exit code, the temp files of the process left right
    after the kill); exit code 0: the process ended (finished, or had nothing to do) before that moment."""
    event, what, nth = plan
    watch = _Watch(watched)
    with open(out_file, "w") as out:
        p = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0, seen, hit = time.monotonic(), 0, None
        rx = None if event == "after" else re.compile(what.replace("PID", str(p.pid)))
        want = "renamed" if event == "renamed" else "created"
        while p.poll() is None and hit is None:
            assert time.monotonic() - t0 < HANG_S, f"{cmd} still running: a hang"
            if event == "after":
                left = what - (time.monotonic() - t0)
                if left <= 0: hit = ""
                else: time.sleep(min(left, 0.01))
                continue
            for ev, name in watch.events(0.01):
                if ev == want and rx.fullmatch(name):
                    seen += 1
                    if seen == nth:
                        hit = name
                        break
        if hit and event == "writing": _wait_for_bytes(Path(watched) / hit, p)
        if hit is not None:
            try: os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError: pass # it had just ended
        rc = p.wait(timeout=HANG_S)
        left = [n for n in os.listdir(watched) if n.endswith(f".{p.pid}.tmp")] if rc == -signal.SIGKILL else []
        return p.pid, rc, left
    finally:
        if p.poll() is None: # the test failed mid-round: no process of it survives
            try: os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError: pass
            p.wait(timeout=HANG_S)
        watch.close()


def _kill_rounds(cmd, cwd, watched, plans, tmp_path):
    """Each plan's round in turn, each the same command again (a round after a finished one must have nothing to do),
    then one uninterrupted run; -> the rounds. Every process is killed by the test or exits 0: a rerun that fails on
    what a kill left is the failure this test is for."""
    rounds = []
    for i, plan in enumerate(plans):
        out_file = tmp_path / f"round{i}.out"
        before = sorted(os.listdir(watched))
        pid, rc, left = _kill_round(cmd, cwd, watched, plan, out_file)
        rounds.append(dict(round=i, plan=plan, pid=pid, rc=rc, left=left))
        assert rc in (-signal.SIGKILL, 0), (f"round {i} {plan}: exit {rc} on a folder holding {before}:\n"
                                            f"{out_file.read_text()[-3000:]}\nrounds: {rounds}")
    before = sorted(os.listdir(watched))
    r = _run(cmd, cwd)
    assert r.returncode == 0, (f"the run after the {len(rounds)} rounds: exit {r.returncode} on a folder holding {before}"
                               f":\n{(r.stdout + r.stderr)[-3000:]}\nrounds: {rounds}")
    return rounds


def _differences(got: Path, ref: Path, names, rounds) -> list[str]:
    "What differs from `ref` in `got` for `names` (compared byte for byte), and every file `ref` does not have."
    found = []
    for n in names:
        if not (got / n).exists(): found.append(f"{n} is missing")
        elif (got / n).read_bytes() != (ref / n).read_bytes(): found.append(f"{n} differs")
    rnd = lambda n: next((f"round {r['round']} {r['plan']}" for r in rounds if f".{r['pid']}." in n), "the last run")
    found += [f"{n} left behind by {rnd(n)}" for n in sorted(os.listdir(got)) if not (ref / n).exists()]
    return found


@pytest.fixture(scope="module")
def corpus_and_ref(tmp_path_factory):
    "A corpus of 8 documents, 1.6M tokens, and its uninterrupted prep: (root, command, shards folder)."
    root = tmp_path_factory.mktemp("prep")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(8):
        rng = np.random.default_rng(i)
        (corpus / f"part{i}.txt").write_text(" ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 200_000)))
    # the same command in every folder: --data-dir relative, so nothing written names the folder (the manifest names the
    # source files: the same absolute paths for every run)
    cmd = PREP + ["--source", str(corpus), "--data-dir", "data", "--name", "mine", "--shard-size", "100000"]
    (root / "ref").mkdir()
    _ok(_run(cmd, root / "ref"))
    ref = root / "ref" / "data"
    shards = ["mine_val_000000.npy"] + [f"mine_train_{i:06d}.npy" for i in range(1, 17)]
    assert set(shards + ["manifest.json"]) <= set(os.listdir(ref)) and not list(ref.glob("*.tmp")), os.listdir(ref)
    return root, cmd, ref


SHARD, SHARD_TMP, MANIFEST_TMP = r"mine_(val|train)_\d{6}\.npy", r"mine_(val|train)_\d{6}\.npy\.PID\.tmp", \
    r"manifest\.json\.PID\.tmp"
ANY_TMP = r".+\.PID\.tmp"


def _prep_killed(corpus_and_ref, tmp_path, plans):
    root, cmd, ref = corpus_and_ref
    got = tmp_path / "data"
    got.mkdir() # made beforehand, to be watched from the first round
    rounds = _kill_rounds(cmd, tmp_path, got, plans, tmp_path)
    # every file byte for byte, the manifest too (it holds no time, and no path that differs between the folders);
    # not a .lock, which names the pid and start time of the process that last held the folder
    return rounds, _differences(got, ref, [n for n in sorted(os.listdir(ref)) if n != ".lock"], rounds)


def test_prep_killed_again_and_again_then_rerun_writes_the_same_bytes(corpus_and_ref, tmp_path):
    plans = [("writing", ANY_TMP, 1), # its first temp file being written (now: pass 1, the token stream, tokenizing)
             ("writing", SHARD_TMP, 1), # writing the val shard
             ("writing", SHARD_TMP, 3), # writing the 3rd shard of this run (the first manifest written before it)
             ("created", SHARD_TMP, 2), # the 2nd shard's temp file just created
             ("renamed", SHARD, 2), # the 2nd shard of this run just whole: the manifest does not list it yet
             ("writing", MANIFEST_TMP, 2), # a shard whole, the manifest that lists it being written
             ("renamed", r"manifest\.json", 3), # just after a manifest is in place
             ("after", random.Random(0).uniform(0.1, 0.5), None), # any moment (or the run is over by then)
             ("writing", MANIFEST_TMP, 1)] # (resumed or finished) the next manifest being written
    rounds, problems = _prep_killed(corpus_and_ref, tmp_path, plans)
    assert sum(r["rc"] == -signal.SIGKILL for r in rounds) >= 7 and any(r["left"] for r in rounds), rounds
    assert problems == [], f"after the kills: {problems}; rounds: {rounds}"


@pytest.mark.parametrize("plan", [("renamed", SHARD, 1), ("created", MANIFEST_TMP, 1)],
                         ids=["val-shard-whole", "first-manifest-created"])
def test_prep_killed_before_its_first_manifest_then_rerun_writes_the_same_bytes(corpus_and_ref, tmp_path, plan):
    """Killed after the first shard (val) is whole, before any manifest is in place: the rerun must still go on.
    (The kill races the small manifest's write and rename; it wins nearly always, and were it to lose, the rerun
    merely starts from a later moment: the test can pass by luck, never fail by it.)"""
    rounds, problems = _prep_killed(corpus_and_ref, tmp_path, [plan])
    assert rounds[0]["rc"] == -signal.SIGKILL, rounds
    assert problems == [], f"after the kill: {problems}; rounds: {rounds}"


STEPS = 10 # checkpoints at steps 1..9 (--checkpoint-interval 1; the last step always has one)
CKPTS = [f"model_{s:05d}.pt" for s in range(1, STEPS)]


def _diff(a, b, where=""):
    "Where `a` and `b` differ: tensors by torch.equal (dtype and shape too), everything else by ==."
    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [f"{where}: tensors differ"]
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b): return [f"{where}: keys {list(a)} != {list(b)}"]
        return [d for k in a for d in _diff(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, (list, tuple)) and type(a) is type(b) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _train_records(log_dir):
    return [l.split() for l in (Path(log_dir) / "log.txt").read_text().splitlines() if l.split()[1] == "train"]


def test_training_killed_again_and_again_then_resumed_gives_the_same_checkpoints_and_log(tmp_path):
    data_dir = _write_shards(tmp_path / "data")
    # --log-dir relative: a checkpoint holds the train config, log_dir included, so every run names it "log";
    # --resume in every run, the first too (it is in the config as well; with no checkpoint yet it starts at step 0)
    cmd = TRAIN + _args(data_dir, "log", STEPS) + ["--resume"]
    (tmp_path / "ref").mkdir()
    _ok(_run(cmd, tmp_path / "ref"))
    ref = tmp_path / "ref" / "log"
    ref_names = sorted(os.listdir(ref))
    assert set(CKPTS + ["log.txt", "loss.png"]) <= set(ref_names) and not list(ref.glob("*.tmp")), ref_names

    log = tmp_path / "kill" / "log"
    log.mkdir(parents=True) # made beforehand, to be watched from the first round
    ckpt_tmp = r"model_\d{5}\.pt\.PID\.tmp"
    rng = random.Random(0)
    plans = [("after", rng.uniform(0.2, 1.0), None), # starting up
             ("created", ckpt_tmp, 1), # the first checkpoint's temp file just created (a fresh start)
             ("writing", ckpt_tmp, 3), # two checkpoints whole, the third being written
             ("renamed", r"model_\d{5}\.pt", 2), # the 2nd checkpoint of this run just whole
             ("writing", ANY_TMP, 1), # a resumed run's first temp file being written (now: log.txt trimmed)
             ("writing", ckpt_tmp, 2), # one checkpoint whole, the next being written
             ("writing", ckpt_tmp, 1),
             ("renamed", CKPTS[-1], 1)] # the last checkpoint just whole: the run's end (its plot) not reached
    rounds = _kill_rounds(cmd, tmp_path / "kill", log, plans, tmp_path)
    assert sum(r["rc"] == -signal.SIGKILL for r in rounds) >= 6 and any(r["left"] for r in rounds), rounds
    # the same training: every loss, step by step; and every file byte for byte (log.txt holds no times; the
    # checkpoints below), not .lock, which names the pid and start time of the run that last held the folder
    assert _train_records(log) == _train_records(ref)
    problems = _differences(log, ref, [n for n in ref_names if n != ".lock" and n not in CKPTS], rounds)
    # every checkpoint holds the same (model, optimizer, rng, loader position, config, all of it) in the same bytes
    for n in CKPTS:
        a, b = torch.load(ref / n), torch.load(log / n)
        assert not _diff(a["model"], b["model"]) and not _diff(a["optimizer"], b["optimizer"]), n
        problems += [f"{n}{d}" for d in _diff(a, b)]
        if (ref / n).read_bytes() != (log / n).read_bytes(): problems.append(f"{n}: same values, other bytes")
    assert problems == [], f"after the kills: {problems}; rounds: {rounds}"
