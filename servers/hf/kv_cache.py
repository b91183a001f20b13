"""The continuous scheduler's KV cache: an explicit token budget, and batched storage the model writes into.

Two parts, because admission and memory layout are different questions:

* ``TokenBudget`` decides admission. The budget is counted in blocks of ``block_size`` tokens; a
  sequence reserves ``ceil((prompt + max_tokens) / block_size)`` blocks when it is admitted — all it
  can ever need, so a running sequence never runs out mid-generation and nothing is preempted —
  and gives them back when it finishes or is cancelled. A request that does not fit waits (FIFO);
  one larger than the whole budget can never run and is refused at submission.
  ``usage = reserved blocks / total blocks`` is the ``hf:kv_cache_usage_perc`` gauge.
* ``BatchKVCache`` holds the keys and values of the running sequences in per-layer tensors
  ``[rows, kv_heads, capacity, head_dim]``: sequence *i* lives in row *i* (rows are kept compact:
  when a sequence leaves, the last row moves into its place), its token *t* at column *t*. The
  tensors grow (doubling) when a longer sequence or more rows arrive, never per step. A decode step
  writes each row's new key/value at that row's own length and hands attention a view of rows
  ``0..B-1`` and columns ``0..max length``; a per-row mask hides each row's unused columns, and
  per-row ``position_ids`` give each sequence its own positions. The step itself is ``chunked.forward``
  (``MixedStep.attend`` writes and reads this cache; ``chunked.decode_attention`` attends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache


class BudgetTooSmall(ValueError):
    """A single request needs more KV cache than the whole budget: it could never be admitted."""


@dataclass
class TokenBudget:
    total_tokens: int
    block_size: int = 16
    _reserved: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.total_tokens < self.block_size:
            raise ValueError(f"KV-cache budget of {self.total_tokens} tokens is below one block ({self.block_size})")

    @property
    def total_blocks(self) -> int:
        return self.total_tokens // self.block_size

    @property
    def used_blocks(self) -> int:
        return sum(self._reserved.values())

    @property
    def usage(self) -> float:
        return self.used_blocks / self.total_blocks

    def blocks_for(self, tokens: int) -> int:
        return math.ceil(tokens / self.block_size)

    def check_fits(self, tokens: int) -> None:
        if self.blocks_for(tokens) > self.total_blocks:
            raise BudgetTooSmall(f"the request needs {tokens} tokens of KV cache (prompt + max_tokens); the server's "
                                 f"whole KV-cache budget is {self.total_blocks * self.block_size} tokens")

    def can_reserve(self, tokens: int) -> bool:
        return self.used_blocks + self.blocks_for(tokens) <= self.total_blocks

    def reserve(self, owner: str, tokens: int) -> None:
        if owner in self._reserved:
            raise ValueError(f"{owner} already holds KV-cache blocks")
        if not self.can_reserve(tokens):
            raise ValueError(f"{owner}: not enough KV-cache blocks")
        self._reserved[owner] = self.blocks_for(tokens)

    def release(self, owner: str) -> None:
        self._reserved.pop(owner, None)


class BatchKVCache:
    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device,
                 max_len: int, rows: int = 4, capacity: int = 256, max_rows: int | None = None) -> None:
        self.num_layers, self.kv_heads, self.head_dim = num_layers, kv_heads, head_dim
        self.dtype, self.device, self.max_len = dtype, device, max_len
        self.max_rows = max_rows or 1 << 30
        self.lengths: list[int] = []  # tokens cached per row; len(lengths) = rows in use
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self._alloc(rows, min(capacity, max_len))
        self.step_kv_len = 0
        self._positions: torch.Tensor | None = None

    def _alloc(self, rows: int, capacity: int) -> None:
        shape = (rows, self.kv_heads, capacity, self.head_dim)
        new_k = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.num_layers)]
        new_v = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.num_layers)]
        if self.lengths:  # growing: keep the rows in use
            used, old_cap = len(self.lengths), self.capacity
            for layer in range(self.num_layers):
                new_k[layer][:used, :, :old_cap] = self.keys[layer][:used]
                new_v[layer][:used, :, :old_cap] = self.values[layer][:used]
        self.keys, self.values = new_k, new_v
        self.rows, self.capacity = rows, capacity

    def _ensure(self, rows: int, tokens: int) -> None:
        if tokens > self.max_len:
            raise ValueError(f"{tokens} tokens exceed the context of {self.max_len}")
        if rows <= self.rows and tokens <= self.capacity:
            return
        new_rows, new_cap = self.rows, self.capacity
        while new_rows < rows:
            new_rows = min(new_rows * 2, max(self.max_rows, rows))
        while new_cap < tokens:
            new_cap = min(new_cap * 2, self.max_len)
        self._alloc(new_rows, new_cap)

    @property
    def num_rows(self) -> int:
        return len(self.lengths)

    def add(self, prefill: DynamicCache, length: int) -> int:
        """Copies a sequence's prefill cache (batch 1) into a new row; returns the row."""
        row = self.num_rows
        self._ensure(row + 1, length + 1)
        for layer in range(self.num_layers):
            self.keys[layer][row, :, :length] = prefill.layers[layer].keys[0, :, :length]
            self.values[layer][row, :, :length] = prefill.layers[layer].values[0, :, :length]
        self.lengths.append(length)
        return row

    def remove(self, row: int) -> int | None:
        """Frees a row; the last row moves into it. Returns the row that moved (now at ``row``), if any."""
        last = self.num_rows - 1
        moved = None
        if row != last:
            n = self.lengths[last]
            for layer in range(self.num_layers):
                self.keys[layer][row, :, :n] = self.keys[layer][last, :, :n]
                self.values[layer][row, :, :n] = self.values[layer][last, :, :n]
            self.lengths[row] = n
            moved = last
        self.lengths.pop()
        return moved

    # -- one decode step -----------------------------------------------------------------------------
    def begin_step(self) -> torch.Tensor | None:
        """Prepares a decode step (one new token per row, at the row's length); returns the additive attention mask
        ``[B, 1, 1, kv_len]``.

        The mask is ``None`` when every row has the same length (always so for a batch of one): no
        column is padding then, and a lone sequence takes the very attention path of the naive
        scheduler's batch-1 decode, so its logits are bit-identical to it.
        """
        batch = self.num_rows
        self._ensure(batch, max(self.lengths) + 1)
        self.step_kv_len = max(self.lengths) + 1
        positions = torch.tensor(self.lengths, dtype=torch.long, device=self.device)
        self._positions = positions
        if min(self.lengths) == max(self.lengths):
            return None
        columns = torch.arange(self.step_kv_len, device=self.device)
        visible = columns[None, :] <= positions[:, None]  # row i sees its own tokens and the new one
        mask = torch.zeros((batch, 1, 1, self.step_kv_len), dtype=self.dtype, device=self.device)
        mask.masked_fill_(~visible[:, None, None, :], torch.finfo(self.dtype).min)
        return mask

    def write_step(self, layer: int, key_states: torch.Tensor,
                   value_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._positions is not None
        batch = key_states.shape[0]
        rows = torch.arange(batch, device=self.device)
        self.keys[layer][rows, :, self._positions] = key_states[:, :, 0]
        self.values[layer][rows, :, self._positions] = value_states[:, :, 0]
        return self.keys[layer][:batch, :, : self.step_kv_len], self.values[layer][:batch, :, : self.step_kv_len]

    def end_step(self) -> None:
        self.lengths = [n + 1 for n in self.lengths]
        self._positions = None
