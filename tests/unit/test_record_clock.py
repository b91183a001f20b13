"""``RequestRecord.shifted``: one record moved onto another clock (``loadgen merge``, the Locust master)."""

from __future__ import annotations

from loadgen.record import ABSOLUTE_STAMPS, RequestRecord


def test_shifted_moves_every_absolute_stamp_and_nothing_else() -> None:
    r = RequestRecord(target="t", kind="openai-chat", stage=0, stage_name="c1", index=3, prompt_id="p",
                      intended_ns=100, sent_ns=110, first_byte_ns=150, first_token_ns=160, first_content_ns=None,
                      end_ns=400, chunk_offsets_ns=[50, 90], chunk_tokens=[1, 1], connect_start_ns=None,
                      connect_ns=None)
    moved = r.shifted(1_000)
    for name in ABSOLUTE_STAMPS:
        before, after = getattr(r, name), getattr(moved, name)
        assert after == (None if before is None else before + 1_000), name
    assert moved.chunk_offsets_ns == r.chunk_offsets_ns and moved.index == r.index
    assert r.shifted(0) is r
    assert moved.shifted(-1_000) == r
