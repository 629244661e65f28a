"""The monitor's HTML report: one self-contained page per monitor run.

Contract: :func:`render_report` turns a :class:`~pipeline.drift.DriftReport`, the
:class:`~pipeline.retraining.RetrainDecision` taken on it and, when given, each feature's
:class:`~pipeline.trend.DriftHistory` into one HTML page with every figure inlined (base64 PNG,
inline SVG sparklines); it references no external file and reads nothing. Features are listed
most severe first (:meth:`~pipeline.drift.DriftReport.by_severity`); derived features are marked
with what they are computed from.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from pipeline.drift import DriftReport
from pipeline.retraining import RetrainDecision
from pipeline.trend import DriftHistory

_VERDICTS = {"retrain": "RETRAIN", "waiting": "retrain warranted: waiting for labels",
             "held": "retrain warranted: held by a guard", "no_retrain": "no retrain"}


def render_report(report: DriftReport, decision: RetrainDecision, *, title: str,
                  history: DriftHistory | None = None) -> str:
    """A self-contained HTML drift report.

    Args:
        report: the window's drift statistics.
        decision: the retraining decision taken that day.
        title: page title (e.g. ``"credit_default drift 2026-03-02"``).
        history: each feature's effect over the last days, ending on this report's day (a
            sparkline per feature); ``None`` leaves the history column out.

    Returns:
        The HTML page as a string.
    """
    esc = html.escape
    verdict = _VERDICTS.get(decision.status, decision.status)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.drift{background:#fde2d6}"
        ".fig{display:inline-block;margin:4px}.derived{font-size:11px;color:#555;background:#eef;"
        "border-radius:3px;padding:0 4px;margin-left:4px}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<h2>Decision: {esc(verdict)}</h2><ul>",
        *[f"<li>{esc(r)}</li>" for r in decision.reasons],
        "</ul>",
    ]
    if decision.blocked_by:
        parts.append(f"<p>Held by: {esc(', '.join(decision.blocked_by))}</p>")
    if decision.series:
        parts.append("<h2>Champion performance by day</h2><p>Deficit = reference - observed (positive = worse), "
                     "normalised; z = deficit / standard error; CUSUM alarms above h.</p>")
        parts.append(f"<div class='fig'>{_png(_series_plot(decision))}</div>")
        parts.append("<table><tr><th>data day</th><th>source</th><th>value</th><th>reference</th><th>deficit</th>"
                     "<th>z</th><th>CUSUM</th><th>rows</th></tr>")
        for e in decision.series[-30:]:
            parts.append(f"<tr><td>{e['day']}</td><td>{e['source']}</td><td>{e['value']:.4f}</td>"
                         f"<td>{e['reference']:.4f}</td><td>{e['deficit']:+.4f}</td><td>{e['z']:+.2f}</td>"
                         f"<td>{e.get('cusum', 0.0):.2f}</td><td>{e['rows']}</td></tr>")
        parts.append("</table>")
    window = f"{report.window[0]} to {report.window[1]}" if report.window else "unspecified window"
    ranked = report.by_severity()
    drifted = [name for name, f in ranked if f["drifted"]]
    parts.append(f"<h2>Feature drift</h2><p>Window: {esc(window)}; {report.rows} rows; weighted drift "
                 f"{report.weighted_drift:.3f}; drifted features: {esc(', '.join(drifted) or 'none')}."
                 "</p>")
    for note in report.notes:
        parts.append(f"<p><em>{esc(note)}</em></p>")
    if report.prediction is not None:
        pred = report.prediction
        parts.append(f"<h2>Prediction drift</h2><p>PSI {pred['psi']:.4f} (threshold {pred['threshold']}), "
                     f"KS {pred['ks']:.4f}, p {pred['p']:.3g}: {'drifted' if pred['drifted'] else 'stable'}.</p>")
        parts.append(f"<div class='fig'>{_png(_bars(pred['histogram'], 'champion scores'))}</div>")
    if report.features:
        span = f"<th>last {len(history.days)} days</th>" if history else ""
        parts.append("<p>Most severe first: drifted features by their share of the weighted drift, then the others, "
                     "closest to their threshold first. Derived features are computed from the raw columns by the "
                     "model's own code; their importance is counted in their inputs unless they are the only way "
                     "the model reads an input.</p>")
        parts.append("<table><tr><th>feature</th><th>type</th><th>effect</th><th>value</th>"
                     "<th>threshold</th><th>second effect</th><th>test</th><th>p</th><th>adjusted p</th>"
                     f"<th>null rate ref / cur</th><th>importance</th><th>drifted</th>{span}</tr>")
        for name, f in ranked:
            second = f["statistics"].get("wasserstein_normalised" if f["type"] == "numeric" else "linf")
            nr = f["null_rate"]
            spark = f"<td>{_sparkline(history, name)}</td>" if history else ""
            parts.append(
                f"<tr class='{'drift' if f['drifted'] else ''}'><td>{esc(name)}{_derived_mark(f)}</td><td>{f['type']}</td>"
                f"<td>{f['effect']}</td><td>{_fmt(f['value'])}</td><td>{f['threshold']}</td><td>{_fmt(second)}</td>"
                f"<td>{f['test']}</td><td>{f['p']:.3g}</td><td>{f['p_adjusted']:.3g}</td>"
                f"<td>{nr['reference']:.3f} / {nr['current']:.3f}</td><td>{_importance(f)}</td>"
                f"<td>{'yes' if f['drifted'] else 'no'}</td>{spark}</tr>"
            )
        parts.append("</table><h2>Distributions (reference vs current)</h2>")
        for name, f in ranked:
            if f["histogram"]["labels"]:
                parts.append(f"<div class='fig'>{_png(_bars(f['histogram'], name))}<br>"
                             f"<small>{esc(f['reason'])}</small></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _derived_mark(entry: dict[str, Any]) -> str:
    if not entry.get("derived"):
        return ""
    what = f"{entry.get('derivation')} of {', '.join(entry.get('inputs') or [])}"
    return f"<span class='derived' title='{html.escape(what, quote=True)}'>derived: {html.escape(what)}</span>"


def _importance(entry: dict[str, Any]) -> str:
    if entry.get("derived") and entry["importance"] == 0:
        return "in its inputs"
    return f"{entry['importance']:.3f}"


def _sparkline(history: DriftHistory, name: str, width: int = 150, height: int = 30) -> str:
    """An inline SVG of one feature's effect per day: a line through measured days (gaps where a
    day was not measured), a dashed line at the threshold, drifted days as red dots."""
    values = history.values.get(name)
    if not values or all(v is None for v in values):
        return ""
    threshold = history.thresholds.get(name, 0.0)
    top = max([v for v in values if v is not None] + [threshold]) * 1.15 or 1.0
    step = (width - 8) / max(len(values) - 1, 1)
    xy = [(4 + i * step, height - 3 - (v / top) * (height - 6)) if v is not None else None for i, v in enumerate(values)]
    segments: list[list[tuple[float, float]]] = [[]]
    for point in xy:
        if point is None:
            segments.append([])
        else:
            segments[-1].append(point)
    shapes = [f"<polyline fill='none' stroke='#2f6db5' stroke-width='1.5' points='"
              f"{' '.join(f'{x:.1f},{y:.1f}' for x, y in seg)}'/>" for seg in segments if len(seg) > 1]
    ty = height - 3 - (threshold / top) * (height - 6)
    shapes.insert(0, f"<line x1='2' x2='{width - 2}' y1='{ty:.1f}' y2='{ty:.1f}' stroke='#c0392b' "
                     "stroke-dasharray='3,2' stroke-width='0.8'/>")
    for (point, drifted, v) in zip(xy, history.drifted[name], values):
        if point is not None and (drifted or point is xy[-1]):
            shapes.append(f"<circle cx='{point[0]:.1f}' cy='{point[1]:.1f}' r='2.2' "
                          f"fill='{'#c0392b' if drifted else '#2f6db5'}'/>")
    label = "; ".join(f"{d}: {'n/a' if v is None else f'{v:.3f}'}{' (drifted)' if dr else ''}"
                      for d, v, dr in zip(history.days, values, history.drifted[name]))
    return (f"<svg class='spark' width='{width}' height='{height}' "
            f"role='img' aria-label='{html.escape(name, quote=True)} by day'>"
            f"<title>{html.escape(f'{name} by day (threshold {threshold}): {label}')}</title>{''.join(shapes)}</svg>")


def _png(draw: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A bare Figure with an Agg canvas: no pyplot state, nothing global left open.
    fig = Figure(figsize=(6.4, 2.6), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    fig.clear()
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _bars(hist: dict[str, Any], name: str) -> Any:
    def draw(ax: Any) -> None:
        labels = hist["labels"]
        x = np.arange(len(labels))
        ax.bar(x - 0.2, hist["reference"], width=0.4, label="reference", color="#7f8fa6")
        ax.bar(x + 0.2, hist["current"], width=0.4, label="current", color="#e1703c")
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    return draw


def _series_plot(decision: RetrainDecision) -> Any:
    def draw(ax: Any) -> None:
        for source, colour in (("realised", "#2f6db5"), ("estimated", "#e1703c")):
            pts = [(i, e["deficit"]) for i, e in enumerate(decision.series) if e["source"] == source]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, color=colour, label=f"{source} deficit")
        ax.axhline(0.0, color="grey", ls=":")
        ticks = list(range(0, len(decision.series), max(1, len(decision.series) // 8)))
        ax.set_xticks(ticks, [decision.series[i]["day"][5:] for i in ticks], fontsize=7)
        ax.set_ylabel("deficit")
        ax.legend(fontsize=7)
    return draw


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
