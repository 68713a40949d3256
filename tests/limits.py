"""The one wall-clock limit of the tests. It catches a hang, never slowness: every command the tests run takes
seconds to a few minutes on a quiet 2-core machine, several times that under load, and far less than this."""
HANG_S = 1800 # 30 minutes, well inside CI's 90-minute cap; a command still running then is stuck, not slow
