"""Render the docs pages without Quarto and check them in headless Chromium.

Quarto (what `nbdev-docs` uses) cannot be installed on our machines, so this script does the part of a docs build
that can go wrong in the notebooks themselves:

1. process every notebook in nbs/ with nbdev's own docs processors (what `nbdev-proc-nbs` does: show_doc output,
   hidden cells and directives removed, exports folded),
2. render each processed notebook to a standalone HTML page with nbconvert,
3. load each page in headless Chromium (network disabled) and check that every <img> loaded
   (`naturalWidth > 0`), and take a screenshot of the page.

Problems it reports: a notebook in sidebar.yml with no page, a Python traceback in an output, a saved image that
is not a valid PNG/JPEG/SVG, an image the browser could not load, a blank screenshot. It also lists the pages whose
notebook has code but no saved outputs (such a page shows code without results).

Pages show the outputs saved in the notebooks (as with Quarto). To save them, run the notebook and clean it:

    nbdev-test nbs/03_viz.ipynb --save && nbdev-clean --fname nbs/03_viz.ipynb

    python tools/render_docs.py                 # pages in _docs/check/*.html, screenshots *.png (git-ignored)

`tests/test_docs.py` runs the same code under pytest.
"""
from __future__ import annotations
import argparse, base64, copy, json, os, re, shutil, struct, subprocess, sys, tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NBS = REPO / "nbs"
# Keys nbformat 4.5 allows on a cell; nbdev's processors add private ones (idx_, ...) that fail validation.
_CELL_KEYS = {"cell_type", "id", "metadata", "source", "outputs", "execution_count", "attachments"}
_TRACEBACK = "Traceback (most recent call last)"
_CHECK_ID = "render-docs-img-check"


def find_chromium() -> str | None:
    "Path of a Chromium binary, or None."
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if p := shutil.which(name): return p
    return None


def doc_notebooks(nbs: Path = NBS) -> list[Path]:
    "The notebooks that become pages (nbdev skips names starting with `_` or `.`)."
    return sorted(p for p in nbs.glob("*.ipynb") if not p.name.startswith(("_", ".")))


def sidebar_pages(nbs: Path = NBS) -> list[str]:
    "Entries of nbs/sidebar.yml (file names like `00_model.ipynb`)."
    text = (nbs / "sidebar.yml").read_text()
    return re.findall(r"^\s*-\s*(?:href:\s*)?([\w./-]+\.(?:ipynb|qmd|md))\s*$", text, flags=re.M)


def process_notebooks(dest: Path, nbs: Path = NBS) -> tuple[dict[str, Path], list[str], list[str]]:
    """Run nbdev's docs processors (`FilterDefaults`, as `nbdev-proc-nbs` does) on each notebook.
    -> ({name: processed nb}, problems, warnings). Like the real docs build, this executes the cells nbdev needs for
    `show_doc`: exported cells, show_doc cells, and every cell with an import (keep imports in cells of their own)."""
    import warnings
    from fastcore.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults
    dest.mkdir(parents=True, exist_ok=True)
    out, problems, warns = {}, [], []
    cwd, in_test = Path.cwd(), os.environ.get("IN_TEST")
    os.environ["IN_TEST"] = "1"  # as nbdev's serve_drv does while processing
    try:
        for src in doc_notebooks(nbs):
            os.chdir(nbs)  # nbdev reads pyproject.toml from the cwd upwards; cells run in nbs/ as in the docs build
            try:
                with warnings.catch_warnings(record=True) as ws:
                    warnings.simplefilter("always")
                    nb = read_nb(src)
                    FilterDefaults()(nb)
                warns += [f"{src.name}: {w.message}" for w in ws if "FAQ" in str(w.message)]
            except Exception as e:
                problems.append(f"{src.name}: nbdev's docs processing failed: {str(e)[-1500:]}")
                continue
            write_nb(nb, dest / src.name)
            out[src.name] = dest / src.name
    finally:
        os.chdir(cwd)
        if in_test is None: os.environ.pop("IN_TEST", None)
        else: os.environ["IN_TEST"] = in_test
    return out, problems, warns


def _frontmatter_md(src: str) -> str | None:
    "Quarto front matter (`---` title/description `---`) as the title block Quarto would show, else None."
    m = re.fullmatch(r"\s*---\n(.*?)\n---\s*", src, flags=re.S)
    if not m: return None
    import yaml
    fm = yaml.safe_load(m.group(1)) or {}
    title, desc = str(fm.get("title", "")), str(fm.get("description", ""))
    return "\n\n".join(x for x in [f"# {title}" if title else "", f"> {desc}" if desc else ""] if x)


def _as_quarto_would(nb: dict) -> dict:
    "Approximate what Quarto does with what nbdev leaves for it: front matter, `#| echo: false`, pandoc attributes."
    for c in nb["cells"]:
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if c["cell_type"] == "raw" and (md := _frontmatter_md(src)) is not None:
            c.update(cell_type="markdown", source=md); c.pop("outputs", None); c.pop("execution_count", None)
        if c["cell_type"] == "code":
            if re.search(r"^#\|\s*echo:\s*false", src, flags=re.M):
                c.setdefault("metadata", {}).setdefault("tags", []).append("remove_input")
            lines = src.splitlines()
            while lines and re.match(r"\s*#\|", lines[0]): lines.pop(0)  # cell options: Quarto does not show them
            c["source"] = "\n".join(lines)
        for o in c.get("outputs", []):
            md = o.get("data", {}).get("text/markdown")
            if md is not None:
                md = "".join(md) if isinstance(md, list) else md
                o["data"]["text/markdown"] = re.sub(r"\{(?:target|style)=[^}]*\}", "", md)
    return nb


def clean_for_nbformat(nb: dict) -> dict:
    "Drop what nbdev/execnb add that nbformat's schema rejects: private cell keys, execution timings."
    nb = _as_quarto_would(copy.deepcopy(nb))
    for c in nb["cells"]:
        for k in list(c):
            if k not in _CELL_KEYS: del c[k]
        c.setdefault("metadata", {}).pop("execution", None)
        if c["cell_type"] == "code":
            c.setdefault("outputs", []); c.setdefault("execution_count", None)
        else:
            c.pop("outputs", None); c.pop("execution_count", None)
    nb.setdefault("metadata", {})
    return nb


def _image_ok(mime: str, data) -> str | None:
    "None if `data` (a notebook output's image) is a valid image, else why not."
    if mime == "image/svg+xml":
        s = "".join(data) if isinstance(data, list) else data
        return None if "<svg" in s else "svg output without an <svg> element"
    try: raw = base64.b64decode("".join(data) if isinstance(data, list) else data, validate=False)
    except Exception as e: return f"{mime} output is not base64: {e}"
    if mime == "image/png":
        if raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR": return "image/png output is not a PNG"
        w, h = struct.unpack(">II", raw[16:24])
        return None if w > 0 and h > 0 else f"PNG of size {w}x{h}"
    if mime == "image/jpeg": return None if raw[:3] == b"\xff\xd8\xff" else "image/jpeg output is not a JPEG"
    return None


def check_outputs(nb: dict, name: str) -> tuple[list[str], int]:
    "Problems in the saved outputs of a (processed) notebook, and the number of images in them."
    problems, n_img = [], 0
    for i, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                problems.append(f"{name} cell {i}: error output {o.get('ename')}: {o.get('evalue')}")
            texts = [o.get("text", "")] + [v for k, v in o.get("data", {}).items() if k.startswith("text/")]
            for t in texts:
                if _TRACEBACK in ("".join(t) if isinstance(t, list) else t):
                    problems.append(f"{name} cell {i}: a Python traceback in the output")
            for mime, data in o.get("data", {}).items():
                if mime.startswith("image/"):
                    n_img += 1
                    if why := _image_ok(mime, data): problems.append(f"{name} cell {i}: {why}")
    return problems, n_img


_IMG_CHECK_JS = f"""
<script>
window.addEventListener('load', () => {{
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 60));
  const d = document.createElement('pre'); d.id = '{_CHECK_ID}'; d.style.display = 'none'; // kept out of the screenshot
  d.textContent = JSON.stringify({{n: imgs.length, bad: bad}});
  document.body.appendChild(d);
}});
</script>
"""


def render_html(proc_nb: Path, dest: Path, nbs: Path = NBS) -> Path:
    "Render a processed notebook to `dest/<name>.html` with nbconvert (after nbformat validation)."
    import nbformat
    from nbconvert import HTMLExporter
    # reads() (unlike from_dict) joins the list-of-lines sources and outputs that nbdev writes
    nb = nbformat.reads(json.dumps(clean_for_nbformat(json.loads(proc_nb.read_text()))), as_version=4)
    nbformat.validate(nb)
    from traitlets.config import Config
    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = {"remove_input"}
    cfg.HTMLExporter.exclude_input_prompt = cfg.HTMLExporter.exclude_output_prompt = True
    html, _ = HTMLExporter(config=cfg).from_notebook_node(nb)
    page = dest / (proc_nb.stem + ".html")
    page.write_text(html)
    # images referenced by markdown (e.g. media/x.svg) resolve relative to the page, as in the real site
    for ref in re.findall(r"""<img[^>]+src=["']([^"':]+)["']""", html):
        src = (nbs / ref).resolve()
        if src.is_file() and src.is_relative_to(nbs.resolve()):
            (dest / ref).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / ref)
    return page


def browser_check(page: Path, chromium: str, shot: Path | None = None, width=1280, height=2400,
                  timeout=120) -> dict:
    "Load `page` in headless Chromium with no network; -> {'n': images, 'bad': [src...]}; optionally screenshot it."
    probe = page.with_name(page.stem + ".probe.html")
    html = page.read_text()
    probe.write_text(html.replace("</body>", _IMG_CHECK_JS + "</body>") if "</body>" in html else html + _IMG_CHECK_JS)
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: CDN scripts fail at once instead of hanging
            "--virtual-time-budget=10000", "--hide-scrollbars", f"--window-size={width},{height}"]
    # one start of Chromium does both: the DOM (with the probe's verdict) on stdout, and the screenshot
    shoot = [f"--screenshot={shot}"] if shot is not None else []
    with tempfile.TemporaryDirectory() as prof:
        r = subprocess.run(base + [f"--user-data-dir={prof}", "--dump-dom", *shoot, probe.as_uri()],
                           capture_output=True, text=True, timeout=timeout)
    probe.unlink()
    m = re.search(rf'<pre id="{_CHECK_ID}"[^>]*>(.*?)</pre>', r.stdout, flags=re.S)
    if not m: raise RuntimeError(f"Chromium did not finish loading {page.name} (exit {r.returncode}): {r.stderr[-2000:]}")
    res = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    if shot is not None and not shot.is_file(): raise RuntimeError(f"Chromium wrote no screenshot of {page.name}")
    return res


def screenshot_blank(shot: Path) -> bool:
    "True if a screenshot is a single colour (nothing rendered)."
    from PIL import Image
    with Image.open(shot) as im:
        return len(im.convert("L").getcolors(maxcolors=4) or [0] * 5) <= 1


def render_all(out: Path, nbs: Path = NBS, chromium: str | None = None, screenshots: bool = True,
               height: int = 2400) -> dict:
    "Process, render and (if Chromium is given) browser-check every page; -> report with 'problems'."
    out.mkdir(parents=True, exist_ok=True)
    procd, problems, warns = process_notebooks(out / "_proc", nbs)
    report = {"pages": {}, "problems": problems, "warnings": warns}
    for entry in sidebar_pages(nbs):
        if not (nbs / entry).is_file():
            report["problems"].append(f"sidebar.yml lists {entry}, which has no notebook/page")
    for name, nbp in procd.items():
        pnb = json.loads(nbp.read_text())
        problems, n_img = check_outputs(pnb, name)
        report["problems"] += problems
        page = render_html(nbp, out, nbs)
        # saved outputs of the source notebook (docs processing itself runs some cells and adds outputs)
        src_cells = json.loads((nbs / name).read_text())["cells"]
        code = [c for c in src_cells if c["cell_type"] == "code" and not re.match(r"\s*#\|\s*(hide|export)", "".join(c["source"]))]
        n_out = sum(len(c.get("outputs", [])) for c in code)
        info = {"html": str(page), "output_images": n_img, "code_cells": len(code), "outputs": n_out}
        if chromium:
            shot = out / (page.stem + ".png") if screenshots else None
            res = browser_check(page, chromium, shot, height=height)
            info.update(browser_images=res["n"], broken_images=res["bad"])
            for src in res["bad"]: report["problems"].append(f"{page.name}: image did not load in Chromium: {src}")
            if res["n"] < n_img: report["problems"].append(f"{page.name}: {n_img} output images, {res['n']} on the page")
            if shot is not None:
                info["screenshot"] = str(shot)
                if screenshot_blank(shot): report["problems"].append(f"{page.name}: the screenshot is blank")
        report["pages"][name] = info
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="_docs/check", help="folder for the pages and screenshots (default: %(default)s)")
    p.add_argument("--no-browser", action="store_true", help="skip the Chromium load and screenshots")
    p.add_argument("--height", type=int, default=2400, help="screenshot height in pixels (default: %(default)s)")
    a = p.parse_args(argv)
    chromium = None if a.no_browser else find_chromium()
    if not a.no_browser and chromium is None:
        sys.exit("chromium not found: `apt-get install -y chromium`, or pass --no-browser")
    report = render_all(Path(a.out).resolve(), chromium=chromium, height=a.height)
    for name, info in report["pages"].items(): print(name, json.dumps(info))
    for w in report["warnings"]: print("WARNING:", w)
    for prob in report["problems"]: print("PROBLEM:", prob)
    sys.exit(1 if report["problems"] else 0)


if __name__ == "__main__":
    main()
