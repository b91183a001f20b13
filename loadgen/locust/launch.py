"""Start a headless distributed Locust run of a profile: one master and N worker processes on 127.0.0.1.

Why here: the tests and ``benchmarks/locust_accuracy.py`` start runs the same way, and so can a
user's script. Nothing here imports Locust: the processes are ``python -m loadgen.locust``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stack.process import free_port


@dataclass
class LocustRun:
    """The processes of one run and their logs (``master.log``, ``worker-K.log`` in ``logs``)."""

    master: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    logs: Path
    files: list[object] = field(default_factory=list)

    def wait(self, timeout_s: float) -> int:
        """The master's exit code once it ends (workers quit with it); kills everything after ``timeout_s``."""
        try:
            return self.master.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        finally:
            deadline = time.monotonic() + 10
            for worker in self.workers:
                try:
                    worker.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            for f in self.files:
                f.close()  # type: ignore[attr-defined]

    def stop(self) -> None:
        for proc in [self.master, *self.workers]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def master_log(self) -> str:
        return (self.logs / "master.log").read_text(errors="replace")


def start(profile: Path, out: Path, workers: int, logs: Path, extra: Sequence[str] = (),
          cpus: Sequence[int] | None = None) -> LocustRun:
    """``python -m loadgen.locust --headless --master --expect-workers N`` and N ``--worker`` processes
    (each pinned to ``cpus`` with taskset when given)."""
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
    base = [*pin, sys.executable, "-m", "loadgen.locust"]
    files = [open(logs / "master.log", "wb")]  # noqa: SIM115 (closed by LocustRun.wait)
    master = subprocess.Popen([*base, "--headless", "--master", "--master-bind-host", "127.0.0.1",
                               "--master-bind-port", str(port), "--expect-workers", str(workers),
                               "--rig-profile", str(profile), "--rig-out", str(out), "--only-summary", *extra],
                              stdout=files[0], stderr=subprocess.STDOUT)
    procs = []
    for k in range(workers):
        files.append(open(logs / f"worker-{k}.log", "wb"))  # noqa: SIM115
        procs.append(subprocess.Popen([*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                                      stdout=files[-1], stderr=subprocess.STDOUT))
    return LocustRun(master, procs, logs, files)
