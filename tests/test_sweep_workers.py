"""Sweep pool workers die with the sweep: a SIGKILLed sweep leaves no worker running its points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import emsfl_sim.sweep.executors as executors

    def point(pid_file):
        import os
        Path(pid_file).write_text(str(os.getpid()))
        time.sleep(120)  # a long point

    if __name__ == "__main__":
        executors.FORKSERVER_PRELOAD = ()  # start fast: this test needs no torch
        pool = executors.ProcessExecutor(1)
        pool.submit(point, "p", sys.argv[1])
        for _ in pool.results():
            pass
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its reaper counts as gone
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "\\nState:\\tZ" in status.read_text())


@pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL and /proc semantics of Linux")
def test_workers_exit_when_the_sweep_is_killed(tmp_path: Path) -> None:
    script, pid_file = tmp_path / "sweep.py", tmp_path / "worker.pid"
    script.write_text(SCRIPT)
    sweep = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.is_file(), "the worker never started"
        worker = int(pid_file.read_text())
        assert _alive(worker)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived the killed sweep"
    finally:
        if sweep.poll() is None:
            sweep.kill()
