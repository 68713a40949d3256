"""TensorBoard and W&B from the command line (nbs/12_track): under torchrun only rank 0 writes; the event files hold
the values of log.txt; a W&B run that cannot reach W&B finishes offline and its files hold the config and the final
values; TensorBoard serves the finished run to a browser; without the [track] extra the flags are one-line errors,
and a run without them imports neither package and writes none of their files."""
import importlib.util, json, os, subprocess, sys, urllib.request
from pathlib import Path

import numpy as np
import pytest

from buildNanoGPT.track import tag_of, tensorboard_scalars
from buildNanoGPT.viz import read_log
from test_ddp import _env, _write_hellaswag, _write_shards
from limits import HANG_S

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tensorboard_view", REPO / "tools" / "tensorboard_view.py")
tensorboard_view = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(tensorboard_view)
CHROMIUM = next((p for p in map(__import__("shutil").which, ("chromium", "chromium-browser")) if p), None)
CLI = [sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()"]
RUN_NAME = "tracked-run"


def _args(data_dir, log_dir, hellaswag_dir, steps=4):
    return ["--recipe", "lecture", "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", "2", "-T", "32", "--total-batch-size", "256",
            "--max-steps", str(steps), "--warmup-steps", "1", "--val-interval", "2", "--val-loss-steps", "2",
            "--hellaswag-interval", "2", "--hellaswag-dir", str(hellaswag_dir), "--sample-interval", "2",
            "--num-return-sequences", "2", "--sample-max-length", "12", "--device", "cpu", "--log-dir", str(log_dir), "--log-interval", "1"]


def _no_wandb_login(home: Path) -> dict:
    "The environment of a machine that has a W&B key but cannot reach W&B (the server's port is closed)."
    env = {k: v for k, v in _env().items() if not k.startswith("WANDB_")}
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), "WANDB_API_KEY": "x" * 40, "WANDB_INIT_TIMEOUT": "3",
            "WANDB_BASE_URL": f"http://127.0.0.1:{tensorboard_view.free_port()}"}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    "A 2-rank torchrun (gloo) of the tiny model with --tensorboard and --wandb: (log folder, its stdout)."
    tmp = tmp_path_factory.mktemp("track")
    data_dir, hs = _write_shards(tmp / "data"), _write_hellaswag(tmp / "hellaswag", n=6)
    log_dir = tmp / RUN_NAME
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(sys.executable).with_name("buildnanogpt-train"))]
    r = subprocess.run(cmd + _args(data_dir, log_dir, hs) + ["--tensorboard", "--wandb", "buildnanogpt-tests"], cwd=tmp,
                       env=_no_wandb_login(tmp / "home"), capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, f"STDOUT:\n{r.stdout}\nSTDERR:\n{r.stderr}"
    return log_dir, r.stdout


def test_rank0_writes_the_values_of_log_txt(tracked):
    log_dir, _ = tracked
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1 # rank 0 only
    log, curves = read_log(log_dir / "log.txt"), tensorboard_scalars(log_dir)
    assert set(log) == {"train", "val", "val_bpb", "hella"}
    for stream, (steps, values) in log.items():
        got = curves[tag_of(stream)]
        assert [s for s, _ in got] == steps.tolist(), stream
        np.testing.assert_allclose([v for _, v in got], values, atol=1e-4)
    assert [s for s, _ in curves["train/lr"]] == [0, 1, 2, 3] and "train/mfu" not in curves # MFU: CUDA only


def wandb_records(path):
    "The records of a W&B run file (`run-ID.wandb`): LevelDB's log format, 32 KiB blocks, after a 7-byte header."
    from wandb.proto import wandb_internal_pb2 as pb
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", path
    out, part, pos = [], b"", 7
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7: # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4): # a FULL record, or the LAST piece of one
            r = pb.Record()
            r.ParseFromString(part)
            out.append(r)
            part = b""
    return out


def test_wandb_offline_run_holds_config_and_final_values(tracked):
    log_dir, out = tracked
    runs = list((log_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs # rank 0 only
    assert "wandb: could not reach W&B" in out and f"upload it later with: wandb sync {runs[0]}" in out, out
    records = wandb_records(next(runs[0].glob("run-*.wandb")))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert run.display_name == RUN_NAME and run.project == "buildnanogpt-tests"
    assert {k: config[k] for k in ("max_steps", "B", "model_name", "tensorboard")} == \
        {"max_steps": 4, "B": 2, "model_name": "cpu_tiny", "tensorboard": True}
    last = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            last.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    log = read_log(log_dir / "log.txt")
    for stream in ("train", "val", "hella"):
        assert last[tag_of(stream)] == pytest.approx(log[stream][1][-1], abs=1e-4), stream
    assert last["_step"] == 3 and last["samples/nrows"] == 2 and last["samples/_type"] == "table-file"
    tables = list(runs[0].glob("files/media/table/samples_*.table.json"))
    rows = json.loads(tables[0].read_text())["data"]
    assert len(tables) == 2 and all(t.startswith(config["sample_prompt"]) for _, _, t in rows), rows


def test_tensorboard_shows_the_run_in_a_browser(tracked, tmp_path):
    if CHROMIUM is None and os.environ.get("CI"): pytest.fail("chromium not found: .ci/run installs it")
    if CHROMIUM is None: pytest.skip("chromium not installed: browser check skipped (apt-get install -y chromium)")
    log_dir, _ = tracked
    with tensorboard_view.serve(log_dir.parent) as url: # the parent folder: runs are named by their folders
        page = tensorboard_view.load(url, CHROMIUM, "timeseries") # its text (the Scalars tab's is in shadow roots)
        tensorboard_view.load(url, CHROMIUM, "scalars", shot=tmp_path / "tensorboard.png")
        with urllib.request.urlopen(url + "/data/plugin/scalars/tags", timeout=HANG_S) as r:
            served = json.load(r)
    for text in (RUN_NAME, "loss/train", "loss/val", "hellaswag/acc"): # the sections open on the page
        assert text in page, f"{text!r} is not on TensorBoard's page"
    assert set(served[RUN_NAME]) == {"loss/train", "loss/val", "loss/val_bpb", "hellaswag/acc", "train/lr",
                                     "train/grad_norm", "train/tokens_per_sec"}, served
    assert (tmp_path / "tensorboard.png").stat().st_size > 20_000 # a drawn page, not a blank one


def test_without_the_extra_the_flags_are_one_line_errors(tmp_path):
    data_dir, hs = _write_shards(tmp_path / "data"), tmp_path / "no-hellaswag"
    blocked = ("import sys; sys.modules['tensorboard'] = None; sys.modules['wandb'] = None # as if not installed\n"
               "from buildNanoGPT.cli import train_cli; train_cli()")
    for flag, package in ((["--tensorboard"], "tensorboard"), (["--wandb", "proj"], "wandb")):
        r = subprocess.run([sys.executable, "-c", blocked] + _args(data_dir, tmp_path / "log", hs) + flag,
                           cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=HANG_S)
        want = (f'buildnanogpt-train: error: {flag[0]} ({"tensorboard=True" if package == "tensorboard" else "wandb=PROJECT"})'
                f' needs the {package} package, which is not installed here: pip install "buildNanoGPT[track]"\n')
        assert (r.returncode, r.stderr) == (2, want), r.stdout + r.stderr
        assert not (tmp_path / "log").exists() # refused before any work


def test_without_the_flags_nothing_of_them(tmp_path):
    data_dir, hs = _write_shards(tmp_path / "data"), tmp_path / "no-hellaswag"
    code = ("import sys\nfrom buildNanoGPT.cli import train_cli; train_cli()\n"
            "print('imported:', [m for m in ('tensorboard', 'wandb') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code] + _args(data_dir, tmp_path / "log", hs, steps=2), cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0 and "imported: []" in r.stdout, r.stdout + r.stderr
    names = sorted(p.name for p in (tmp_path / "log").iterdir())
    assert "log.txt" in names and not [n for n in names if "tfevents" in n or "wandb" in n], names
