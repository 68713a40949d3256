"""The docs pages render: nbdev's docs processing, nbconvert HTML, and a load in headless Chromium.

Quarto is not installable on our machines, so `tools/render_docs.py` stands in for `nbdev-docs` (see its docstring).
Chromium (Debian `chromium`) is required in CI (`.ci/run` installs it); on a developer machine without it the
browser checks are skipped with the reason, the rest still runs.
"""
import importlib.util, os, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("render_docs", REPO / "tools" / "render_docs.py")
render_docs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(render_docs)

CHROMIUM = render_docs.find_chromium()
NEED_BROWSER = "in CI Chromium is required: .ci/run installs it (apt-get install -y chromium)"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if CHROMIUM is None and os.environ.get("CI"): pytest.fail(f"chromium not found; {NEED_BROWSER}")
    out = tmp_path_factory.mktemp("docs")
    return render_docs.render_all(out, chromium=CHROMIUM)


def test_every_notebook_has_a_page(report):
    nbs = [p.name for p in render_docs.doc_notebooks()]
    assert "index.ipynb" in nbs and "03_viz.ipynb" in nbs
    for name in nbs:
        assert name in report["pages"], f"no page for {name}: {report['problems']}"
        assert Path(report["pages"][name]["html"]).stat().st_size > 1000
    for entry in render_docs.sidebar_pages():
        assert (render_docs.NBS / entry).is_file(), f"sidebar.yml lists {entry}, which does not exist"


def test_no_problems(report):
    "No failed docs processing, no traceback in an output, no broken image, no blank page."
    assert not report["problems"], "\n".join(report["problems"])


def test_viz_page_shows_the_plot(report):
    viz = report["pages"]["03_viz.ipynb"]
    assert viz["output_images"] >= 1, "the viz notebook must be saved with its plot output (nbdev-test --save)"
    if CHROMIUM is None: pytest.skip("chromium not installed: browser check skipped (apt-get install -y chromium)")
    assert viz["browser_images"] >= 1 and not viz["broken_images"]


def test_pages_load_in_chromium(report):
    if CHROMIUM is None: pytest.skip("chromium not installed: browser check skipped (apt-get install -y chromium)")
    for name, info in report["pages"].items():
        assert Path(info["screenshot"]).stat().st_size > 10_000, f"{name}: screenshot too small to show a page"


def test_checker_catches_problems(tmp_path):
    "The checks themselves: a traceback, an error output and a corrupt PNG are reported."
    nb = {"cells": [{"cell_type": "code", "source": "1/0", "metadata": {}, "execution_count": 1, "outputs": [
        {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": []},
        {"output_type": "stream", "name": "stderr", "text": "Traceback (most recent call last):\n  ...\n"},
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": "bm90IGEgcG5n"}}]}]}
    problems, n_img = render_docs.check_outputs(nb, "bad.ipynb")
    assert n_img == 1 and len(problems) == 3, problems
    assert any("ZeroDivisionError" in p for p in problems) and any("not a PNG" in p for p in problems)


def test_pages_show_outputs(report):
    "A page whose notebook has code cells but no saved outputs shows code without any results."
    bare = [n for n, i in report["pages"].items() if i["code_cells"] >= 3 and i["outputs"] == 0]
    assert not bare, (f"no saved outputs in {bare}: their docs pages show code without results; save them with "
                      "`nbdev-test nbs/NAME.ipynb --save && nbdev-clean --fname nbs/NAME.ipynb`")
