"""The memory plan from the command line (nbs/15_plan, nbs/10_cli): `buildnanogpt-train --plan` prints the plan per
GPU and the largest -B that fits, in a fresh process, without training or writing anything; a wrong size is one line;
-B auto is refused on the CPU and, on a GPU, halves B on out-of-memory (here with a stand-in for the trial step)."""
import subprocess
import sys

import pytest
import torch

from limits import HANG_S

CLI = [sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()"]


def _train(tmp_path, *args):
    return subprocess.run(CLI + list(args), cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S)


def test_plan_prints_and_trains_nothing(tmp_path):
    r = _train(tmp_path, "--preset", "gpt2_350m", "--plan", "--nproc", "8", "--strategy", "fsdp", "--gpu-mem", "24GB")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "memory plan per GPU: 354.9M parameters (24 layers, width 1024, vocab 50,304), B=32 T=1024, 8 GPUs (fsdp), " \
           "bf16, adamw, on cuda" in out, out
    for part in ("parameters", "gradients", "optimizer state", "working weights", "activations", "logits and loss"):
        assert f"\n{part} " in out, part
    assert "memory per GPU: 24.0 GiB (--gpu-mem)" in out and "does NOT fit" in out
    assert "-B auto: 8, the largest that divides the 64 rows per GPU per step" in out, out
    assert "step " not in out and list(tmp_path.iterdir()) == [] # no training, no log folder, no data


def test_plan_without_a_gpu_says_what_it_assumed(capsys):
    from buildNanoGPT.cli import train_cli
    train_cli(["--preset", "gpt2_124m", "--plan"])
    if not torch.cuda.is_available():
        assert "memory per GPU: 80.0 GiB (assumed: there is no GPU here; give --gpu-mem for another card)" in \
            capsys.readouterr().out


@pytest.mark.parametrize("args, says", [
    (["--plan", "--gpu-mem", "80 gigs"], "memory size '80 gigs' is not a size: write it like 80GB"),
    (["-B", "lots"], "argument --batch-size/-B: invalid value 'lots': give a number of rows, or auto"),
    (["--model", "cpu_tiny", "-B", "auto", "--device", "cpu"], "-B auto fits the micro-batch to a GPU's memory")])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, args, says):
    from buildNanoGPT.cli import train_cli
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        train_cli(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and says in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == [] # refused before any file is written


def test_auto_batch_halves_on_out_of_memory(monkeypatch, capsys):
    "-B auto in one process on a (pretended) GPU: the plan's B, then a trial step halving B on CUDA's OOM."
    from buildNanoGPT import cli
    from buildNanoGPT.dist import DDPConfig
    tried = []
    def trial(train_cf, B, ddp_cf):
        tried.append(B)
        if B > 4: raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
    monkeypatch.setattr(cli, "_trial", trial)
    a = cli.train_parser().parse_args(["--preset", "gpt2_124m", "-B", "auto", "--gpu-mem", "24GB"])
    a.B = None
    ddp_cf = DDPConfig.local()
    ddp_cf.device_type = "cuda" # the trial is a stand-in: nothing runs on the device
    train_cf = cli._auto_batch(a, cli.train_config(a), ddp_cf)
    assert (train_cf.B, tried) == (4, [16, 8, 4])
    assert train_cf.accum_steps() == 128 # 524,288 tokens per step as the preset says
    out = capsys.readouterr().out
    assert "out of memory at B=16, trying B=8" in out and "-B auto: B=4, the memory plan's largest, confirmed" in out


WORKER = '''
import json, torch
from buildNanoGPT.dist import DDPConfig, raw_model, wrap_model
from buildNanoGPT.model import GPT, GPTConfig
from buildNanoGPT.plan import _train_step, cpu_allocations, memory_plan
torch.set_num_threads(1)
ddp_cf = DDPConfig(device="cpu", verbose=False)
cfg = GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=256, vocab_size=2048)
for strategy in ("ddp", "fsdp"):
    for B in (8,): # at B=2 gloo's all-reduce scratch (about a gradient bucket) may or may not overlap the peak: +-15%
        def life(): # everything this rank allocates, from the model's birth to the end of its second step
            torch.manual_seed(0)
            model = wrap_model(GPT(cfg), ddp_cf, strategy)
            opt = raw_model(model).configure_optimizers(0.1, 1e-3, "cpu", master_process=False)
            x, y = (torch.randint(0, cfg.vocab_size, (B, 128)) for _ in range(2))
            for _ in range(2):
                _train_step(model, opt, x, y, False)
        measured = cpu_allocations(life)[0]
        plan = memory_plan(cfg, B, 128, world_size=ddp_cf.ddp_world_size, strategy=strategy, device="cpu")
        print(json.dumps(dict(rank=ddp_cf.ddp_rank, strategy=strategy, B=B, measured=measured, plan=plan.peak)), flush=True)
ddp_cf.destroy()
'''


def test_plan_of_two_ranks_ddp_and_fsdp(tmp_path):
    "DDP (its gradient buckets) and FSDP2 (shards, gathered blocks) over 2 gloo ranks: the plan within 15% of each peak."
    # measured over the model's whole life (FSDP's padded shards and DDP's buckets are no parameters or optimizer state)
    import json
    from test_ddp import _env
    (tmp_path / "worker.py").write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(tmp_path / "worker.py")]
    r = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(rows) == 2 * 2, r.stdout
    for row in rows:
        assert abs(row["plan"] / row["measured"] - 1) < 0.15, row
    fsdp, ddp = ([r["measured"] for r in rows if r["strategy"] == s] for s in ("fsdp", "ddp"))
    assert max(fsdp) < min(ddp) # sharding halves weights, gradients and AdamW's moments, and has no buckets


def test_trial_step_runs_the_run_s_model():
    "The trial step -B auto confirms with: a fresh model and optimizer as the run builds them, two steps (CPU here)."
    from buildNanoGPT import cli
    from buildNanoGPT.dist import DDPConfig
    a = cli.train_parser().parse_args(["--model", "cpu_tiny", "-T", "32", "--activation-checkpointing"])
    cli._trial(cli.train_config(a), 2, DDPConfig.local())
