"""Your own tokenizer through the command line, as a user types it: `buildnanogpt-prep --vocab-size N` learns a BPE
from the train text and saves it beside the shards; `buildnanogpt-train` takes the folder's tokenizer (the model's
vocabulary follows it), its checkpoints carry it, `buildnanogpt-sample` decodes with it, and neither prep nor resume
mixes two tokenizers."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from limits import HANG_S
from test_ddp import _env
from test_prep import PREP, _text
from test_run_safety import TRAIN, _ok, _one_line_error

SAMPLE = [sys.executable, "-c", "from buildNanoGPT.cli import sample_cli; sample_cli()"]


def _run(cmd, cwd):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=HANG_S, env=_env())


def _train_args(data_dir, log_dir, steps):
    return ["--data-dir", data_dir, "-B", "4", "-T", "32", "--total-batch-size", "128", "--max-steps", steps,
            "--val-interval", "5", "--val-loss-steps", "2", "--no-hellaswag", "--sample-interval", "0",
            "--checkpoint-interval", "5", "--device", "cpu", "--log-dir", log_dir, "--log-interval", "1"]


def test_own_tokenizer_prep_train_sample_and_no_mixing(tmp_path):
    words = "thou art my lord and king the night is dark O Romeo wherefore speak again".split()
    text = "\n".join(" ".join(words[(i * 7 + j) % len(words)] for j in range(9)) for i in range(6000))
    (tmp_path / "plays.txt").write_text(text)
    out = _ok(_run(PREP + ["--source", "plays.txt", "--data-dir", "own", "--vocab-size", "300"], tmp_path))
    assert "tokenizer: bpe300 (300 tokens, learnt from the train text), tokenizer.tiktoken" in out, out
    m = json.loads((tmp_path / "own" / "manifest.json").read_text())
    assert (m["tokenizer"], m["vocab_size"], m["complete"]) == ("bpe300", 300, True)
    # train: the model's vocabulary follows the folder's tokenizer (300, padded to 320)
    out = _ok(_run(TRAIN + _train_args("own", "log", 10), tmp_path))
    assert "validation loss: " in out and "| val_bpb: " in out, out
    ckpt = torch.load(tmp_path / "log" / "model_00009.pt")
    assert ckpt["config"]["vocab_size"] == 320 and ckpt["tokenizer"]["name"] == "bpe300", ckpt["config"]
    assert ckpt["tokenizer"]["sha256"] == m["tokenizer_sha256"] and ckpt["tokenizer"]["ranks"]
    # sampling decodes with the checkpoint's own tokenizer: words of the corpus, no error
    out = _ok(_run(SAMPLE + ["log", "--prompt", "thou art", "--max-new-tokens", "20", "--num-samples", "1"], tmp_path))
    assert "--- sample 0 ---\nthou art" in out, out
    # another tokenizer in the same folder is refused; so is GPT-2's
    for extra in (["--vocab-size", "310"], []):
        r = _run(PREP + ["--source", "plays.txt", "--data-dir", "own", *extra], tmp_path)
        assert r.returncode == 2 and "already holds another corpus" in r.stderr, r.stderr
    # a resume on data made with another tokenizer is refused, naming it
    # (310 ids: the model's vocabulary is 320 again, so the tokenizer is all that differs)
    _ok(_run(PREP + ["--source", "plays.txt", "--data-dir", "own2", "--vocab-size", "310", "--name", "own"], tmp_path))
    msg = _one_line_error(_run(TRAIN + _train_args("own2", "log", 20) + ["--resume"], tmp_path))
    assert "data.tokenizer: checkpoint " in msg and "model.vocab_size" not in msg, msg
    # GPT-2's weights need GPT-2's tokenizer
    msg = _one_line_error(_run(TRAIN + ["--init-from", "gpt2", "--data-dir", "own", "--max-steps", "1",
                                        "--device", "cpu", "--log-dir", "log3"], tmp_path))
    assert "has GPT-2's vocabulary, but own was tokenized with its own bpe300" in msg, msg
