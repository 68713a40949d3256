"""What the pages show, checked on the notebooks themselves: every cell the tests skip says what it needs, and no
saved output (nor README.md) holds a path of the machine it ran on."""
import json, re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "nbs").glob("*.ipynb"))
# a path of some machine: a home, a temp or work folder, a venv or site-packages, a Windows drive
MACHINE_PATH = re.compile(r"(?<![\w.])(/(home|root|Users|tmp|var/folders|work|opt|private)/[\w.-]"
                          r"|[A-Za-z]:\\\\?[\w.-]|/site-packages/|/\.venv/)")


def _text(x) -> str: return "".join(x) if isinstance(x, list) else (x or "")


def _cells(p):
    return json.loads(p.read_text())["cells"]


def test_flagged_cells_say_what_they_need():
    "A `#| cuda` or `#| download` cell shows no output on the page; its first line says why and what it needs."
    bare = []
    for p in NOTEBOOKS:
        for c in _cells(p):
            src = _text(c["source"])
            if c["cell_type"] == "code" and re.search(r"^#\|\s*(cuda|download)\b", src, flags=re.M):
                first = next((l for l in src.splitlines() if not l.startswith("#|")), "")
                needs = "GPU" if re.search(r"^#\|\s*cuda\b", src, flags=re.M) else "network"
                if not (first.startswith("#") and "flagged" in first and (needs in first or "GPUs" in first)):
                    bare.append(f"{p.name}: {first!r}")
    assert not bare, "flagged cells whose first line does not say what they need:\n" + "\n".join(bare)


def machine_paths(text: str) -> list[str]:
    "The lines of `text` that hold a path of a machine."
    return [l.strip()[:160] for l in text.splitlines() if MACHINE_PATH.search(l)]


def test_the_checker_finds_machine_paths():
    found = machine_paths("ok: log/model_00549.pt\n/work/main/.venv/bin/python3 -m torch.distributed.run\n"
                          "at /tmp/tmpab12/log\nC:\\Users\\me\\run\nurl https://x.org/home/y\n")
    assert len(found) == 3, found


def test_no_machine_path_in_saved_outputs_or_readme():
    found = []
    for p in NOTEBOOKS:
        for i, c in enumerate(_cells(p)):
            for o in c.get("outputs", []):
                texts = [o.get("text", "")] + [v for k, v in o.get("data", {}).items() if k.startswith("text/")]
                found += [f"{p.name} cell {i}: {l}" for t in texts for l in machine_paths(_text(t))]
    found += [f"README.md: {l}" for l in machine_paths((REPO / "README.md").read_text())]
    assert not found, "outputs that show a path of the machine they ran on:\n" + "\n".join(found)
