"""What every scheduler shares: the interface the app drives and the refusal of a full queue.

Each scheduler module (``scheduler`` for naive, ``continuous``) and the app import this module;
it imports none of them, so the schedulers never import each other.
"""

from __future__ import annotations

from typing import Protocol

from servers.hf.sequence import Sequence


class QueueFull(Exception):
    """Raised by ``Scheduler.submit`` when ``max_queue`` requests already wait; the app answers 429."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"queue full ({limit} waiting)")
        self.limit = limit


class Scheduler(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def submit(self, seq: Sequence) -> None: ...
    def cancel(self, seq: Sequence) -> None: ...
