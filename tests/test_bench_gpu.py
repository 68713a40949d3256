"""benchmarks/bench_gpu.py's out-of-memory fallback, checked on the CPU with a stand-in for the training step:
B halves on OOM (torch.cuda.OutOfMemoryError, or one wrapped by torch.compile in another exception), dynamo is reset
before each try, and a side that does not fit at B=1 is reported as not fitting rather than given the numbers of
the side before it."""
import importlib.util
import types
from pathlib import Path

import pytest
import torch

spec = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py")
bench_gpu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_gpu)

ARGS = types.SimpleNamespace(seq=64, steps=2, warmup=1, device="cpu", model="cpu_tiny")


@pytest.fixture
def resets(monkeypatch):
    calls = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: calls.append(1))
    return calls


def _fake_step(fits_up_to, wrap=False):
    tried = []
    def run_ours(compiled, B, T, steps, warmup, shards, device, model):
        tried.append(B)
        if B > fits_up_to:
            oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            if not wrap: raise oom
            try: raise oom
            except Exception as e: raise RuntimeError("compiled step failed") from e # what inductor does
        return [0.5] * steps
    return run_ours, tried


@pytest.mark.parametrize("wrap", [False, True])
def test_halves_batch_on_oom(monkeypatch, resets, wrap):
    run_ours, tried = _fake_step(fits_up_to=8, wrap=wrap)
    monkeypatch.setattr(bench_gpu, "run_ours", run_ours)
    B, dt, mem = bench_gpu.measure("ours/compiled", 64, ARGS, Path("."))
    assert (B, dt) == (8, 0.5) and tried == [64, 32, 16, 8] and len(resets) == 4


def test_side_that_never_fits_is_reported_not_reused(monkeypatch, resets):
    run_ours, tried = _fake_step(fits_up_to=0)
    monkeypatch.setattr(bench_gpu, "run_ours", run_ours)
    assert bench_gpu.measure("ours/eager", 4, ARGS, Path(".")) is None
    assert tried == [4, 2, 1]


def test_other_errors_are_not_taken_for_oom(monkeypatch, resets):
    def broken(*a): raise ValueError("shapes do not match")
    monkeypatch.setattr(bench_gpu, "run_ours", broken)
    with pytest.raises(ValueError, match="shapes"): bench_gpu.measure("ours/eager", 4, ARGS, Path("."))


def test_oom_classes_exist_on_this_torch():
    from buildNanoGPT.plan import is_oom
    assert is_oom(torch.cuda.OutOfMemoryError("x")) and not is_oom(RuntimeError("x"))
