"""Load shapes and arrival processes: mean rates, distributions, ramps, closed loops."""

from __future__ import annotations

import itertools
import random

import pytest
from pydantic import TypeAdapter, ValidationError
from scipy import stats

from loadgen.arrivals.constant import Constant
from loadgen.arrivals.gamma import Gamma
from loadgen.arrivals.poisson import Poisson
from loadgen.config import LoadStage
from loadgen.registry import ARRIVALS, SHAPES
from loadgen.shapes.base import LoadShape
from loadgen.shapes.concurrency import Concurrency
from loadgen.shapes.ramp import Ramp, ramp_time
from loadgen.shapes.rate import Rate
from loadgen.shapes.replay import Replay

STAGE = TypeAdapter(LoadStage)


def shape(**fields) -> LoadShape:
    """A stage as a profile gives it (the discriminated union picks the class by ``type``)."""
    return STAGE.validate_python(fields)


def offsets(n: int, **fields) -> list[float]:
    return list(itertools.islice(shape(requests=n, **fields).arrival_offsets(random.Random(42)), n))


def test_registries_name_every_shape_and_arrival() -> None:
    assert {name: cls for name, cls in SHAPES.items()} == {"concurrency": Concurrency, "rate": Rate, "ramp": Ramp,
                                                           "replay": Replay}
    assert {name: cls for name, cls in ARRIVALS.items()} == {"constant": Constant, "gamma": Gamma, "poisson": Poisson}
    assert type(shape(type="rate", rate=1.0, requests=1)) is Rate


def test_concurrency_is_a_closed_loop() -> None:
    c = shape(type="concurrency", concurrency=16, requests=4)
    assert isinstance(c, Concurrency) and c.closed_loop_width() == 16 and c.label == "c16"
    with pytest.raises(NotImplementedError):
        next(c.arrival_offsets(random.Random(0)))
    r = shape(type="rate", rate=2.5, requests=4)
    assert r.closed_loop_width() is None and r.label == "r2.5"
    assert shape(type="ramp", rate=1, end_rate=3, duration_s=2).label == "ramp1-3"
    assert shape(type="rate", rate=1, requests=1, name="warm").label == "warm"


def test_unknown_arrival_and_incomplete_ramp_are_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown arrival process 'weibull'"):
        shape(type="rate", rate=1.0, requests=1, arrival="weibull")
    with pytest.raises(ValidationError, match="needs `duration_s`"):
        shape(type="ramp", rate=1.0, end_rate=2.0, requests=5)


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


def test_ramp_time_inverts_the_cumulative_rate() -> None:
    # Λ(t) = r0 t + (r1 − r0) t² / (2D): 10 → 30 over 10 s gives Λ(5) = 50 + 25 = 75.
    assert ramp_time(75.0, 10.0, 30.0, 10.0) == pytest.approx(5.0)
    assert ramp_time(20.0, 10.0, 10.0, 10.0) == pytest.approx(2.0)  # a flat ramp is a constant rate
    assert ramp_time(1_000.0, 10.0, 0.0, 10.0) == float("inf")  # a falling rate never gets there


def test_schedule_is_seeded() -> None:
    assert offsets(50, type="rate", rate=10.0) == offsets(50, type="rate", rate=10.0)
