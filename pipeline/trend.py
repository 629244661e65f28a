"""The monitor over days: each feature's drift history for the report, and one MLflow trend run.

Contract:
* :func:`drift_history` reads the drift of the ``drift.history_days`` days ending on the monitored
  day from the monitor's own records (``<monitor root>/<date>/latest.json`` -> the date's
  ``decision.json`` -> its ``drift.json``), today's from the report just measured. A day without
  a record, a bad-data day and an insufficient window are gaps. It writes nothing.
* :func:`daily_metrics` is the table of what one monitor run logs to MLflow: the drift metrics
  of the monitored day and the champion's observed performance on the day each observation is
  about (realised performance trails by the label delay). The per-day run and the trend run
  both log it.
* :func:`log_trend` logs those metrics into the model's one long-lived trend run in the
  ``<model>-monitoring`` experiment (tag ``driftline.trend = daily``, created on first use) with
  ``step`` = days since the run's origin (the spec's ``start_date``, default 2000-01-01, fixed
  in the run's tag ``driftline.trend_origin`` when the run is created) and ``timestamp`` = that
  day at 00:00 UTC. So MLflow's chart view shows each metric against the day (x axis "Step" in
  days, or "Time (wall)" in dates).
* One value per metric and day, the latest run's: MLflow keeps every value logged at a step and
  has no call to delete one, so a re-run of an already logged day replaces the trend run by a
  copy without that day's values (the old run is deleted, the copy is tagged
  ``driftline.trend_rebuilt_from``) and logs the re-run's values into the copy. Writers of a
  model's trend are serialised by a lease at ``<monitor root>/trend/lease.json``; a writer waits
  up to :data:`LEASE_WAIT` for it, then raises the retryable :class:`~pipeline.lease.LeaseHeld`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pipeline.artifacts import Record, day_key, latest_decision_uri
from pipeline.storage import ObjectNotFound, Store, join

log = logging.getLogger(__name__)

TREND_TAG = "driftline.trend"
ORIGIN_TAG = "driftline.trend_origin"
#: Origin of the steps when the spec has no ``start_date`` (the DAGs' default start, too).
DEFAULT_ORIGIN = date(2000, 1, 1)
#: MLflow's ``log_batch`` takes at most 1000 metrics per call.
BATCH = 1000
#: How long a writer waits for another writer of the same model's trend.
LEASE_WAIT = timedelta(seconds=60)
#: A metric every monitor run logs at its own day: its steps are the days already in the trend.
MARKER = "rows"


@dataclass(frozen=True)
class DriftHistory(Record):
    """Each monitored feature's effect size (PSI or JS) on the days ending on the monitored day.

    Attributes:
        days: ``YYYY-MM-DD``, oldest first; the last is the monitored day.
        values: feature -> effect per day (``None``: not measured that day).
        drifted: feature -> whether it drifted that day.
        thresholds: feature -> its effect threshold today.
    """

    days: list[str]
    values: dict[str, list[float | None]]
    drifted: dict[str, list[bool]]
    thresholds: dict[str, float]


@dataclass(frozen=True)
class TrendPoint(Record):
    """One metric value of one day."""

    key: str
    day: str
    value: float


def drift_history(store: Store, monitor_root: str, day: str, days: int, today: Any) -> DriftHistory:
    """Each feature of ``today`` over the ``days`` days ending on ``day``.

    Args:
        store: storage holding the monitor records.
        monitor_root: the model's monitor prefix (``<artifact_root>/<model>/monitor``).
        day: the monitored day, ``YYYY-MM-DD``.
        days: how many days, the monitored day included (``drift.history_days``).
        today: the monitored day's :class:`~pipeline.drift.DriftReport`.

    Returns:
        The :class:`DriftHistory` of the features ``today`` measured.

    Raises:
        StorageError: a record that exists cannot be read or is not JSON.
    """
    end = date.fromisoformat(day_key(day))
    axis = [(end - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    per_day = [_day_features(store, monitor_root, d) for d in axis[:-1]] + [today.features]
    values: dict[str, list[float | None]] = {}
    drifted: dict[str, list[bool]] = {}
    for name in today.features:
        entries = [features.get(name) for features in per_day]
        values[name] = [None if e is None or e.get("value") is None else float(e["value"]) for e in entries]
        drifted[name] = [bool(e and e.get("drifted")) for e in entries]
    return DriftHistory(days=axis, values=values, drifted=drifted,
                        thresholds={n: float(e["threshold"]) for n, e in today.features.items()})


def _day_features(store: Store, monitor_root: str, day: str) -> dict[str, Any]:
    """The features of a day's latest monitor run (``{}`` when the day has none)."""
    uri = latest_decision_uri(store, join(monitor_root, day))
    if uri is None:
        return {}
    try:
        drift_uri = (store.read_json(uri).get("artifacts") or {}).get("drift")
        return store.read_json(drift_uri).get("features") or {} if drift_uri else {}
    except ObjectNotFound:
        return {}


def daily_metrics(report: Any, decision: Any, day: str, champion_version: str) -> list[TrendPoint]:
    """What one monitor run logs (see the module docstring), as points on their days.

    Args:
        report: the day's :class:`~pipeline.drift.DriftReport`.
        decision: the day's :class:`~pipeline.retraining.RetrainDecision`.
        day: the monitored day, ``YYYY-MM-DD``.
        champion_version: the monitored champion's registry version.
    """
    values: dict[str, float | None] = {
        "weighted_drift": report.weighted_drift, "drifted_features": len(report.drifted_features),
        MARKER: report.rows, "retrain": float(decision.retrain), "signal": float(decision.signal),
        "prediction_psi": report.prediction["psi"] if report.prediction else None,
        "cusum": decision.series[-1].get("cusum", 0.0) if decision.series else None,
        "expected_loss": decision.forecast["expected_loss"] if decision.forecast else None,
        **{f"drift_{name}": entry.get("value") for name, entry in report.features.items()},
    }
    if str(champion_version).isdigit():
        values["champion_version"] = float(champion_version)
    points = [TrendPoint(key, day_key(day), float(v)) for key, v in values.items() if v is not None]
    for obs in decision.observations:
        for key, v in ((f"{obs['source']}_{obs['metric']}", obs["value"]), (f"{obs['source']}_deficit", obs["deficit"])):
            if v is not None:
                points.append(TrendPoint(key, day_key(obs["day"]), float(v)))
    return points


def log_trend(client: Any, experiment_id: str, spec: Any, points: list[TrendPoint], *, store: Store,
              monitor_root: str, holder: str) -> str:
    """Log ``points`` into the model's trend run, replacing values of a day logged before.

    Args:
        client: an ``MlflowClient``.
        experiment_id: the ``<model>-monitoring`` experiment.
        spec: the model spec (``name``, ``start_date``).
        points: the run's values (:func:`daily_metrics`); the day of the ``rows`` point is the
            monitored day.
        store: storage of the monitor records (the trend lease lives there).
        monitor_root: the model's monitor prefix.
        holder: the monitor run's id (the lease holder).

    Returns:
        The trend run's id.

    Raises:
        LeaseHeld: another writer held the model's trend for longer than :data:`LEASE_WAIT`.
    """
    from pipeline import lease

    prefix = join(monitor_root, "trend")
    _acquire(store, prefix, holder, what=f"trend of {spec.name}")
    try:
        run = _trend_run(client, experiment_id, spec)
        origin = date.fromisoformat(run.data.tags[ORIGIN_TAG])
        metrics = [_metric(p, origin) for p in points]
        monitored = {m.step for m in metrics if m.key == MARKER}
        logged = {m.step for m in client.get_metric_history(run.info.run_id, MARKER)}
        if monitored & logged:
            run = _rebuild_without(client, experiment_id, run, {(m.key, m.step) for m in metrics})
        run_id = run.info.run_id
        for i in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + BATCH])
        client.set_terminated(run_id)
        return run_id
    finally:
        lease.release(store, prefix, holder)


def _acquire(store: Store, prefix: str, holder: str, *, what: str) -> None:
    from pipeline.lease import LeaseHeld, acquire

    deadline = time.monotonic() + LEASE_WAIT.total_seconds()
    while True:
        try:
            acquire(store, prefix, holder, what=what, term=timedelta(minutes=5))
            return
        except LeaseHeld:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _trend_run(client: Any, experiment_id: str, spec: Any) -> Any:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TREND_TAG}` = 'daily'",
                              order_by=["attributes.start_time ASC"])
    if runs:
        return runs[0]
    origin = spec.start_date or DEFAULT_ORIGIN
    run = client.create_run(experiment_id, run_name=f"{spec.name}-trend", tags={
        TREND_TAG: "daily", ORIGIN_TAG: origin.isoformat(), "driftline.model": spec.name,
        "mlflow.note.content": (f"Daily monitoring metrics of {spec.name}: step = days since {origin.isoformat()}, "
                                "timestamp = the day at 00:00 UTC. A re-run of a day replaces that day's values.")})
    return client.get_run(run.info.run_id)


def _rebuild_without(client: Any, experiment_id: str, old: Any, replaced: set[tuple[str, int]]) -> Any:
    """A copy of the trend run ``old`` without the ``(key, step)`` values in ``replaced``; ``old``
    is deleted."""
    from mlflow.entities import Metric

    old_id = old.info.run_id
    tags = {k: v for k, v in old.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.note.content"}
    new = client.create_run(experiment_id, run_name=old.info.run_name,
                            tags={**tags, "driftline.trend_rebuilt_from": old_id})
    kept = [Metric(m.key, m.value, m.timestamp, m.step) for key in old.data.metrics
            for m in client.get_metric_history(old_id, key) if (m.key, m.step) not in replaced]
    for i in range(0, len(kept), BATCH):
        client.log_batch(new.info.run_id, metrics=kept[i:i + BATCH])
    client.delete_run(old_id)
    log.info("trend run %s: a re-run replaces %d value(s); its other values were copied to %s, which replaces it",
             old_id, len(replaced), new.info.run_id)
    return client.get_run(new.info.run_id)


def _metric(point: TrendPoint, origin: date) -> Any:
    from mlflow.entities import Metric

    day = date.fromisoformat(point.day)
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return Metric(point.key, point.value, int(midnight.timestamp() * 1000), (day - origin).days)
