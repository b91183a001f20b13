"""What a test does when something it needs is absent (the tiers: tests/conftest.py).

Under ``make test-fast`` (``RIG_TEST_TIER=fast``) a missing prerequisite is a skip with its reason: the fast tier
runs on a fresh clone after ``make setup`` alone. Under ``make test`` it is a failure: CI installs everything, so
something missing there is a broken install that must not pass as a skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

FAST_TIER = os.environ.get("RIG_TEST_TIER") == "fast"


def unavailable(what: str, how: str) -> NoReturn:
    """A test's prerequisite is missing: a skip under ``make test-fast``, a failure under ``make test``."""
    message = f"{what} is missing: {how}"
    if FAST_TIER:
        pytest.skip(message)
    pytest.fail(message)
