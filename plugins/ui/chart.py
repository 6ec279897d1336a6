"""Lay out the metric-vs-step chart: pixel coordinates and tick labels for the SVG the page renders.

The page draws inline SVG from this plot, server-side, so it needs no script, no library and no
network (the machines that run Airflow here have no internet).
"""

from __future__ import annotations

import dataclasses
import math

from plugins.ui.history import Chart, ChartPoint

WIDTH, HEIGHT = 960, 270
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 18, 44  # margins around the plotting area, in pixels


@dataclasses.dataclass(frozen=True)
class Tick:
    position: float  # pixels along its axis
    label: str


@dataclasses.dataclass(frozen=True)
class PlacedPoint:
    x: float
    y: float
    point: ChartPoint


@dataclasses.dataclass(frozen=True)
class PlacedBound:
    y: float
    kind: str
    label: str


@dataclasses.dataclass(frozen=True)
class Plot:
    width: int
    height: int
    left: int
    right: float  # x of the plotting area's right edge
    top: int
    bottom: float  # y of the plotting area's bottom edge
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    line: str  # SVG polyline points through every point, by step
    points: tuple[PlacedPoint, ...]
    bounds: tuple[PlacedBound, ...]


def plot(chart: Chart, width: int = WIDTH, height: int = HEIGHT) -> Plot:
    """Scale the chart's points (and threshold bounds) into a ``width`` × ``height`` SVG."""
    right, bottom = width - RIGHT, height - BOTTOM
    steps = [p.step for p in chart.points] or [0]
    values = [p.value for p in chart.points] + [b.value for b in chart.bounds]
    x_lo, x_hi, x_ticks = _axis(min(steps), max(steps), 8)
    y_lo, y_hi, y_ticks = _axis(min(values, default=0.0), max(values, default=1.0), 5)

    def x_of(step: float) -> float:
        return round(LEFT + (step - x_lo) / (x_hi - x_lo) * (right - LEFT), 2)

    def y_of(value: float) -> float:
        return round(bottom - (value - y_lo) / (y_hi - y_lo) * (bottom - TOP), 2)

    placed = tuple(PlacedPoint(x_of(p.step), y_of(p.value), p) for p in chart.points)
    return Plot(
        width=width,
        height=height,
        left=LEFT,
        right=right,
        top=TOP,
        bottom=bottom,
        x_ticks=tuple(Tick(x_of(t), _label(t)) for t in x_ticks),
        y_ticks=tuple(Tick(y_of(t), _label(t)) for t in y_ticks),
        line=" ".join(f"{p.x},{p.y}" for p in placed),
        points=placed,
        bounds=tuple(PlacedBound(y_of(b.value), b.kind, f"{b.kind} bound {b.value:g}") for b in chart.bounds),
    )


def _axis(lo: float, hi: float, count: int) -> tuple[float, float, list[float]]:
    """A range that starts and ends on "nice" numbers (1, 2 or 5 × 10ⁿ) and its ticks."""
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice((hi - lo) / max(count - 1, 1))
    start, end = math.floor(lo / step) * step, math.ceil(hi / step) * step
    ticks, n = [], 0
    while start + n * step <= end + step * 1e-9:
        ticks.append(round(start + n * step, 12))
        n += 1
    return start, end, ticks


def _nice(raw: float) -> float:
    exponent = math.floor(math.log10(raw))
    fraction = raw / 10**exponent
    nice = 1 if fraction <= 1 else 2 if fraction <= 2 else 5 if fraction <= 5 else 10
    return nice * 10**exponent


def _label(value: float) -> str:
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.4g}"
