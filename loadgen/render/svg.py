"""Charts drawn as inline SVG by the rig itself: lines and steps, markers with labels, bars, boxes, heat grids.

Why not a plotting library: a report must open offline from one file, and Plotly's JavaScript alone is 4.8 MB
(1.5 MB gzipped), more than a whole report of a 150,000-event run may weigh (issue 27: < 2 MB), and building a
figure through Plotly's Python validators cost three quarters of a report's CPU. An SVG drawn from a bounded
number of points costs milliseconds, weighs kilobytes, needs no package and no script, and scales to its cell
(``viewBox``, width 100%). Hover: every marker, and every point of a series of at most ``HOVER_POINTS`` points,
carries a ``<title>`` the browser shows as a tooltip.

Layout by construction: the title sits above the plot area (wrapped when long), tick labels and axis titles
beside it, the legend in rows below the x-axis title, point and rule labels inside the plot area only where they
collide with nothing placed before (else left out; the marker's tooltip still says it). Text widths are
estimated here (``text_width``); the report checks the real ones in the browser (``html.CHECKS``):
every element of class ``rig-text`` is a candidate, and a title, legend or axis title overlapping any other is an
error.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from loadgen.metrics import percentile

WIDTH = 640.0
PLOT_HEIGHT = 250.0
FONT = 11.0
TITLE_FONT = 14.0
HOVER_POINTS = 300
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b", "#bcbd22",
          "#7f7f7f")
DASHES = {"solid": "", "dash": "6 4", "dot": "2 3"}

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def text_width(text: str, size: float = FONT) -> float:
    """An estimate of a sans-serif string's width in px (0.6 em per character: errs wide for most fonts)."""
    return 0.6 * size * len(text)


def number(v: float) -> str:
    """A tick or tooltip number: 3 significant digits below 1,000, whole numbers to 9,999, then k and M."""
    if v != 0 and abs(v) >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v != 0 and abs(v) >= 1e4:
        return f"{v / 1e3:.3g}k"
    if abs(v) >= 1e3:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _text(x: float, y: float, text: str, cls: str, anchor: str = "middle", size: float = FONT,
          rotate: float = 0.0, weight: str = "normal", fill: str = "#222") -> str:
    turn = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text class="rig-text {cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size:g}" '
            f'font-weight="{weight}" fill="{fill}"{turn}>{_esc(text)}</text>')


def wrap(text: str, width: float, size: float) -> list[str]:
    """Words into lines no wider than ``width`` (estimated)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# -- axes ----------------------------------------------------------------------------------------------------

@dataclass
class Axis:
    """A numeric axis: its title, log or linear, zero included or not, a fixed range if given."""

    label: str
    log: bool = False
    zero: bool = False
    fixed: tuple[float, float] | None = None

    def span(self, values: Sequence[float]) -> tuple[float, float]:
        """The drawn range: the data's (positive values only on a log axis), padded and rounded to ticks."""
        if self.fixed is not None:
            return self.fixed
        data = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not self.log)]
        if not data:
            return (1.0, 10.0) if self.log else (0.0, 1.0)
        lo, hi = min(data), max(data)
        if self.log:
            return lo / 1.2, hi * 1.2
        lo = min(lo, 0.0) if self.zero else lo
        hi = max(hi, 0.0) if self.zero else hi
        if hi == lo:
            lo, hi = (lo - 1, hi + 1) if lo == 0 else (lo - abs(lo) * 0.1, hi + abs(hi) * 0.1)
        step = _nice_step((hi - lo) / 5)
        return math.floor(lo / step) * step, math.ceil(hi / step) * step

    def ticks(self, lo: float, hi: float) -> list[float]:
        if self.log:
            return _log_ticks(lo, hi)
        step = _nice_step((hi - lo) / 5)
        first = math.ceil(lo / step - 1e-9)
        return [round((first + k) * step, 12) for k in range(int((hi - lo) / step + 1e-9) + 1)
                if (first + k) * step <= hi + step * 1e-9]

    def scale(self, lo: float, hi: float, p0: float, p1: float) -> Scale:
        return Scale(lo, hi, p0, p1, self.log)


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * 0.999)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten (with 2 and 5 between them over at most three decades); within less than a decade, where
    that gives fewer than three, evenly stepped nice values instead (placed on the log scale all the same)."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    steps = (1, 2, 5) if len(decades) <= 4 else (1,)
    ticks = [m * 10.0 ** d for d in decades for m in steps if lo <= m * 10.0 ** d <= hi]
    if len(ticks) >= 3:
        return ticks
    step = _nice_step((hi - lo) / 4)
    return [round(k * step, 12) for k in range(math.ceil(lo / step), math.floor(hi / step) + 1) if k > 0]


@dataclass(frozen=True)
class Scale:
    lo: float
    hi: float
    p0: float
    p1: float
    log: bool

    def __call__(self, v: float) -> float:
        if self.log:
            a, b, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, self.lo * 1e-3))
        else:
            a, b = self.lo, self.hi
        return self.p0 + (v - a) / (b - a) * (self.p1 - self.p0) if b != a else (self.p0 + self.p1) / 2

    def inside(self, v: float | None) -> bool:
        return v is not None and math.isfinite(v) and (v > 0 or not self.log)


# -- the frame every chart shares -------------------------------------------------------------------------------

@dataclass
class Frame:
    """Title, plot area, axis titles and legend rows: the geometry computed before anything is drawn."""

    title: str
    x_label: str
    y_label: str
    legend: list[tuple[str, str, str]]  # (name, colour, dash or "box")
    y2_label: str | None = None
    left: float = 64.0
    bottom_labels: float = 18.0  # room for the x tick labels (more when they are turned)
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.title_lines = wrap(self.title, WIDTH - 24, TITLE_FONT)
        self.top = 14 + 18 * len(self.title_lines) + 6
        self.right = WIDTH - (64.0 if self.y2_label else 20.0)
        self.plot_bottom = self.top + PLOT_HEIGHT
        self.rows = self._legend_rows()
        self.height = self.plot_bottom + self.bottom_labels + (20 if self.x_label else 4) + 16 * len(self.rows) + 8

    def _legend_rows(self) -> list[list[tuple[float, tuple[str, str, str]]]]:
        rows: list[list[tuple[float, tuple[str, str, str]]]] = []
        x = WIDTH
        for item in self.legend:
            w = 24 + text_width(item[0]) + 14
            if not rows or x + w > WIDTH - 12:
                rows.append([])
                x = 12.0
            rows[-1].append((x, item))
            x += w
        return rows

    def draw_chrome(self) -> None:
        """Title, axis titles and legend (the plot area's content is added by the chart)."""
        for i, line in enumerate(self.title_lines):
            self.parts.append(_text(WIDTH / 2, 20 + 18 * i, line, "rig-title", size=TITLE_FONT, weight="bold"))
        mid_y = (self.top + self.plot_bottom) / 2
        if self.y_label:
            self.parts.append(_text(14, mid_y, self.y_label, "rig-axis-title", rotate=-90))
        if self.y2_label:
            self.parts.append(_text(WIDTH - 10, mid_y, self.y2_label, "rig-axis-title", rotate=90))
        label_y = self.plot_bottom + self.bottom_labels + 14
        if self.x_label:
            self.parts.append(_text((self.left + self.right) / 2, label_y, self.x_label, "rig-axis-title"))
        y = label_y + (6 if self.x_label else -10) + 14
        for row in self.rows:
            for x, (name, colour, dash) in row:
                self.parts.append(_swatch(x, y - 4, colour, dash))
                self.parts.append(_text(x + 24, y, name, "rig-legend", anchor="start"))
            y += 16

    def svg(self, name: str) -> str:
        body = "".join(self.parts)
        return (f'<svg class="rig-chart" data-chart="{_esc(name)}" viewBox="0 0 {WIDTH:g} {self.height:.0f}" '
                f'width="100%" preserveAspectRatio="xMidYMin meet" xmlns="http://www.w3.org/2000/svg" '
                f'font-family="system-ui, sans-serif" role="img"><title>{_esc(self.title)}</title>'
                f'<rect x="0" y="0" width="{WIDTH:g}" height="{self.height:.0f}" fill="#fff"/>{body}</svg>')


def _swatch(x: float, y: float, colour: str, dash: str) -> str:
    if dash == "box":
        return f'<rect x="{x:.1f}" y="{y - 5:.1f}" width="18" height="10" fill="{colour}" fill-opacity="0.7"/>'
    pattern = f' stroke-dasharray="{DASHES.get(dash, "")}"' if DASHES.get(dash) else ""
    return (f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 18:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-width="2"{pattern}/>')


def _y_grid(frame: Frame, ys: Scale, y_axis: Axis) -> None:
    """The plot area's border, and the y axis's grid lines and tick labels."""
    p = frame.parts
    p.append(f'<rect class="rig-area" x="{frame.left:.1f}" y="{frame.top:.1f}" '
             f'width="{frame.right - frame.left:.1f}" height="{PLOT_HEIGHT:g}" fill="none" stroke="#ccc"/>')
    for t in y_axis.ticks(ys.lo, ys.hi):
        y = ys(t)
        p.append(f'<line x1="{frame.left:.1f}" y1="{y:.1f}" x2="{frame.right:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        p.append(_text(frame.left - 5, y + 4, number(t), "rig-tick", anchor="end"))


def _x_grid(frame: Frame, xs: Scale, x_axis: Axis) -> None:
    for t in x_axis.ticks(xs.lo, xs.hi):
        x = xs(t)
        frame.parts.append(f'<line x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" y2="{frame.plot_bottom:.1f}" '
                           f'stroke="#eee"/>')
        frame.parts.append(_text(x, frame.plot_bottom + 14, number(t), "rig-tick"))


# -- x-y charts ------------------------------------------------------------------------------------------------

@dataclass
class Series:
    """One line (or set of markers) of an ``XYChart``."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    step: bool = False  # horizontal then vertical, as a CDF or a count over time
    dash: str = "solid"
    markers: bool = False
    line: bool = True
    labels: Sequence[str] | None = None  # text beside each point (left out where it would collide)
    failed: Sequence[bool] | None = None  # drawn as an × instead of a dot
    low: Sequence[float | None] | None = None  # error bars
    high: Sequence[float | None] | None = None
    best: int | None = None  # a star on this point
    right_axis: bool = False


@dataclass
class Rule:
    """A reference line across the plot: vertical at ``x`` or horizontal at ``y``, with a label."""

    label: str
    x: float | None = None
    y: float | None = None
    colour: str = "#888"


@dataclass
class XYChart:
    title: str
    x: Axis
    y: Axis
    series: list[Series] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    y2: Axis | None = None

    def svg(self, name: str) -> str:
        legend = [(s.name, COLORS[i % len(COLORS)], s.dash) for i, s in enumerate(self.series) if s.name]
        frame = Frame(self.title, self.x.label, self.y.label, legend, self.y2.label if self.y2 else None)
        frame.left = _left_margin(self.y, self._y_scale(self.y, False, frame))
        xs = self.x.scale(*self.x.span([v for s in self.series for v in s.xs] + [r.x for r in self.rules
                                                                                  if r.x is not None]),
                          frame.left, frame.right)
        scales = {False: self._y_scale(self.y, False, frame), True: self._y_scale(self.y2, True, frame)}
        frame.draw_chrome()
        _y_grid(frame, scales[False], self.y)
        _x_grid(frame, xs, self.x)
        if self.y2 is not None:
            for t in self.y2.ticks(scales[True].lo, scales[True].hi):
                frame.parts.append(_text(frame.right + 5, scales[True](t) + 4, number(t), "rig-tick", anchor="start"))
        placed: list[Box] = []
        for rule in self.rules:
            frame.parts.append(_rule(rule, xs, scales[False], frame, placed))
        for i, s in enumerate(self.series):
            frame.parts.append(_series(s, COLORS[i % len(COLORS)], xs, scales[s.right_axis], placed, frame))
        return frame.svg(name)

    def _y_scale(self, axis: Axis | None, right: bool, frame: Frame) -> Scale:
        axis = axis or self.y
        values = [v for s in self.series if s.right_axis == right for v in (*s.ys, *(s.low or ()), *(s.high or ()))
                  if v is not None]
        values += [r.y for r in self.rules if r.y is not None and not right]
        return axis.scale(*axis.span(values), frame.plot_bottom, frame.top)


def _left_margin(axis: Axis, ys: Scale) -> float:
    """Room for the y axis's title and its widest tick label."""
    return max(64.0, 24 + max((text_width(number(t)) for t in axis.ticks(ys.lo, ys.hi)), default=0.0) + 8)


def _rule(rule: Rule, xs: Scale, ys: Scale, frame: Frame, placed: list[Box]) -> str:
    """The rule's line, and its label inside the plot area beside the line (right of a vertical one, left when
    there is no room; above a horizontal one, below at the top edge), unless that collides with a label placed
    before."""
    w = text_width(rule.label)
    if rule.x is not None and xs.inside(rule.x):
        x = xs(rule.x)
        line = f'<line x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" y2="{frame.plot_bottom:.1f}"'
        side = 2.0 if x + 4 + FONT <= frame.right else -(FONT + 4)
        box = (x + side, frame.top + 2, x + side + FONT + 2, frame.top + 4 + w)
        label = _text(box[0] + 1 + FONT * 0.8, frame.top + 4, rule.label, "rig-rule-label", anchor="end", rotate=-90)
    elif rule.y is not None and ys.inside(rule.y):
        y = ys(rule.y)
        line = f'<line x1="{frame.left:.1f}" y1="{y:.1f}" x2="{frame.right:.1f}" y2="{y:.1f}"'
        base = y - 3 if y - FONT - 3 >= frame.top else y + FONT + 2
        box = (frame.right - w - 4, base - FONT, frame.right - 2, base + 2)
        label = _text(frame.right - 3, base, rule.label, "rig-rule-label", anchor="end")
    else:
        return ""
    fits = box[0] >= frame.left and box[3] <= frame.plot_bottom and not any(overlaps(box, b) for b in placed)
    if fits:
        placed.append(box)
    return (f'<g class="rig-rule">{line} stroke="{rule.colour}" stroke-dasharray="2 3" stroke-width="1">'
            f'<title>{_esc(rule.label)}</title></line>{label if fits else ""}</g>')


def _path(s: Series, xs: Scale, ys: Scale) -> str:
    """The series' line as one path (a gap wherever y is missing or off a log axis)."""
    out: list[str] = []
    pen_up = True
    for x, y in zip(s.xs, s.ys, strict=False):
        if not (xs.inside(x) and ys.inside(y)):
            pen_up = True
            continue
        px, py = xs(x), ys(y)  # type: ignore[arg-type]
        if pen_up:
            out.append(f"M{px:.1f} {py:.1f}")
        elif s.step:
            out.append(f"H{px:.1f}V{py:.1f}")
        else:
            out.append(f"L{px:.1f} {py:.1f}")
        pen_up = False
    return "".join(out)


def _series(s: Series, colour: str, xs: Scale, ys: Scale, placed: list[Box], frame: Frame) -> str:
    parts = [f'<g class="rig-series" data-series="{_esc(s.name)}">']
    if s.line and (d := _path(s, xs, ys)):
        dash = f' stroke-dasharray="{DASHES[s.dash]}"' if DASHES.get(s.dash) else ""
        parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"{dash}/>')
    hover = s.markers or len(s.xs) <= HOVER_POINTS
    for i, (x, y) in enumerate(zip(s.xs, s.ys, strict=False)):
        if not (xs.inside(x) and ys.inside(y)):
            continue
        px, py = xs(x), ys(y)  # type: ignore[arg-type]
        label = s.labels[i] if s.labels else ""
        if s.low is not None and s.high is not None:
            parts.append(_error_bar(s.low[i], s.high[i], px, ys, colour))
        if hover:
            tip = _esc(f"{s.name}{' ' + label if label else ''}: x {number(x)}, y {number(y)}")  # type: ignore[arg-type]
            parts.append(_marker(px, py, colour, s, i, tip))
        if label and s.markers:
            parts.append(_point_label(px, py, label, placed, frame))
    parts.append("</g>")
    return "".join(parts)


def _marker(px: float, py: float, colour: str, s: Series, i: int, tip: str) -> str:
    if s.best == i:
        pts = " ".join(f"{px + r * math.sin(a):.1f},{py - r * math.cos(a):.1f}"
                       for k in range(10) for a, r in [(k * math.pi / 5, 8 if k % 2 == 0 else 3.5)])
        return f'<polygon points="{pts}" fill="{colour}"><title>{tip} (optimum)</title></polygon>'
    if not s.markers:
        return (f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}" fill-opacity="0">'
                f'<title>{tip}</title></circle>')
    if s.failed is not None and s.failed[i]:
        return (f'<path d="M{px - 4:.1f} {py - 4:.1f}L{px + 4:.1f} {py + 4:.1f}M{px - 4:.1f} {py + 4:.1f}'
                f'L{px + 4:.1f} {py - 4:.1f}" stroke="{colour}" stroke-width="2"><title>{tip} (failed)</title></path>')
    return f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"><title>{tip}</title></circle>'


def _error_bar(low: float | None, high: float | None, px: float, ys: Scale, colour: str) -> str:
    if not (ys.inside(low) and ys.inside(high)):
        return ""
    y0, y1 = ys(low), ys(high)  # type: ignore[arg-type]
    return (f'<path d="M{px:.1f} {y0:.1f}V{y1:.1f}M{px - 3:.1f} {y0:.1f}H{px + 3:.1f}M{px - 3:.1f} {y1:.1f}'
            f'H{px + 3:.1f}" stroke="{colour}" stroke-width="1"/>')


def _point_label(px: float, py: float, label: str, placed: list[Box], frame: Frame) -> str:
    """The label above, below, right or left of its point: the first place that collides with nothing placed
    and stays inside the plot area; none when there is no such place."""
    w, h = text_width(label), FONT + 2
    for dx, dy, anchor in ((0, -8, "middle"), (0, 8 + h, "middle"), (8 + w / 2, 4, "start"), (-8 - w / 2, 4, "end")):
        cx, base = px + dx, py + dy
        box = (cx - w / 2, base - h + 2, cx + w / 2, base + 2)
        if box[0] >= frame.left and box[2] <= frame.right and box[1] >= frame.top and box[3] <= frame.plot_bottom \
                and not any(overlaps(box, b) for b in placed):
            placed.append(box)
            x = {"middle": cx, "start": cx - w / 2, "end": cx + w / 2}[anchor]
            return _text(x, base, label, "rig-point-label", anchor=anchor)
    return ""


# -- bars, boxes, heat grids ---------------------------------------------------------------------------------------

def _category_frame(title: str, x_label: str, y_label: str, categories: Sequence[str],
                    legend: list[tuple[str, str, str]]) -> tuple[Frame, float]:
    """A frame whose x tick labels (categories) fit their slots, turned 35° when they do not; and the slot width."""
    probe = Frame(title, x_label, y_label, legend)
    slot = (probe.right - probe.left) / max(len(categories), 1)
    longest = max((text_width(c) for c in categories), default=0.0)
    turned = longest > slot - 4
    frame = Frame(title, x_label, y_label, legend, bottom_labels=longest * 0.6 + 18 if turned else 18.0)
    return frame, slot


def _category_labels(frame: Frame, categories: Sequence[str], slot: float) -> None:
    turned = frame.bottom_labels > 18
    for i, c in enumerate(categories):
        x = frame.left + slot * (i + 0.5)
        if turned:
            frame.parts.append(_text(x + 3, frame.plot_bottom + 12, c, "rig-tick", anchor="end", rotate=-35))
        else:
            frame.parts.append(_text(x, frame.plot_bottom + 14, c, "rig-tick"))


@dataclass
class BarChart:
    """Bars per category, one colour per series: side by side, or stacked (negatives below zero)."""

    title: str
    x_label: str
    y: Axis
    categories: list[str]
    series: list[tuple[str, list[float | None]]]
    stacked: bool = False

    def svg(self, name: str) -> str:
        legend = [(n, COLORS[i % len(COLORS)], "box") for i, (n, _) in enumerate(self.series)]
        frame, slot = _category_frame(self.title, self.x_label, self.y.label, self.categories, legend)
        ys = self.y.scale(*self.y.span(self._extent()), frame.plot_bottom, frame.top)
        frame.draw_chrome()
        _y_grid(frame, ys, self.y)
        _category_labels(frame, self.categories, slot)
        width = slot * 0.8 / (1 if self.stacked else max(len(self.series), 1))
        up = [0.0] * len(self.categories)
        down = [0.0] * len(self.categories)
        for k, (series, values) in enumerate(self.series):
            frame.parts.append(f'<g class="rig-series rig-bars" data-series="{_esc(series)}">')
            for i, v in enumerate(values):
                if v is None:
                    continue
                base = (up if v >= 0 else down)[i] if self.stacked else 0.0
                x = frame.left + slot * (i + 0.1) + (0 if self.stacked else k * width)
                y0, y1 = ys(base), ys(base + v)
                if self.stacked:
                    (up if v >= 0 else down)[i] = base + v
                frame.parts.append(f'<rect x="{x:.1f}" y="{min(y0, y1):.1f}" width="{width:.1f}" '
                                   f'height="{abs(y1 - y0):.1f}" fill="{COLORS[k % len(COLORS)]}" fill-opacity="0.8">'
                                   f'<title>{_esc(f"{self.categories[i]}, {series}: {number(v)}")}</title></rect>')
            frame.parts.append("</g>")
        return frame.svg(name)

    def _extent(self) -> list[float]:
        if not self.stacked:
            return [v for _, values in self.series for v in values if v is not None] + [0.0]
        columns = [[v for _, vs in self.series if (v := vs[i]) is not None] for i in range(len(self.categories))]
        return [sum(v for v in c if v > 0) for c in columns] + [sum(v for v in c if v < 0) for c in columns] + [0.0]


@dataclass
class BoxChart:
    """One box per group: p25–p75, the median, whiskers at p1 and p99 (said in the tooltip)."""

    title: str
    y: Axis
    groups: list[tuple[str, list[float]]]

    def svg(self, name: str) -> str:
        stats = [(n, [percentile(d, q) for q in (1, 25, 50, 75, 99)]) for n, v in self.groups
                 if (d := sorted(v))]
        names = [n for n, _ in stats]
        frame, slot = _category_frame(self.title, "", self.y.label, names, [])
        ys = self.y.scale(*self.y.span([v for _, q in stats for v in q] + [0.0]), frame.plot_bottom, frame.top)
        frame.draw_chrome()
        _y_grid(frame, ys, self.y)
        _category_labels(frame, names, slot)
        for i, (group, (p1, p25, p50, p75, p99)) in enumerate(stats):
            c, x0, w = COLORS[i % len(COLORS)], frame.left + slot * (i + 0.3), slot * 0.4
            tip = _esc(f"{group}: p1 {number(p1)}, p25 {number(p25)}, median {number(p50)}, p75 {number(p75)}, "
                       f"p99 {number(p99)}")
            frame.parts.append(
                f'<g class="rig-series rig-box" data-series="{_esc(group)}"><title>{tip}</title>'
                f'<path d="M{x0 + w / 2:.1f} {ys(p1):.1f}V{ys(p25):.1f}M{x0 + w / 2:.1f} {ys(p75):.1f}V{ys(p99):.1f}'
                f'" stroke="{c}"/><rect x="{x0:.1f}" y="{ys(p75):.1f}" width="{w:.1f}" '
                f'height="{max(ys(p25) - ys(p75), 1):.1f}" fill="{c}" fill-opacity="0.3" stroke="{c}"/>'
                f'<line x1="{x0:.1f}" y1="{ys(p50):.1f}" x2="{x0 + w:.1f}" y2="{ys(p50):.1f}" stroke="{c}" '
                f'stroke-width="2"/></g>')
        return frame.svg(name)


@dataclass
class HeatChart:
    """A grid of cells coloured by value (blue low → yellow high) with each value written in its cell."""

    title: str
    x_label: str
    y_label: str
    columns: list[str]
    rows: list[str]
    z: list[list[float | None]]
    unit: str = ""

    def svg(self, name: str) -> str:
        frame, slot = _category_frame(self.title, self.x_label, "", self.columns, [])
        left = 30 + max((text_width(r) for r in self.rows), default=0.0) + 8
        frame.left = min(left, WIDTH / 3)
        slot = (frame.right - frame.left) / max(len(self.columns), 1)
        frame.draw_chrome()
        _category_labels(frame, self.columns, slot)
        height = PLOT_HEIGHT / max(len(self.rows), 1)
        values = [v for row in self.z for v in row if v is not None]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        for j, row in enumerate(self.rows):
            y = frame.top + height * j
            frame.parts.append(_text(frame.left - 6, y + height / 2 + 4, row, "rig-tick", anchor="end"))
            for i, v in enumerate(self.z[j]):
                if v is None:
                    continue
                x, t = frame.left + slot * i, (v - lo) / (hi - lo) if hi > lo else 0.5
                label = _text(x + slot / 2, y + height / 2 + 4, f"{v:.2f}{self.unit}", "rig-cell-label",
                              fill="#fff" if t < 0.5 else "#222")
                tip = _esc(f"{row}, {self.columns[i]}: {v:.3g}")
                frame.parts.append(f'<g class="rig-series rig-cell"><rect x="{x:.1f}" y="{y:.1f}" width="{slot:.1f}" '
                                   f'height="{height:.1f}" fill="{_viridis(t)}"><title>{tip}</title></rect>{label}</g>')
        if self.y_label:
            frame.parts.append(_text(14, (frame.top + frame.plot_bottom) / 2, self.y_label, "rig-axis-title",
                                     rotate=-90))
        return frame.svg(name)


def _viridis(t: float) -> str:
    """A colour from dark blue (0) through teal to yellow (1): five stops of the viridis map, linearly mixed."""
    stops = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    k = min(int(t), len(stops) - 2)
    a, b = stops[k], stops[k + 1]
    return "#" + "".join(f"{round(a[c] + (b[c] - a[c]) * (t - k)):02x}" for c in range(3))
