"""README.md is made from nbs/index.ipynb by `python tools/make_readme.py` (Quarto, which nbdev-readme needs, is not
installable here); this fails when the two disagree."""
import importlib.util, json, os, re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_readme", REPO / "tools" / "make_readme.py")
make_readme = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(make_readme)


def test_readme_in_sync_with_index():
    problems = make_readme.check()
    assert not problems, "\n".join(problems) + "\n\nrun `python tools/make_readme.py` and commit README.md"


def _nb(cells):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def test_conversion_rules(tmp_path):
    "Markdown as is; code in python blocks with text outputs indented; #| hide skipped; test flags shown."
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# proj\n\n> what it is"},
        {"cell_type": "code", "metadata": {}, "source": "#| hide\nfrom proj import *", "outputs": [], "execution_count": 1},
        {"cell_type": "code", "metadata": {}, "source": "#| cuda\nprint('hi')\n1+1", "execution_count": 2, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["hi\n"]},
            {"output_type": "stream", "name": "stderr", "text": ["progress 10%\r"]},
            {"output_type": "execute_result", "execution_count": 2, "metadata": {}, "data": {"text/plain": "2"}}]},
        {"cell_type": "code", "metadata": {}, "source": "#| echo: false\nplot()", "execution_count": 3, "outputs": [
            {"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": "<Figure>"}}]},
    ]
    p = tmp_path / "index.ipynb"; p.write_text(json.dumps(_nb(cells)))
    md, files = make_readme.make_readme(p)
    assert md == ("# proj\n\n> what it is\n\n" + make_readme.WARNING + "\n\n``` python\n#| cuda\nprint('hi')\n1+1\n```\n\n"
                  "    hi\n\n    2\n\n![](index_files/figure-commonmark/cell-3-output-1.png)\n")
    assert list(files.values())[0][:4] == b"\x89PNG"
    readme = tmp_path / "README.md"
    assert make_readme.check(p, readme)                      # no README yet: out of sync
    make_readme.write(p, readme)
    assert make_readme.check(p, readme) == []                # written: in sync, image included
    readme.write_text(readme.read_text() + "edited by hand\n")
    assert "README.md differs" in make_readme.check(p, readme)[0]


def test_readme_links_resolve():
    "Relative links in README.md (notebooks, images) point at files of the repo: the notebooks live in nbs/."
    import re
    links = re.findall(r"\]\(([^)\s]+)\)", (REPO / "README.md").read_text())
    local = [l for l in links if not l.startswith(("http://", "https://", "#", "mailto:"))]
    assert any(l.startswith("nbs/") for l in local), local
    missing = [l for l in local if not (REPO / l.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


SKIPPED_FLAGS = ("hide", "cuda", "download", "slow", "notest") # hidden, or shown but needing a GPU or the network


def _shown_cells(nb_path) -> list[str]:
    "The code cells a reader of the page sees and can run here, in order (flagged GPU/network cells left out)."
    cells = json.loads(Path(nb_path).read_text())["cells"]
    out = []
    for c in cells:
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        flags = re.findall(r"^#\|\s*([\w-]+)", src, flags=re.M)
        if c["cell_type"] == "code" and not set(flags) & set(SKIPPED_FLAGS):
            out.append(src)
    return out


def test_index_snippets_run_in_a_fresh_kernel(tmp_path):
    "The index page's visible code, in the order shown, runs in a new kernel: nothing comes from a hidden cell."
    import subprocess, sys
    from limits import HANG_S
    cells = _shown_cells(REPO / "nbs" / "index.ipynb")
    assert len(cells) >= 15 and any("import numpy as np" in c for c in cells)
    (tmp_path / "cells.json").write_text(json.dumps(cells))
    code = ("import json\nfrom execnb.shell import CaptureShell\nsh = CaptureShell()\n"
            "for i, src in enumerate(json.load(open('cells.json'))):\n"
            "    sh.run(src)\n"
            "    if sh.exc: raise SystemExit(f'cell {i} failed:\\n{src}\\n{sh.exc!r}')\n"
            "print('ran', i + 1, 'cells')\n")
    env = {**os.environ, "TMPDIR": str(tmp_path), "MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=HANG_S)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"ran {len(cells)} cells" in r.stdout
