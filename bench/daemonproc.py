"""Start ``python -m runyard daemon -f FILE`` in its own process group (RUNYARD_HOME set) and stop
that whole group afterwards (SIGTERM, then SIGKILL for anything left in it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


class DaemonProc:
    def __init__(self, home: str, files: list[str], log_path: str):
        self.home = home
        self.log = open(log_path, "wb")
        self.log_path = log_path
        argv = [sys.executable, "-m", "runyard", "daemon"]
        for f in files:
            argv += ["-f", f]
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(argv, env={**os.environ, "RUNYARD_HOME": home}, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Until the daemon printed its banner (code servers up, lease taken); seconds since spawn."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited early (rc={self.proc.returncode}); see {self.log_path}")
            with open(self.log_path, "rb") as f:
                if b"Press Ctrl-C" in f.read():
                    return time.perf_counter() - self.t_start
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        try:  # stragglers left in the group (code server, zygote, run workers)
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
