"""Hand-built records and manifests the unit tests compute metrics and summaries from."""

from __future__ import annotations

from loadgen.record import RequestRecord
from loadgen.summary import Manifest

MS = 1_000_000


def record(**overrides) -> RequestRecord:
    # Intended at 0, sent at 2 ms, headers at 5 ms, role-only chunk at 6 ms, tokens at
    # 20, 30, 45 ms (the 45 ms chunk carries 2 tokens), usage-only chunk and end at 50 ms.
    base = dict(target="t", kind="openai-chat", stage=0, stage_name="c1", index=0, prompt_id="p",
                intended_ns=1_000 * MS, sent_ns=1_002 * MS, first_byte_ns=1_005 * MS, first_token_ns=1_020 * MS,
                first_content_ns=1_020 * MS, end_ns=1_050 * MS,
                chunk_offsets_ns=[4 * MS, 18 * MS, 28 * MS, 43 * MS, 48 * MS], chunk_tokens=[0, 1, 1, 2, 0],
                status=200, prompt_tokens=10, output_tokens=4)
    base.update(overrides)
    return RequestRecord(**base)


def manifest() -> Manifest:
    """The smallest valid manifest (build_summary copies it into the summary)."""
    return Manifest.model_validate({
        "versions": {"loadgen": "test"}, "profile": {}, "targets": [], "seed": 0, "dataset_hash": "0" * 16,
        "prompts": 0, "host": {"hostname": "h", "platform": "p", "cpus": 1}, "started_at": "now", "command": [],
        "clock": {"perf_counter_ns": 0, "unix_ns": 0}})
