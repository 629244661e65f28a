"""The monitor's HTML report: one self-contained page per monitor run.

Contract: :func:`render_report` turns a :class:`~pipeline.drift.DriftReport` and the
:class:`~pipeline.retraining.RetrainDecision` taken on it into one HTML page with every figure
inlined (base64 PNG); it references no external file and reads nothing.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from pipeline.drift import DriftReport
from pipeline.retraining import RetrainDecision

_VERDICTS = {"retrain": "RETRAIN", "waiting": "retrain warranted: waiting for labels",
             "held": "retrain warranted: held by a guard", "no_retrain": "no retrain"}


def render_report(report: DriftReport, decision: RetrainDecision, *, title: str) -> str:
    """A self-contained HTML drift report.

    Args:
        report: the window's drift statistics.
        decision: the retraining decision taken that day.
        title: page title (e.g. ``"credit_default drift 2026-03-02"``).

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
        ".fig{display:inline-block;margin:4px}</style></head><body>",
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
    parts.append(f"<h2>Feature drift</h2><p>Window: {esc(window)}; {report.rows} rows; weighted drift "
                 f"{report.weighted_drift:.3f}; drifted features: {esc(', '.join(report.drifted_features) or 'none')}."
                 "</p>")
    for note in report.notes:
        parts.append(f"<p><em>{esc(note)}</em></p>")
    if report.prediction is not None:
        pred = report.prediction
        parts.append(f"<h2>Prediction drift</h2><p>PSI {pred['psi']:.4f} (threshold {pred['threshold']}), "
                     f"KS {pred['ks']:.4f}, p {pred['p']:.3g}: {'drifted' if pred['drifted'] else 'stable'}.</p>")
        parts.append(f"<div class='fig'>{_png(_bars(pred['histogram'], 'champion scores'))}</div>")
    if report.features:
        parts.append("<table><tr><th>feature</th><th>type</th><th>effect</th><th>value</th>"
                     "<th>threshold</th><th>second effect</th><th>test</th><th>p</th><th>adjusted p</th>"
                     "<th>null rate ref / cur</th><th>importance</th><th>drifted</th></tr>")
        for name, f in report.features.items():
            second = f["statistics"].get("wasserstein_normalised" if f["type"] == "numeric" else "linf")
            nr = f["null_rate"]
            parts.append(
                f"<tr class='{'drift' if f['drifted'] else ''}'><td>{esc(name)}</td><td>{f['type']}</td>"
                f"<td>{f['effect']}</td><td>{_fmt(f['value'])}</td><td>{f['threshold']}</td><td>{_fmt(second)}</td>"
                f"<td>{f['test']}</td><td>{f['p']:.3g}</td><td>{f['p_adjusted']:.3g}</td>"
                f"<td>{nr['reference']:.3f} / {nr['current']:.3f}</td><td>{f['importance']:.3f}</td>"
                f"<td>{'yes' if f['drifted'] else 'no'}</td></tr>"
            )
        parts.append("</table><h2>Distributions (reference vs current)</h2>")
        for name, f in report.features.items():
            if f["histogram"]["labels"]:
                parts.append(f"<div class='fig'>{_png(_bars(f['histogram'], name))}<br>"
                             f"<small>{esc(f['reason'])}</small></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


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
