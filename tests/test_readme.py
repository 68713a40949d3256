"""README.md is made from nbs/index.ipynb by `python tools/make_readme.py` (Quarto, which nbdev-readme needs, is not
installable here); this fails when the two disagree."""
import importlib.util, json
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
