"""The retraining rule: is keeping the champion worth more than a retrain, since when, and how.

Contract:
* Every monitor day adds :class:`Observation` s of the champion's primary metric: *realised* on
  the rows whose labels have arrived (``label_delay_days`` old) and, for binary models,
  *estimated* without labels on today's rows (:mod:`pipeline.estimate`). Each is turned into a
  normalised **deficit** against the champion's reference (its metric on its own test window;
  for the estimate, the estimate on that same window, so the estimator's bias cancels) and a
  z-score: ``deficit / se``. Units: :class:`pipeline.config.CostPolicy`.
* :func:`decide_retrain` is pure. From today's observations, the prior monitor records of the
  same champion and the outcomes of earlier retrain requests it:

  1. **detects a change** with a one-sided CUSUM on the daily z-scores (realised where labels
     exist, estimated where they do not yet): ``S = max(0, S + z - cusum_k)``, alarm when
     ``S > cusum_h``; the change point is the first day of the run of positive ``S`` that raised
     the alarm (the classic CUSUM change-point estimate). A run of days with importance-weighted
     feature drift is reported as a *feature change* (evidence, never a trigger by itself);
  2. **forecasts the loss of keeping the champion** over ``costs.horizon_days``: the level of
     the deficit since the change point (inverse-variance weighted mean, with its interval) plus
     a trend when one is significant, summed over the horizon (never below 0);
  3. **requests a retrain** when that expected loss exceeds ``costs.retrain`` (alpha) and its
     lower bound is above zero -- subject to the guards: enough labelled post-change rows for a
     sound test (``adaptation.min_post_change_rows``; otherwise the record says "waiting for N
     more labelled rows after <day>"), or, for a change seen only by the label-free estimate,
     ``drift.consecutive_windows`` days of it with feature drift (a covariate-shift retrain that
     re-weights the labelled rows towards today's feature mix); ``drift.cooldown_days`` since the
     last request; ``drift.max_retrains_per_period`` (counting only requests whose retrain could
     have promoted: completed ones and ones still pending);
  4. **adapts to a covariate shift before labels arrive**: when the features the champion
     relies on have shifted (importance-weighted drift at ``drift.weighted_drift_threshold``)
     and its predictions moved with them (prediction PSI at ``drift.prediction_psi_threshold``)
     for ``drift.consecutive_windows`` days, the loss cannot be priced yet (the label-free
     estimate assumes the calibration still holds, which a shift into unseen regions breaks),
     so one importance-weighted retrain (``kind: shift``) is requested for that shift; the
     labels then decide, through 1-3 and 5. A shift on features the champion does not rely on
     is reported and never acted on;
  5. **catches up**: a champion trained after a change on few post-change rows is retrained
     again once ``adaptation.catch_up_factor`` times as many labelled post-change rows exist
     (while the change still falls inside the spec's normal windows).

* :func:`recorded_change` gives the change point a scheduled retrain anchors its windows at.
* :func:`load_history` reads the prior ``decision.json`` files (a re-run of a past date sees only
  what was known then).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from pipeline import metrics
from pipeline.artifacts import Record, day_key
from pipeline.config import ModelSpec, tolerance_value
from pipeline.storage import ObjectNotFound, Store

#: Guards a retrain request can be held back by, in the order they are checked.
GUARDS = ("insufficient_data", "waiting_for_labels", "consecutive_windows", "cooldown", "budget")
#: Outcomes of a retrain run that count against the budget (it could have promoted).
SPENT_OUTCOMES = ("promoted", "not_promoted")
_PENDING_DAYS = 2
_Z_CONFIDENCE = 1.6448536269514722  # one-sided 95 %


@dataclass(frozen=True)
class Observation(Record):
    """One day's evidence about the champion's primary metric.

    Attributes:
        day: the data day the rows are from (``YYYY-MM-DD``).
        source: ``realised`` (labels) or ``estimated`` (label-free).
        metric: the primary metric.
        value, se: the metric on that day's rows and its bootstrap standard error.
        lower, upper: its interval.
        reference, reference_se: what the champion achieved on its own test window (for an
            estimate: the estimate there).
        deficit: normalised (see :class:`pipeline.config.CostPolicy`) and oriented: positive =
            worse than the reference.
        z: ``deficit`` over the combined standard error (normalised).
        rows: rows behind the value.
        degraded: the optimistic bound is worse than the reference by more than
            ``drift.performance_tolerance`` (for the daily report).
        champion_version: the model observed.
    """

    day: str
    source: str
    metric: str
    value: float
    se: float
    lower: float | None
    upper: float | None
    reference: float
    reference_se: float | None
    deficit: float
    z: float
    rows: int
    degraded: bool
    champion_version: str | None = None


@dataclass(frozen=True)
class MonitorRecord(Record):
    """What the rule reads back from a prior monitor ``decision.json``.

    Attributes:
        day: ``YYYY-MM-DD`` of the monitor run.
        status: ``retrain``, ``no_retrain``, ``waiting``, ``bad_data``, ...
        retrain: a retrain was requested.
        retrain_kind: ``change`` or ``catch_up`` when requested.
        champion_version: the champion monitored that day.
        observations: that day's :class:`Observation` s as dicts.
        feature_drift: ``{"weighted", "threshold", "drifted", "prediction_psi", "window_day"}``.
        change: the change that was active that day, or ``None``.
        rows: rows in that day's window.
        checks: that day's guard checks (the labelled rows a request was made with).
    """

    day: str
    status: str = ""
    retrain: bool = False
    retrain_kind: str | None = None
    champion_version: str | None = None
    observations: list[dict[str, Any]] = field(default_factory=list)
    feature_drift: dict[str, Any] | None = None
    change: dict[str, Any] | None = None
    rows: int = 0
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChampionState(Record):
    """What the rule needs to know about the champion.

    Attributes:
        version: registry version.
        data_end: ``YYYY-MM-DD``: its run's as-of (exclusive end of the rows it could read).
        labelled_end: ``data_end - label_delay_days``: its labels end here, so realised
            performance is only judged on rows from this day on.
        change_point: the change its training windows were anchored at, if any.
        post_change_rows: labelled rows after ``change_point`` it was trained and tested on.
    """

    version: str
    data_end: str
    labelled_end: str
    change_point: str | None = None
    post_change_rows: int = 0


@dataclass(frozen=True)
class RetrainDecision(Record):
    """Whether the monitor asks for a retrain, and why (the core of ``decision.json``).

    Attributes:
        day: ``YYYY-MM-DD`` of the monitor run.
        retrain: a retrain is requested.
        kind: ``change`` (a detected change costs more than a retrain) or ``catch_up``;
            ``None`` when nothing is requested.
        mode: ``labelled`` (post-change labelled rows exist for train/valid/test) or
            ``covariate`` (label-free: re-weight labelled rows towards today's feature mix).
        status: ``retrain``, ``waiting`` (a costly change, too few labelled rows yet),
            ``held`` (a guard holds it), ``no_retrain``.
        signal: the evidence says keeping the champion costs more than a retrain.
        trigger_reason: one line passed to the retrain run ("" when none).
        reasons: full sentences explaining the outcome.
        blocked_by: guards (from :data:`GUARDS`) that held a signal back.
        change: ``{"day", "detector", "alarm_day", "cusum", "evidence"}`` or ``None``.
        feature_change: ``{"day", "days", "weighted"}`` or ``None``.
        forecast: level, trend, horizon, expected loss and its interval, alpha, and the arithmetic.
        checks: guard -> ``{"value", "threshold", "passed", ...}``.
        observations: today's observations (dicts).
        series: the deficit series the rule used (day, source, deficit, z, cusum).
        waiting: "waiting for N more labelled rows after <day>" or ``None``.
        policy: the drift, cost and adaptation policies used.
        rows: rows in today's window.
        anchor: ``YYYY-MM-DD`` the requested retrain anchors its windows at (the change point,
            the shift's start, or the champion's own change for a catch-up), or ``None``.
    """

    day: str
    retrain: bool
    kind: str | None
    mode: str | None
    status: str
    signal: bool
    trigger_reason: str
    reasons: list[str]
    blocked_by: list[str]
    change: dict[str, Any] | None
    feature_change: dict[str, Any] | None
    forecast: dict[str, Any] | None
    checks: dict[str, dict[str, Any]]
    observations: list[dict[str, Any]]
    series: list[dict[str, Any]]
    waiting: str | None
    policy: dict[str, Any]
    rows: int
    anchor: str | None = None


# --------------------------------------------------------------------------------------------
# observations


def observation(spec: ModelSpec, *, day: str, source: str, value: float | None, se: float | None,
                lower: float | None, upper: float | None, reference: float | None,
                reference_se: float | None, rows: int, champion_version: str | None) -> Observation | None:
    """An :class:`Observation` of the primary metric, or ``None`` when it cannot be judged
    (no value, no reference, no standard error)."""
    metric = spec.primary_metric
    if value is None or reference is None or se is None or not math.isfinite(value):
        return None
    sign = 1.0 if metrics.higher_is_better(metric) else -1.0
    scale = 1.0 if metrics.get(metric).bounded else abs(reference) or 1.0
    deficit = sign * (reference - value) / scale
    total_se = math.sqrt(se ** 2 + (reference_se or 0.0) ** 2) / scale
    z = deficit / total_se if total_se > 0 else (math.inf if deficit > 0 else 0.0)
    tolerance = tolerance_value(spec.drift.performance_tolerance, reference=reference, se=se)
    optimistic = upper if sign > 0 else lower
    degraded = optimistic is not None and sign * (reference - optimistic) > tolerance
    return Observation(day=day_key(day), source=source, metric=metric, value=float(value), se=float(se),
                       lower=lower, upper=upper, reference=float(reference), reference_se=reference_se,
                       deficit=float(deficit), z=float(min(z, 1e6)), rows=int(rows), degraded=bool(degraded),
                       champion_version=champion_version)


# --------------------------------------------------------------------------------------------
# history


def load_history(store: Store, monitor_root: str, before_day: str, limit: int = 120) -> list[MonitorRecord]:
    """Prior monitor decisions strictly before a day: each day's latest completed run
    (``<monitor_root>/<YYYY-MM-DD>/latest.json``; a record from before run ids,
    ``<YYYY-MM-DD>/decision.json``, is read too).

    Args:
        store: storage holding ``monitor_root``.
        monitor_root: the model's monitor prefix (``<artifact_root>/<model>/monitor``).
        before_day: ``YYYY-MM-DD``; only earlier days are read (a re-run of a past date sees
            only what was known then).
        limit: keep at most this many, the most recent.

    Returns:
        The records, oldest first.

    Raises:
        StorageError: a listed record cannot be read or is not JSON.
    """
    cutoff = day_key(before_day)
    pointers: dict[str, str] = {}
    legacy: dict[str, str] = {}
    for uri in store.list(monitor_root):
        parts = uri.rstrip("/").split("/")
        if len(parts) < 2 or not _is_day(parts[-2]) or parts[-2] >= cutoff:
            continue
        if parts[-1] == "latest.json":
            pointers[parts[-2]] = uri
        elif parts[-1] == "decision.json":
            legacy[parts[-2]] = uri
    days = sorted(set(pointers) | set(legacy))[-limit:] if limit > 0 else []
    out = []
    for d in days:
        uri = store.read_json(pointers[d])["decision_uri"] if d in pointers else legacy[d]
        out.append(_record(store.read_json(uri)))
    return out


def _record(data: dict[str, Any]) -> MonitorRecord:
    data = dict(data)
    data.setdefault("retrain_kind", data.get("kind"))
    return MonitorRecord.from_dict(data)


def recorded_change(store: Store, monitor_root: str, as_of_day: str) -> dict[str, Any] | None:
    """The latest change the monitor recorded before ``as_of_day`` (``{"day", "detector", ...}``),
    which scheduled retrains anchor their windows at; ``None`` when none was recorded."""
    try:
        history = load_history(store, monitor_root, as_of_day)
    except ObjectNotFound:
        return None
    for record in reversed(history):
        if record.change and record.change.get("day"):
            return dict(record.change)
    return None


# --------------------------------------------------------------------------------------------
# the rule


def decide_retrain(spec: ModelSpec, *, day: str, champion: ChampionState, observations: list[Observation],
                   feature_drift: dict[str, Any] | None, rows: int, history: list[MonitorRecord],
                   retrain_outcomes: dict[str, str] | None = None, insufficient: bool = False) -> RetrainDecision:
    """The retraining rule (pure; see the module docstring).

    Args:
        spec: the model spec (``drift``, ``costs``, ``adaptation``, ``windows``, label delay).
        day: ``YYYY-MM-DD`` of this monitor run.
        champion: the champion's state.
        observations: today's observations of the champion (realised and/or estimated).
        feature_drift: today's ``{"weighted", "threshold", "drifted", "prediction_psi"}``.
        rows: rows in today's window.
        history: prior monitor records (any order; those on or after ``day`` are ignored).
        retrain_outcomes: request day -> status of the retrain run it started (``promoted``,
            ``not_promoted``, ``failed``, ...); a request with no entry is pending.
        insufficient: today's window has too few rows to be judged.

    Returns:
        The :class:`RetrainDecision`, with every number behind it.
    """
    policy, costs, adapt = spec.drift, spec.costs, spec.adaptation
    today = date.fromisoformat(day_key(day))
    past = sorted((r for r in history if date.fromisoformat(day_key(r.day)) < today), key=lambda r: r.day)
    outcomes = retrain_outcomes or {}
    policy_values = {"drift": policy.model_dump(), "costs": costs.model_dump(), "adaptation": adapt.model_dump(),
                     "label_delay_days": spec.label_delay_days}
    todays = [o.to_dict() for o in observations]
    checks: dict[str, dict[str, Any]] = {}

    series = _series(past, observations, champion)
    change = _active_change(series, policy.cusum_k, policy.cusum_h, policy.consecutive_windows)
    feature_change = _feature_change(past, feature_drift, today)
    forecast = _forecast(series, change, spec, today)

    common = dict(day=today.isoformat(), change=change, feature_change=feature_change, forecast=forecast,
                  observations=todays, series=series, policy=policy_values, rows=rows)
    if insufficient:
        checks["insufficient_data"] = {"value": rows, "threshold": policy.min_window_rows, "passed": False}
        return RetrainDecision(retrain=False, kind=None, mode=None, status="no_retrain", signal=False,
                               trigger_reason="", blocked_by=["insufficient_data"], checks=checks, waiting=None,
                               reasons=[f"The window has {rows} rows, fewer than drift.min_window_rows "
                                        f"{policy.min_window_rows}: it is not judged."], **common)

    reasons = _describe(series, change, feature_change, forecast, spec)
    signal = bool(change and forecast and forecast["expected_loss"] > costs.retrain and forecast["lower"] > 0)
    kind = mode = waiting = anchor = None
    trigger = ""
    if signal:
        kind, anchor = "change", change["day"]
        mode = "labelled" if change["source"] == "realised" else "covariate"
        post_rows = _post_change_rows(series, change["day"], champion)
        if mode == "labelled":
            need = adapt.min_post_change_rows
            checks["waiting_for_labels"] = {"value": post_rows, "threshold": need, "passed": post_rows >= need,
                                            "meaning": f"labelled rows since the change on {change['day']}"}
            if post_rows < need:
                waiting = f"waiting for {need - post_rows} more labelled rows after {change['day']}"
        else:
            run = _label_free_run(series, policy.cusum_k)
            drifting = bool(feature_change)
            checks["consecutive_windows"] = {
                "value": run, "threshold": policy.consecutive_windows,
                "passed": run >= policy.consecutive_windows and drifting, "feature_drift": drifting,
                "meaning": "days in a row the label-free estimate showed the loss, with feature drift"}
        trigger = (f"{'realised' if mode == 'labelled' else 'estimated'} {spec.primary_metric} down since "
                   f"{change['day']}: expected loss {forecast['expected_loss']:.3g} over {costs.horizon_days} days "
                   f"> alpha {costs.retrain:g}")
    elif (shift := _unpriced_shift(feature_change, champion, past, policy.consecutive_windows)) is not None:
        checks["shift"] = shift
        if shift["passed"]:
            signal, kind, mode, anchor = True, "shift", "covariate", shift["day"]
            trigger = (f"covariate shift since {shift['day']} on {', '.join(shift['features']) or 'the features'} "
                       f"(weighted drift {shift['weighted']:.2f}, prediction PSI {shift['prediction_psi']:.2f}) for "
                       f"{shift['value']} day(s): importance-weighted retrain before labels arrive")
    else:
        catch = _catch_up(series, champion, spec, today)
        if catch is not None:
            checks["catch_up"] = catch
            if catch["passed"]:
                signal, kind, mode, anchor = True, "catch_up", "labelled", champion.change_point
                trigger = (f"catch-up: {catch['value']} labelled rows since the change on {champion.change_point}, "
                           f"{catch['factor']:g}x the {champion.post_change_rows} the champion was trained on")

    last = max((r for r in past if r.retrain), key=lambda r: r.day, default=None)
    last_request = date.fromisoformat(last.day) if last else None
    since = (today - last_request).days if last_request else None
    retry = _retry_after_inconclusive(last, outcomes, checks)
    checks["cooldown"] = {"value": since, "threshold": policy.cooldown_days,
                          "passed": since is None or since > policy.cooldown_days or retry is not None,
                          "last_request": last_request.isoformat() if last_request else None,
                          "retry_after_inconclusive": retry,
                          "meaning": "days since the last retrain request (a retrain that was not promoted is "
                                     "retried without waiting once the labelled post-change rows have doubled)"}
    spent = [r.day for r in past if r.retrain and (today - date.fromisoformat(r.day)).days < policy.budget_period_days
             and _counts(outcomes.get(r.day), today - date.fromisoformat(r.day))]
    checks["budget"] = {"value": len(spent), "threshold": policy.max_retrains_per_period,
                        "passed": len(spent) < policy.max_retrains_per_period, "spent": spent,
                        "period_days": policy.budget_period_days,
                        "meaning": "requests in the period whose retrain could have promoted (or is pending)"}

    if not signal:
        reasons.append("No retrain: " + _no_signal_reason(change, forecast, costs.retrain))
        if "shift" in checks:
            shift = checks["shift"]
            why = ("the champion is already adapted to it" if shift["already_adapted"] else
                   "a retrain was already requested for it" if shift["already_requested"] else
                   f"it needs drift.consecutive_windows {shift['threshold']} days")
            reasons.append(f"A covariate shift on features the champion relies on, with prediction drift, has held "
                           f"{shift['value']} day(s) since {shift['day']}; no retrain yet: {why}.")
        return RetrainDecision(retrain=False, kind=None, mode=None, status="no_retrain", signal=False,
                               trigger_reason="", reasons=reasons, blocked_by=[], checks=checks, waiting=None,
                               **common)
    blocked = [g for g in GUARDS[1:] if g in checks and not checks[g]["passed"]]
    if waiting:
        reasons.append(f"Retrain warranted but {waiting}: a sound test needs adaptation.min_post_change_rows "
                       f"{adapt.min_post_change_rows} labelled rows after the change; the monitor requests it on "
                       "the first day there are enough.")
        status = "waiting"
    elif blocked:
        reasons.append("Retrain warranted but held by " + "; ".join(_explain_guard(g, checks[g]) for g in blocked) + ".")
        status = "held"
    else:
        reasons.append(f"Retrain requested ({kind}, {mode}): {trigger}.")
        status = "retrain"
    return RetrainDecision(retrain=status == "retrain", kind=kind, mode=mode, status=status, signal=True,
                           trigger_reason=trigger, reasons=reasons, blocked_by=blocked, checks=checks,
                           waiting=waiting, anchor=anchor, **common)


def _labelled_rows(checks: dict[str, Any]) -> int | None:
    for name in ("waiting_for_labels", "catch_up"):
        if isinstance(checks.get(name), dict) and checks[name].get("value") is not None:
            return int(checks[name]["value"])
    return None


def _retry_after_inconclusive(last: MonitorRecord | None, outcomes: dict[str, str],
                              checks: dict[str, Any]) -> dict[str, Any] | None:
    """A retrain that ran but was not promoted (too few post-change rows for a conclusive test,
    most often) is worth retrying as soon as the labelled rows after the change have doubled."""
    if last is None or outcomes.get(last.day) != "not_promoted":
        return None
    before, now = _labelled_rows(last.checks), _labelled_rows(checks)
    if not before or not now or now < 2 * before:
        return None
    return {"last_request": last.day, "rows_then": before, "rows_now": now}


def _counts(outcome: str | None, age: timedelta) -> bool:
    if outcome is None:
        return age.days <= _PENDING_DAYS
    return outcome in SPENT_OUTCOMES


def _series(past: list[MonitorRecord], today: list[Observation], champion: ChampionState) -> list[dict[str, Any]]:
    """The champion's observations by data day and source, oldest first (the latest
    observation of a day and source wins)."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    records = [(r.observations, r.champion_version) for r in past] + [([o.to_dict() for o in today], champion.version)]
    for observations, version in records:
        if str(version) != str(champion.version):
            continue
        for o in observations:
            if o.get("day", "") < champion.labelled_end:
                continue
            by_key[(o["day"], o["source"])] = {k: o[k] for k in ("day", "source", "deficit", "z", "rows", "value",
                                                                  "reference")}
    return [by_key[k] for k in sorted(by_key)]


def cusum(points: list[dict[str, Any]], k: float, h: float) -> dict[str, Any] | None:
    """One-sided CUSUM over ``points`` (each with ``day`` and ``z``), oldest first; writes each
    point's statistic into ``point["cusum"]``.

    Returns the active change -- an alarm (``S > h``) whose run of positive ``S`` lasts to the
    newest point -- or ``None``. Its ``day`` is the change-point estimate: the start of the run
    that maximises ``sum(z - delta / 2)`` up to the alarm, where ``delta`` is the mean z from the
    alarm on (the CUSUM change-point estimator with the shift size estimated; with the fixed
    slack ``k`` alone, a few slightly positive days before a large shift would pull the
    estimate early).
    """
    s, run_start, alarm, peak = 0.0, None, None, 0.0
    for i, entry in enumerate(points):
        s = max(0.0, s + entry["z"] - k)
        entry["cusum"] = round(s, 4)
        if s == 0.0:
            run_start, alarm, peak = None, None, 0.0
            continue
        if run_start is None:
            run_start = i
        peak = max(peak, s)
        if alarm is None and s > h:
            alarm = i
    if alarm is None or run_start is None:
        return None
    delta = float(np.mean([e["z"] for e in points[alarm:]]))
    best, best_sum, acc = alarm, -math.inf, 0.0
    for i in range(alarm, run_start - 1, -1):
        acc += points[i]["z"] - delta / 2
        if acc > best_sum:
            best, best_sum = i, acc
    return {"day": points[best]["day"], "alarm_day": points[alarm]["day"], "run_start": points[run_start]["day"],
            "detector": "cusum", "cusum": round(s, 4), "peak": round(peak, 4), "k": k, "h": h,
            "shift_z": round(delta, 3), "days": [e["day"] for e in points[best:]]}


def _active_change(series: list[dict[str, Any]], k: float, h: float, min_days: int) -> dict[str, Any] | None:
    """The change the rule acts on: on realised performance if labels show one; else on the
    label-free estimate, unless labels that have since arrived for those days contradict it."""
    realised = [e for e in series if e["source"] == "realised"]
    estimated = [e for e in series if e["source"] == "estimated"]
    on_labels = cusum(realised, k, h)
    on_estimate = cusum(estimated, k, h)
    if on_labels:
        return {**on_labels, "source": "realised", "estimate_change": on_estimate}
    if on_estimate:
        later = [e for e in realised if e["day"] >= on_estimate["day"]]
        if len(later) >= min_days and float(np.mean([e["z"] for e in later])) <= k:
            return None
        return {**on_estimate, "source": "estimated", "labelled_days_since": len(later)}
    return None


def _feature_change(past: list[MonitorRecord], today: dict[str, Any] | None, day: date) -> dict[str, Any] | None:
    """The run of consecutive monitor days with importance-weighted feature drift, ending today,
    and how many of its latest days also had prediction drift."""
    drift = {day: today or {}}
    for r in past:
        drift[date.fromisoformat(r.day)] = r.feature_drift or {}
    if not drift[day].get("drifted"):
        return None
    n = 0
    while drift.get(day - timedelta(days=n), {}).get("drifted"):
        n += 1
    both = 0
    while both < n and drift[day - timedelta(days=both)].get("prediction_drifted"):
        both += 1
    first = day - timedelta(days=n - 1)
    # A monitor day judges the window that ended at midnight, so the shift began the day before.
    return {"day": (first - timedelta(days=1)).isoformat(), "days": n, "with_prediction_drift": both,
            "weighted": drift[day].get("weighted"), "prediction_psi": drift[day].get("prediction_psi"),
            "features": list(drift[day].get("features") or [])}


def _unpriced_shift(feature_change: dict[str, Any] | None, champion: ChampionState, past: list[MonitorRecord],
                    min_days: int) -> dict[str, Any] | None:
    """A covariate shift on what the champion relies on, not yet adapted to (see rule 4)."""
    if not feature_change or feature_change["with_prediction_drift"] == 0:
        return None
    start = feature_change["day"]
    adapted = champion.change_point is not None and champion.change_point >= start
    requested = any(r.retrain and r.retrain_kind == "shift" and r.day > start for r in past)
    run = feature_change["with_prediction_drift"]
    return {"value": run, "threshold": min_days, "passed": run >= min_days and not adapted and not requested,
            "day": start, "weighted": feature_change["weighted"] or 0.0,
            "prediction_psi": feature_change["prediction_psi"] or 0.0, "features": feature_change["features"],
            "already_adapted": adapted, "already_requested": requested,
            "meaning": "days in a row with importance-weighted feature drift and prediction drift"}


def _forecast(series: list[dict[str, Any]], change: dict[str, Any] | None, spec: ModelSpec,
              today: date) -> dict[str, Any] | None:
    """Expected loss of keeping the champion over the horizon, with its interval and arithmetic.

    The level is taken from the source the change was seen in (labels override the estimate),
    since the change point; without a change, from the last 7 observations of the best source.
    """
    costs = spec.costs
    if change:
        pts = [e for e in series if e["source"] == change["source"] and e["day"] >= change["day"]]
    else:
        realised = [e for e in series if e["source"] == "realised"]
        pts = (realised or [e for e in series if e["source"] == "estimated"])[-7:]
    if not pts:
        return None
    d = np.array([e["deficit"] for e in pts], dtype=float)
    z = np.array([e["z"] for e in pts], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(np.abs(z) > 1e-12, np.abs(d / z), np.nan)
    se = np.where(np.isfinite(se) & (se > 0), se, np.nanmedian(se) if np.isfinite(se).any() else 1.0)
    w = 1.0 / np.square(se)
    level = float(np.sum(w * d) / np.sum(w))
    level_se = float(math.sqrt(1.0 / np.sum(w)))
    t = np.array([(date.fromisoformat(e["day"]) - today).days for e in pts], dtype=float)
    t_mean = float(np.sum(w * t) / np.sum(w))
    slope = slope_se = 0.0
    if len(pts) >= 4 and t.max() - t.min() >= 3:
        tc = t - t_mean
        sxx = float(np.sum(w * tc * tc))
        if sxx > 0:
            slope = float(np.sum(w * tc * (d - level)) / sxx)
            slope_se = float(math.sqrt(1.0 / sxx))
    use_trend = slope_se > 0 and abs(slope) > 2 * slope_se
    cap = 2.0 * max(float(np.max(np.abs(d))), level_se)
    horizon = np.arange(1, costs.horizon_days + 1, dtype=float)

    def loss(lvl: float) -> float:
        path = np.full_like(horizon, lvl) + (slope * (horizon - t_mean) if use_trend else 0.0)
        return float(np.sum(np.clip(path, 0.0, cap)))

    lower = loss(level - _Z_CONFIDENCE * level_se)
    expected = loss(level)
    upper = loss(level + _Z_CONFIDENCE * level_se)
    unit = "" if metrics.get(spec.primary_metric).bounded else " (relative)"
    arithmetic = (f"level {level:+.4g}{unit} per day (se {level_se:.2g}, {len(pts)} day(s) since "
                  f"{pts[0]['day']})" + (f" + trend {slope:+.3g}/day" if use_trend else "") +
                  f", summed over {costs.horizon_days} days (clipped at 0) = {expected:.4g} "
                  f"[{lower:.4g}, {upper:.4g}] vs alpha {costs.retrain:g}")
    return {"level": level, "level_se": level_se, "slope": slope if use_trend else 0.0, "slope_se": slope_se,
            "trend_used": use_trend, "days": len(pts), "since": pts[0]["day"], "horizon_days": costs.horizon_days,
            "expected_loss": expected, "lower": lower, "upper": upper, "alpha": costs.retrain,
            "unit": "normalised metric x days", "arithmetic": arithmetic}


def _post_change_rows(series: list[dict[str, Any]], change_day: str, champion: ChampionState) -> int:
    """Labelled rows since the change: the champion's own post-change rows (when it was trained
    after the same change) plus the realised windows observed since."""
    own = champion.post_change_rows if champion.change_point and champion.change_point <= change_day else 0
    return own + sum(int(e["rows"]) for e in series if e["source"] == "realised" and e["day"] >= change_day)


def _label_free_run(series: list[dict[str, Any]], k: float) -> int:
    """Trailing days in a row whose label-free estimate showed a deficit above the CUSUM slack."""
    n = 0
    for e in reversed([e for e in series if e["source"] == "estimated"]):
        if e["z"] <= k:
            break
        n += 1
    return n


def _catch_up(series: list[dict[str, Any]], champion: ChampionState, spec: ModelSpec,
              today: date) -> dict[str, Any] | None:
    cp = champion.change_point
    if not cp:
        return None
    normal_start = today - timedelta(days=spec.label_delay_days + spec.windows.total_days)
    if date.fromisoformat(cp) <= normal_start:
        return None
    available = champion.post_change_rows + sum(int(e["rows"]) for e in series
                                                 if e["source"] == "realised" and e["day"] >= cp)
    factor = spec.adaptation.catch_up_factor
    need = max(spec.adaptation.min_post_change_rows, int(math.ceil(factor * champion.post_change_rows)))
    return {"value": available, "threshold": need, "passed": available >= need, "factor": factor,
            "change_point": cp, "meaning": f"labelled rows since the change on {cp} (the champion was trained on "
                                            f"{champion.post_change_rows})"}


def _describe(series: list[dict[str, Any]], change: dict[str, Any] | None, feature_change: dict[str, Any] | None,
              forecast: dict[str, Any] | None, spec: ModelSpec) -> list[str]:
    metric = spec.primary_metric
    out = []
    latest = {src: next((e for e in reversed(series) if e["source"] == src), None) for src in ("realised", "estimated")}
    for src, e in latest.items():
        if e is not None:
            out.append(f"Latest {src} {metric} {e['value']:.4g} on {e['day']} vs reference {e['reference']:.4g}: "
                       f"deficit {e['deficit']:+.4g} (z {e['z']:+.2f}).")
    if not series:
        out.append(f"No {metric} observation of this champion yet (labels arrive {spec.label_delay_days} day(s) late).")
    if change:
        out.append(f"Change detected in the {change['source']} {metric}: CUSUM of the daily z-scores reached "
                   f"{change['peak']:.1f} > h {change['h']:g} on {change['alarm_day']}; the change began on "
                   f"{change['day']} ({len(change['days'])} day(s) of evidence since, shift {change['shift_z']:+.1f} "
                   "standard errors).")
    else:
        last = series[-1]["cusum"] if series else 0.0
        out.append(f"No performance change: CUSUM {last:.2f} <= h {spec.drift.cusum_h:g}.")
    if feature_change:
        out.append(f"Feature drift for {feature_change['days']} day(s) in a row (weighted "
                   f"{feature_change['weighted']:.3f}, on {', '.join(feature_change['features']) or 'n/a'}), "
                   f"since {feature_change['day']}; prediction drift on the last "
                   f"{feature_change['with_prediction_drift']} of them.")
    if forecast:
        out.append(f"Forecast loss of keeping the champion: {forecast['arithmetic']}.")
    return out


def _no_signal_reason(change: dict[str, Any] | None, forecast: dict[str, Any] | None, alpha: float) -> str:
    if forecast is None:
        return "no performance evidence yet."
    if change is None:
        return "no performance change detected."
    if forecast["expected_loss"] <= alpha:
        return (f"the expected loss of keeping the champion, {forecast['expected_loss']:.4g}, does not exceed the "
                f"retrain cost alpha {alpha:g}.")
    return f"the loss's lower bound {forecast['lower']:.4g} is not above 0: the deficit is not significant."


def _explain_guard(name: str, check: dict[str, Any]) -> str:
    if name == "cooldown":
        return f"cooldown: {check['value']} day(s) since the request on {check['last_request']} (<= {check['threshold']})"
    if name == "budget":
        return (f"budget: {check['value']} retrain(s) in the last {check['period_days']} days "
                f"(max {check['threshold']})")
    if name == "consecutive_windows":
        return (f"consecutive_windows: the label-free loss held {check['value']} day(s) (need {check['threshold']})"
                + ("" if check.get("feature_drift") else " and no feature drift explains it"))
    return f"{name}: {check.get('value')} vs {check.get('threshold')}"


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
