"""Notebook <-> text, for editing notebooks as plain text.

    python nbtxt.py totxt nbs/02_train.ipynb out.txt     # each cell: a header line '%% <kind> <id>' then its source
    python nbtxt.py tonb out.txt nbs/02_train.ipynb      # cells keep their id; unchanged cells keep their outputs

kinds: md, code. A new cell may omit the id ('%% code'): one is made up.
"""
import json, secrets, sys
from pathlib import Path

def totxt(nb_path, txt_path):
    nb = json.load(open(nb_path))
    out = []
    for c in nb["cells"]:
        kind = "md" if c["cell_type"] == "markdown" else "code"
        out.append(f"%% {kind} {c.get('id', '')}".rstrip() + "\n" + "".join(c["source"]).rstrip("\n") + "\n")
    Path(txt_path).write_text("\n".join(out))

def parse(txt):
    cells, cur = [], None
    for line in txt.split("\n"):
        if line.startswith("%% md") or line.startswith("%% code"):
            parts = line.split()
            cur = {"kind": parts[1], "id": parts[2] if len(parts) > 2 else secrets.token_hex(4), "lines": []}
            cells.append(cur)
        elif cur is not None: cur["lines"].append(line)
    for c in cells:
        while c["lines"] and not c["lines"][-1].strip(): c["lines"].pop()
    return cells

def tonb(txt_path, nb_path):
    p = Path(nb_path)
    old = json.load(open(p)) if p.exists() else {"metadata": {"jupytext": {"cell_metadata_filter": "-all", "main_language": "python", "notebook_metadata_filter": "-all"}}, "nbformat": 4, "nbformat_minor": 5}
    by_id = {c.get("id"): c for c in old.get("cells", [])}
    ids, cells = set(), []
    for c in parse(Path(txt_path).read_text()):
        if c["id"] in ids: raise SystemExit(f"duplicate cell id {c['id']} in {txt_path}")
        ids.add(c["id"])
        s = "\n".join(c["lines"])
        lines = s.split("\n")
        source = [l + "\n" for l in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        prev = by_id.get(c["id"])
        if c["kind"] == "md":
            cell = {"cell_type": "markdown", "id": c["id"], "metadata": {}, "source": source}
        else:
            keep = prev is not None and prev["cell_type"] == "code" and "".join(prev["source"]) == s
            cell = {"cell_type": "code", "execution_count": None, "id": c["id"], "metadata": prev.get("metadata", {}) if keep else {},
                    "outputs": prev.get("outputs", []) if keep else [], "source": source}
        cells.append(cell)
    nb = {"cells": cells, **{k: v for k, v in old.items() if k != "cells"}}
    with open(p, "w") as f: json.dump(nb, f, indent=1, ensure_ascii=False); f.write("\n")

if __name__ == "__main__":
    {"totxt": totxt, "tonb": tonb}[sys.argv[1]](sys.argv[2], sys.argv[3])
