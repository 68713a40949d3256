"""Render the docs pages without Quarto, as the Quarto site would show them, and check them in headless Chromium.

Quarto (what `nbdev-docs` uses) cannot be installed on our machines, so this script does the part of a docs build
that can go wrong in the notebooks themselves:

1. process every notebook in nbs/ with nbdev's own docs processors (what `nbdev-proc-nbs` does: show_doc output,
   hidden cells and directives removed, exports folded),
2. do what Quarto then does with them (`_as_quarto_would`): the front matter becomes the title block, `#| echo: false`
   hides a cell's code, `#| code-fold: true` (and `#| code-summary: "..."`) folds it into a
   `<details><summary>Code</summary>` (outputs stay visible below), other `#|` lines are not shown, pandoc
   attributes (`{target=...}`) are dropped, and a show_doc of a class reads `class Name(` (nbdev writes `def Name(`),
3. render each processed notebook to a standalone HTML page with nbconvert, named as on the site: the front matter's
   `output-file` (nbdev sets it: `00_model.ipynb` -> `model.html`), else `NAME.html`,
4. make the page look like a Quarto page: headings get pandoc's ids (`## Data loader` -> `#data-loader`), links to
   `X.ipynb` point to X's page (`X.ipynb#part` -> `x.html#part`), a left sidebar lists the pages of sidebar.yml in
   its order (the current one marked `class="active"`), a right "On this page" outline lists the h2/h3 headings
   (as `toc: true` in _quarto.yml); plain HTML and inline CSS, no JavaScript or network. Files the pages link to or
   show (images) are copied next to them, as Quarto copies a site's resources,
5. check the links: every relative `href` must resolve to a file in the output folder and every `#fragment` (on the
   same page or another) to an id on that page (external http(s)/mailto links are not checked),
6. load each page in headless Chromium (network disabled) and check that every <img> loaded (`naturalWidth > 0`),
   that the sidebar and the outline are in the DOM with all their links and do not cover the content, and take a
   screenshot of the page.

Problems it reports: a notebook in sidebar.yml with no page, a Python traceback in an output, a saved image that
is not a valid PNG/JPEG/SVG, a link that does not resolve, an image the browser could not load, a sidebar or
outline missing in the browser, a blank screenshot. It also lists the pages whose notebook has code but no saved
outputs (such a page shows code without results).

Pages show the outputs saved in the notebooks (as with Quarto). To save them, run the notebook and clean it:

    nbdev-test nbs/03_viz.ipynb --save && nbdev-clean --fname nbs/03_viz.ipynb

    python tools/render_docs.py                 # pages in _docs/check/*.html, screenshots *.png (git-ignored)

`tests/test_docs.py` runs the same code under pytest.
"""
from __future__ import annotations
import argparse, base64, copy, html as htmllib, importlib, inspect, json, os, re, shutil, struct, subprocess, sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]
NBS = REPO / "nbs"
# Keys nbformat 4.5 allows on a cell; nbdev's processors add private ones (idx_, ...) that fail validation.
_CELL_KEYS = {"cell_type", "id", "metadata", "source", "outputs", "execution_count", "attachments"}
_TRACEBACK = "Traceback (most recent call last)"
_CHECK_ID = "render-docs-img-check"
_SIDEBAR_ID, _TOC_ID = "quarto-sidebar", "TOC"  # the ids Quarto gives them


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


def _src(cell: dict) -> str:
    s = cell.get("source") or ""
    return "".join(s) if isinstance(s, list) else s


def _frontmatter(src: str) -> dict | None:
    "The YAML of a Quarto front-matter cell (`---` ... `---`), else None."
    m = re.fullmatch(r"\s*---\n(.*?)\n---\s*", src, flags=re.S)
    if not m: return None
    import yaml
    try: fm = yaml.safe_load(m.group(1))
    except yaml.YAMLError: return None
    return fm if isinstance(fm, dict) else {}


def _frontmatter_md(src: str) -> str | None:
    "Quarto front matter (`---` title/description `---`) as the title block Quarto would show, else None."
    fm = _frontmatter(src)
    if fm is None: return None
    title, desc = str(fm.get("title", "")), str(fm.get("description", ""))
    # Quarto's title is an <h1 class="title"> without an id (it takes no part in the headings' ids)
    return "\n\n".join(x for x in [f'<h1 class="title">{htmllib.escape(title)}</h1>' if title else "",
                                   f"> {desc}" if desc else ""] if x)


def page_title(nb: dict) -> str | None:
    "A notebook's title: its front matter's `title:`, else its first `# ` heading, else None."
    cells = nb.get("cells", [])
    for c in cells:
        if c.get("cell_type") == "raw" and (fm := _frontmatter(_src(c))) and fm.get("title"): return str(fm["title"])
    for c in cells:
        if c.get("cell_type") != "markdown": continue
        text = re.sub(r"^```.*?^```", "", _src(c), flags=re.S | re.M)  # not a `# comment` in a code block
        if m := re.search(r"^#\s+(.+?)\s*#*\s*$", text, flags=re.M): return m.group(1)
    return None


def site_pages(procd: dict[str, Path], nbs: Path = NBS) -> dict[str, dict]:
    """{notebook name: {'file': its page, 'title': its title}} for every doc notebook and sidebar.yml entry.
    The page is named as Quarto names it: the processed notebook's front-matter `output-file` (nbdev writes it,
    dropping the number prefix: `00_model.ipynb` -> `model.html`), else `NAME.html`. For a notebook whose processing
    failed, nbdev's rule gives the name it would have had."""
    from nbdev.config import nbpath2html
    site = {}
    for name in [p.name for p in doc_notebooks(nbs)] + [e for e in sidebar_pages(nbs) if (nbs / e).is_file()]:
        if name in site: continue
        path = Path(name)
        if path.suffix != ".ipynb":  # a .qmd/.md page: its front matter only
            fm = _frontmatter(m.group(0)) if (m := re.match(r"\s*---\n.*?\n---\s*", (nbs / name).read_text(), re.S)) else None
            fm = fm or {}
            site[name] = {"file": str(fm.get("output-file") or path.with_suffix(".html")),
                          "title": str(fm.get("title") or path.stem)}
            continue
        file = None
        try:
            if name in procd:
                nb = json.loads(procd[name].read_text())
                for c in nb["cells"]:
                    if c["cell_type"] == "raw" and (fm := _frontmatter(_src(c))) is not None:
                        file = fm.get("output-file"); break
            else:
                nb = json.loads((nbs / name).read_text())
                if page_title(nb): file = str(nbpath2html(path).name)  # nbdev adds output-file to a titled notebook
        except (OSError, ValueError, KeyError):  # a notebook being edited: fall back on its name
            nb = {}
        site[name] = {"file": str(file or path.with_suffix(".html")), "title": page_title(nb) or path.stem}
    return site


def _cell_options(src: str) -> dict:
    "The Quarto cell options (`#| key: value` lines at the top of a cell), values parsed as YAML."
    import yaml
    opts = {}
    for line in src.splitlines():
        if not re.match(r"\s*#\|", line): break
        if m := re.match(r"\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$", line):
            try: opts[m.group(1)] = yaml.safe_load(m.group(2)) if m.group(2) else None
            except yaml.YAMLError: opts[m.group(1)] = m.group(2)
    return opts


# show_doc's markdown: a `[source](https://github.com/ORG/REPO/blob/BRANCH/PKG/MODULE.py#L12)` link, a `### Name` heading
_SHOW_DOC_SOURCE = re.compile(r"\[source\]\(https?://github\.com/[^)\s]*?/blob/[^/)\s]+/((?:[\w.-]+/)*\w+)\.py#L\d+\)")
_SHOW_DOC_NAME = re.compile(r"^#{2,4}\s+([\w.]+)\s*$", flags=re.M)


def _module_of(path: str):
    "The imported module for a source path like `buildNanoGPT/model` (or `src/pkg/mod`), else None."
    parts = path.split("/")
    for i in range(min(2, len(parts))):
        try: return importlib.import_module(".".join(parts[i:]))
        except Exception: continue
    return None


def _show_doc_as_class(md: str) -> str:
    "nbdev's show_doc markdown of a class shows `def Name(`: Quarto's (nbdev's) page should read `class Name(`."
    src, name = _SHOW_DOC_SOURCE.search(md), _SHOW_DOC_NAME.search(md)
    if not (src and name) or "." in name.group(1): return md  # `### Class.method` stays a def
    mod = _module_of(src.group(1))
    if mod is None or not inspect.isclass(getattr(mod, name.group(1), None)): return md
    return re.sub(rf"(```python[ \t]*\n\s*)def(\s+{re.escape(name.group(1))}\s*\()", r"\1class\2", md, count=1)


def _as_quarto_would(nb: dict) -> dict:
    """Approximate what Quarto does with what nbdev leaves for it: front matter, `#| echo: false`,
    `#| code-fold: true`, pandoc attributes, and show_doc of a class as `class`."""
    for c in nb["cells"]:
        src = _src(c)
        if c["cell_type"] == "raw" and (md := _frontmatter_md(src)) is not None:
            c.update(cell_type="markdown", source=md); c.pop("outputs", None); c.pop("execution_count", None)
        if c["cell_type"] == "code":
            if re.search(r"^#\|\s*echo:\s*false", src, flags=re.M):
                c.setdefault("metadata", {}).setdefault("tags", []).append("remove_input")
            opts = _cell_options(src)
            if opts.get("code-fold") in (True, "true", "show"):  # the page template folds it (_PAGE_TEMPLATE)
                c.setdefault("metadata", {})["render_docs"] = {
                    "code_fold": "show" if opts["code-fold"] == "show" else True,
                    "code_summary": str(opts.get("code-summary") or "Code")}
            lines = src.splitlines()
            while lines and re.match(r"\s*#\|", lines[0]): lines.pop(0)  # cell options: Quarto does not show them
            c["source"] = "\n".join(lines)
        for o in c.get("outputs", []):
            md = o.get("data", {}).get("text/markdown")
            if md is not None:
                md = _show_doc_as_class("".join(md) if isinstance(md, list) else md)
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


# nbconvert's lab template, with Quarto's code folding: `<details class="code-fold"><summary>` around the code
_PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block input_group -%}
{%- set fold = cell.metadata.get('render_docs', {}).get('code_fold') -%}
{%- if fold -%}
<details class="code-fold"{{ ' open' if fold == 'show' else '' }}><summary>{{ cell.metadata.render_docs.code_summary | e }}</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock input_group %}
"""

_LAYOUT_CSS = f"""
<style id="render-docs-layout">
  #{_SIDEBAR_ID}, #{_TOC_ID} {{ position: fixed; top: 0; bottom: 0; overflow-y: auto; box-sizing: border-box;
    padding: 1.2rem 0.9rem; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }}
  #{_SIDEBAR_ID} {{ left: 0; width: 250px; background: #f7f7f9; border-right: 1px solid #dee2e6; }}
  #{_TOC_ID} {{ right: 0; width: 230px; border-left: 1px solid #dee2e6; background: #fff; }}
  #{_SIDEBAR_ID} ul, #{_TOC_ID} ul {{ list-style: none; margin: 0; padding: 0; }}
  #{_SIDEBAR_ID} li a {{ display: block; padding: 0.25rem 0.5rem; border-radius: 4px; color: #343a40;
    text-decoration: none; }}
  #{_SIDEBAR_ID} li a:hover, #{_TOC_ID} li a:hover {{ color: #2780e3; }}
  #{_SIDEBAR_ID} li a.active {{ background: #e3edfa; color: #2780e3; font-weight: 600; }}
  #{_TOC_ID} .toc-title {{ font-weight: 600; margin-bottom: 0.4rem; }}
  #{_TOC_ID} li a {{ display: block; padding: 0.12rem 0 0.12rem 0.5rem; color: #595959; text-decoration: none;
    border-left: 1px solid #dee2e6; overflow-wrap: anywhere; }}
  #{_TOC_ID} li.toc-h3 a {{ padding-left: 1.3rem; font-size: 13px; }}
  body > main {{ margin-left: 250px; margin-right: 230px; }}
  details.code-fold > summary {{ cursor: pointer; color: #2780e3; padding: 0.2rem 0; }}
  @media (max-width: 1000px) {{ #{_TOC_ID} {{ display: none; }} body > main {{ margin-right: 0; }} }}
</style>
"""


def pandoc_id(text: str, used: set[str]) -> str:
    "The id pandoc (so Quarto) gives a heading: lower case, words joined by `-`, only letters/digits/`_-.` kept."
    s = "".join(ch for ch in text.lower() if ch.isspace() or ch.isalnum() or ch in "_-.")
    s = "-".join(s.split())
    s = s[next((i for i, ch in enumerate(s) if ch.isalpha()), len(s)):]  # an id starts with a letter
    base = s or "section"
    new, n = base, 0
    while new in used: n += 1; new = f"{base}-{n}"
    used.add(new)
    return new


_HEADING = re.compile(r'<h([1-6])([^>]*?)\sid="([^"]*)"([^>]*)>(.*?)</h\1>', flags=re.S)
_ANCHOR = re.compile(r'<a class="anchor-link" href="[^"]*">.*?</a>', flags=re.S)


def _text(fragment: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def quarto_headings(html: str) -> tuple[str, list[tuple[int, str, str]]]:
    "Give nbconvert's headings pandoc's ids (and their `¶` anchors); -> (html, [(level, id, text)])."
    used, heads = set(), []
    def fix(m):
        level, inner = int(m.group(1)), m.group(5)
        if not _ANCHOR.search(inner): return m.group(0)  # not a markdown heading (raw HTML output): as it is
        text = _text(_ANCHOR.sub("", inner))
        hid = pandoc_id(text, used)
        heads.append((level, hid, text))
        inner = _ANCHOR.sub(lambda a: f'<a class="anchor-link" href="#{htmllib.escape(hid)}">¶</a>', inner)
        return f'<h{level}{m.group(2)} id="{htmllib.escape(hid)}"{m.group(4)}>{inner}</h{level}>'
    return _HEADING.sub(fix, html), heads


def _is_external(href: str) -> bool:
    return bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:|//", href))


def quarto_href(href: str, site: dict[str, dict]) -> str:
    "A link as Quarto writes it: `X.ipynb` (or `.qmd`) -> X's page (`x.html`), the `#fragment` kept."
    if _is_external(href) or href.startswith("#"): return href
    path, sep, frag = href.partition("#")
    path, q, query = path.partition("?")
    p = PurePosixPath(unquote(path))
    if p.suffix not in (".ipynb", ".qmd"): return href
    page = site[p.name]["file"] if p.name in site else p.with_suffix(".html").name
    return str(p.with_name(page)) + q + query + sep + frag


_HREF = re.compile(r"""(\shref=)(["'])(.*?)\2""", flags=re.S)


def rewrite_links(html: str, site: dict[str, dict]) -> tuple[str, dict[str, str]]:
    "Every relative `href` to a notebook -> its page; -> (html, {new href: as written in the notebook})."
    changed = {}
    def fix(m):
        old = htmllib.unescape(m.group(3))
        new = quarto_href(old, site)
        if new == old: return m.group(0)
        changed[new] = old
        return f'{m.group(1)}{m.group(2)}{htmllib.escape(new)}{m.group(2)}'
    return _HREF.sub(fix, html), changed


def sidebar_html(site: dict[str, dict], entries: list[str], current: str) -> str:
    "Quarto's sidebar: the pages of sidebar.yml in order, each a link to its page, the current one active."
    items = []
    for e in entries:
        page = site.get(e, {"file": str(PurePosixPath(e).with_suffix(".html")), "title": PurePosixPath(e).stem})
        active = ' class="active" aria-current="page"' if page["file"] == current else ""
        items.append(f'<li><a href="{htmllib.escape(page["file"])}"{active}>{htmllib.escape(page["title"])}</a></li>')
    return f'<nav id="{_SIDEBAR_ID}" aria-label="Pages"><ul>\n' + "\n".join(items) + "\n</ul></nav>\n"


def outline_html(heads: list[tuple[int, str, str]]) -> str:
    "Quarto's `toc: true` outline: the page's h2 and h3 headings."
    items = [f'<li class="toc-h{lv}"><a href="#{htmllib.escape(hid)}">{htmllib.escape(text)}</a></li>'
             for lv, hid, text in heads if lv in (2, 3)]
    return (f'<nav id="{_TOC_ID}" role="doc-toc"><div class="toc-title">On this page</div><ul>\n'
            + "\n".join(items) + "\n</ul></nav>\n")


def _copy_resource(ref: str, nbs: Path, dest: Path):
    "Copy a file a page refers to (an image, a linked file) next to the page, as Quarto copies site resources."
    if _is_external(ref) or ref.startswith("#"): return
    ref = unquote(ref.partition("#")[0].partition("?")[0])
    if not ref or ref.endswith((".html", ".ipynb")): return
    src = (nbs / ref).resolve()
    if src.is_file() and src.is_relative_to(nbs.resolve()):
        (dest / ref).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / ref)


def render_html(proc_nb: Path, dest: Path, nbs: Path = NBS, site: dict[str, dict] | None = None) -> Path:
    """Render a processed notebook to its page in `dest` with nbconvert (after nbformat validation), as the Quarto
    site shows it: pandoc heading ids, notebook links to pages, sidebar, "On this page" outline, folded code."""
    return render_page(proc_nb, dest, nbs, site)[0]


def render_page(proc_nb: Path, dest: Path, nbs: Path = NBS, site: dict[str, dict] | None = None
                ) -> tuple[Path, dict[str, str]]:
    "`render_html`, -> (page, {rewritten href: the href in the notebook})."
    import jinja2, nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    site = site if site is not None else site_pages({proc_nb.name: proc_nb}, nbs)
    file = site.get(proc_nb.name, {}).get("file") or proc_nb.stem + ".html"
    # reads() (unlike from_dict) joins the list-of-lines sources and outputs that nbdev writes
    nb = nbformat.reads(json.dumps(clean_for_nbformat(json.loads(proc_nb.read_text()))), as_version=4)
    nbformat.validate(nb)
    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = {"remove_input"}
    cfg.HTMLExporter.exclude_input_prompt = cfg.HTMLExporter.exclude_output_prompt = True
    cfg.HTMLExporter.template_file = "render_docs_page.html.j2"
    exporter = HTMLExporter(config=cfg, extra_loaders=[jinja2.DictLoader({"render_docs_page.html.j2": _PAGE_TEMPLATE})])
    html, _ = exporter.from_notebook_node(nb)
    html, heads = quarto_headings(html)
    html, written = rewrite_links(html, site)
    nav = sidebar_html(site, sidebar_pages(nbs), file) + outline_html(heads)
    html = html.replace("</head>", _LAYOUT_CSS + "</head>", 1)
    html = re.sub(r"(<body\b[^>]*>)", lambda m: m.group(1) + "\n" + nav, html, count=1)
    page = dest / file
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(html)
    # images and files the page refers to (e.g. media/x.svg) resolve relative to the page, as in the real site
    for ref in re.findall(r"""<img[^>]+src=["']([^"':]+)["']""", html) + [htmllib.unescape(m.group(3))
                                                                       for m in _HREF.finditer(html)]:
        _copy_resource(ref, nbs, dest)
    return page, written


class _PageFacts(HTMLParser):
    "What the link check needs of a page: its ids, its links (with their text) and those of the sidebar/outline."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.nav_links = set(), [], {_SIDEBAR_ID: [], _TOC_ID: []}
        self._nav, self._a = [], None  # open <nav> ids; the open <a> ([href, text])
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"): self.ids.add(a["id"])
        if tag == "a" and a.get("name"): self.ids.add(a["name"])
        if tag == "nav": self._nav.append(a.get("id"))
        if tag in ("a", "area", "link") and a.get("href") is not None:
            nav = next((n for n in self._nav if n in self.nav_links), None)
            entry = [a["href"], "", "active" in (a.get("class") or "").split()]
            (self.nav_links[nav] if nav else self.links).append(entry)
            if tag == "a": self._a = entry
    def handle_endtag(self, tag):
        if tag == "nav" and self._nav: self._nav.pop()
        if tag == "a": self._a = None
    def handle_data(self, data):
        if self._a is not None: self._a[1] += data


def page_facts(html: str) -> _PageFacts:
    f = _PageFacts(); f.feed(html); f.close()
    return f


def check_links(facts: dict[str, _PageFacts], out: Path, names: dict[str, str] | None = None,
                written: dict[str, dict[str, str]] | None = None, missing: dict[str, str] | None = None) -> list[str]:
    """Every relative link on every page (`facts`: {page file: facts}; the sidebar is checked once, by
    `render_pages`) must resolve to a file in `out`, and its `#fragment` to an id on the page it names.
    names: {page: its notebook}; written: {page: {href: as in the notebook}}; missing: {page file: notebook with no page}."""
    problems, out, names, written, missing = {}, out.resolve(), names or {}, written or {}, missing or {}
    for page, f in facts.items():
        where = f"{page} ({names[page]})" if page in names else page
        for href, text, _ in f.links:
            if _is_external(href): continue
            text = " ".join(text.split())
            path, _, frag = href.partition("#")
            path = path.partition("?")[0]
            said = f"link {href!r}"
            ctx = ([f"{written[page][href]!r} in the notebook"] if href in written.get(page, {}) else []) + (
                [f"text {text!r}"] if text and text != "¶" else [])
            ctx = f" ({'; '.join(ctx)})" if ctx else ""
            if not path: target = page
            else:
                t = ((out / page).parent / unquote(path)).resolve()
                if t.is_dir(): t = t / "index.html"
                if not (t.is_file() and t.is_relative_to(out)):
                    rel = t.relative_to(out).as_posix() if t.is_relative_to(out) else None
                    why = (f": {missing[rel]} has no page (see its problem above)" if rel in missing else "")
                    p = f"{where}: {said} does not resolve{ctx}{why}"
                    problems[p] = problems.get(p, 0) + 1
                    continue
                target = t.relative_to(out).as_posix()
            frag = unquote(frag)
            if frag and target in facts and frag not in facts[target].ids:
                p = f"{where}: {said}: no id {frag!r} on {target}{ctx}"
                problems[p] = problems.get(p, 0) + 1
    return [p + (f" ({n} such links)" if n > 1 else "") for p, n in problems.items()]


_IMG_CHECK_JS = f"""
<script>
window.addEventListener('load', () => {{
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 60));
  const side = document.getElementById('{_SIDEBAR_ID}'), toc = document.getElementById('{_TOC_ID}');
  const main = document.querySelector('body > main'), box = e => e.getBoundingClientRect();
  const shown = e => !!e && getComputedStyle(e).display !== 'none' && box(e).width > 0;
  const active = side && side.querySelector('a.active');
  const covered = !main ? 'no <main>' : shown(side) && box(main).left < box(side).right - 1 ? 'sidebar'
                : shown(toc) && box(main).right > box(toc).left + 1 ? 'outline' : null;
  const d = document.createElement('pre'); d.id = '{_CHECK_ID}'; d.style.display = 'none'; // kept out of the screenshot
  d.textContent = JSON.stringify({{n: imgs.length, bad: bad,
    sidebar: shown(side) ? side.querySelectorAll('a[href]').length : 0, active: active ? active.getAttribute('href') : null,
    outline: shown(toc) ? toc.querySelectorAll('a[href]').length : 0, covered: covered,
    folds: document.querySelectorAll('details.code-fold > summary').length}});
  document.body.appendChild(d);
}});
</script>
"""


def browser_check(page: Path, chromium: str, shot: Path | None = None, width=1280, height=2400,
                  timeout=1800) -> dict: # timeout: catches a hang only (a load takes seconds)
    """Load `page` in headless Chromium with no network; optionally screenshot it. -> {'n': images, 'bad': [src...],
    'sidebar'/'outline': links shown in each, 'active': the sidebar's active href, 'covered': what covers the
    content (None), 'folds': folded code cells}."""
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
    res = json.loads(htmllib.unescape(m.group(1)))
    if shot is not None and not shot.is_file(): raise RuntimeError(f"Chromium wrote no screenshot of {page.name}")
    return res


def screenshot_blank(shot: Path) -> bool:
    "True if a screenshot is a single colour (nothing rendered)."
    from PIL import Image
    with Image.open(shot) as im:
        return len(im.convert("L").getcolors(maxcolors=4) or [0] * 5) <= 1


def render_all(out: Path, nbs: Path = NBS, chromium: str | None = None, screenshots: bool = True,
               height: int = 2400) -> dict:
    "Process, render, link-check and (if Chromium is given) browser-check every page; -> report with 'problems'."
    out.mkdir(parents=True, exist_ok=True)
    procd, problems, warns = process_notebooks(out / "_proc", nbs)
    return render_pages(procd, out, nbs, chromium, screenshots, height, problems, warns)


def render_pages(procd: dict[str, Path], out: Path, nbs: Path = NBS, chromium: str | None = None,
                 screenshots: bool = True, height: int = 2400, problems: list[str] | None = None,
                 warns: list[str] | None = None) -> dict:
    "Render the processed notebooks `procd` ({name: path}) into `out` and check them; -> report with 'problems'."
    out.mkdir(parents=True, exist_ok=True)
    entries, site = sidebar_pages(nbs), site_pages(procd, nbs)
    report = {"pages": {}, "problems": list(problems or []), "warnings": list(warns or []), "site": site}
    for entry in entries:
        if not (nbs / entry).is_file():
            report["problems"].append(f"sidebar.yml lists {entry}, which has no notebook/page")
    facts, names, written = {}, {}, {}
    for name, nbp in procd.items():
        pnb = json.loads(nbp.read_text())
        problems, n_img = check_outputs(pnb, name)
        report["problems"] += problems
        page, rewritten = render_page(nbp, out, nbs, site)
        file = page.relative_to(out).as_posix()
        html = page.read_text()
        facts[file], names[file], written[file] = page_facts(html), name, rewritten
        # saved outputs of the source notebook (docs processing itself runs some cells and adds outputs)
        src_cells = json.loads((nbs / name).read_text())["cells"]
        code = [c for c in src_cells if c["cell_type"] == "code" and not re.match(r"\s*#\|\s*(hide|export)", "".join(c["source"]))]
        n_out = sum(len(c.get("outputs", [])) for c in code)
        f = facts[file]
        info = {"html": str(page), "page": file, "title": site[name]["title"], "output_images": n_img,
                "code_cells": len(code), "outputs": n_out,
                "sidebar": [h for h, _, _ in f.nav_links[_SIDEBAR_ID]],
                "sidebar_active": [h for h, _, act in f.nav_links[_SIDEBAR_ID] if act],
                "outline": len(f.nav_links[_TOC_ID]), "h2": len(re.findall(r"<h2[\s>]", html)),
                "code_folds": html.count('<details class="code-fold"')}
        if info["h2"] and not info["outline"]: report["problems"].append(f"{file}: h2 headings but no outline")
        if chromium:
            shot = out / (page.stem + ".png") if screenshots else None
            res = browser_check(page, chromium, shot, height=height)
            info.update(browser_images=res["n"], broken_images=res["bad"], browser_sidebar=res["sidebar"],
                        browser_active=res["active"], browser_outline=res["outline"], covered=res["covered"],
                        browser_folds=res["folds"])
            for src in res["bad"]: report["problems"].append(f"{page.name}: image did not load in Chromium: {src}")
            if res["n"] < n_img: report["problems"].append(f"{page.name}: {n_img} output images, {res['n']} on the page")
            if res["sidebar"] != len(entries):
                report["problems"].append(f"{file}: Chromium shows {res['sidebar']} sidebar links, sidebar.yml has {len(entries)}")
            if res["active"] != file: report["problems"].append(f"{file}: the sidebar marks {res['active']!r} as the page")
            if res["outline"] != info["outline"]:
                report["problems"].append(f"{file}: Chromium shows {res['outline']} outline links of {info['outline']}")
            if res["covered"]: report["problems"].append(f"{file}: the {res['covered']} covers the page's content")
            if shot is not None:
                info["screenshot"] = str(shot)
                if screenshot_blank(shot): report["problems"].append(f"{page.name}: the screenshot is blank")
        report["pages"][name] = info
    # links: the notebook's own, after Quarto's .ipynb -> .html; the sidebar's (the same on every page) once
    missing = {site[n]["file"]: n for n in site if n not in procd}
    report["problems"] += check_links(facts, out, names, written, missing)
    for e in entries:
        if e in site and not (out / site[e]["file"]).is_file() and not any(p.startswith(e + ":") for p in report["problems"]):
            report["problems"].append(f"sidebar.yml: {e} has no page ({site[e]['file']})")
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
