"""The one wall-clock limit of the tests. It catches a hang, never slowness: every command the tests run takes
seconds to a few minutes on a quiet 2-core machine, several times that under load, and far less than this."""
HANG_S = 1800 # 30 minutes, well inside CI's 90-minute cap; a command still running then is stuck, not slow


def lines_until(p, prefix, s=HANG_S):
    """The lines process `p` prints (stdout, text) up to and including the first that starts with `prefix`, or all
    of them if it ends first. Bounded: if that line has not come within `s` seconds, `p` (and its process group, if
    it leads one) is killed, so the test fails on what it printed instead of waiting forever."""
    import os, signal, threading

    def kill():
        try: os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError): p.kill()
    timer, lines = threading.Timer(s, kill), []
    timer.start()
    try:
        for line in p.stdout:
            lines.append(line)
            if line.startswith(prefix): break
    finally:
        timer.cancel()
    return lines
