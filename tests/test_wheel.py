"""The wheel: built from the tracked files, it carries the package data, installs into a fresh venv, and works from
an empty directory (no repo on the path, no network): the tokenizer known answer, the console scripts."""
import importlib, importlib.metadata, os, shutil, site, subprocess, sys, zipfile
from pathlib import Path
import pytest
from limits import HANG_S

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, timeout=HANG_S, env=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _tracked_copy(dest: Path) -> Path:
    "Copy the files git tracks (what a fresh clone has) to `dest`, so the build sees no local leftovers."
    try: files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError): pytest.skip("not a git checkout: cannot list the tracked files")
    for f in filter(None, files):
        src = REPO / f.decode()
        if src.is_file():
            (dest / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f.decode())
    return dest


def _setuptools_ok() -> bool:
    try: return int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError: return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _tracked_copy(tmp_path_factory.mktemp("src"))
    dist = tmp_path_factory.mktemp("dist")
    # --no-isolation when this environment already has a new enough setuptools: no download, a few seconds
    iso = ["--no-isolation"] if _setuptools_ok() else []
    _run([sys.executable, "-m", "build", "--wheel", *iso, "--outdir", str(dist), str(src)], cwd=src)
    (whl,) = dist.glob("buildnanogpt-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    "A fresh venv that sees this environment's packages (torch, ...) but gets buildNanoGPT only from the wheel."
    v = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(v)], cwd=v)
    # When this interpreter is itself a venv, --system-site-packages reaches the base Python's packages, not ours:
    # list our site-packages in a .pth (plain paths: their own .pth files, e.g. the editable hook, do not run).
    purelib = _run([v / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=v).strip()
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "_outer_env.pth").write_text("\n".join(ours) + "\n")
    # --ignore-installed: the editable install of this checkout is visible through the system site-packages
    _run([v / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)], cwd=v)
    return v


@pytest.fixture
def empty_dir(tmp_path) -> Path:
    d = tmp_path / "empty"; d.mkdir()
    return d


def _env():
    "The environment without anything that would put this checkout on the path."
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    import buildNanoGPT
    assert wheel.name.startswith(f"buildnanogpt-{buildNanoGPT.__version__}-"), wheel.name
    for mod in ["__init__", "_modidx", "data", "model", "train", "viz"]:
        assert f"buildNanoGPT/{mod}.py" in names, f"{mod}.py missing from the wheel"
    assert "buildNanoGPT/assets/gpt2.tiktoken" in names
    plays = [n for n in names if n.startswith("buildNanoGPT/assets/shakespeare/") and n.endswith(".txt")]
    bundled = list((REPO / "buildNanoGPT" / "assets" / "shakespeare").glob("*.txt"))
    assert len(plays) == len(bundled) > 0, f"{len(plays)} plays in the wheel, {len(bundled)} bundled"
    eps = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(eps).decode()
    for script in ["buildnanogpt-prep", "buildnanogpt-train", "buildnanogpt-plot"]: assert script in text


def test_installed_wheel_tokenizer(venv, empty_dir):
    code = ("import buildNanoGPT, pathlib; from buildNanoGPT.data import get_tokenizer; "
            "assert get_tokenizer().encode('Hello, world!') == [15496, 11, 995, 0]; "
            "print(pathlib.Path(buildNanoGPT.__file__).resolve()); print(buildNanoGPT.__version__)")
    where, version = _run([venv / "bin" / "python", "-c", code], cwd=empty_dir, env=_env()).split()
    assert Path(where).is_relative_to(venv.resolve()), f"imported {where}, not the installed wheel"
    import buildNanoGPT
    assert version == buildNanoGPT.__version__


def test_installed_wheel_plot_cli(venv, empty_dir):
    (empty_dir / "log.txt").write_text("0 train 10.9\n0 val 10.95\n0 hella 0.25\n1 train 10.1\n")
    out = _run([venv / "bin" / "buildnanogpt-plot", "log.txt", "--out", "loss.png"], cwd=empty_dir, env=_env())
    assert "Min Train Loss: 10.1" in out and "saved plot to loss.png" in out
    assert (empty_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_installed_wheel_trains_two_steps(venv, empty_dir):
    out = _run([venv / "bin" / "buildnanogpt-train", "--max-steps", "2"], cwd=empty_dir, env=_env(), timeout=HANG_S)
    log = next(empty_dir.rglob("log.txt"), None)
    assert log is not None, f"no log.txt written under {empty_dir}:\n{out[-2000:]}"
    steps = [int(l.split()[0]) for l in log.read_text().splitlines() if l.split()[1:2] == ["train"]]
    assert steps == [0, 1], f"expected train records for steps 0 and 1, got {steps}"
    # and the plot of that real log, by the installed console script
    out = _run([venv / "bin" / "buildnanogpt-plot", str(log), "--out", "run.png"], cwd=empty_dir, env=_env())
    assert "Min Train Loss:" in out and (empty_dir / "run.png").read_bytes()[:4] == b"\x89PNG"
