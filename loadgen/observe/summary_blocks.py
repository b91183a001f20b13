"""A run's engine samples, read back and turned into the summary's ``resources``/``server``/``ttft_breakdown``.

Why apart from the sampling thread: ``loadgen report DIR`` and ``load_run`` rebuild the blocks from
the two files alone, with the same code the run used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen import metrics as m
from loadgen.observe.resources import RESOURCES_FILE, ResourceSample, resources_block
from loadgen.observe.samples import in_window, read_samples
from loadgen.observe.server_metrics import SERVER_FILE, ServerSample, server_block
from loadgen.observe.ttft_breakdown import ttft_breakdown
from loadgen.record import RequestRecord


@dataclass
class Observed:
    """What ``loadgen.observe`` sampled during the run (``resources.jsonl``, ``server_metrics.jsonl``)."""

    resources: Sequence[ResourceSample] = ()
    server: Sequence[ServerSample] = ()

    def watched(self, target: str) -> bool:
        return any(s.target == target for s in (*self.resources, *self.server))

    def attach(self, block: Any, records: Sequence[RequestRecord], target: str, stage: str | None) -> None:
        """The ``resources``, ``server`` and ``ttft_breakdown`` blocks of one window (``stage=None``: every
        stage of the target) onto ``block``; only for a target that was observed."""
        if not self.watched(target):
            return
        output_tokens = sum(r.output_tokens or 0 for r in m.measured(records) if r.ok)
        resources = resources_block(in_window(self.resources, target, stage), output_tokens)
        server = server_block(in_window(self.server, target, stage))
        if resources is not None:
            block.resources = resources
        if server is not None:
            block.server = server
        breakdown = ttft_breakdown(records, server)
        if breakdown is not None:
            block.ttft_breakdown = breakdown


def read_observed(folder: Path) -> Observed:
    """Both files of a saved run (absent files: a run from before them, or one that observed nothing).
    A bad line raises ValueError naming the file, the line and the field."""
    return Observed(read_samples(folder / RESOURCES_FILE, ResourceSample),
                    read_samples(folder / SERVER_FILE, ServerSample))
