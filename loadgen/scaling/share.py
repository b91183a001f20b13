"""One process's share of a run's schedule: ``--workers N`` and ``--shard K/N``.

Why a share and not N smaller profiles: N processes must together send exactly what one
process would. An open loop's arrivals are computed identically in every share (same seed,
same clock origin) and dealt round-robin, arrival i to share i mod N, so the aggregate
arrival process is the one the profile asked for; a closed loop's concurrency and request
count are split so the widths sum to the profile's. Request indices are ``k + N·j`` (share
k's j-th request): unique in the merged records, and, for an open loop, equal to the
arrival's index in the full schedule. Shares compose: worker w of W inside shard K of N is
share ``K + N·w`` of ``N·W``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    """Share ``k`` (0-based) of ``n``."""

    k: int = 0
    n: int = 1

    def __post_init__(self) -> None:
        if self.n < 1 or not 0 <= self.k < self.n:
            raise ValueError(f"a share is K/N with 0 <= K < N; got {self.k}/{self.n}")

    @classmethod
    def parse(cls, text: str) -> Share:
        """``"K/N"`` (``--shard``)."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"--shard wants K/N (0-based K, e.g. 0/4), not {text!r}")
        return cls(int(match[1]), int(match[2]))

    @property
    def whole(self) -> bool:
        return self.n == 1

    def split(self, workers: int, worker: int) -> Share:
        """Worker ``worker`` of ``workers`` inside this share."""
        return Share(self.k + self.n * worker, self.n * workers)

    def part(self, total: int) -> int:
        """This share's part of ``total`` things dealt round-robin (concurrency, warm-up requests)."""
        return total // self.n + (1 if self.k < total % self.n else 0)

    def closed_requests(self, requests: int, width: int) -> int:
        """A closed loop's request budget: dealt among the shares that have a slot (``width`` > 0 in
        ``min(n, width)`` of them), so no share holds requests it has no slot to send."""
        active = min(self.n, width)
        if self.k >= active:
            return 0
        return requests // active + (1 if self.k < requests % active else 0)

    def mine(self, arrival: int) -> bool:
        """Open loop: is the ``arrival``-th arrival of the full schedule this share's?"""
        return arrival % self.n == self.k

    def index(self, local: int) -> int:
        """The run-wide index of this share's ``local``-th request."""
        return self.k + self.n * local


WHOLE = Share()  # the whole run: one process, one host
