"""One engine process for the CPU stack and the tests: start, wait until ready, stop.

Why a module of its own: every real engine here (the baseline, vLLM, Triton) and the
load generator's synthetic server run as plain processes on 127.0.0.1. Starting one must fail loudly and usefully (which
process, which log file, its last lines) instead of hanging, and stopping one must hit
exactly the process group we started, by PID, never a process found by name.

Neutral on purpose: only the standard library and httpx, so that the load generator (its
selftest) can use it without importing any engine or server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

DEFAULT_READY_TIMEOUT_S = 120.0


class EngineStartError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(pid: int, argv0: str, grace_s: float = 10.0) -> bool:
    """Stop a process group started earlier (``python -m stack.local up``) by its leader's PID.

    Only when ``/proc/PID/cmdline`` still starts with the recorded ``argv0``: a PID reused by an
    unrelated process is left alone. Returns whether a process was signalled.
    """
    if not is_running(pid, argv0):
        return False
    _kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and is_running(pid, argv0):
        time.sleep(0.1)
    _kill_group(pid, signal.SIGKILL)
    return True


def is_running(pid: int, argv0: str) -> bool:
    """Whether PID is alive (not a zombie) and still the program we started.

    ``/proc/PID/cmdline`` reads empty for a moment while a process is being exec'd: read again then.
    """
    for _ in range(50):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state == "Z":
            return False
        if raw:
            return raw.split(b"\0")[0].decode(errors="replace") == argv0
        time.sleep(0.002)
    return False


@dataclass
class ManagedProcess:
    """One engine process in its own session, logging to a file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(list(self.argv), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        return self

    def wait_ready(self) -> ManagedProcess:
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + self.ready_timeout_s
        last_error = ""
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise EngineStartError(f"{self.name} exited with code {code} before it was ready; "
                                       f"log {self.log_path}:\n{tail(self.log_path)}")
            try:
                if httpx.get(self.ready_url, timeout=2.0).status_code == 200:
                    return self
                last_error = "not ready yet"
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}"
            time.sleep(0.25)
        self.stop()
        raise EngineStartError(f"{self.name} was not ready at {self.ready_url} within {self.ready_timeout_s:.0f}s "
                               f"({last_error}); log {self.log_path}:\n{tail(self.log_path)}")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group we started, then SIGKILL after ``grace_s``."""
        if self.process is None:
            return
        if self.process.poll() is not None:
            _kill_group(self.process.pid, signal.SIGKILL)  # children it left behind, if any
            return
        _kill_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=grace_s)
        _kill_group(self.process.pid, signal.SIGKILL)  # workers that outlived their parent (vLLM's engine core)

    def __enter__(self) -> ManagedProcess:
        return self.start().wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()

