"""Dress rehearsal of a notebook's flagged cells: run it top to bottom with every flag on (cuda, download, slow), with
only its parameters cell replaced.

A notebook that has flagged cells keeps everything the GPU box would change in one cell whose first line is
`# Parameters`. This script copies the notebook into a scratch folder under nbs/ (so nbdev finds the project's
settings), puts the given parameters in place of that cell, and runs it with nbdev's test runner, flags forced on.

    python tools/rehearse.py nbs/04_gpu_walkthrough.ipynb params.py            # CPU: a tiny preset, local data
    python tools/rehearse.py nbs/04_gpu_walkthrough.ipynb gpu_params.py --cell-timeout 0 --verbose

Exit status 0 when every cell ran, 1 otherwise (nbdev's traceback on stderr), 2 for bad arguments.
"""
from __future__ import annotations

import argparse, json, shutil, sys, tempfile
from pathlib import Path

FLAGS = ["cuda", "download", "slow"]
MARKER = "# Parameters"


def parameters_cell(nb: dict) -> int:
    "Index of the notebook's parameters cell (the one code cell whose first line starts with `# Parameters`)."
    found = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and "".join(c["source"]).startswith(MARKER)]
    if len(found) != 1: raise ValueError(f"expected one code cell starting with {MARKER!r}, found {len(found)}")
    return found[0]


def with_parameters(nb: dict, params: str) -> dict:
    "A copy of `nb` whose parameters cell holds `params` (kept as a parameters cell)."
    nb = json.loads(json.dumps(nb))
    src = params if params.startswith(MARKER) else f"{MARKER} (rehearsal)\n{params}"
    nb["cells"][parameters_cell(nb)]["source"] = src.splitlines(keepends=True)
    return nb


def rehearse(notebook, params: str, cell_timeout: int | None = 600, verbose: bool = False) -> bool:
    "Run `notebook` with every flag on and `params` as its parameters cell; True when every cell ran."
    from nbdev.test import test_nb
    notebook = Path(notebook).resolve()
    nb = with_parameters(json.loads(notebook.read_text()), params)
    scratch = Path(tempfile.mkdtemp(prefix="tmp_rehearsal_", dir=notebook.parent)) # nbs/tmp*/ is git-ignored
    try:
        copy = scratch / notebook.name
        copy.write_text(json.dumps(nb, indent=1))
        ok, secs = test_nb(copy, skip_flags=[], force_flags=FLAGS, do_print=True, verbose=verbose,
                           basepath=notebook.parent.parent, cell_timeout=cell_timeout or None)
        print(f"{notebook.name}: {'every cell ran' if ok else 'FAILED'} with flags {' '.join(FLAGS)} in {secs:.0f} s")
        return ok
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="rehearse.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebook", help="the notebook to run")
    p.add_argument("params", help="a Python file whose text replaces the notebook's parameters cell")
    p.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell, 0 for no limit (default: 600)")
    p.add_argument("--verbose", action="store_true", help="stream each cell's output")
    args = p.parse_args(argv)
    for f in (args.notebook, args.params):
        if not Path(f).is_file(): p.error(f"{f} does not exist")
    try: params = Path(args.params).read_text()
    except UnicodeDecodeError as e: p.error(f"{args.params} is not UTF-8 text ({e})")
    try: ok = rehearse(args.notebook, params, args.cell_timeout, args.verbose)
    except ValueError as e: p.error(f"{args.notebook}: {e}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
