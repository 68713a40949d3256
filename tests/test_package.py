"""Package-level checks that a notebook cell cannot do well."""
import importlib
import buildNanoGPT


def test_version_exported():
    assert isinstance(buildNanoGPT.__version__, str) and buildNanoGPT.__version__.count(".") >= 1


def test_version_is_after_the_original_package():
    "PyPI's buildNanoGPT 0.1.6 is the original package: ours must be a later version, or pip installs that one."
    from packaging.version import Version
    import importlib.metadata, pathlib, re
    assert Version(buildNanoGPT.__version__) >= Version("0.2.0")
    # the distribution's version comes from __init__.py (pyproject: dynamic = ["version"])
    assert re.search(r'dynamic = \["version"\]', (pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert importlib.metadata.version("buildNanoGPT") == buildNanoGPT.__version__


def test_modules_import():
    for mod in ["data", "model", "train", "viz"]:
        importlib.import_module(f"buildNanoGPT.{mod}")
