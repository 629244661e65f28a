"""Small SVG charts for the training run's diagnostics, written as text (no plotting library).

The training run logs five small charts to MLflow (ROC, precision-recall, calibration,
confusion matrix and feature importance; residuals and feature importance for regression).
Drawn with matplotlib they cost about 1.1 s of every retrain (0.3 s to import it, 0.1-0.2 s a
figure, all holding the GIL); as SVG text they take milliseconds, stay sharp at any zoom, and
the MLflow UI shows them as it shows a PNG.

* :func:`line_chart`: curves (optionally with markers) in a box with ticks, a legend and dotted
  reference lines.
* :func:`bar_chart`: horizontal bars, one per label, top to bottom in the order given.
* :func:`matrix_chart`: a small matrix of counts, shaded by value, each cell labelled.
* :func:`scatter_chart`: points with a dotted horizontal reference line.

Each returns the document as a string; :func:`write` saves one. Non-finite values are dropped
from curves and points; an empty series draws nothing (the chart still renders).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

#: matplotlib's default colour cycle, so the charts look as they did.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


class _Frame:
    """Pixel geometry of a plotting box and the data ranges mapped onto it."""

    def __init__(self, width: int, height: int, left: int, x_range: tuple[float, float],
                 y_range: tuple[float, float], top: int = 34, right: int = 14, bottom: int = 48):
        self.width, self.height = width, height
        self.x0, self.x1 = left, width - right
        self.y0, self.y1 = height - bottom, top  # y grows downwards in SVG
        self.x_range, self.y_range = _widened(x_range), _widened(y_range)

    def x(self, value: float) -> float:
        lo, hi = self.x_range
        return self.x0 + (value - lo) / (hi - lo) * (self.x1 - self.x0)

    def y(self, value: float) -> float:
        lo, hi = self.y_range
        return self.y0 - (value - lo) / (hi - lo) * (self.y0 - self.y1)


def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, title: str, xlabel: str,
               ylabel: str, x_range: tuple[float, float] = (0.0, 1.0), y_range: tuple[float, float] = (0.0, 1.0),
               references: Sequence[tuple[float, float, float, float]] = (), markers: bool = False,
               legend: str = "lower right", size: tuple[int, int] = (450, 450)) -> str:
    """Curves ``(label, xs, ys)`` over fixed axis ranges; ``references`` are dotted grey segments
    ``(x0, y0, x1, y1)``; ``legend`` is ``lower right``, ``upper right`` or ``upper left``."""
    frame = _Frame(*size, left=58, x_range=x_range, y_range=y_range)
    body = [_axes(frame, title, xlabel, ylabel)]
    for x0, y0, x1, y1 in references:
        body.append(f'<line x1="{frame.x(x0):.1f}" y1="{frame.y(y0):.1f}" x2="{frame.x(x1):.1f}" '
                    f'y2="{frame.y(y1):.1f}" stroke="grey" stroke-width="1.2" stroke-dasharray="2,3"/>')
    for i, (_, xs, ys) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        points = [(frame.x(a), frame.y(b)) for a, b in zip(xs, ys) if math.isfinite(a) and math.isfinite(b)]
        if points:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        if markers:
            body.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in points)
    body.append(_legend(frame, [label for label, _, _ in series], legend))
    return _document(frame, body)


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str,
              width: int = 540) -> str:
    """Horizontal bars in the given order, top to bottom."""
    longest = max((len(label) for label in labels), default=0)
    left = min(260, 16 + 6 * longest)
    height = max(225, 22 * len(labels) + 90)
    top = max([0.0, *(v for v in values if math.isfinite(v))])
    frame = _Frame(width, height, left=left, x_range=(0.0, top or 1.0), y_range=(0.0, max(len(labels), 1)))
    body = [_axes(frame, title, xlabel, "", y_ticks=False)]
    step = (frame.y0 - frame.y1) / max(len(labels), 1)
    for i, (label, value) in enumerate(zip(labels, values)):
        y = frame.y1 + i * step
        bar = max(0.0, frame.x(value if math.isfinite(value) else 0.0) - frame.x0)
        body.append(f'<rect x="{frame.x0:.1f}" y="{y + 0.15 * step:.1f}" width="{bar:.1f}" height="{0.7 * step:.1f}" '
                    f'fill="{COLOURS[0]}"/>')
        body.append(f'<text x="{frame.x0 - 5:.1f}" y="{y + 0.5 * step + 4:.1f}" text-anchor="end" '
                    f'font-size="11">{escape(label)}</text>')
    return _document(frame, body)


def matrix_chart(counts: Sequence[Sequence[int]], *, title: str, xlabel: str, ylabel: str,
                 x_ticks: Sequence[str], y_ticks: Sequence[str], size: tuple[int, int] = (360, 360)) -> str:
    """A matrix of counts (rows top to bottom), each cell shaded by its share of the largest."""
    rows, cols = len(counts), len(counts[0]) if counts else 0
    frame = _Frame(*size, left=70, x_range=(0.0, max(cols, 1)), y_range=(0.0, max(rows, 1)))
    body = [_document_title(frame, title)]
    largest = max([1, *(v for row in counts for v in row)])
    cw, ch = (frame.x1 - frame.x0) / max(cols, 1), (frame.y0 - frame.y1) / max(rows, 1)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            share = value / largest
            shade = _blend("#f7fbff", "#08306b", share)
            x, y = frame.x0 + j * cw, frame.y1 + i * ch
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cw:.1f}" height="{ch:.1f}" fill="{shade}"/>')
            ink = "white" if share > 0.5 else "black"
            body.append(f'<text x="{x + cw / 2:.1f}" y="{y + ch / 2 + 5:.1f}" text-anchor="middle" font-size="14" '
                        f'fill="{ink}">{value}</text>')
    for j, tick in enumerate(x_ticks[:cols]):
        body.append(f'<text x="{frame.x0 + (j + 0.5) * cw:.1f}" y="{frame.y0 + 16:.1f}" text-anchor="middle" '
                    f'font-size="11">{escape(str(tick))}</text>')
    for i, tick in enumerate(y_ticks[:rows]):
        body.append(f'<text x="{frame.x0 - 6:.1f}" y="{frame.y1 + (i + 0.5) * ch + 4:.1f}" text-anchor="end" '
                    f'font-size="11">{escape(str(tick))}</text>')
    body.append(_axis_labels(frame, xlabel, ylabel))
    return _document(frame, body)


def scatter_chart(xs: Sequence[float], ys: Sequence[float], *, title: str, xlabel: str, ylabel: str,
                  hline: float | None = None, size: tuple[int, int] = (450, 360)) -> str:
    """Points ``(xs[i], ys[i])`` (non-finite ones dropped), axes fitted to them."""
    points = [(a, b) for a, b in zip(xs, ys) if math.isfinite(a) and math.isfinite(b)]
    x_range = (min((a for a, _ in points), default=0.0), max((a for a, _ in points), default=1.0))
    y_values = [b for _, b in points] + ([hline] if hline is not None else [])
    y_range = (min(y_values, default=0.0), max(y_values, default=1.0))
    frame = _Frame(*size, left=64, x_range=_padded(x_range), y_range=_padded(y_range))
    body = [_axes(frame, title, xlabel, ylabel)]
    body.extend(f'<circle cx="{frame.x(a):.1f}" cy="{frame.y(b):.1f}" r="1.6" fill="{COLOURS[0]}" '
                f'fill-opacity="0.4"/>' for a, b in points)
    if hline is not None:
        body.append(f'<line x1="{frame.x0}" y1="{frame.y(hline):.1f}" x2="{frame.x1}" y2="{frame.y(hline):.1f}" '
                    f'stroke="grey" stroke-width="1.2" stroke-dasharray="2,3"/>')
    return _document(frame, body)


def write(path: str | Path, svg: str) -> Path:
    """Save ``svg`` at ``path`` (UTF-8); returns the path."""
    out = Path(path)
    out.write_text(svg, encoding="utf-8")
    return out


def ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values covering ``[lo, hi]``: steps of 1, 2 or 5 times a power of ten, at most
    ``most`` of them."""
    lo, hi = _widened((lo, hi))
    raw = (hi - lo) / max(most - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(count)]


def _axes(frame: _Frame, title: str, xlabel: str, ylabel: str, y_ticks: bool = True) -> str:
    parts = [_document_title(frame, title),
             f'<rect x="{frame.x0}" y="{frame.y1}" width="{frame.x1 - frame.x0}" height="{frame.y0 - frame.y1}" '
             'fill="none" stroke="black" stroke-width="0.8"/>']
    for value in ticks(*frame.x_range):
        x = frame.x(value)
        parts.append(f'<line x1="{x:.1f}" y1="{frame.y0}" x2="{x:.1f}" y2="{frame.y0 + 4}" stroke="black"/>'
                     f'<text x="{x:.1f}" y="{frame.y0 + 16}" text-anchor="middle" font-size="11">{_number(value)}</text>')
    if y_ticks:
        for value in ticks(*frame.y_range):
            y = frame.y(value)
            parts.append(f'<line x1="{frame.x0 - 4}" y1="{y:.1f}" x2="{frame.x0}" y2="{y:.1f}" stroke="black"/>'
                         f'<text x="{frame.x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                         f'{_number(value)}</text>')
    parts.append(_axis_labels(frame, xlabel, ylabel))
    return "".join(parts)


def _axis_labels(frame: _Frame, xlabel: str, ylabel: str) -> str:
    middle_x, middle_y = (frame.x0 + frame.x1) / 2, (frame.y0 + frame.y1) / 2
    out = (f'<text x="{middle_x:.1f}" y="{frame.height - 10}" text-anchor="middle" font-size="12">'
           f'{escape(xlabel)}</text>')
    if ylabel:
        out += (f'<text x="14" y="{middle_y:.1f}" text-anchor="middle" font-size="12" '
                f'transform="rotate(-90 14 {middle_y:.1f})">{escape(ylabel)}</text>')
    return out


def _document_title(frame: _Frame, title: str) -> str:
    return (f'<text x="{(frame.x0 + frame.x1) / 2:.1f}" y="20" text-anchor="middle" font-size="13">'
            f'{escape(title)}</text>')


def _legend(frame: _Frame, labels: Sequence[str], where: str) -> str:
    if not labels:
        return ""
    width = 34 + 6.6 * max(len(label) for label in labels)
    height = 8 + 18 * len(labels)
    left = frame.x0 + 8 if where.endswith("left") else frame.x1 - 8 - width
    top = frame.y1 + 8 if where.startswith("upper") else frame.y0 - 8 - height
    out = [f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height}" fill="white" '
           'fill-opacity="0.85" stroke="#cccccc"/>']
    for i, label in enumerate(labels):
        y = top + 14 + 18 * i
        out.append(f'<line x1="{left + 6:.1f}" y1="{y - 4:.1f}" x2="{left + 24:.1f}" y2="{y - 4:.1f}" '
                   f'stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="2"/>'
                   f'<text x="{left + 30:.1f}" y="{y:.1f}" font-size="11">{escape(label)}</text>')
    return "".join(out)


def _document(frame: _Frame, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{frame.width}" height="{frame.height}" '
            f'viewBox="0 0 {frame.width} {frame.height}" {_FONT}>'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>\n')


def _widened(span: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(span[0]), float(span[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    return lo, hi


def _padded(span: tuple[float, float]) -> tuple[float, float]:
    lo, hi = _widened(span)
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _number(value: float) -> str:
    return f"{value:.6g}"


def _blend(light: str, dark: str, share: float) -> str:
    share = min(max(share, 0.0), 1.0)
    a = [int(light[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(dark[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b))
