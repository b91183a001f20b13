"""Reading an engine's ``/metrics`` (Prometheus text format) for a few named samples.

Why filter before parsing: vLLM's page has hundreds of lines of histogram buckets we never use,
and the parse runs in a thread that shares the interpreter (and its lock) with the measuring
event loop. Keeping only lines that start with a wanted sample name makes a parse of vLLM's page
cost well under a millisecond; what is kept is parsed by ``prometheus_client.parser``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Sample name (as written, ``_total``/``_sum``/``_count`` included) → its (labels, value) pairs."""


@dataclass(frozen=True)
class From:
    """One sample to read: its name, an optional label filter, and the factor to the unit we store."""

    sample: str
    labels: Mapping[str, str] = field(default_factory=dict)
    scale: float = 1.0


def parse(text: str, wanted: Collection[str]) -> Samples:
    """The samples of ``text`` whose names start with one of ``wanted`` (comments dropped).
    A line the parser rejects raises ValueError (the caller records it as a failed scrape)."""
    prefixes = tuple(wanted)
    kept = [line for line in text.splitlines() if line.startswith(prefixes)]
    found: Samples = {}
    if not kept:
        return found
    for family in text_string_to_metric_families("\n".join(kept) + "\n"):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def total(samples: Samples, source: From) -> float | None:
    """Sum over the label sets of ``source.sample`` that match its label filter, scaled; None when absent."""
    values = [v for labels, v in samples.get(source.sample, ())
              if all(labels.get(k) == want for k, want in source.labels.items())]
    return sum(values) * source.scale if values else None


def mean(samples: Samples, source: From) -> float | None:
    """Mean over the matching label sets (one per GPU, say), scaled; None when absent."""
    values = [v for labels, v in samples.get(source.sample, ())
              if all(labels.get(k) == want for k, want in source.labels.items())]
    return sum(values) / len(values) * source.scale if values else None


def sum_of(samples: Samples, sources: Collection[From]) -> float | None:
    """Sum of several samples (Triton's success + failure counts); None when none is present."""
    parts = [v for s in sources if (v := total(samples, s)) is not None]
    return sum(parts) if parts else None
