"""``manifest.json``: what a run did (profile, targets, versions, host, prompts' fingerprint, clocks).

Why: a figure without its conditions cannot be compared or repeated. The manifest is written
before the first request, so even a killed run says what it was.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any

from loadgen import __version__
from loadgen.clients.base import RequestSpec
from loadgen.config import Profile
from loadgen.headers import redact
from loadgen.sources.base import dataset_hash
from loadgen.summary import Manifest


def versions() -> dict[str, str]:
    found = {"loadgen": __version__, "python": platform.python_version()}
    for dist in ("uvloop", "orjson", "pydantic", "tokenizers", "tritonclient"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


def make_manifest(profile: Profile, specs: Sequence[RequestSpec], argv: Sequence[str],
                  engine_builds: Sequence[dict[str, Any]] = (), prompt_stats: dict[str, int] | None = None,
                  secrets: Iterable[str] = (), share: str | None = None) -> Manifest:
    """The manifest, redacted (``loadgen.headers.redact``): sensitive header values and every string in
    ``secrets`` (API keys, header values, also where they appear on the command line) never reach it."""
    extra: dict[str, Any] = {"prompt_stats": prompt_stats} if prompt_stats else {}  # absent when nothing reported
    if share is not None:
        extra["share"] = share  # ``--shard K/N``: this run is one share of the profile (``loadgen merge``)
    return Manifest.model_validate(redact({
        **extra,
        "versions": versions(),
        "profile": profile.model_dump(mode="json"),
        "targets": [t.model_dump(mode="json") for t in profile.targets],
        "seed": profile.seed,
        "dataset_hash": dataset_hash(specs),
        "prompts": len(specs),
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": list(argv),
        # Time bases: records hold perf_counter_ns of this process; these map them to wall time.
        "clock": {"perf_counter_ns": time.perf_counter_ns(), "unix_ns": time.time_ns()},
        "engine_builds": list(engine_builds),
    }, secrets))
