"""The model-health dashboard: one self-contained HTML page of a model's monitoring history.

Contract:
* :func:`load_dashboard` reads what the monitor and the retrain already record -- each monitored
  day's latest completed ``monitor/<day>/latest.json`` -> ``decision.json`` and its ``drift.json``,
  each retrained day's ``runs/<day>/latest.json`` -> ``decision.json`` -- for the ``days`` days
  ending on ``end_day``, plus the registry's champion alias history (given, so loading needs no
  MLflow client), and returns a :class:`Dashboard`. It writes nothing.
* :func:`render_dashboard` is pure: a :class:`Dashboard` in, one HTML page out. The page has
  inline CSS and inline SVG only -- no script, no stylesheet or font from elsewhere -- so it
  renders offline, from a file, an S3 download or an MLflow artifact view. Over one time axis it
  draws: realised and label-free estimated performance with their intervals and the champion's
  reference and tolerance; a feature x day heatmap of the drift statistic relative to its
  threshold; prediction drift and importance-weighted feature drift with the rule's thresholds;
  and markers for retrain requests, promotions and rollbacks. Every threshold drawn is the one
  the monitor recorded that day (``policy`` in its decision record), never a default.
* :func:`publish_dashboard` loads, renders and writes ``dashboard.html`` into a monitor run's
  prefix and attaches it to that run's MLflow run; the monitor calls it after each monitored day.

A promotion is placed on the day of the retrain run that made it. A rollback has only a wall-clock
time, so it is placed on the first monitored day its target version was monitored again after
the version it replaced; one that no monitored day shows yet is listed in the events table only.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from pipeline.artifacts import Record, date_prefix, day_key, latest_decision_uri
from pipeline.config import tolerance_value
from pipeline.errors import DriftlineError
from pipeline.storage import ObjectNotFound, Store, join

#: Default number of days shown.
DEFAULT_DAYS = 60
#: The monitor run's file and MLflow artifact name.
DASHBOARD_FILE = "dashboard.html"


class NoMonitorHistory(DriftlineError):
    """There is no monitored day to draw."""


@dataclass(frozen=True)
class MonitoredDay(Record):
    """One monitored day as the dashboard draws it.

    Attributes:
        day: ``YYYY-MM-DD`` of the monitor run.
        status: the monitor's decision (``no_retrain``, ``waiting``, ``held``, ``retrain``, ``bad_data``).
        retrain: a retrain was requested.
        retrain_kind: ``change``, ``shift``, ``catch_up`` when requested.
        champion_version: the champion monitored.
        observations: the day's observations of the primary metric (see
            :class:`pipeline.retraining.Observation`), each on its own data day.
        features: feature -> ``{"value", "threshold", "effect", "drifted"}`` from ``drift.json``.
        weighted_drift, weighted_threshold: importance-weighted drift and the rule's threshold.
        prediction_psi, prediction_threshold: PSI of the champion's scores and its threshold.
        performance_tolerance: the rule's ``drift.performance_tolerance`` (canonical text).
        reason: the decision's last reason (its verdict in one sentence).
    """

    day: str
    status: str
    retrain: bool = False
    retrain_kind: str | None = None
    champion_version: str | None = None
    observations: list[dict[str, Any]] = field(default_factory=list)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    weighted_drift: float | None = None
    weighted_threshold: float | None = None
    prediction_psi: float | None = None
    prediction_threshold: float | None = None
    performance_tolerance: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Event(Record):
    """A retrain request, promotion or rollback.

    Attributes:
        kind: ``retrain_request``, ``promotion`` or ``rollback``.
        day: the data day it is drawn on, or ``None`` when no shown day can carry it.
        title: one line (``"v1 -> v2"``, ``"change, labelled"``).
        detail: why (the reason recorded with it).
    """

    kind: str
    day: str | None
    title: str
    detail: str = ""


@dataclass(frozen=True)
class Dashboard(Record):
    """What the page shows: the monitored days (oldest first), the events, the shown range and the
    champion monitored on its last day."""

    model: str
    metric: str | None
    higher_is_better: bool
    first_day: str
    last_day: str
    monitored: list[MonitoredDay]
    events: list[Event]
    champion: str | None
    generated_at: str


# --------------------------------------------------------------------------------------------
# loading


def load_dashboard(store: Store, artifact_root: str, model: str, *, alias_history: Iterable[dict[str, Any]] = (),
                   end_day: str | date | None = None, days: int = DEFAULT_DAYS) -> Dashboard:
    """Read a model's monitor and retrain records into a :class:`Dashboard`.

    Args:
        store: storage holding ``artifact_root``.
        artifact_root: the settings' artifact root.
        model: the model's name (its folder under ``artifact_root``).
        alias_history: the registry's champion moves, oldest first (:func:`pipeline.registry.history`).
        end_day: last day shown (default: the latest monitored day).
        days: at most this many days are shown, ending on ``end_day`` (fewer when the records
            start later: the page starts at the first monitored day, event or observation).

    Returns:
        The dashboard's data.

    Raises:
        NoMonitorHistory: no monitored day in the range (run the monitor first).
        StorageError: a record cannot be read.
    """
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    monitor_root = join(artifact_root, model, "monitor")
    monitor_days = _days_under(store, monitor_root)
    if not monitor_days:
        raise NoMonitorHistory(f"no monitor record of {model} under {monitor_root}: run the monitor first "
                               f"(python -m pipeline monitor {model} --date YYYY-MM-DD)")
    last = day_key(end_day) if end_day is not None else monitor_days[-1]
    first = (date.fromisoformat(last) - timedelta(days=days - 1)).isoformat()
    monitored = []
    for day in (d for d in monitor_days if first <= d <= last):
        uri = latest_decision_uri(store, date_prefix(artifact_root, model, day, "monitor"))
        if uri is not None:
            monitored.append(_monitored_day(store, store.read_json(uri)))
    if not monitored:
        raise NoMonitorHistory(f"no completed monitor run of {model} between {first} and {last} under "
                               f"{monitor_root} (monitored days: {monitor_days[0]} .. {monitor_days[-1]}); "
                               f"widen --days or move --end")
    retrains = []
    runs_root = join(artifact_root, model, "runs")
    for day in (d for d in _days_under(store, runs_root) if first <= d <= last):
        uri = latest_decision_uri(store, date_prefix(artifact_root, model, day, "runs"))
        if uri is not None:
            retrains.append(store.read_json(uri))
    events = _events(monitored, retrains, list(alias_history), first, last)
    shown = [d.day for d in monitored] + [e.day for e in events if e.day]
    shown += [day_key(o["day"]) for d in monitored for o in d.observations if o.get("day")]
    first = max(first, min(shown))  # a young model's page starts at its first record, not days back
    metric = next((o.get("metric") for d in monitored for o in d.observations if o.get("metric")), None)
    higher = True
    if metric:
        from pipeline import metrics

        higher = metrics.higher_is_better(metric)
    return Dashboard(model=model, metric=metric, higher_is_better=higher, first_day=first, last_day=last,
                     monitored=monitored, events=events,
                     champion=monitored[-1].champion_version,
                     generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _days_under(store: Store, root: str) -> list[str]:
    days = set()
    for uri in store.list(root):
        head = uri[len(root):].strip("/").split("/")[0]
        if _is_day(head):
            days.add(head)
    return sorted(days)


def _is_day(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _monitored_day(store: Store, record: dict[str, Any]) -> MonitoredDay:
    drift = (record.get("feature_drift") or {})
    policy = (record.get("policy") or {}).get("drift") or {}
    features: dict[str, dict[str, Any]] = {}
    drift_uri = (record.get("artifacts") or {}).get("drift")
    prediction: dict[str, Any] = {}
    if drift_uri:
        try:
            report = store.read_json(drift_uri)
        except ObjectNotFound:
            report = {}
        for name, entry in (report.get("features") or {}).items():
            features[name] = {k: entry.get(k) for k in ("value", "threshold", "effect", "drifted")}
        prediction = report.get("prediction") or {}
    reasons = record.get("reasons") or [""]
    return MonitoredDay(
        day=day_key(record["day"]), status=str(record.get("status", "")), retrain=bool(record.get("retrain")),
        retrain_kind=record.get("retrain_kind") or record.get("kind"),
        champion_version=None if record.get("champion_version") is None else str(record["champion_version"]),
        observations=list(record.get("observations") or []), features=features,
        weighted_drift=drift.get("weighted"), weighted_threshold=drift.get("threshold",
                                                                          policy.get("weighted_drift_threshold")),
        prediction_psi=drift.get("prediction_psi", prediction.get("psi")),
        prediction_threshold=prediction.get("threshold", policy.get("prediction_psi_threshold")),
        performance_tolerance=policy.get("performance_tolerance"), reason=str(reasons[-1]))


def _events(monitored: list[MonitoredDay], retrains: list[dict[str, Any]], history: list[dict[str, Any]],
            first: str, last: str) -> list[Event]:
    events = [Event(kind="retrain_request", day=d.day, title=f"{d.retrain_kind or 'retrain'} requested",
                    detail=d.reason) for d in monitored if d.retrain]
    promoted_on: dict[str, str] = {}
    for record in retrains:
        if record.get("status") != "promoted":
            continue
        day = day_key(record["date"])
        after = record.get("champion_after")
        promoted_on[str(after)] = day
        events.append(Event(kind="promotion", day=day,
                            title=f"{_v(record.get('champion_before'))} -> {_v(after)}",
                            detail=str(record.get("summary") or "")))
    for entry in history:
        if entry.get("kind") != "rollback":
            continue
        target, replaced = str(entry.get("to_version")), str(entry.get("from_version"))
        since = promoted_on.get(replaced, first)
        seen_replaced = False
        day = None
        for d in monitored:
            if d.day < since:
                continue
            if d.champion_version == replaced:
                seen_replaced = True
            elif seen_replaced and d.champion_version == target:
                day = d.day
                break
        at = str(entry.get("at") or "")
        if day is None and first <= at[:10] <= last:
            day = at[:10]
        events.append(Event(kind="rollback", day=day, title=f"{_v(replaced)} -> {_v(target)}",
                            detail=f"{entry.get('reason', '')} (by {entry.get('actor', '?')} at {at})"))
    return sorted(events, key=lambda e: (e.day or "9999", e.kind))


def _v(version: Any) -> str:
    return "none" if version in (None, "", "None") else f"v{version}"


# --------------------------------------------------------------------------------------------
# rendering

_W, _LEFT, _RIGHT = 960, 70, 170
_SOURCES = {"realised": ("#0072B2", "realised (labels arrived)"),
            "estimated": ("#D55E00", "estimated (label-free)")}
_EVENTS = {"retrain_request": ("#7B3294", "6 3", "retrain requested"),
           "promotion": ("#1A9850", "", "promotion"),
           "rollback": ("#C51B7D", "2 2", "rollback")}
_STATUS_COLOURS = {"no_retrain": "#d9f0d3", "waiting": "#fee090", "held": "#fdae61", "retrain": "#d73027",
                   "bad_data": "#999999"}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1000px;
color:#1b1b1b;background:#fff;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 4px}
p.lede{margin:0 0 8px;color:#444}.explain{color:#444;margin:0 0 6px;font-size:.95em}
svg{display:block;max-width:100%;height:auto;font-size:12px}
svg text{fill:#1b1b1b}.axis line,.axis path{stroke:#888}.grid{stroke:#e6e6e6}
ul.legend{list-style:none;padding:0;margin:4px 0 0;display:flex;flex-wrap:wrap;gap:4px 18px;font-size:.92em}
ul.legend li{display:flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:22px;height:12px;border-radius:2px}
table{border-collapse:collapse;margin-top:6px;font-size:.93em}
th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td:first-child{white-space:nowrap}h3{font-size:1em;margin:16px 0 2px}.kpis{display:flex;gap:14px;flex-wrap:wrap;margin:12px 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:140px}
.kpi b{display:block;font-size:1.3em}
"""


def render_dashboard(data: Dashboard, *, title: str | None = None) -> str:
    """The dashboard page (pure).

    Args:
        data: what :func:`load_dashboard` read.
        title: the page title (default: ``"<model>: model health"``).

    Returns:
        One HTML document: inline CSS and SVG, no script, no external reference.
    """
    esc = html.escape
    title = title or f"{data.model}: model health"
    axis = _TimeAxis(data.first_day, data.last_day)
    latest = data.monitored[-1]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='lede'>{len(data.monitored)} monitored day(s) from {data.first_day} to {data.last_day}; "
        f"generated {esc(data.generated_at)}. Hover a point or cell for its numbers.</p>",
        "<div class='kpis'>",
        _kpi("champion", _v(data.champion)),
        _kpi(f"last decision ({latest.day})", latest.status.replace("_", " ")),
        _kpi("retrain requests", str(sum(e.kind == "retrain_request" for e in data.events))),
        _kpi("promotions / rollbacks", f"{sum(e.kind == 'promotion' for e in data.events)} / "
                                       f"{sum(e.kind == 'rollback' for e in data.events)}"),
        "</div>",
        _performance_section(data, axis),
        _heatmap_section(data, axis),
        _drift_line_section(data, axis, "prediction-drift", "Prediction drift",
                            "PSI of the champion's scores against the scores on its own reference rows. "
                            "Above the threshold the model's outputs have moved.",
                            "prediction PSI", "prediction_psi", "prediction_threshold"),
        _drift_line_section(data, axis, "weighted-drift", "Importance-weighted feature drift",
                            "Sum of the importance of the drifted features (0: none, 1: all). With prediction "
                            "drift above its threshold for consecutive days it asks for a shift retrain.",
                            "weighted drift", "weighted_drift", "weighted_threshold"),
        _events_section(data),
        "</body></html>",
    ]
    return "".join(parts)


def _kpi(label: str, value: str) -> str:
    return f"<div class='kpi'>{html.escape(label)}<b>{html.escape(value)}</b></div>"


class _TimeAxis:
    """Maps ``YYYY-MM-DD`` days to x pixels; one column per calendar day."""

    def __init__(self, first: str, last: str):
        self.start = date.fromisoformat(first)
        self.n = (date.fromisoformat(last) - self.start).days + 1
        self.step = (_W - _LEFT - _RIGHT) / self.n

    def index(self, day: str) -> int:
        return (date.fromisoformat(day_key(day)) - self.start).days

    def contains(self, day: str | None) -> bool:
        return day is not None and 0 <= self.index(day) < self.n

    def x(self, day: str) -> float:
        return _LEFT + (self.index(day) + 0.5) * self.step

    def ticks(self, top: float, bottom: float) -> str:
        every = max(1, math.ceil(self.n / 10))
        out = [f"<g class='axis x'><line x1='{_LEFT}' x2='{_W - _RIGHT}' y1='{bottom}' y2='{bottom}'/>"]
        for i in range(0, self.n, every):
            day = (self.start + timedelta(days=i)).isoformat()
            x = self.x(day)
            out.append(f"<line class='grid' x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{bottom}'/>"
                       f"<text x='{x:.1f}' y='{bottom + 16}' text-anchor='middle'>{day[5:]}</text>")
        out.append("</g>")
        return "".join(out)

    def events(self, events: list[Event], top: float, bottom: float) -> str:
        out = []
        shown = [e for e in events if self.contains(e.day)]
        for e in shown:
            colour, dash, label = _EVENTS[e.kind]
            same_day = [o for o in shown if o.day == e.day]
            # Events of one day sit side by side, 5 px apart, so none hides another.
            x = self.x(e.day or "") + 5 * (same_day.index(e) - (len(same_day) - 1) / 2)
            out.append(f"<g class='event' data-kind='{e.kind}' data-day='{e.day}'><title>"
                       f"{html.escape(f'{label} on {e.day}: {e.title}. {e.detail}')}</title>"
                       f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{bottom}' stroke='{colour}' "
                       f"stroke-width='2' stroke-dasharray='{dash}'/>"
                       f"<path d='M{x - 5:.1f},{top - 9} L{x + 5:.1f},{top - 9} L{x:.1f},{top - 1} Z' "
                       f"fill='{colour}'/></g>")
        return "".join(out)


class _Scale:
    def __init__(self, values: list[float], top: float, bottom: float, floor: float | None = None):
        finite = [v for v in values if v is not None and math.isfinite(v)] or [0.0, 1.0]
        lo, hi = min(finite), max(finite)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 0.1
        self.lo, self.hi = lo - pad, hi + pad
        if floor is not None:
            self.lo = max(self.lo, floor)
        self.top, self.bottom = top, bottom

    def y(self, value: float) -> float:
        return self.bottom - (value - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)

    def ticks(self) -> str:
        out = ["<g class='axis y'>", f"<line x1='{_LEFT}' x2='{_LEFT}' y1='{self.top}' y2='{self.bottom}'/>"]
        for i in range(5):
            value = self.lo + (self.hi - self.lo) * i / 4
            y = self.y(value)
            out.append(f"<line class='grid' x1='{_LEFT}' x2='{_W - _RIGHT}' y1='{y:.1f}' y2='{y:.1f}'/>"
                       f"<text x='{_LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>{_fmt(value)}</text>")
        out.append("</g>")
        return "".join(out)


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _svg_open(chart_id: str, height: int, label: str) -> str:
    return (f"<svg id='{chart_id}' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {_W} {height}' width='{_W}' "
            f"height='{height}' role='img' aria-labelledby='{chart_id}-title'>"
            f"<title id='{chart_id}-title'>{html.escape(label)}</title>"
            f"<rect x='0' y='0' width='{_W}' height='{height}' fill='#ffffff'/>")


def _legend(items: list[tuple[str, str, str]]) -> str:
    """``items``: (colour, CSS for the swatch's border/style, label)."""
    out = ["<ul class='legend'>"]
    for colour, style, label in items:
        out.append(f"<li><span class='swatch' style='background:{colour};{style}'></span>{html.escape(label)}</li>")
    out.append("</ul>")
    return "".join(out)


def _event_legend(events: list[Event]) -> list[tuple[str, str, str]]:
    kinds = {e.kind for e in events if e.day}
    return [(c, "height:3px", label) for kind, (c, _, label) in _EVENTS.items() if kind in kinds]


def _performance_section(data: Dashboard, axis: _TimeAxis) -> str:
    metric = data.metric or "primary metric"
    head = (f"<h2>Performance: {html.escape(metric)}</h2><p class='explain'>The champion's {html.escape(metric)} "
            "on the day of the rows it was measured on: <b>realised</b> on rows whose labels have arrived (so it "
            "trails the monitor by the label delay) and <b>estimated</b> without labels from its calibrated "
            "scores on the monitor's window (the days just before the monitor's day; the drift charts below "
            "are drawn on the monitor's day). "
            "Bands are the bootstrap intervals; the thin line is the champion's own reference and the dashed "
            "line the rule's tolerance: a day whose interval lies beyond it is degraded.</p>")
    series: dict[str, list[dict[str, Any]]] = {s: [] for s in _SOURCES}
    tolerance = None
    for d in data.monitored:
        tolerance = d.performance_tolerance or tolerance
        for o in d.observations:
            if o.get("source") in series and axis.contains(o.get("day")) and o.get("value") is not None:
                series[o["source"]].append({**o, "tolerance": d.performance_tolerance})
    if not any(series.values()):
        return head + "<p class='explain' id='performance-empty'>No performance observation in this range yet " \
                      "(realised performance needs labels; the estimate needs a binary model).</p>"
    sign = -1.0 if data.higher_is_better else 1.0
    values: list[float] = []
    for points in series.values():
        for o in points:
            o["limit"] = _limit(o, sign)
            values += [o["value"], o.get("lower"), o.get("upper"), o.get("reference"), o["limit"]]
    height, top, bottom = 330, 24, 290
    scale = _Scale([v for v in values if v is not None], top, bottom)
    out = [head, _svg_open("performance", height, f"{metric} over time, realised and estimated, with intervals"),
           scale.ticks(), axis.ticks(top, bottom)]
    for source, points in series.items():
        if not points:
            continue
        colour, label = _SOURCES[source]
        points = sorted({p["day"]: p for p in points}.values(), key=lambda p: p["day"])
        band = [p for p in points if p.get("lower") is not None and p.get("upper") is not None]
        if band:
            upper = " ".join(f"{axis.x(p['day']):.1f},{scale.y(p['upper']):.1f}" for p in band)
            lower = " ".join(f"{axis.x(p['day']):.1f},{scale.y(p['lower']):.1f}" for p in reversed(band))
            out.append(f"<polygon class='interval' data-series='{source}' points='{upper} {lower}' "
                       f"fill='{colour}' fill-opacity='0.16' stroke='none'/>")
        refs = [p for p in points if p.get("reference") is not None]
        out.append(_step_line(axis, scale, [(p["day"], p["reference"]) for p in refs], colour, "", 1.2,
                              f"threshold reference' data-series='{source}"))
        limits = [p for p in points if p["limit"] is not None]
        out.append(_step_line(axis, scale, [(p["day"], p["limit"]) for p in limits], colour, "6 4", 1.5,
                              f"threshold tolerance' data-series='{source}"))
        if limits:
            out.append(f"<text x='{_W - _RIGHT + 6}' y='{scale.y(limits[-1]['limit']) + 4:.1f}' fill='{colour}'>"
                       f"{source} tolerance {_fmt(limits[-1]['limit'])}</text>")
        coords = " ".join(f"{axis.x(p['day']):.1f},{scale.y(p['value']):.1f}" for p in points)
        out.append(f"<polyline class='series' data-series='{source}' points='{coords}' fill='none' "
                   f"stroke='{colour}' stroke-width='2.2'/>")
        for p in points:
            text = (f"{label} {metric} on {p['day']}: {_fmt(p['value'])} [{_fmt(p.get('lower'))}, "
                    f"{_fmt(p.get('upper'))}], reference {_fmt(p.get('reference'))}, {p.get('rows', '?')} rows"
                    + (", DEGRADED" if p.get("degraded") else ""))
            out.append(f"<circle cx='{axis.x(p['day']):.1f}' cy='{scale.y(p['value']):.1f}' r='3.5' "
                       f"fill='{'#000' if p.get('degraded') else colour}'><title>{html.escape(text)}</title></circle>")
    out.append(axis.events(data.events, top, bottom))
    out.append("</svg>")
    legend = [(c, "", label) for s, (c, label) in _SOURCES.items() if series[s]]
    legend += [("#fff", "border-top:1.5px dashed #555;height:0", f"tolerance ({tolerance})" if tolerance
                else "tolerance"), ("#555", "height:1px", "champion reference"),
               ("#000", "width:8px;height:8px;border-radius:50%", "degraded day")]
    out.append(_legend(legend + _event_legend(data.events)))
    return "".join(out)


def _limit(observation: dict[str, Any], sign: float) -> float | None:
    """The metric value beyond which the day counts as degraded (reference -/+ tolerance)."""
    reference, tolerance = observation.get("reference"), observation.get("tolerance")
    if reference is None or not tolerance:
        return None
    try:
        return reference + sign * tolerance_value(tolerance, reference=reference, se=observation.get("se"))
    except ValueError:
        return None


def _step_line(axis: _TimeAxis, scale: _Scale, points: list[tuple[str, float]], colour: str, dash: str,
               width: float, css_class: str) -> str:
    if not points:
        return ""
    half = axis.step / 2
    coords = []
    for day, value in points:
        x, y = axis.x(day), scale.y(value)
        coords += [f"{x - half:.1f},{y:.1f}", f"{x + half:.1f},{y:.1f}"]
    return (f"<polyline class='{css_class}' points='{' '.join(coords)}' fill='none' stroke='{colour}' "
            f"stroke-width='{width}' stroke-dasharray='{dash}' stroke-opacity='0.85'/>")


def drift_colour(ratio: float | None) -> str:
    """The heatmap colour of a drift statistic divided by its threshold: white at 0, amber at the
    threshold (1), dark red at twice it and beyond; light grey when not measured."""
    if ratio is None or not math.isfinite(ratio):
        return "#e0e0e0"
    stops = ((0.0, (255, 255, 255)), (0.5, (255, 241, 168)), (1.0, (253, 174, 97)), (2.0, (165, 0, 38)))
    ratio = max(0.0, min(ratio, 2.0))
    for (a, ca), (b, cb) in zip(stops, stops[1:]):
        if ratio <= b:
            t = (ratio - a) / (b - a)
            return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb))
    return "#a50026"


def _heatmap_section(data: Dashboard, axis: _TimeAxis) -> str:
    head = ("<h2>Feature drift</h2><p class='explain'>One row per feature, one column per monitored day. "
            "Colour is the feature's drift statistic (PSI for numeric, Jensen-Shannon distance for categorical) "
            "divided by its threshold: white is no change, amber is at the threshold, dark red twice it or more. "
            "A dot marks a feature the monitor counted as drifted (the effect reached its threshold and the "
            "corrected test agreed, or the null rate moved).</p>")
    names: list[str] = []
    for d in data.monitored:
        names += [n for n in d.features if n not in names]
    if not names:
        return head + "<p class='explain'>No feature was measured in this range.</p>"
    # Columns share the other charts' time axis; feature names go in the right margin.
    row_h, top, left, step = 20, 28, _LEFT, axis.step
    height = top + row_h * len(names) + 36
    out = [head, _svg_open("drift-heatmap", height, "drift per feature and day, relative to its threshold"),
           "<g class='cells'>"]
    for d in data.monitored:
        if not axis.contains(d.day):
            continue
        x = left + axis.index(d.day) * step
        for row, name in enumerate(names):
            entry = d.features.get(name)
            y = top + row * row_h
            value, threshold = (entry or {}).get("value"), (entry or {}).get("threshold")
            ratio = value / threshold if value is not None and threshold else None
            tip = (f"{name} on {d.day}: not measured" if entry is None or value is None else
                   f"{name} on {d.day}: {entry.get('effect') or 'statistic'} {_fmt(value)} (threshold "
                   f"{_fmt(threshold)}, {ratio:.2f}x){', drifted' if entry.get('drifted') else ''}")
            out.append(f"<rect class='cell' data-feature='{html.escape(name)}' data-day='{d.day}' "
                       f"x='{x + 0.5:.1f}' y='{y + 0.5:.1f}' width='{max(step - 1, 1):.1f}' height='{row_h - 1}' "
                       f"fill='{drift_colour(ratio)}'><title>{html.escape(tip)}</title></rect>")
            if entry and entry.get("drifted"):
                out.append(f"<circle class='drifted' cx='{x + step / 2:.1f}' cy='{y + row_h / 2:.1f}' r='3' "
                           f"fill='#000'/>")
    out.append("</g><g class='labels'>")
    for row, name in enumerate(names):
        out.append(f"<text x='{_W - _RIGHT + 6}' y='{top + row * row_h + 14}'>{_clip(name)}</text>")
    every = max(1, math.ceil(axis.n / 10))
    for i in range(0, axis.n, every):
        day = (axis.start + timedelta(days=i)).isoformat()
        out.append(f"<text x='{left + (i + 0.5) * step:.1f}' y='{top - 8}' text-anchor='middle'>{day[5:]}</text>")
    out.append("</g></svg>")
    out.append(_legend([(drift_colour(r), "border:1px solid #ccc", label) for r, label in
                        ((0.0, "0 (no change)"), (0.5, "half the threshold"), (1.0, "at the threshold"),
                         (2.0, "2x the threshold or more"), (None, "not measured"))]
                       + [("#000", "width:8px;height:8px;border-radius:50%", "drifted")]))
    return "".join(out)


def _clip(name: str, chars: int = 26) -> str:
    """A feature name that fits the right margin (the cell's tooltip carries the full name)."""
    return html.escape(name if len(name) <= chars else name[:chars - 1] + "\u2026")


def _drift_line_section(data: Dashboard, axis: _TimeAxis, chart_id: str, heading: str, explain: str,
                        label: str, value_field: str, threshold_field: str) -> str:
    head = f"<h2>{html.escape(heading)}</h2><p class='explain'>{html.escape(explain)}</p>"
    points = [(d.day, getattr(d, value_field), getattr(d, threshold_field)) for d in data.monitored
              if getattr(d, value_field) is not None and axis.contains(d.day)]
    if not points:
        return head + f"<p class='explain'>No {html.escape(label)} in this range.</p>"
    height, top, bottom = 230, 24, 190
    scale = _Scale([v for _, v, _ in points] + [t for _, _, t in points if t is not None], top, bottom, floor=0.0)
    out = [head, _svg_open(chart_id, height, f"{label} over time with its threshold"), scale.ticks(),
           axis.ticks(top, bottom)]
    thresholds = [(day, t) for day, _, t in points if t is not None]
    out.append(_step_line(axis, scale, thresholds, "#B2182B", "6 4", 1.5, f"threshold' data-threshold='{value_field}"))
    if thresholds:
        out.append(f"<text x='{_W - _RIGHT + 6}' y='{scale.y(thresholds[-1][1]) + 4:.1f}' fill='#B2182B'>"
                   f"threshold {_fmt(thresholds[-1][1])}</text>")
    coords = " ".join(f"{axis.x(day):.1f},{scale.y(v):.1f}" for day, v, _ in points)
    out.append(f"<polyline class='series' data-series='{value_field}' points='{coords}' fill='none' "
               f"stroke='#2C7BB6' stroke-width='2.2'/>")
    for day, v, t in points:
        over = t is not None and v >= t
        out.append(f"<circle cx='{axis.x(day):.1f}' cy='{scale.y(v):.1f}' r='3.5' fill='{'#B2182B' if over else '#2C7BB6'}'>"
                   f"<title>{html.escape(f'{label} on {day}: {_fmt(v)} (threshold {_fmt(t)})')}</title></circle>")
    out.append(axis.events(data.events, top, bottom))
    out.append("</svg>")
    out.append(_legend([("#2C7BB6", "height:3px", label), ("#fff", "border-top:1.5px dashed #B2182B;height:0",
                                                           "threshold (from the monitor's policy)")]
                       + _event_legend(data.events)))
    return "".join(out)


def _events_section(data: Dashboard) -> str:
    esc = html.escape
    out = ["<h2>Decisions and events</h2><p class='explain'>Each monitored day's decision, and every retrain "
           "request, promotion and rollback in the range (the triangles on the charts above).</p>",
           "<table id='events'><thead><tr><th>day</th><th>what</th><th></th><th>why</th></tr></thead><tbody>"]
    for e in data.events:
        colour, _, label = _EVENTS[e.kind]
        out.append(f"<tr data-kind='{e.kind}'><td>{esc(e.day or 'not shown')}</td><td><span class='swatch' "
                   f"style='background:{colour};height:4px'></span> {esc(label)}</td><td>{esc(e.title)}</td>"
                   f"<td>{esc(e.detail)}</td></tr>")
    out.append("</tbody></table><h3>Daily decisions, newest first</h3><table id='decisions'><thead><tr><th>day</th><th>decision</th><th>champion</th>"
               "<th>reason</th></tr></thead><tbody>")
    for d in reversed(data.monitored):
        colour = _STATUS_COLOURS.get(d.status, "#ffffff")
        out.append(f"<tr><td>{d.day}</td><td><span class='swatch' style='background:{colour}'></span> "
                   f"{esc(d.status.replace('_', ' '))}</td><td>{esc(_v(d.champion_version))}</td>"
                   f"<td>{esc(d.reason)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# publishing


def publish_dashboard(store: Store, artifact_root: str, model: str, *, run_prefix: str, day: str,
                      alias_history: Iterable[dict[str, Any]] = (), days: int = DEFAULT_DAYS,
                      client: Any = None, mlflow_run_id: str | None = None) -> str:
    """Render the dashboard as of a monitored day, write it as ``<run_prefix>/dashboard.html``
    and attach it to the monitor's MLflow run.

    Args:
        store, artifact_root, model: where the records live.
        run_prefix: the monitor run's prefix (``monitor/<day>/<run id>``).
        day: the monitored day (the last day shown).
        alias_history: the registry's champion moves.
        days: days shown.
        client, mlflow_run_id: the MLflow client and monitor run to attach ``dashboard.html`` to
            (skipped when either is None).

    Returns:
        The written page's URI.
    """
    data = load_dashboard(store, artifact_root, model, alias_history=alias_history, end_day=day, days=days)
    page = render_dashboard(data)
    uri = store.write_text(join(run_prefix, DASHBOARD_FILE), page)
    if client is not None and mlflow_run_id:
        from pipeline.runenv import log_text_artifacts

        log_text_artifacts(client, mlflow_run_id, {DASHBOARD_FILE: page})
    return uri

