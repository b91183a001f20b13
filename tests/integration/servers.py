"""The baseline server processes the integration tests start (tests/integration/conftest.py), as the tests see them."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from stack.process import ManagedProcess

SERVED = "smollm2"
# Small on purpose: tests fill it (1 running + 2 waiting) to reach a 429.
MAX_QUEUE = 2


@dataclass
class Server:
    url: str
    process: ManagedProcess
    model: str = SERVED

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)
