"""Arrival processes: mean rates, distributions, ramps."""

from __future__ import annotations

import itertools
import random

import pytest
from scipy import stats

from loadgen.config import LoadShape
from loadgen.schedule import arrival_offsets


def offsets(n: int, **shape) -> list[float]:
    return list(itertools.islice(arrival_offsets(LoadShape(requests=n, **shape), random.Random(42)), n))


def test_poisson_rate_and_exponential_gaps() -> None:
    times = offsets(5000, type="rate", rate=200.0, arrival="poisson")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) / times[-1] == pytest.approx(200.0, rel=0.05)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 200.0)).pvalue > 0.01


def test_constant_spacing_is_exact() -> None:
    times = offsets(100, type="rate", rate=50.0, arrival="constant")
    assert times[0] == 0.0
    assert all(b - a == pytest.approx(0.02) for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("burstiness", [0.5, 4.0])
def test_gamma_keeps_the_mean_and_sets_the_shape(burstiness: float) -> None:
    times = offsets(5000, type="rate", rate=100.0, arrival="gamma", burstiness=burstiness)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) / times[-1] == pytest.approx(100.0, rel=0.05)
    scale = 1 / (100.0 * burstiness)
    assert stats.kstest(gaps, "gamma", args=(burstiness, 0, scale)).pvalue > 0.01


def test_linear_ramp_counts() -> None:
    # 10 → 30 req/s over 10 s: 200 arrivals expected, 75 of them in the first half.
    times = [t for t in offsets(400, type="ramp", rate=10.0, end_rate=30.0, duration_s=10.0, arrival="constant")
             if t < 10.0]
    assert len(times) == pytest.approx(200, abs=1)
    assert sum(1 for t in times if t < 5.0) == pytest.approx(75, abs=1)


def test_schedule_is_seeded() -> None:
    assert offsets(50, type="rate", rate=10.0) == offsets(50, type="rate", rate=10.0)
