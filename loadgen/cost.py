"""What a token costs: the ``cost`` block of each target and stage, from a price per hour and the measured rates.

Why measured, and why per hour: an engine's price is what its machine costs per hour (a GPU's on-demand rate, a
reserved instance amortised); what the rig measures is how many tokens that hour turns out. The cost of a
million tokens is then the hour's price over the tokens per hour, at the throughput measured in that window, so
an engine that is slower but on a cheaper card, or faster at the same SLO, is compared in one number. Nothing is
assumed: without a ``price_per_hour`` (a target's, or ``--price-per-hour NAME=USD``) there is no ``cost`` block,
and every block says the price it used. Energy, where it was measured (``resources.energy_j``, GPU runs), is
priced separately with ``usd_per_kwh``.

Formulas (docs/metrics.md, "Cost"), with P the price per hour in USD and rates per second of the block's window:

- ``usd_per_mtok_output``      = P / 3600 / output_tokens_per_s × 10⁶
- ``usd_per_mtok_total``       = P / 3600 / (input_tokens_per_s + output_tokens_per_s) × 10⁶
- ``usd_per_m_goodput_tokens`` = P / 3600 / goodput_output_tokens_per_s × 10⁶, where goodput output tokens are
  the output tokens of the successful requests that met every SLO limit (only with an SLO)
- ``energy_usd_per_mtok_output`` = energy_j / 3.6·10⁶ × usd_per_kwh / output tokens × 10⁶ (only where energy
  was measured and ``usd_per_kwh`` given)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

SECONDS_PER_HOUR = 3600.0
J_PER_KWH = 3.6e6
MILLION = 1e6


class Cost(BaseModel):
    """``cost`` of a target or stage: the prices it assumed and what a million tokens cost at its rates."""

    model_config = ConfigDict(extra="forbid")
    price_per_hour: float
    usd_per_mtok_output: float | None = None
    usd_per_mtok_total: float | None = None
    usd_per_m_goodput_tokens: float | None = None
    usd_per_kwh: float | None = None
    energy_usd_per_mtok_output: float | None = None


def per_million(price_per_hour: float, tokens_per_s: float | None) -> float | None:
    """USD per million tokens at ``tokens_per_s``; None when nothing was produced."""
    if not tokens_per_s or tokens_per_s <= 0:
        return None
    return round(price_per_hour / SECONDS_PER_HOUR / tokens_per_s * MILLION, 6)


def cost_block(price_per_hour: float, output_tokens_per_s: float | None, input_tokens_per_s: float | None,
               goodput_output_tokens_per_s: float | None, *, usd_per_kwh: float | None = None,
               energy_j: float | None = None, output_tokens: int | None = None) -> Cost:
    """The block from one window's rates (module docstring)."""
    total = (output_tokens_per_s or 0.0) + (input_tokens_per_s or 0.0)
    energy = None
    if usd_per_kwh is not None and energy_j is not None and output_tokens:
        energy = round(energy_j / J_PER_KWH * usd_per_kwh / output_tokens * MILLION, 6)
    return Cost(price_per_hour=price_per_hour, usd_per_mtok_output=per_million(price_per_hour, output_tokens_per_s),
                usd_per_mtok_total=per_million(price_per_hour, total),
                usd_per_m_goodput_tokens=per_million(price_per_hour, goodput_output_tokens_per_s),
                usd_per_kwh=usd_per_kwh, energy_usd_per_mtok_output=energy)
