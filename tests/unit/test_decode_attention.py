"""The continuous scheduler's decode attention equals SDPA's over the same padded batch cache.

``decode_attention`` reads the batch cache's views (rows with the cache's capacity as stride, grouped query heads
over shared key/value heads, a per-row padding mask); the reference is torch's SDPA on explicit copies with the
key/value heads repeated, as the model's own attention would compute it.
"""

from __future__ import annotations

import torch

from servers.hf.chunked import decode_attention


def reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
              scaling: float) -> torch.Tensor:
    group = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(group, dim=1).contiguous()
    value = value.repeat_interleave(group, dim=1).contiguous()
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling)
    return out.transpose(1, 2)  # [B, 1, heads, d]


def padded_batch(lengths: list[int], heads: int = 9, kv_heads: int = 3, dim: int = 16, capacity: int = 64
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    rows, width = len(lengths), max(lengths)
    keys = torch.randn(rows, kv_heads, capacity, dim, generator=generator)
    values = torch.randn(rows, kv_heads, capacity, dim, generator=generator)
    query = torch.randn(rows, heads, 1, dim, generator=generator)
    visible = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    mask = torch.zeros(rows, 1, 1, width).masked_fill_(~visible[:, None, None, :], torch.finfo(torch.float32).min)
    return query, keys[:, :, :width], values[:, :, :width], mask


def test_ragged_rows_with_grouped_heads_match_sdpa() -> None:
    query, key, value, mask = padded_batch([5, 17, 11, 17])
    assert not key.is_contiguous()  # a view of the cache, as in a decode step
    got = decode_attention(query, key, value, mask, 0.25)
    assert got.shape == (4, 1, 9, 16)
    torch.testing.assert_close(got, reference(query, key, value, mask, 0.25), rtol=1e-5, atol=1e-5)


def test_padding_is_invisible() -> None:
    """Changing a row's padded columns changes nothing; changing a visible column does."""
    query, key, value, mask = padded_batch([3, 8])
    before = decode_attention(query, key, value, mask, 0.25)
    key[0, :, 5], value[0, :, 5] = 1e3, -1e3  # row 0 sees columns 0..2 only
    torch.testing.assert_close(decode_attention(query, key, value, mask, 0.25), before, rtol=0, atol=0)
    value[0, :, 1] = 7.0
    assert not torch.allclose(decode_attention(query, key, value, mask, 0.25)[0], before[0])


def test_equal_lengths_need_no_mask() -> None:
    query, key, value, _ = padded_batch([6, 6, 6])
    torch.testing.assert_close(decode_attention(query, key, value, None, 0.5),
                               reference(query, key, value, None, 0.5), rtol=1e-5, atol=1e-5)
