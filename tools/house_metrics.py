"The house's measures: lines per module, exported cell sizes, long lines, one-line compound statements, getattr(ddp_cf probes, forward references."
import ast, glob, json, re, statistics, sys
from pathlib import Path
# usage: python tools/house_metrics.py [repo root]   (default: .)
root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
print("== lines per module")
for p in sorted((root / "buildNanoGPT").glob("*.py")):
    if p.name in ("_modidx.py", "__init__.py"): continue
    print(f"  {p.name:14s} {len(p.read_text().splitlines()):5d}")
long = compound = probes = 0
for p in sorted((root / "buildNanoGPT").glob("*.py")):
    if p.name == "_modidx.py": continue
    src = p.read_text()
    long += sum(len(l) > 120 for l in src.splitlines())
    probes += src.count("getattr(ddp_cf")
    for n in ast.walk(ast.parse(src)):
        if isinstance(n, (ast.If, ast.For, ast.While, ast.With, ast.FunctionDef, ast.ClassDef, ast.Try, ast.AsyncFunctionDef)):
            if n.body and n.body[0].lineno == n.lineno: compound += 1
            if isinstance(n, ast.If) and n.orelse and not (len(n.orelse) == 1 and isinstance(n.orelse[0], ast.If)):
                pass
        if isinstance(n, ast.ExceptHandler) and n.body and n.body[0].lineno == n.lineno: compound += 1
print(f"== library lines over 120 chars: {long}; one-line compound statements: {compound}; getattr(ddp_cf probes: {probes}")
print("== exported cells per notebook: n, median, max lines; forward references")
def defs_of(tree):
    out = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)): out.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                for m in ast.walk(t):
                    if isinstance(m, ast.Name): out.add(m.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names: out.add((a.asname or a.name).split(".")[0])
    return out
for p in sorted((root / "nbs").glob("*.ipynb")):
    cells = [c for c in json.load(open(p))["cells"] if c["cell_type"] == "code"]
    srcs = ["".join(c["source"]) for c in cells]
    exp = [i for i, s in enumerate(srcs) if re.search(r"^#\|\s*export", s, re.M)]
    if not exp: continue
    sizes = [len(srcs[i].splitlines()) for i in exp]
    trees = []
    for s in srcs:
        clean = "\n".join(l for l in s.splitlines() if not l.startswith(("#|", "!", "%")))
        try: trees.append(ast.parse(clean))
        except SyntaxError: trees.append(ast.parse(""))
    fwd = []
    for i in exp:
        earlier = set().union(*[defs_of(trees[j]) for j in range(i + 1)])
        later = set().union(*[defs_of(trees[j]) for j in range(i + 1, len(trees))]) - earlier
        t = trees[i]
        bound = {n.id for n in ast.walk(t) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        bound |= {a.arg for n in ast.walk(t) if isinstance(n, ast.arguments) for a in n.args + n.kwonlyargs + n.posonlyargs + ([n.vararg] if n.vararg else []) + ([n.kwarg] if n.kwarg else [])}
        bound |= {n.name for n in ast.walk(t) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        bound |= {n.name for n in ast.walk(t) if isinstance(n, ast.ExceptHandler) and n.name}
        bound |= {(a.asname or a.name).split(".")[0] for n in ast.walk(t) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        used = {n.id for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound
        bad = sorted(used & later)
        if bad: fwd.append((i, bad))
    print(f"  {p.name:26s} {len(exp):3d} cells, median {statistics.median(sizes):5.1f}, max {max(sizes):4d}, "
          f"over 60: {sum(s > 60 for s in sizes)}; forward refs in {len(fwd)} cells")
    for i, bad in fwd: print(f"      cell {i}: {bad[:6]}")
