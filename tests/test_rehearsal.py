"""Dress rehearsals: the GPU walkthrough and the index notebook run top to bottom with EVERY flagged cell on
(cuda, download, slow), on the CPU, with only their parameters cell replaced: a tiny preset, the bundled plays as a
local corpus instead of the FineWeb-Edu download, a tiny saved Hugging Face model instead of `gpt2`, a toy HellaSwag
file served over HTTP on localhost (the real download code), and 2 CPU processes for torchrun."""
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from test_ddp import _write_hellaswag
from limits import HANG_S

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"


@pytest.fixture(scope="module")
def local_inputs(tmp_path_factory):
    "Local stand-ins for the downloads: a corpus file, a tiny HF GPT-2 folder and HellaSwag served on localhost."
    from buildNanoGPT import data
    from transformers import GPT2Config, GPT2LMHeadModel
    import torch
    d = tmp_path_factory.mktemp("inputs")
    with open(d / "plays.jsonl", "w") as f:
        for doc in data.shakespeare_docs()[:8]: f.write(json.dumps({"text": doc["text"]}) + "\n")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=64)).save_pretrained(d / "tiny-gpt2")
    served = _write_hellaswag(d / "served", n=10)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield dict(corpus=d / "plays.jsonl", weights=d / "tiny-gpt2", hellaswag=served / "hellaswag_val.jsonl",
               hellaswag_url=f"http://127.0.0.1:{server.server_address[1]}/hellaswag_val.jsonl")
    server.shutdown()


def _rehearse(notebook, params, tmp_path):
    p = tmp_path / "params.py"
    p.write_text(params)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "rehearse.py"), str(NBS / notebook), str(p),
                        "--cell-timeout", str(HANG_S), "--verbose"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, f"STDOUT:\n{r.stdout[-4000:]}\nSTDERR:\n{r.stderr[-6000:]}"
    assert "every cell ran" in r.stdout
    return r


def _steps(log_file, stream="train"):
    return [int(l.split()[0]) for l in Path(log_file).read_text().splitlines() if l.split()[1:2] == [stream]]


def test_walkthrough_rehearsal(local_inputs, tmp_path):
    run_dir = tmp_path / "run"
    params = f"""# Parameters
run_dir = Path({str(run_dir)!r})
preset = "gpt2_124m"
train_kw = dict(model_name="cpu_tiny", B=4, T=32, total_batch_size=256, max_steps=6, warmup_steps=2, val_interval=3,
                val_loss_steps=2, hellaswag_interval=3, sample_interval=3, checkpoint_interval=3, compile=False)
trial_steps = 3
fineweb_source = {str(local_inputs['corpus'])!r}
shard_size = 2**15
hellaswag_url = {local_inputs['hellaswag_url']!r}
weights = {str(local_inputs['weights'])!r}
n_gpus = 2
device = "cpu"
big_preset = "gpt2_350m"
big_kw = dict(model_name="cpu_tiny", B=4, T=32, total_batch_size=256, max_steps=2, warmup_steps=1, val_interval=1,
              val_loss_steps=2, hellaswag_interval=1, sample_interval=1, sample_max_length=16, compile=False,
              activation_checkpointing=True)
"""
    r = _rehearse("04_gpu_walkthrough.ipynb", params, tmp_path)
    # the run's folder outlives the notebook, with everything the GPU cells wrote
    from buildNanoGPT import data
    m = data.read_manifest(run_dir / "edu_fineweb10B")
    assert m["complete"] and len(m["shards"]) >= 2
    assert (run_dir / "hellaswag" / "hellaswag_val.jsonl").read_bytes() == local_inputs["hellaswag"].read_bytes()
    assert _steps(run_dir / "trial" / "log.txt") == [0, 1, 2]
    assert _steps(run_dir / "log" / "log.txt") == list(range(6))       # torchrun, then --resume with nothing left
    assert _steps(run_dir / "log" / "log.txt", "hella") == [0, 3, 5]
    assert sorted(p.name for p in (run_dir / "log").glob("model_*.pt")) == ["model_00003.pt", "model_00005.pt"]
    # the GPU cells ran: two ranks under torchrun, the HellaSwag of the given weights, samples of the run's model
    assert "using device: cpu" in r.stdout and "HellaSwag accuracy:" in r.stdout and "rank 0 sample 0:" in r.stdout
    # section 7: the larger preset under FSDP2, sharded over the two processes, with every eval on the sharded model
    assert "sharding: fsdp over 2 ranks" in r.stdout and "rank 1 sample 0:" in r.stdout
    assert _steps(run_dir / "log_gpt2_350m" / "log.txt") == [0, 1]
    assert _steps(run_dir / "log_gpt2_350m" / "log.txt", "hella") == [0, 1]


def test_walkthrough_prose_command_runs_flagged_cells_without_a_time_limit(tmp_path):
    """The shell command the walkthrough gives for its flagged cells parses, runs every flagged cell, and lifts nbdev's
    cell_timeout (set in pyproject.toml), which would kill the hour of data preparation and the hours of training."""
    import shlex
    nb = json.loads((NBS / "04_gpu_walkthrough.ipynb").read_text())
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    cmds = [l.strip() for l in prose.splitlines() if l.strip().startswith("nbdev-test")]
    assert len(cmds) == 1 and "--cell-timeout 0" in cmds[0]
    argv = shlex.split(cmds[0])
    assert "nbs/04_gpu_walkthrough.ipynb" in argv
    # the same command on a notebook whose cells each leave a mark: flagged cells run, the timeout is lifted
    scratch = NBS / f"tmp_prose_{os.getpid()}"
    scratch.mkdir()
    try:
        marks = ["import os"] + [f"#| {flag}\nopen({str(tmp_path / flag)!r}, 'w').close()" for flag in ("cuda", "download", "slow")]
        cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                  "source": s.splitlines(True)} for i, s in enumerate(marks)]
        (scratch / "flags.ipynb").write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3",
                                             "display_name": "python3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}))
        argv[argv.index("nbs/04_gpu_walkthrough.ipynb")] = str(scratch / "flags.ipynb")
        argv[0] = str(Path(sys.executable).parent / "nbdev-test")
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
        assert r.returncode == 0, r.stdout + r.stderr
        assert all((tmp_path / flag).exists() for flag in ("cuda", "download", "slow"))
    finally:
        import shutil; shutil.rmtree(scratch, ignore_errors=True)
    from nbdev.test import nbdev_test # nbdev_test turns --cell-timeout 0 into "no limit" (None) for test_nb
    import inspect
    assert "cell_timeout or None" in inspect.getsource(nbdev_test)


def test_walkthrough_twins_keep_to_themselves():
    "The CPU twins never rebind a name that a GPU cell defines, and write nowhere but their own scratch folder."
    import ast
    nb = json.loads((NBS / "04_gpu_walkthrough.ipynb").read_text())
    flagged = lambda src: any(l.strip() in ("#| cuda", "#| download", "#| slow") for l in src.splitlines()[:3])
    def bound(src):
        names = set()
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store): names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)): names.add(node.name)
        return names
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    gpu = set().union(*(bound(s) for s in cells if flagged(s)))
    params = set().union(*(bound(s) for s in cells if s.startswith("# Parameters")))
    twins = [s for s in cells if not flagged(s) and not s.startswith("# Parameters")]
    for s in twins:
        clash = bound(s) & (gpu | params)
        assert not clash, f"a CPU twin rebinds {sorted(clash)}, which the GPU cells use:\n{s}"
    import re
    assert not any("TemporaryDirectory" in s for s in cells)
    assert all(arg == "twin_dir" for s in cells for arg in re.findall(r"rmtree\(([^)]*)\)", s))


def test_walkthrough_frees_the_gpu_before_torchrun():
    "The kernel lets go of the trial's model and PyTorch's cached GPU memory before torchrun's processes need the GPUs."
    nb = json.loads((NBS / "04_gpu_walkthrough.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    trial = next(i for i, s in enumerate(cells) if "trial = train_GPT(" in s)
    torchrun = next(i for i, s in enumerate(cells) if "run(torchrun + run_args)" in s)
    between = "\n".join(cells[trial + 1:torchrun])
    assert trial < torchrun and "del model" in between and "torch.cuda.empty_cache()" in between
    assert "torch._dynamo.reset()" in between # compiled graphs hold the model's weights too


def test_index_rehearsal(local_inputs, tmp_path):
    gpu_root = tmp_path / "gpu"
    params = f"""# Parameters
gpu_root = Path({str(gpu_root)!r})
fineweb_source = {str(local_inputs['corpus'])!r}
shard_size = 2**15
hellaswag_url = {local_inputs['hellaswag_url']!r}
weights = {str(local_inputs['weights'])!r}
gpu_kw = dict(model_name="cpu_tiny", B=4, T=32, total_batch_size=256, max_steps=3, warmup_steps=1, val_interval=2,
              val_loss_steps=2, hellaswag_interval=2, sample_interval=2, checkpoint_interval=0, compile=False)
"""
    r = _rehearse("index.ipynb", params, tmp_path)
    assert (gpu_root / "hellaswag" / "hellaswag_val.jsonl").is_file()
    assert data_complete(gpu_root / "edu_fineweb10B")
    assert _steps(gpu_root / "log" / "log.txt") == [0, 1, 2]          # the 124M preset's cell, shrunk
    assert _steps(gpu_root / "log_finetune" / "log.txt") == [0, 1, 2] # fine-tuning the given weights
    assert _steps(gpu_root / "log" / "log.txt", "hella") == [0, 2]


def test_train_rehearsal(local_inputs, tmp_path):
    "02_train's GPU cells (the speed-up ladder, the 124M preset's run, fine-tuning OpenAI's weights) on the CPU, tiny."
    from buildNanoGPT import data
    import shutil
    gpu_root = tmp_path / "gpu"
    data.edu_fineweb10B_prep(data_dir=gpu_root / "edu_fineweb10B", source=str(local_inputs["corpus"]), shard_size=2**15)
    (gpu_root / "hellaswag").mkdir()
    shutil.copy(local_inputs["hellaswag"], gpu_root / "hellaswag" / "hellaswag_val.jsonl")
    params = f"""# Parameters
gpu_device = "cpu"
gpu_root = Path({str(gpu_root)!r})
weights = {str(local_inputs['weights'])!r}
gpu_kw = dict(model_name="cpu_tiny", B=4, T=32, total_batch_size=256, max_steps=3, warmup_steps=1, val_interval=2,
              val_loss_steps=2, hellaswag_interval=2, sample_interval=2, checkpoint_interval=0, compile=False)
ladder_kw = dict(config=GPTConfig.cpu_tiny(), B=4, T=32, steps=2, warmup=1, compile_backend="aot_eager")
"""
    r = _rehearse("02_train.ipynb", params, tmp_path)
    assert _steps(gpu_root / "log" / "log.txt") == [0, 1, 2]          # the 124M preset's cell, shrunk
    assert _steps(gpu_root / "log_finetune" / "log.txt") == [0, 1, 2] # fine-tuning the given weights
    assert _steps(gpu_root / "log" / "log.txt", "hella") == [0, 2]
    assert "vocab 50304:" in r.stdout # the speed-up ladder's last row, printed by the #| cuda cell


def data_complete(d):
    from buildNanoGPT import data
    m = data.read_manifest(d)
    return bool(m and m["complete"])


def test_beyond_rehearsal(tmp_path):
    "05_beyond's GPU ablation cell on the CPU: four arms of the tiny model on two plays, then the plot."
    from buildNanoGPT import data, prep
    shards = tmp_path / "plays"
    prep.write_shards(data.shakespeare_docs()[:2], shards, "plays", shard_size=2**14, progress=False)
    arms = ["lecture", "rotary", "muon", "modern"]
    params = f"""# Parameters
run_dir = Path({str(tmp_path / 'run')!r})
data_dir = Path({str(shards)!r})
preset = "gpt2_124m"
train_kw = dict(model_name="cpu_tiny", vocab_size=50257, B=2, T=32, total_batch_size=64, max_steps=4, warmup_steps=1,
                val_interval=2, val_loss_steps=1, hellaswag=False, sample_interval=0, checkpoint_interval=0,
                log_interval=100, compile=False)
arms = {arms!r}
seeds = [0]
device = "cpu"
"""
    _rehearse("05_beyond.ipynb", params, tmp_path)
    assert (tmp_path / "run" / "ablation.png").is_file()
    for arm in arms: assert _steps(tmp_path / "run" / f"{arm}_0" / "log.txt", "val") == [0, 2, 3]
