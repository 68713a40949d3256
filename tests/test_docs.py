"""The docs pages render: nbdev's docs processing, nbconvert HTML, and a load in headless Chromium.

Quarto is not installable on our machines, so `tools/render_docs.py` stands in for `nbdev-docs` (see its docstring).
Chromium (Debian `chromium`) is required in CI (`.ci/run` installs it); on a developer machine without it the
browser checks are skipped with the reason, the rest still runs.
"""
import html as htmllib, importlib.util, json, os, re, sys
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


def test_pages_have_sidebar_and_outline(report):
    "As on the Quarto site: every page lists the sidebar.yml pages in order (itself marked) and outlines its headings."
    entries, site = render_docs.sidebar_pages(), report["site"]
    want = [site[e]["file"] for e in entries]
    for name, info in report["pages"].items():
        assert info["sidebar"] == want, f"{name}: sidebar {info['sidebar']}, sidebar.yml: {want}"
        assert info["sidebar_active"] == [info["page"]], f"{name}: the sidebar marks {info['sidebar_active']}"
        if info["h2"]: assert info["outline"] >= 1, f"{name}: {info['h2']} h2 headings, no outline"
    if CHROMIUM is None: pytest.skip("chromium not installed: browser check skipped (apt-get install -y chromium)")
    for name, info in report["pages"].items():  # what the one Chromium load of the page found in the DOM
        assert info["browser_sidebar"] == len(entries), f"{name}: {info['browser_sidebar']} sidebar links shown"
        assert info["browser_active"] == info["page"], f"{name}: the sidebar marks {info['browser_active']}"
        assert info["browser_outline"] == info["outline"], f"{name}: {info['browser_outline']} outline links shown"
        if info["h2"]: assert info["browser_outline"] >= 1
        assert info["covered"] is None, f"{name}: the {info['covered']} covers the content"
        assert info["browser_folds"] == info["code_folds"]


def test_links_point_to_pages(report):
    "Quarto's links: no relative link to a notebook is left (`X.ipynb` -> X's page); the link check ran on them."
    for name, info in report["pages"].items():
        html = Path(info["html"]).read_text()
        left = [h for h in re.findall(r'href="([^"]*)"', html) if not re.match(r"[a-z]+:", h) and ".ipynb" in h]
        assert not left, f"{name}: links to notebooks left: {left}"


def _nb(*cells):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [dict(c, id=f"c{i}", metadata={}) for i, c in enumerate(cells)]}


def _md(src): return {"cell_type": "markdown", "source": src}
def _raw(src): return {"cell_type": "raw", "source": src}
def _code(src, *outputs): return {"cell_type": "code", "source": src, "execution_count": None, "outputs": list(outputs)}


def _show_doc(module, line, name, sig):
    "A show_doc output as nbdev writes it (a class too is shown as `def`)."
    md = (f"---\n\n[source](https://github.com/buildnanogpt/buildNanoGPT/blob/main/buildNanoGPT/{module}.py#L{line})"
          f'{{target="_blank" style="float:right; font-size:smaller"}}\n\n### {name}\n\n```python\n{sig}\n```\n\n*Doc.*')
    return {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": md, "text/plain": "<...>"}}


def test_site_features_on_a_small_notebook(tmp_path):
    "Links rewritten and checked, the sidebar and outline, a class's show_doc as `class`, and `code-fold: true`."
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    (nbs / "sidebar.yml").write_text("website:\n  sidebar:\n    contents:\n      - index.ipynb\n      - 01_b.ipynb\n")
    index = _nb(_raw("---\ntitle: Home\n---"),
                _md("## Links\n\n[to b](01_b.ipynb#part-two), [missing](nope.ipynb), [bad part](01_b.ipynb#no-such-part), "
                    "[here](#links), [gone](#absent), [elsewhere](https://example.com/x.ipynb)"),
                _code('#| code-fold: true\n#| code-summary: "Show the loop"\nfor i in range(2): print(i)',
                      {"output_type": "stream", "name": "stdout", "text": "printed 0\nprinted 1\n"}),
                _code("#| code-fold: true\nx = 1"),
                _code("#| echo: false\n#| output: asis\nshow_doc(GPTConfig)",
                      _show_doc("model", 32, "GPTConfig", "def GPTConfig(\n    block_size:int=1024\n)->None:"),
                      _show_doc("model", 89, "GPTConfig.from_name", "def from_name(\n    name:str, **kw\n):"),
                      _show_doc("checkpoint", 43, "get_rng_state", "def get_rng_state(\n)->dict:")))
    b = _nb(_raw("---\ntitle: Bee\noutput-file: bee.html\n---"), _md("## Part two\n\n### Sub part\n\n[back](index.ipynb)"))
    for name, nb in [("index.ipynb", index), ("01_b.ipynb", b)]: (nbs / name).write_text(json.dumps(nb))
    rep = render_docs.render_pages({n: nbs / n for n in ["index.ipynb", "01_b.ipynb"]}, out, nbs=nbs)
    pi, pb = rep["pages"]["index.ipynb"], rep["pages"]["01_b.ipynb"]
    assert (pi["page"], pb["page"]) == ("index.html", "bee.html")  # named by the front matter's output-file
    html = (out / "index.html").read_text()
    # links: .ipynb -> its page, fragment kept (and pandoc's ids); external links left alone
    assert 'href="bee.html#part-two"' in html and 'href="https://example.com/x.ipynb"' in html
    assert 'href="index.html"' in (out / "bee.html").read_text()
    probs = sorted(rep["problems"])
    assert len(probs) == 3, probs
    assert probs[0].startswith("index.html (index.ipynb): link '#absent': no id 'absent' on index.html"), probs
    assert probs[1].startswith("index.html (index.ipynb): link 'bee.html#no-such-part': no id 'no-such-part' on bee.html")
    assert probs[2].startswith("index.html (index.ipynb): link 'nope.html' does not resolve (") and "'nope.ipynb' in the notebook" in probs[2]
    # sidebar and outline
    assert pi["sidebar"] == pb["sidebar"] == ["index.html", "bee.html"]
    assert (pi["sidebar_active"], pb["sidebar_active"]) == (["index.html"], ["bee.html"])
    assert ">Home</a>" in html and ">Bee</a>" in html
    assert pb["outline"] == 2 and 'href="#sub-part"' in (out / "bee.html").read_text()
    assert pi["outline"] == 4  # ## Links and the three show_doc headings
    # show_doc: a class reads `class`, a method and a function stay `def`
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", html))
    assert "class GPTConfig(" in text and "def GPTConfig(" not in text
    assert "def from_name(" in text and "def get_rng_state(" in text
    # code-fold: the code in <details><summary>, its output below, visible; the default summary is "Code"
    m = re.search(r'<details class="code-fold"><summary>Show the loop</summary>(.*?)</details>(.*?)<details', html, re.S)
    assert m, "no folded cell"
    assert "range" in m.group(1) and "printed 0" not in m.group(1) and "printed 0" in m.group(2)
    assert '<details class="code-fold"><summary>Code</summary>' in html and pi["code_folds"] == 2
    assert "#|" not in text


def test_signatures_read_as_code(report):
    "Classes show as `class`, and no parameter reads `NoneType=None` (a default of None needs an annotation)."
    import html as html_lib
    pages = {n: html_lib.unescape(re.sub(r"<[^>]+>", "", Path(i["html"]).read_text())) for n, i in report["pages"].items()}
    assert "class GPTConfig(" in pages["00_model.ipynb"] and "class TrainingConfig(" in pages["02_train.ipynb"]
    assert "def GPTConfig(" not in pages["00_model.ipynb"]
    bad = [n for n, text in pages.items() if "NoneType" in text]
    assert not bad, f"pages with NoneType in a signature: {bad}"
