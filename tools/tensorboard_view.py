"""Serve a run's TensorBoard on 127.0.0.1 and load its Scalars tab in headless Chromium (no network).

    python tools/tensorboard_view.py LOG_DIR --shot nbs/images/tensorboard.png   # the picture on the track page

tests/test_track.py uses `serve` and `load` to check that TensorBoard shows a finished run and its tags.
The Scalars tab draws its charts with SVG, which headless Chromium renders (the Time Series tab's WebGL charts stay
empty here); its run list is inside shadow roots, which `--dump-dom` leaves out, so the run's name is read from the
Time Series tab.
"""
import argparse, contextlib, json, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(logdir, hang_s: float = 1800):
    "Serve `logdir` with TensorBoard on a free port of 127.0.0.1; yield its URL. `hang_s` only catches a hang."
    port = free_port()
    exe = Path(sys.executable).with_name("tensorboard")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tensorboard.main"]
    # started in `logdir` as `--logdir .`: the page shows no path of this machine
    p = subprocess.Popen(cmd + ["--logdir", ".", "--host", "127.0.0.1", "--port", str(port)], cwd=logdir,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url, t0 = f"http://127.0.0.1:{port}", time.monotonic()
    try:
        while True: # until it answers with the run listed
            try:
                with urllib.request.urlopen(url + "/data/runs", timeout=5) as r:
                    if r.read().strip() not in (b"", b"[]"): break
            except OSError:
                pass
            if p.poll() is not None: raise RuntimeError(f"tensorboard exited: {p.stderr.read()[-2000:]}")
            if time.monotonic() - t0 > hang_s: raise RuntimeError(f"tensorboard did not answer in {hang_s:.0f} s (hung?)")
            time.sleep(0.5)
        yield url
    finally:
        p.terminate()
        try: p.wait(timeout=30)
        except subprocess.TimeoutExpired: p.kill()


def load(url: str, chromium: str, tab: str = "scalars", # TensorBoard at `url`; its tab: scalars, timeseries, ...
         shot=None, width=1280, height=900, hang_s: float = 1800) -> str:
    "The DOM of a TensorBoard tab after it has drawn (and a screenshot in `shot`)."
    with tempfile.TemporaryDirectory() as prof:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", # offline: only the local server
               "--disable-background-networking", "--no-first-run", "--virtual-time-budget=20000",
               "--hide-scrollbars", f"--window-size={width},{height}", f"--user-data-dir={prof}", "--dump-dom",
               *([f"--screenshot={shot}"] if shot else []), f"{url}/#{tab}"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=hang_s, cwd=prof)
    if r.returncode: raise RuntimeError(f"chromium failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logdir", help="a run's log folder (or a folder of them)")
    p.add_argument("--shot", required=True, help="where to write the PNG")
    a = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None: sys.exit("tensorboard_view.py: error: chromium not found (apt-get install -y chromium)")
    with serve(a.logdir) as url:
        load(url, chromium, "scalars", shot=Path(a.shot).resolve())
        runs = json.loads(urllib.request.urlopen(url + "/data/plugin/scalars/tags", timeout=60).read())
    print(f"{a.shot}: TensorBoard's Scalars tab; runs and tags served: {runs}")


if __name__ == "__main__":
    main()
