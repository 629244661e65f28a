"""Drift measurement and the retraining rule.

Contract:
* ``measure_drift(spec, profile, current, ...)`` compares one monitor window with the champion's
  reference profile (:mod:`pipeline.profile`, written from its training window) and returns a
  :class:`DriftReport`. It reads nothing and writes nothing.
* ``decide_retrain(report, history, policy, ...)`` is a pure function from the report, the prior
  decisions and the :class:`~pipeline.config.DriftPolicy` to a :class:`RetrainDecision` whose
  ``to_dict()`` is the monitor's ``decision.json``.
* ``load_history(store, monitor_root, before_day)`` reads those prior ``decision.json`` files.
* ``render_report(report, decision, title=...)`` returns one self-contained HTML page.

Statistics, per raw feature of the spec:

* numeric: PSI of the current window on the reference quantile bins, a two-sample KS test of the
  reference ``sample`` against the current values, and the Wasserstein distance divided by the
  reference IQR (std when the IQR is 0) as a second, scale-free effect size;
* categorical: Jensen-Shannon distance (base 2) and L-infinity distance of the category shares,
  and a chi-squared test of homogeneity on the 2 x k count table;
* both: the absolute change of the null rate.

Effect size decides, the test guards: a window of many rows makes every trivial shift
"significant", and a tiny window makes large-looking shifts noise. A feature drifts when its effect
size reaches its threshold (PSI >= ``psi_threshold``, JS >= ``js_threshold``) and its
Benjamini-Hochberg adjusted p-value (across all features of the window) is below ``fdr_alpha``,
or when its null rate moved by at least ``null_rate_delta``.

PSI smoothing: every bin of both distributions gets a pseudo-count of ``PSI_PSEUDO_COUNT`` (0.5,
the Jeffreys prior) before the shares are taken, so a bin that is empty on one side costs a
finite amount that shrinks as the window grows, instead of an infinite PSI.

Unseen categories: a category the reference never saw is its own bin (reference count 0), which is
what makes a new category raise JS and the chi-squared statistic. When the reference profile lumped
its long tail into ``__other__``, current categories outside its named ones are counted there
instead, because the reference cannot tell them apart from its own tail.
"""

from __future__ import annotations

import base64
import html
import io
import math
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.artifacts import Record, day_key
from pipeline.config import DriftPolicy, ModelSpec, higher_is_better
from pipeline.errors import DriftlineError
from pipeline.profile import OTHER, PROFILE_VERSION, bin_counts
from pipeline.storage import Store

#: Pseudo-count added to every PSI bin on both sides (see the module docstring).
PSI_PSEUDO_COUNT = 0.5

#: Rule names a decision can be blocked by, in the order they are checked.
RULES = ("insufficient_data", "hysteresis", "cooldown", "min_new_rows", "budget")

_BOOTSTRAP_CELLS = 2_000_000


class DriftError(DriftlineError):
    """The inputs to a drift measurement are unusable (wrong profile version, missing features)."""


@dataclass(frozen=True)
class DriftReport(Record):
    """What one monitor window looks like next to the champion's reference profile.

    Attributes:
        window: ``[start, end)`` of the monitor window as ISO strings, when given.
        rows: rows in the current window.
        features: feature -> ``{"type", "statistics", "test", "p", "p_adjusted", "effect",
            "value", "threshold", "drifted", "reason", "importance", "null_rate", "histogram"}``;
            ``histogram`` holds the reference and current shares per bin or category.
        drifted_features: names of the drifted features, in spec order.
        weighted_drift: sum of the (normalised) importance of the drifted features.
        prediction: ``{"psi", "ks", "p", "threshold", "drifted", "rows", "histogram"}`` for the
            champion's scores, or ``None`` when no scores were given.
        performance: ``{"metric", "value", "ci", "confidence", "reference", "tolerance",
            "higher_is_better", "degraded", "rows", "note"}`` on labelled rows, or ``None``.
        insufficient: the window had fewer than ``drift.min_window_rows`` rows and was not judged.
        notes: sentences about anything unusual (skipped statistics, ignored importance keys).
    """

    window: tuple[str, str] | None
    rows: int
    features: dict[str, dict[str, Any]]
    drifted_features: list[str]
    weighted_drift: float
    prediction: dict[str, Any] | None
    performance: dict[str, Any] | None
    insufficient: bool
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MonitorRecord(Record):
    """The part of a prior ``decision.json`` the retraining rule looks back at.

    Attributes:
        day: ``YYYY-MM-DD`` of the monitor run.
        signal: the window showed a retrain signal.
        retrain: a retrain was requested.
        trigger_reason: one-line summary of the signal ("" when none).
        rows: rows in that window.
    """

    day: str
    signal: bool
    retrain: bool
    trigger_reason: str = ""
    rows: int = 0


@dataclass(frozen=True)
class RetrainDecision(Record):
    """Whether the monitor asks for a retrain, and why (written as ``decision.json``).

    Attributes:
        day: ``YYYY-MM-DD`` of the monitor run.
        retrain: a retrain is requested.
        signal: the window itself shows degraded performance or feature plus prediction drift.
        trigger_reason: one-line summary of the signal, passed to the retrain run ("" when none).
        reasons: full sentences explaining the outcome.
        blocked_by: names (from :data:`RULES`) of the rules that held a signal back.
        checks: rule -> ``{"value", "threshold", "passed", ...}``.
        policy: the drift policy values used.
        evidence: the :class:`DriftReport` as a dict.
        rows: rows in the window.
    """

    day: str
    retrain: bool
    signal: bool
    trigger_reason: str
    reasons: list[str]
    blocked_by: list[str]
    checks: dict[str, dict[str, Any]]
    policy: dict[str, Any]
    evidence: dict[str, Any]
    rows: int


def measure_drift(
    spec: ModelSpec,
    profile: dict[str, Any],
    current: pd.DataFrame,
    *,
    feature_importance: dict[str, float] | None = None,
    current_scores: np.ndarray | None = None,
    reference_scores: dict[str, Any] | None = None,
    labelled: pd.DataFrame | None = None,
    labelled_scores: np.ndarray | None = None,
    champion_test_metric: float | None = None,
    window: tuple[str, str] | None = None,
    seed: int = 0,
) -> DriftReport:
    """Compare a monitor window with the champion's reference profile.

    Args:
        spec: the model spec; its features are compared and its ``drift`` policy supplies every
            threshold (``promotion.confidence`` the level of the performance interval).
        profile: the champion's reference profile (``pipeline.profile`` format, version 1).
        current: the window's validated rows; must carry every spec feature.
        feature_importance: raw feature -> weight of the champion. Weights of derived features
            are split evenly over their input features; the result is normalised to sum to 1.
            ``None`` weighs every feature equally.
        current_scores: the champion's scores on ``current`` (prediction drift).
        reference_scores: the champion's score profile on its test window
            (``pipeline.profile.score_profile``).
        labelled: rows whose labels have arrived (spec target column present).
        labelled_scores: the champion's scores on ``labelled``.
        champion_test_metric: the champion's primary metric on its own test window.
        window: ``(start, end)`` of the monitor window, recorded in the report.
        seed: bootstrap seed.

    Returns:
        A :class:`DriftReport`. With fewer than ``drift.min_window_rows`` rows it is marked
        insufficient and nothing in it drifts.

    Raises:
        DriftError: the profile's version is not supported, the profile or the window lacks spec
            features, or a feature's profiled type disagrees with the spec.
    """
    policy = spec.drift
    version = profile.get("version")
    if version != PROFILE_VERSION:
        raise DriftError(
            f"reference profile of model {profile.get('model')!r} has version {version!r}; this monitor reads "
            f"version {PROFILE_VERSION}: re-run the champion's training to rewrite its profile.json"
        )
    ref_features = profile.get("features", {})
    missing_ref = [f for f in spec.features if f not in ref_features]
    if missing_ref:
        raise DriftError(
            f"reference profile of model {profile.get('model')!r} lacks spec features {missing_ref}: "
            "the champion was trained on a different spec; retrain it before monitoring"
        )
    rows = int(len(current))
    window_rec = (str(window[0]), str(window[1])) if window is not None else None
    if rows < policy.min_window_rows:
        return DriftReport(
            window=window_rec, rows=rows, features={}, drifted_features=[], weighted_drift=0.0,
            prediction=None, performance=None, insufficient=True,
            notes=[f"insufficient data: {rows} rows < drift.min_window_rows {policy.min_window_rows}; "
                   "the window is not judged and nothing drifts"],
        )
    missing_cur = [f for f in spec.features if f not in current.columns]
    if missing_cur:
        raise DriftError(
            f"monitor window ({rows} rows) lacks spec features {missing_cur}; present columns: "
            f"{sorted(map(str, current.columns))}"
        )
    notes: list[str] = []
    weights = _normalised_importance(spec, feature_importance, notes)
    features: dict[str, dict[str, Any]] = {}
    for name in spec.features:
        ref = ref_features[name]
        kind = "numeric" if name in spec.numeric_features else "categorical"
        if ref.get("type") != kind:
            raise DriftError(
                f"feature {name!r} is {kind} in spec {spec.name!r} but {ref.get('type')!r} in the reference profile"
            )
        measure = _numeric_feature if kind == "numeric" else _categorical_feature
        features[name] = measure(ref, current[name], policy, notes, name)

    adjusted = _bh_adjust([features[f]["p"] for f in spec.features])
    drifted: list[str] = []
    for name, p_adj in zip(spec.features, adjusted):
        entry = features[name]
        entry["p_adjusted"] = float(p_adj)
        entry["importance"] = weights[name]
        effect_hit = entry["value"] is not None and entry["value"] >= entry["threshold"]
        test_hit = p_adj < policy.fdr_alpha
        nulls_hit = entry["null_rate"]["drifted"]
        entry["drifted"] = bool((effect_hit and test_hit) or nulls_hit)
        entry["reason"] = _feature_reason(entry, effect_hit, test_hit, policy.fdr_alpha)
        if entry["drifted"]:
            drifted.append(name)

    prediction = None
    if current_scores is not None and reference_scores is not None:
        prediction = _prediction_drift(reference_scores, np.asarray(current_scores, dtype=float), policy)
    elif current_scores is not None or reference_scores is not None:
        notes.append("prediction drift not measured: needs both current_scores and reference_scores")

    performance = None
    if labelled is not None and labelled_scores is not None:
        performance = _realised_performance(spec, labelled, np.asarray(labelled_scores, dtype=float),
                                            champion_test_metric, seed)

    return DriftReport(
        window=window_rec, rows=rows, features=features, drifted_features=drifted,
        weighted_drift=float(sum(weights[f] for f in drifted)), prediction=prediction,
        performance=performance, insufficient=False, notes=notes,
    )


def load_history(store: Store, monitor_root: str, before_day: str, limit: int = 60) -> list[MonitorRecord]:
    """Prior monitor decisions: ``<monitor_root>/<YYYY-MM-DD>/decision.json`` strictly before a day.

    Args:
        store: storage holding ``monitor_root``.
        monitor_root: the model's monitor prefix (``<artifact_root>/<model>/monitor``).
        before_day: ``YYYY-MM-DD``; only earlier days are read (a re-run of a past date sees
            only what was known then).
        limit: keep at most this many, the most recent.

    Returns:
        The records, oldest first (newest last).

    Raises:
        StorageError: a listed decision file cannot be read or is not JSON.
    """
    cutoff = day_key(before_day)
    by_day: dict[str, str] = {}
    for uri in store.list(monitor_root):
        parts = uri.rstrip("/").split("/")
        if len(parts) < 2 or parts[-1] != "decision.json" or not _is_day(parts[-2]):
            continue
        if parts[-2] < cutoff:
            by_day[parts[-2]] = uri
    days = sorted(by_day)[-limit:] if limit > 0 else []
    return [MonitorRecord.from_dict(store.read_json(by_day[d])) for d in days]


def decide_retrain(
    report: DriftReport,
    history: list[MonitorRecord],
    policy: DriftPolicy,
    *,
    day: str,
    champion_data_end: str | None,
    new_rows_since_champion: int,
) -> RetrainDecision:
    """The retraining rule (pure).

    ``signal`` = realised performance degraded, OR (weighted feature drift >=
    ``weighted_drift_threshold`` AND prediction PSI >= ``prediction_psi_threshold``; unmeasured
    prediction drift does not count). ``retrain`` = signal AND every rule passes:

    * ``hysteresis``: the signal also held on each of the previous ``consecutive_windows - 1``
      calendar days (a missing day breaks the run);
    * ``cooldown``: no retrain was requested, and the champion's data does not end, within the
      ``cooldown_days`` days before ``day`` (a champion whose data ends on or after ``day`` also
      blocks: it is newer than the window);
    * ``min_new_rows``: ``new_rows_since_champion >= min_new_rows``;
    * ``budget``: fewer than ``max_retrains_per_period`` retrains were requested in the
      ``budget_period_days`` days ending at ``day``.

    An insufficient window never signals and is blocked by ``insufficient_data``. History records
    on or after ``day`` are ignored, so re-deciding a past day reproduces the original decision.

    Args:
        report: the window's drift report.
        history: prior decisions (any order).
        policy: the spec's drift policy.
        day: ``YYYY-MM-DD`` of this monitor run.
        champion_data_end: ``YYYY-MM-DD`` (exclusive end) of the champion's training data, if any.
        new_rows_since_champion: rows that arrived after the champion's data end.

    Returns:
        The :class:`RetrainDecision`, including every check's value and threshold.
    """
    today = date.fromisoformat(day_key(day))
    past = sorted((r for r in history if date.fromisoformat(day_key(r.day)) < today),
                  key=lambda r: r.day)
    by_day = {date.fromisoformat(day_key(r.day)): r for r in past}
    policy_values = policy.model_dump()
    evidence = report.to_dict()
    checks: dict[str, dict[str, Any]] = {}

    if report.insufficient:
        checks["insufficient_data"] = {"value": report.rows, "threshold": policy.min_window_rows, "passed": False}
        return RetrainDecision(
            day=today.isoformat(), retrain=False, signal=False, trigger_reason="",
            reasons=[f"The window has {report.rows} rows, fewer than min_window_rows {policy.min_window_rows}: "
                     "it is not judged and no retrain is requested."],
            blocked_by=["insufficient_data"], checks=checks, policy=policy_values, evidence=evidence,
            rows=report.rows,
        )

    signal, trigger, signal_reasons, signal_check = _signal(report, policy)
    checks["signal"] = signal_check

    run = 0
    if signal:
        run = 1
        while (prior := by_day.get(today - timedelta(days=run))) is not None and prior.signal:
            run += 1
    checks["hysteresis"] = {"value": run, "threshold": policy.consecutive_windows,
                            "passed": run >= policy.consecutive_windows,
                            "meaning": "consecutive calendar days with a signal, ending today"}

    last_retrain = max((d for d, r in by_day.items() if r.retrain), default=None)
    end = date.fromisoformat(day_key(champion_data_end)) if champion_data_end else None
    recent = [d for d in (last_retrain, end) if d is not None]
    latest = max(recent, default=None)
    since = (today - latest).days if latest is not None else None
    checks["cooldown"] = {
        "value": since, "threshold": policy.cooldown_days,
        "passed": since is None or since > policy.cooldown_days,
        "last_retrain": last_retrain.isoformat() if last_retrain else None,
        "champion_data_end": end.isoformat() if end else None,
        "meaning": "days since the later of the last retrain request and the champion's data end",
    }
    checks["min_new_rows"] = {"value": int(new_rows_since_champion), "threshold": policy.min_new_rows,
                              "passed": new_rows_since_champion >= policy.min_new_rows}
    in_period = [d for d, r in by_day.items() if r.retrain and (today - d).days < policy.budget_period_days]
    checks["budget"] = {"value": len(in_period), "threshold": policy.max_retrains_per_period,
                        "passed": len(in_period) < policy.max_retrains_per_period,
                        "period_days": policy.budget_period_days,
                        "meaning": "retrain requests in the period ending today"}

    reasons = list(signal_reasons)
    if not signal:
        reasons.append("No retrain: the window shows no retrain signal.")
        return RetrainDecision(day=today.isoformat(), retrain=False, signal=False, trigger_reason="",
                               reasons=reasons, blocked_by=[], checks=checks, policy=policy_values,
                               evidence=evidence, rows=report.rows)

    blocked = [rule for rule in RULES[1:] if not checks[rule]["passed"]]
    explain = {
        "hysteresis": f"hysteresis: the signal held {run} consecutive day(s), fewer than consecutive_windows "
                      f"{policy.consecutive_windows}",
        "cooldown": f"cooldown: {since} day(s) since {_cooldown_anchor(last_retrain, end, latest)}, "
                    f"within cooldown_days {policy.cooldown_days}",
        "min_new_rows": f"min_new_rows: {new_rows_since_champion} rows since the champion's data end, "
                        f"fewer than {policy.min_new_rows}",
        "budget": f"budget: {len(in_period)} retrain(s) already requested in the last {policy.budget_period_days} "
                  f"days, the maximum is {policy.max_retrains_per_period}",
    }
    if blocked:
        reasons.append("Retrain signal present but blocked by " + "; ".join(explain[b] for b in blocked) + ".")
    else:
        reasons.append(
            f"Retrain requested: the signal held {run} consecutive day(s) (>= {policy.consecutive_windows}), "
            f"{'no earlier retrain or champion data end' if since is None else f'{since} day(s) since the last retrain or champion data end'} "
            f"(cooldown {policy.cooldown_days}), {new_rows_since_champion} new rows (>= {policy.min_new_rows}), "
            f"{len(in_period)} retrain(s) in the last {policy.budget_period_days} days (< {policy.max_retrains_per_period})."
        )
    return RetrainDecision(day=today.isoformat(), retrain=not blocked, signal=True, trigger_reason=trigger,
                           reasons=reasons, blocked_by=blocked, checks=checks, policy=policy_values,
                           evidence=evidence, rows=report.rows)


def render_report(report: DriftReport, decision: RetrainDecision, *, title: str) -> str:
    """A self-contained HTML drift report (figures inlined as base64 PNG).

    Args:
        report: the window's drift report.
        decision: the decision taken on it.
        title: page title (e.g. ``"credit_default drift 2026-03-02"``).

    Returns:
        The HTML page as a string; it references no external file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def png(draw: Any) -> str:
        # A bare Figure with an Agg canvas: no pyplot state, nothing global left open.
        fig = Figure(figsize=(6.4, 2.6), dpi=80)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        draw(ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        fig.clear()
        return f'<img alt="histogram" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'

    def bars(hist: dict[str, Any], name: str) -> Any:
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

    esc = html.escape
    verdict = "RETRAIN" if decision.retrain else ("signal, blocked" if decision.signal else "no retrain")
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
        parts.append(f"<p>Blocked by: {esc(', '.join(decision.blocked_by))}</p>")
    window = f"{report.window[0]} to {report.window[1]}" if report.window else "unspecified window"
    parts.append(f"<p>Window: {esc(window)}; {report.rows} rows; weighted drift {report.weighted_drift:.3f}; "
                 f"drifted features: {esc(', '.join(report.drifted_features) or 'none')}.</p>")
    for note in report.notes:
        parts.append(f"<p><em>{esc(note)}</em></p>")
    if report.performance is not None:
        perf = report.performance
        ci = perf["ci"]
        ci_text = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "n/a"
        value = f"{perf['value']:.4f}" if perf["value"] is not None else "n/a"
        reference = f"{perf['reference']:.4f}" if perf["reference"] is not None else "n/a"
        parts.append(
            f"<h2>Realised performance</h2><p>{esc(perf['metric'])} {value} "
            f"({perf['confidence']:.0%} CI {ci_text}) on {perf['rows']} labelled rows vs champion test "
            f"{reference}, tolerance {perf['tolerance']}: {'DEGRADED' if perf['degraded'] else 'not degraded'}. "
            f"{esc(perf.get('note') or '')}</p>"
        )
    if report.prediction is not None:
        pred = report.prediction
        parts.append(f"<h2>Prediction drift</h2><p>PSI {pred['psi']:.4f} (threshold {pred['threshold']}), "
                     f"KS {pred['ks']:.4f}, p {pred['p']:.3g}: {'drifted' if pred['drifted'] else 'stable'}.</p>")
        parts.append(f"<div class='fig'>{png(bars(pred['histogram'], 'champion scores'))}</div>")
    if report.features:
        parts.append("<h2>Features</h2><table><tr><th>feature</th><th>type</th><th>effect</th><th>value</th>"
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
                parts.append(f"<div class='fig'>{png(bars(f['histogram'], name))}<br>"
                             f"<small>{esc(f['reason'])}</small></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _cooldown_anchor(last_retrain: date | None, end: date | None, latest: date | None) -> str:
    if latest is not None and latest == last_retrain:
        return f"the last retrain request on {latest.isoformat()}"
    return f"the champion's data end {latest.isoformat() if latest else 'n/a'}"


def _normalised_importance(spec: ModelSpec, importance: dict[str, float] | None, notes: list[str]) -> dict[str, float]:
    """Importance per raw feature, summing to 1; derived features' weight goes to their inputs."""
    if importance is None:
        return {f: 1.0 / len(spec.features) for f in spec.features}
    raw = {f: 0.0 for f in spec.features}
    derived = {d.name: [c for c in d.inputs() if c in raw] for d in spec.derived_features}
    ignored = []
    for name, weight in importance.items():
        if name in raw:
            raw[name] += float(weight)
        elif derived.get(name):
            for col in derived[name]:
                raw[col] += float(weight) / len(derived[name])
        else:
            ignored.append(name)
    if ignored:
        notes.append(f"feature importance keys not mapped to raw features were ignored: {sorted(ignored)}")
    total = sum(raw.values())
    if total <= 0:
        notes.append("feature importance sums to 0 over the spec's features: weighing features equally")
        return {f: 1.0 / len(spec.features) for f in spec.features}
    return {f: w / total for f, w in raw.items()}


def _bh_adjust(p_values: list[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1), in input order."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out


def _psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index, sum((c - r) * ln(c / r)) over pseudo-count smoothed shares."""
    r = np.asarray(reference_counts, dtype=float) + PSI_PSEUDO_COUNT
    c = np.asarray(current_counts, dtype=float) + PSI_PSEUDO_COUNT
    r /= r.sum()
    c /= c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def _ks(reference_sample: np.ndarray, current: np.ndarray) -> Any:
    """Two-sample KS test; scipy falls back from the exact to the asymptotic p-value on large or
    tied samples with a RuntimeWarning per call, which would flood every monitor run's log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful", category=RuntimeWarning)
        return stats.ks_2samp(reference_sample, current)


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (in [0, 1]); inputs are counts or shares."""
    p = np.asarray(p, dtype=float) / np.sum(p)
    q = np.asarray(q, dtype=float) / np.sum(q)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def _null_rate(ref: dict[str, Any], policy: DriftPolicy, is_null: np.ndarray) -> dict[str, Any]:
    current = float(is_null.mean()) if is_null.size else 0.0
    reference = float(ref.get("null_rate", 0.0))
    delta = abs(current - reference)
    return {"reference": reference, "current": current, "delta": delta, "threshold": policy.null_rate_delta,
            "drifted": bool(delta >= policy.null_rate_delta)}


def _bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    fmt = lambda v: f"{v:.3g}"  # noqa: E731
    return ([f"<={fmt(edges[0])}"] + [f"{fmt(a)}-{fmt(b)}" for a, b in zip(edges[:-1], edges[1:])]
            + [f">{fmt(edges[-1])}"])


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def _numeric_feature(ref: dict[str, Any], series: pd.Series, policy: DriftPolicy, notes: list[str],
                     name: str) -> dict[str, Any]:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = values[np.isfinite(values)]
    null_rate = _null_rate(ref, policy, ~np.isfinite(values))
    edges = list(ref.get("bin_edges") or [])
    ref_counts = np.asarray(ref.get("bin_counts") or [0], dtype=float)
    sample = np.asarray(ref.get("sample") or [], dtype=float)
    entry: dict[str, Any] = {"type": "numeric", "test": "ks", "effect": "psi", "threshold": policy.psi_threshold,
                             "null_rate": null_rate}
    if finite.size == 0 or sample.size == 0 or ref_counts.sum() == 0:
        side = "current window" if finite.size == 0 else "reference profile"
        notes.append(f"{name}: no non-null values in the {side}; only its null rate is compared")
        entry.update(value=None, p=1.0, statistics={"current_rows": int(finite.size)},
                     histogram={"labels": [], "reference": [], "current": []})
        return entry
    cur_counts = np.asarray(bin_counts(finite, edges), dtype=float)
    psi = _psi(ref_counts, cur_counts)
    ks = _ks(sample, finite)
    q = ref.get("quantiles") or {}
    iqr = float(q["0.75"]) - float(q["0.25"]) if "0.75" in q and "0.25" in q else 0.0
    scale = iqr if iqr > 0 else float(ref.get("std") or 0.0)
    wasserstein = float(stats.wasserstein_distance(sample, finite))
    entry.update(
        value=psi, p=float(ks.pvalue),
        statistics={
            "psi": psi, "ks": float(ks.statistic), "wasserstein": wasserstein, "wasserstein_scale": scale,
            "wasserstein_normalised": wasserstein / scale if scale > 0 else None,
            "reference_mean": ref.get("mean"), "current_mean": float(finite.mean()),
            "current_rows": int(finite.size),
        },
        histogram={"labels": _bin_labels(edges), "reference": _shares(ref_counts), "current": _shares(cur_counts)},
    )
    return entry


def _categorical_feature(ref: dict[str, Any], series: pd.Series, policy: DriftPolicy, notes: list[str],
                         name: str) -> dict[str, Any]:
    is_null = series.isna().to_numpy()
    null_rate = _null_rate(ref, policy, is_null)
    ref_freq = {str(k): int(v) for k, v in (ref.get("frequencies") or {}).items()}
    cur_freq = series[~is_null].astype(str).value_counts()
    lump = OTHER in ref_freq
    counts: dict[str, int] = {}
    for cat, n in cur_freq.items():
        key = cat if cat in ref_freq or not lump else OTHER
        counts[key] = counts.get(key, 0) + int(n)
    categories = list(ref_freq) + sorted(c for c in counts if c not in ref_freq)
    r = np.array([ref_freq.get(c, 0) for c in categories], dtype=float)
    c = np.array([counts.get(k, 0) for k in categories], dtype=float)
    entry: dict[str, Any] = {"type": "categorical", "test": "chi2", "effect": "js", "threshold": policy.js_threshold,
                             "null_rate": null_rate}
    if r.sum() == 0 or c.sum() == 0:
        side = "current window" if c.sum() == 0 else "reference profile"
        notes.append(f"{name}: no non-null values in the {side}; only its null rate is compared")
        entry.update(value=None, p=1.0, statistics={"current_rows": int(c.sum())},
                     histogram={"labels": [], "reference": [], "current": []})
        return entry
    js = _js_distance(r, c)
    linf = float(np.max(np.abs(r / r.sum() - c / c.sum())))
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        chi2, p, dof = 0.0, 1.0, 0
    else:
        res = stats.chi2_contingency(table)
        chi2, p, dof = float(res.statistic), float(res.pvalue), int(res.dof)
    unseen = [k for k in categories if k not in ref_freq]
    entry.update(
        value=js, p=p,
        statistics={"js": js, "linf": linf, "chi2": chi2, "dof": dof, "unseen_categories": unseen,
                    "current_rows": int(c.sum())},
        histogram={"labels": categories, "reference": _shares(r), "current": _shares(c)},
    )
    return entry


def _feature_reason(entry: dict[str, Any], effect_hit: bool, test_hit: bool, alpha: float) -> str:
    effect = entry["effect"].upper()
    nr = entry["null_rate"]
    if entry["value"] is None:
        text = f"{effect} not computable"
    else:
        text = (f"{effect} {entry['value']:.3f} {'>=' if effect_hit else '<'} {entry['threshold']}, "
                f"adjusted p {entry['p_adjusted']:.3g} {'<' if test_hit else '>='} {alpha}")
    text += (f"; null rate {nr['reference']:.3f} -> {nr['current']:.3f} "
             f"(delta {nr['delta']:.3f} {'>=' if nr['drifted'] else '<'} {nr['threshold']})")
    unseen = entry["statistics"].get("unseen_categories")
    if unseen:
        text += f"; categories the reference never saw: {', '.join(unseen)}"
    return text


def _prediction_drift(reference: dict[str, Any], scores: np.ndarray, policy: DriftPolicy) -> dict[str, Any]:
    finite = scores[np.isfinite(scores)]
    edges = list(reference.get("bin_edges") or [])
    ref_counts = np.asarray(reference.get("bin_counts") or [0], dtype=float)
    sample = np.asarray(reference.get("sample") or [], dtype=float)
    if finite.size == 0 or sample.size == 0:
        raise DriftError(
            f"prediction drift needs scores on both sides: {finite.size} finite current scores, "
            f"{sample.size} reference sample values; check the champion's score profile"
        )
    cur_counts = np.asarray(bin_counts(finite, edges), dtype=float)
    psi = _psi(ref_counts, cur_counts)
    ks = _ks(sample, finite)
    return {"psi": psi, "ks": float(ks.statistic), "p": float(ks.pvalue), "threshold": policy.prediction_psi_threshold,
            "drifted": bool(psi >= policy.prediction_psi_threshold), "rows": int(finite.size),
            "reference_mean": reference.get("mean"), "current_mean": float(finite.mean()),
            "histogram": {"labels": _bin_labels(edges), "reference": _shares(ref_counts),
                          "current": _shares(cur_counts)}}


def _metric_batch(metric: str, y: np.ndarray, s: np.ndarray, threshold: float) -> np.ndarray:
    """``metric`` for each row of 2-D label and score arrays (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "roc_auc":
            # Mann-Whitney U from mid-ranks: equals the trapezoidal ROC AUC, ties included.
            ranks = stats.rankdata(s, axis=1)
            pos = y.sum(axis=1)
            neg = y.shape[1] - pos
            u = (ranks * y).sum(axis=1) - pos * (pos + 1) / 2
            return np.where((pos > 0) & (neg > 0), u / (pos * neg), np.nan)
        if metric == "brier":
            return np.mean((s - y) ** 2, axis=1)
        if metric == "log_loss":
            p = np.clip(s, np.finfo(float).eps, 1 - np.finfo(float).eps)
            return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p), axis=1)
        if metric == "rmse":
            return np.sqrt(np.mean((s - y) ** 2, axis=1))
        if metric == "mae":
            return np.mean(np.abs(s - y), axis=1)
        if metric == "r2":
            total = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
            return np.where(total > 0, 1 - np.sum((y - s) ** 2, axis=1) / total, np.nan)
    from sklearn.metrics import average_precision_score, f1_score

    out = np.full(y.shape[0], np.nan)
    for i in range(y.shape[0]):
        if metric == "pr_auc":
            if 0 < y[i].sum() < y.shape[1]:
                out[i] = average_precision_score(y[i], s[i])
        elif metric == "f1":
            out[i] = f1_score(y[i], s[i] >= threshold, zero_division=0.0)
        else:
            raise DriftError(f"unknown metric {metric!r} for realised performance")
    return out


def _realised_performance(spec: ModelSpec, labelled: pd.DataFrame, scores: np.ndarray,
                          reference: float | None, seed: int) -> dict[str, Any]:
    policy = spec.drift
    metric = spec.primary_metric
    better_high = higher_is_better(metric)
    confidence = spec.promotion.confidence
    if spec.target_column not in labelled.columns:
        raise DriftError(f"labelled rows lack the target column {spec.target_column!r}")
    if len(scores) != len(labelled):
        raise DriftError(f"{len(scores)} labelled scores for {len(labelled)} labelled rows")
    y_all = pd.to_numeric(labelled[spec.target_column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    keep = np.isfinite(y_all) & np.isfinite(scores)
    y, s = y_all[keep], scores[keep]
    out: dict[str, Any] = {"metric": metric, "value": None, "ci": None, "confidence": confidence,
                           "reference": reference, "tolerance": policy.performance_tolerance,
                           "higher_is_better": better_high, "degraded": False, "rows": int(y.size), "note": ""}
    if y.size < policy.min_window_rows:
        out["note"] = f"{y.size} labelled rows < min_window_rows {policy.min_window_rows}: not judged"
        return out
    value = float(_metric_batch(metric, y[None, :], s[None, :], spec.params.decision_threshold)[0])
    if not np.isfinite(value):
        out["note"] = f"{metric} is undefined on these labels (a single class?)"
        return out
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // y.size)
    boots: list[np.ndarray] = []
    remaining = policy.n_bootstrap
    while remaining > 0:
        idx = rng.integers(0, y.size, size=(min(chunk, remaining), y.size))
        boots.append(_metric_batch(metric, y[idx], s[idx], spec.params.decision_threshold))
        remaining -= idx.shape[0]
    sample = np.concatenate(boots)
    sample = sample[np.isfinite(sample)]
    alpha = (1 - confidence) / 2
    lo, hi = (float(v) for v in np.quantile(sample, [alpha, 1 - alpha]))
    out.update(value=value, ci=[lo, hi])
    if reference is None:
        out["note"] = "no champion test metric given: degradation not judged"
        return out
    if better_high:
        degraded = hi < reference - policy.performance_tolerance
        out["note"] = (f"optimistic bound {hi:.4f} {'<' if degraded else '>='} champion test {reference:.4f} "
                       f"- tolerance {policy.performance_tolerance}")
    else:
        degraded = lo > reference + policy.performance_tolerance
        out["note"] = (f"optimistic bound {lo:.4f} {'>' if degraded else '<='} champion test {reference:.4f} "
                       f"+ tolerance {policy.performance_tolerance}")
    out["degraded"] = bool(degraded)
    return out


def _signal(report: DriftReport, policy: DriftPolicy) -> tuple[bool, str, list[str], dict[str, Any]]:
    perf = report.performance
    degraded = bool(perf and perf["degraded"])
    pred = report.prediction
    feature_hit = report.weighted_drift >= policy.weighted_drift_threshold
    pred_psi = pred["psi"] if pred is not None else None
    pred_hit = pred_psi is not None and pred_psi >= policy.prediction_psi_threshold
    drift_hit = feature_hit and pred_hit
    n = len(report.features)
    drifted = ", ".join(report.drifted_features) or "none"
    reasons = []
    if perf is not None and perf["value"] is not None and perf["reference"] is not None:
        lo, hi = perf["ci"]
        reasons.append(
            f"Realised {perf['metric']} {perf['value']:.4f} ({perf['confidence']:.0%} CI {lo:.4f}-{hi:.4f}) on "
            f"{perf['rows']} labelled rows vs champion test {perf['reference']:.4f}: "
            f"{'degraded beyond' if degraded else 'within'} the tolerance {policy.performance_tolerance}."
        )
    elif perf is not None:
        reasons.append(f"Realised {perf['metric']} not judged: {perf['note']}.")
    else:
        reasons.append("Realised performance not measured: no labelled rows yet.")
    pred_text = (f"prediction PSI {pred_psi:.3f} {'>=' if pred_hit else '<'} {policy.prediction_psi_threshold}"
                 if pred_psi is not None else "prediction drift not measured")
    reasons.append(
        f"Feature drift: {len(report.drifted_features)} of {n} features drifted ({drifted}), weighted "
        f"{report.weighted_drift:.3f} {'>=' if feature_hit else '<'} {policy.weighted_drift_threshold}; {pred_text}."
    )
    triggers = []
    if degraded:
        triggers.append(f"realised {perf['metric']} degraded ({perf['note']})")
    if drift_hit:
        triggers.append(f"feature drift {report.weighted_drift:.3f} on {drifted} with prediction PSI {pred_psi:.3f}")
    check = {"value": bool(degraded or drift_hit), "threshold": True, "passed": bool(degraded or drift_hit),
             "performance_degraded": degraded, "weighted_drift": report.weighted_drift,
             "weighted_drift_threshold": policy.weighted_drift_threshold, "prediction_psi": pred_psi,
             "prediction_psi_threshold": policy.prediction_psi_threshold}
    return bool(degraded or drift_hit), "; ".join(triggers), reasons, check
