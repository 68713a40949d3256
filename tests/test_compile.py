"""`compile=True` trains through torch.compile while validation and sampling keep working on the raw model, the
losses equal eager mode's, and the checkpoint (no `_orig_mod.` prefix) loads into a plain model."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from buildNanoGPT import data
from buildNanoGPT.model import GPT, GPTConfig
from buildNanoGPT.train import DDPConfig, TrainingConfig, create_model, set_random_seed, train_GPT
from test_ddp import _write_shards


def _run(tmp_path, compile):
    torch.set_num_threads(1)
    cf = DDPConfig(device="cpu", verbose=False)
    set_random_seed(0)
    log_dir = tmp_path / ("compiled" if compile else "eager")
    tc = TrainingConfig(total_batch_size=128, B=2, T=32, max_lr=1e-3, warmup_steps=1, max_steps=3, val_interval=2,
                        val_loss_steps=1, hellaswag=False, sample_interval=2, num_return_sequences=1, sample_max_length=12,
                        checkpoint_interval=0, log_dir=str(log_dir), compile=compile)
    tl = data.DataLoaderLite(B=2, T=32, split="train", data_root=tmp_path / "data", verbose=False)
    vl = data.DataLoaderLite(B=2, T=32, split="val", data_root=tmp_path / "data", verbose=False)
    model = create_model(cf, config=GPTConfig.cpu_tiny())
    summary = train_GPT(model, tl, vl, tc, cf)
    losses = [float(l.split()[2]) for l in (log_dir / "log.txt").read_text().splitlines()]
    return summary, losses, log_dir / "model_00002.pt"


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="torch.compile on CPU needs a C compiler")
def test_compiled_training_evaluates_samples_and_saves_plain(tmp_path, capsys):
    _write_shards(tmp_path / "data")
    s_eager, l_eager, _ = _run(tmp_path, compile=False)
    s_comp, l_comp, ckpt = _run(tmp_path, compile=True)
    out = capsys.readouterr().out
    assert out.count("validation loss:") == 4 and out.count("rank 0 sample 0:") == 2 # eval + sampling while compiled
    np.testing.assert_allclose(l_comp, l_eager, rtol=0, atol=1e-4)
    sd = torch.load(ckpt)["model"]
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in sd)
    plain = GPT(GPTConfig.cpu_tiny())
    plain.load_state_dict(sd)
