"""The report's charts (``loadgen.render.svg``) and the bounded data behind them: CDFs through exact order
statistics, the in-flight count's peaks, nice ticks, and labels placed where they collide with nothing."""

from __future__ import annotations

import math
import random
import re

import pytest

from loadgen.render.engine_side import MAX_POINTS, in_flight_steps
from loadgen.render.html import CDF_POINTS, cdf_points
from loadgen.render.svg import FONT, Axis, BarChart, Series, XYChart, overlaps, text_width
from tests.unit.records import record


def test_a_cdf_of_few_samples_keeps_every_one() -> None:
    xs, ys = cdf_points([3.0, 1.0, 2.0])
    assert xs == [1.0, 2.0, 3.0] and ys == [1 / 3, 2 / 3, 1.0]


def test_a_cdf_of_many_samples_is_bounded_and_made_of_exact_order_statistics() -> None:
    rng = random.Random(1)
    data = [rng.lognormvariate(3, 1) for _ in range(150_000)]
    xs, ys = cdf_points(data)
    ordered = sorted(data)
    n = len(data)
    assert len(xs) <= CDF_POINTS + 1 + 10 * math.log10(n) + 1
    assert xs[0] == ordered[0] and xs[-1] == ordered[-1] and ys[-1] == 1.0
    assert all(ordered[round(y * n) - 1] == x for x, y in zip(xs, ys, strict=True))  # each point is a sample
    assert ordered[math.ceil(0.99 * n) - 1] in xs and ordered[math.ceil(0.999 * n) - 1] in xs  # the tail is drawn
    assert xs == sorted(xs) and ys == sorted(ys)


def test_the_in_flight_count_is_bounded_and_keeps_its_peak() -> None:
    records = [record(sent_ns=i * 1_000_000, end_ns=i * 1_000_000 + (50_000_000 if i % 97 else 400_000_000))
               for i in range(5_000)]
    xs, ys = in_flight_steps(records, 0)
    exact = in_flight_steps(records[:200], 0)  # few enough to be drawn step by step
    assert len(exact[0]) == 400 and len(xs) <= MAX_POINTS
    level, peak = 0, 0
    for _, step in sorted([(r.sent_ns, 1) for r in records] + [(r.end_ns, -1) for r in records]):
        level += step
        peak = max(peak, level)
    assert max(ys) == peak


def test_ticks_are_nice_and_a_narrow_log_axis_still_gets_three() -> None:
    assert Axis("", zero=True).span([3.0, 97.0]) == (0.0, 100.0)
    assert Axis("").ticks(0.0, 100.0) == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert Axis("", log=True).ticks(1.0, 1000.0) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    narrow = Axis("", log=True).ticks(45.0, 62.0)
    assert len(narrow) >= 3 and all(45 <= t <= 62 for t in narrow)


def _boxes(svg: str, cls: str) -> list[tuple[float, float, float, float]]:
    out = []
    for m in re.finditer(rf'class="rig-text {cls}" x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)"[^>]*>([^<]*)<', svg):
        x, y, anchor, text = float(m[1]), float(m[2]), m[3], m[4]
        w = text_width(text)
        x0 = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        out.append((x0, y - FONT, x0 + w, y))
    return out


def test_point_labels_never_collide_and_stay_in_the_plot() -> None:
    xs = [float(i) for i in range(40)]
    chart = XYChart("Crowded", Axis("x"), Axis("y"), [
        Series("a", xs, [1.0 + 0.01 * i for i in range(40)], markers=True, labels=[f"stage{i}" for i in range(40)]),
        Series("b", xs, [1.02 + 0.01 * i for i in range(40)], markers=True, labels=[f"c{i}" for i in range(40)])])
    svg = chart.svg("crowded")
    labels = _boxes(svg, "rig-point-label")
    assert 3 < len(labels) < 80  # some placed, the rest left out
    assert not any(overlaps(a, b) for i, a in enumerate(labels) for b in labels[i + 1:])
    assert svg.count("<title>") >= 81  # every marker keeps its tooltip, labelled or not (plus the chart's own)


def test_title_axes_and_legend_have_their_own_rows() -> None:
    title = "A very long title that cannot fit on one line of a chart six hundred and forty pixels wide, so it wraps"
    chart = XYChart(title, Axis("seconds"), Axis("ms"), [Series(f"series {i}", [1, 2], [1, 2]) for i in range(12)])
    svg = chart.svg("t")
    titles = [float(y) for y in re.findall(r'rig-title" x="[\d.]+" y="([\d.]+)"', svg)]
    area = re.search(r'class="rig-area" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg)
    x_title = float(re.findall(r'rig-axis-title" x="[\d.]+" y="([\d.]+)"', svg)[-1])
    legend = [float(y) for y in re.findall(r'rig-legend" x="[\d.]+" y="([\d.]+)"', svg)]
    assert area is not None and len(titles) >= 2 and max(titles) < float(area[1])
    assert float(area[1]) + float(area[2]) < x_title < min(legend) and len(set(legend)) >= 2  # legend in rows


def test_stacked_bars_stack_up_and_down_from_zero() -> None:
    chart = BarChart("b", "x", Axis("ms", zero=True), ["one"], [("up", [3.0]), ("more", [2.0]), ("down", [-1.0])],
                     stacked=True)
    bar = r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="#\w+" fill-opacity="0.8"'
    rects = [(float(m[1]), float(m[2])) for m in re.finditer(bar, chart.svg("b"))]
    (y_up, h_up), (y_more, h_more), (y_down, h_down) = rects
    assert y_more + h_more == pytest.approx(y_up, abs=0.11) and h_up / h_more == pytest.approx(1.5, abs=0.01)
    assert y_down == pytest.approx(y_up + h_up, abs=0.11) and h_down / h_more == pytest.approx(0.5, abs=0.01)
