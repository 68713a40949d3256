"""Package-level checks that a notebook cell cannot do well."""
import importlib
import buildNanoGPT


def test_version_exported():
    assert isinstance(buildNanoGPT.__version__, str) and buildNanoGPT.__version__.count(".") >= 1


def test_modules_import():
    for mod in ["data", "model", "train", "viz"]:
        importlib.import_module(f"buildNanoGPT.{mod}")
