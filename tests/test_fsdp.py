"""FSDP2 known answers: `torchrun --nproc_per_node=2 ... --strategy fsdp` on the CPU (gloo) ends with the parameters and
optimizer state of one process that sees the same global batch (lecture and modern recipe, gradient accumulation in
both); each rank holds about half the weights and optimizer state; the checkpoint is the plain state dict."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_ddp import _env, _write_hellaswag, _write_shards
from limits import HANG_S

CLI = [sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
STEPS, B, T = 3, 2, 32


def _args(recipe, data_dir, log_dir, hellaswag_dir):
    # 4 micro-batches of B*T per step: one process accumulates 4, each of 2 ranks 2 (no reduce-scatter on the first).
    # The modern recipe's AdamW (embeddings, head) at a small rate: an embedding row whose gradient nearly cancels gets
    # Adam's full step in either direction, so the rounding of any all-reduce (DDP's too: 1.9e-3 at 1e-3 here) shows
    # there; its Muon matrices, which the sharding changes, keep the recipe's rate.
    lr = "1e-3" if recipe == "lecture" else "3e-5"
    return ["--recipe", recipe, "--data-dir", str(data_dir), "--model", "cpu_tiny", "-B", str(B), "-T", str(T),
            "--total-batch-size", str(4 * B * T), "--max-steps", str(STEPS), "--warmup-steps", "1", "--max-lr", lr,
            "--val-interval", "2", "--val-loss-steps", "2", "--hellaswag-interval", "2", "--sample-interval", "2",
            "--sample-max-length", "12", "--checkpoint-interval", "0", "--device", "cpu", "--log-dir", str(log_dir),
            "--hellaswag-dir", str(hellaswag_dir)]


def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\nSTDOUT:\n{r.stdout}\nSTDERR:\n{r.stderr}"
    return r.stdout


def _tensors(obj, prefix=""):
    "{path: tensor} of the tensors in a nested state dict."
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    return {k: v for key, val in items for k, v in _tensors(val, f"{prefix}/{key}").items()}


def _max_diff(a, b) -> float:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    return max((ta[k].float() - tb[k].float()).abs().max().item() for k in ta)


@pytest.mark.parametrize("recipe", ["lecture", "modern"])
def test_fsdp_two_ranks_equal_single_process(tmp_path, recipe):
    data_dir, hs = _write_shards(tmp_path / "data"), _write_hellaswag(tmp_path / "hellaswag", n=11) # 6 and 5 per rank
    single = _run(CLI + _args(recipe, data_dir, tmp_path / "single", hs), tmp_path)
    # the lecture's run also checkpoints each block's activations: the same numbers, less memory
    extra = ["--strategy", "fsdp"] + (["--activation-checkpointing"] if recipe == "lecture" else [])
    fsdp = _run(TORCHRUN + [str(Path(sys.executable).parent / "buildnanogpt-train"),
                            *_args(recipe, data_dir, tmp_path / "fsdp", hs), *extra], tmp_path)
    assert "=> calculated gradient accumulation steps: 2" in fsdp and fsdp.count("sharding: fsdp over 2 ranks") == 1
    hella = lambda out: [l for l in out.splitlines() if l.startswith("HellaSwag accuracy:")]
    assert len(hella(single)) == 2 and hella(fsdp) == hella(single), (hella(fsdp), hella(single))
    assert "rank 1 sample 0:" in fsdp # every rank samples from the sharded model
    ck1, ck2 = (torch.load(tmp_path / d / f"model_{STEPS - 1:05d}.pt") for d in ("single", "fsdp"))
    assert ck1["model"].keys() == ck2["model"].keys() # the plain keys: no FSDP or checkpoint-wrapper prefix
    muon = {k for k, v in ck1["model"].items() if recipe == "modern" and v.dim() == 2 and ".h." in f".{k}"}
    rest = [k for k in ck1["model"] if k not in muon]
    diff = _max_diff({k: ck1["model"][k] for k in rest}, {k: ck2["model"][k] for k in rest})
    muon_diff = _max_diff({k: ck1["model"][k] for k in muon}, {k: ck2["model"][k] for k in muon}) if muon else 0.0
    opt_diff = _max_diff(ck1["optimizer"], ck2["optimizer"])
    print(f"{recipe}: max difference FSDP(2) vs one process: parameters {diff:.3e} (Muon's matrices {muon_diff:.3e}), "
          f"optimizer state {opt_diff:.3e}")
    assert diff < 1e-4 and opt_diff < 1e-4, (diff, opt_diff)
    # Muon's Newton-Schulz runs in bf16: a gradient differing in its last fp32 bits (any all-reduce, DDP's too) can
    # move an update element by one bf16 step, about 1e-4 here after three steps
    assert muon_diff < 2e-4, muon_diff
    losses = lambda d: [float(l.split()[2]) for l in (tmp_path / d / "log.txt").read_text().splitlines()
                        if l.split()[1] == "train"]
    assert len(set(losses("single"))) == STEPS # it trained: the comparison is not of three equal numbers
    assert max(abs(a - b) for a, b in zip(losses("single"), losses("fsdp"))) < 1e-4
    # the optimizer state is one process's: the same numbering, so either run resumes the other's
    assert ck1["optimizer"].keys() == ck2["optimizer"].keys()
    # the checkpoint written under FSDP loads into a plain model, as the original package's usage expects
    from buildNanoGPT.dist import DDPConfig
    from buildNanoGPT.modern import config_from_dict
    from buildNanoGPT.train import create_model
    create_model(DDPConfig.local(), config=config_from_dict(ck2["config"])).load_state_dict(ck2["model"])


SHARDS = r'''
import json, sys, torch
from torch.distributed.tensor import DTensor
from buildNanoGPT.dist import DDPConfig, broadcast_object, full_optimizer_state, full_state_dict, load_full_optimizer_state, load_full_state_dict
from buildNanoGPT.train import TrainingConfig, build_optimizer, create_model
local = lambda t: t.to_local() if isinstance(t, DTensor) else t
ddp_cf, out = DDPConfig(device="cpu", verbose=False), {}
for recipe, kw in [("lecture", {}), ("modern", dict(optimizer="muon", model_kw=dict(rotary=True, tie_embeddings=False)))]:
    cf = TrainingConfig(model_name="cpu_tiny", vocab_size=50304, log_dir=None, **kw)
    torch.manual_seed(0)
    model = create_model(ddp_cf, config=cf.gpt_config(), strategy="fsdp")
    opt = build_optimizer(model, cf, DDPConfig.local())
    x = torch.randint(0, 50304, (2, 16))
    model(x, x)[1].backward(); opt.step()
    state = [t for t in torch.utils._pytree.tree_leaves(opt.state_dict()) if isinstance(t, torch.Tensor) and t.dim()]
    sd, osd = full_state_dict(model), full_optimizer_state(opt) # every rank calls; rank 0 alone gets them
    kept = (len(sd), osd is not None)
    osd = broadcast_object(osd, ddp_cf) # as a resume hands rank 0's checkpoint to every rank
    params = list(model.parameters())
    out[recipe] = dict(held=sum(local(p).numel() for p in params), total=sum(p.numel() for p in params),
                       state_held=sum(local(t).numel() for t in state), state_total=sum(t.numel() for t in state),
                       full_state=sum(t.numel() for t in torch.utils._pytree.tree_leaves(osd)
                                      if isinstance(t, torch.Tensor) and t.dim()),
                       model_keys=kept[0], optimizer_kept=kept[1])
    # a full state comes back into the sharded model and optimizer: the same local shards
    before = [local(p).clone() for p in params]
    exp = [local(t).clone() for t in state]
    full = broadcast_object(sd, ddp_cf) # rank 0's full state dict, on every rank
    with torch.no_grad():
        for p in params: local(p).zero_()
    load_full_state_dict(model, full)
    load_full_optimizer_state(opt, osd)
    after = [t for t in torch.utils._pytree.tree_leaves(opt.state_dict()) if isinstance(t, torch.Tensor) and t.dim()]
    out[recipe]["reloaded"] = (all(torch.equal(a, local(p)) for a, p in zip(before, params)) and
                               all(torch.equal(a, local(b)) for a, b in zip(exp, after)))
print("RESULT", ddp_cf.ddp_rank, json.dumps(out), flush=True)
ddp_cf.destroy()
'''


def test_fsdp_each_rank_holds_half(tmp_path):
    "Measured from the local shards: each of 2 ranks holds about half the weights and the optimizer state."
    script = tmp_path / "shards.py"
    script.write_text(SHARDS)
    out = _run(TORCHRUN + [str(script), str(tmp_path)], tmp_path)
    res = {int(l.split()[1]): json.loads(l.split(maxsplit=2)[2]) for l in out.splitlines() if l.startswith("RESULT")}
    assert res.keys() == {0, 1}, out
    for recipe in ("lecture", "modern"):
        r0, r1 = res[0][recipe], res[1][recipe]
        print(recipe, r0, r1)
        assert r0["held"] + r1["held"] == r0["total"] and abs(r0["held"] / r0["total"] - 0.5) < 0.01
        assert r0["state_held"] + r1["state_held"] == r0["state_total"] == r0["full_state"] > 0
        assert abs(r0["state_held"] / r0["state_total"] - 0.5) < 0.01
        assert r0["model_keys"] > 0 and r1["model_keys"] == 0 # rank 0 gets the full state dict, on the CPU
        assert r0["optimizer_kept"] and not r1["optimizer_kept"] # and the optimizer's: not a full copy per rank
        assert r0["reloaded"] and r1["reloaded"]
