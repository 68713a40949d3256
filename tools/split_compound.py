"""Rewrite one-line compound statements (`if x: y`, `for ...: ...`, `try: ...`, `except E: ...`, `else: ...`,
`with ...: ...`, `def f(): return ...`) in the exported cells of notebooks as two lines: header, then the body
indented. The house style keeps bodies on their own lines.

    python tools/split_compound.py nbs/07_checkpoint.ipynb [more.ipynb ...]   # rewrites in place, prints counts
    python tools/split_compound.py --check nbs/*.ipynb                         # counts only
"""
import ast, json, re, sys
from pathlib import Path

HEADERS = (ast.If, ast.For, ast.While, ast.With, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Try)


def _splits(tree) -> list[tuple[int, int]]:
    "(line, column, header line) of the first statement of each block (header line None: an else/finally block)."
    out = []
    for n in ast.walk(tree):
        if not isinstance(n, (*HEADERS, ast.ExceptHandler)): continue
        out.append((n.body[0].lineno, n.body[0].col_offset, n.lineno)) # a body on its header's line
        for block in (getattr(n, "orelse", []), getattr(n, "finalbody", [])):
            if block: out.append((block[0].lineno, block[0].col_offset, None)) # after `else:` / `finally:`?
    return out


def split_source(src: str) -> tuple[str, int]:
    "`src` with its one-line compound statements split; the number split."
    lines = src.split("\n")
    code = "\n".join("" if l.startswith("#|") else l for l in lines)
    try: tree = ast.parse(code)
    except SyntaxError: return src, 0
    todo = []
    for ln, col, header_line in _splits(tree):
        head = lines[ln - 1][:col].rstrip()
        if header_line is None and not re.search(r"\b(else|finally)\s*:$", head): continue # its own line, or elif
        if header_line is not None and header_line != ln: continue # the body is on a line of its own
        if not head.endswith(":"): continue
        todo.append((ln, col))
    for ln, col in sorted(todo, reverse=True): # bottom-up, right to left: positions stay valid
        line = lines[ln - 1]
        indent = len(line) - len(line.lstrip())
        head, body = line[:col].rstrip(), line[col:]
        lines[ln - 1:ln] = [head, " " * (indent + 4) + body]
    return "\n".join(lines), len(todo)


def _cells(nb):
    for c in nb["cells"]:
        if c["cell_type"] == "code" and re.search(r"^#\|\s*export", "".join(c["source"]), re.M): yield c


def main(argv):
    check = "--check" in argv
    total = 0
    for p in [a for a in argv if a != "--check"]:
        nb = json.loads(Path(p).read_text())
        n = 0
        # nested one-liners (`if a: if b: ...` cannot occur; `for ...: if x: y` can't either): one pass per level
        for _ in range(3):
            for c in _cells(nb):
                s, k = split_source("".join(c["source"]))
                if k and not check:
                    parts = s.split("\n")
                    c["source"] = [l + "\n" for l in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
                n += k
            if check: break
        total += n
        print(f"{p}: {n} one-line compound statement(s) {'found' if check else 'split'}")
        if not check: Path(p).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return total


if __name__ == "__main__":
    main(sys.argv[1:])
