"""One worker process of ``loadgen run --workers N`` (``python -m loadgen.cli.worker``).

Its parent (``loadgen.scaling.coordinator.Coordinator``) sends the job and the stage gates on stdin; it runs
its share with the same run loop as a single process (``loadgen.api.run_share``) and sends back
records and control lines on stdout (the protocol is described in ``loadgen.scaling.coordinator``).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import sys
from typing import IO, Any

import orjson

from loadgen import api
from loadgen.record import RequestRecord
from loadgen.scaling.coordinator import LAG_BATCH, WorkerJob


class _Channel:
    """The worker's end of the pipes: records and control lines out, gate answers in."""

    def __init__(self, out_fd: int, stdin: IO[bytes]) -> None:
        self.out_fd = out_fd
        self.stdin = stdin
        self._lags: list[int] = []

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.out_fd, view):]

    def record(self, record: RequestRecord) -> None:
        self._send(record.model_dump_json().encode() + b"\n")

    def control(self, message: dict[str, Any]) -> None:
        self._send(b"#" + orjson.dumps(message) + b"\n")

    def started(self, target: int, index: int, stage: int, stage_name: str, warmup: bool, intended: int,
                prompt_id: str) -> None:
        self.control({"start": [target, index, stage, stage_name, warmup, intended, prompt_id]})

    async def gate(self, target: int, stage: int) -> int | None:
        self.control({"ready": [target, stage]})
        line = await asyncio.get_running_loop().run_in_executor(None, self.stdin.readline)
        if not line:
            raise SystemExit(0)  # the parent is gone: nothing left to report to
        return int(orjson.loads(line)["go"])

    def lag(self, lag_ns: int) -> None:
        self._lags.append(lag_ns)
        if len(self._lags) >= LAG_BATCH:
            self.control({"lag": self._lags})
            self._lags = []


def worker_main() -> int:
    """``python -m loadgen.cli.worker``: read the job, run the share, report. stdout is the protocol:
    anything else printed goes to stderr."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    stdin = sys.stdin.buffer
    (size,) = struct.unpack("<Q", stdin.read(8))
    job: WorkerJob = pickle.loads(stdin.read(size))
    channel = _Channel(out_fd, stdin)
    lags, cpu = api.run_share(job.profile, job.specs, job.share, job.salt_base, channel)
    channel.control({"done": {"loop_lag": lags, "cpu": cpu}})
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
