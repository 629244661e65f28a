"""pipeline.trend against a real MLflow SQLite tracking store: the monitor's long-lived trend run
holds one point per monitored date, in date order, whatever order the dates were monitored in,
and a re-run of a date replaces that date's values."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from pipeline.demo import DemoOptions, generate_day
from pipeline.drift import measure_drift
from pipeline.profile import build_profile
from pipeline.retraining import ChampionState, decide_retrain, observation
from pipeline.storage import Store, join
from pipeline.trend import DEFAULT_ORIGIN, TREND_TAG, daily_metrics, log_trend

pytestmark = pytest.mark.integration

DRIFT_DAY = date(2026, 3, 2)


def _monitor_points(spec, profile, day: date, *, rows: int, auc: float):
    """What the monitor logs for ``day``: drift of that day's demo rows and a realised ROC AUC of
    the day the labelled window starts (label delay earlier)."""
    report = measure_drift(spec, profile, generate_day(day, DemoOptions(rows_per_day=rows, drift_day=DRIFT_DAY)),
                           feature_importance=None)
    labelled_day = (day - timedelta(days=spec.label_delay_days + 1)).isoformat()
    realised = observation(spec, day=labelled_day, source="realised", value=auc, se=0.01, lower=auc - 0.02,
                           upper=auc + 0.02, reference=0.80, reference_se=0.01, rows=rows, champion_version="3")
    decision = decide_retrain(spec, day=day.isoformat(),
                              champion=ChampionState(version="3", data_end="2026-02-20", labelled_end="2026-02-13"),
                              observations=[realised], feature_drift=report.summary(spec.drift), rows=report.rows,
                              history=[])
    return report, daily_metrics(report, decision, day.isoformat(), "3")


def _midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000)


def test_the_trend_run_has_one_point_per_monitored_date_in_date_order(mlflow_uri, spec, demo_frame, tmp_path):
    client = MlflowClient(mlflow_uri)
    experiment_id = client.create_experiment(f"trend-{uuid.uuid4().hex[:8]}")
    store, root = Store.for_uri(str(tmp_path)), join(str(tmp_path), spec.name, "monitor")
    profile = build_profile(demo_frame, spec)
    days = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    logged = {}
    for i, day in enumerate([days[2], days[0], days[3], days[1]]):  # monitored out of order (a backfill)
        report, points = _monitor_points(spec, profile, day, rows=600, auc=0.70 + 0.01 * i)
        trend_id = log_trend(client, experiment_id, spec, points, store=store, monitor_root=root, holder=f"run-{i}")
        logged[day] = report

    # a re-run of 2026-03-03 on different data replaces that date's values, and only those
    rerun, points = _monitor_points(spec, profile, days[2], rows=900, auc=0.61)
    assert rerun.weighted_drift != logged[days[2]].weighted_drift or rerun.rows != logged[days[2]].rows
    trend_id = log_trend(client, experiment_id, spec, points, store=store, monitor_root=root, holder="rerun")
    logged[days[2]] = rerun

    active = client.search_runs([experiment_id], filter_string=f"tags.`{TREND_TAG}` = 'daily'")
    assert [r.info.run_id for r in active] == [trend_id], "one trend run per model"
    everything = client.search_runs([experiment_id], run_view_type=ViewType.ALL)
    replaced = [r for r in everything if r.info.run_id != trend_id]
    assert len(replaced) == 1 and replaced[0].info.lifecycle_stage == "deleted"
    assert client.get_run(trend_id).data.tags["driftline.trend_rebuilt_from"] == replaced[0].info.run_id

    for key in ("weighted_drift", "rows", "drift_income", "drift_log_income"):
        history = client.get_metric_history(trend_id, key)
        assert [m.step for m in history] == sorted(m.step for m in history)
        assert [m.step for m in history] == [(d - DEFAULT_ORIGIN).days for d in days], key
        assert [m.timestamp for m in history] == [_midnight_ms(d) for d in days]
    rows = {m.step: m.value for m in client.get_metric_history(trend_id, "rows")}
    assert rows[(days[2] - DEFAULT_ORIGIN).days] == 900 and rows[(days[0] - DEFAULT_ORIGIN).days] == 600
    drift = [m.value for m in client.get_metric_history(trend_id, "weighted_drift")]
    assert drift == pytest.approx([logged[d].weighted_drift for d in days])
    income = [m.value for m in client.get_metric_history(trend_id, "drift_income")]
    assert income[0] < spec.drift.psi_threshold < income[-1], "the drift shows as a rise over the dates"

    # realised performance is plotted on the day it is about (label delay earlier), one point each
    realised = client.get_metric_history(trend_id, "realised_roc_auc")
    about = [d - timedelta(days=spec.label_delay_days + 1) for d in days]
    assert [m.step for m in realised] == [(d - DEFAULT_ORIGIN).days for d in about]
    assert realised[2].value == pytest.approx(0.61)
