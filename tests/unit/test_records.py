"""Pure pieces around the runs: the decision record, the as-of rule, trigger kinds, profiles."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline import profile as prof
from pipeline.retrain import build_record
from pipeline.runenv import RunEnv, to_as_of

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
from driftline_airflow.runtime import as_of_from_context, trigger_from_context  # noqa: E402

UTC = timezone.utc


def _step(result=None, error=None):
    if error:
        return {"ok": False, "error": error}
    return {"ok": True, "result": result or {}}


def _steps(**overrides):
    decision = {"promote": True, "summary": "PROMOTE", "reasons": ["passed 6 gate(s)"], "gates": [{"name": "floor"}],
                "forced": False}
    steps = {
        "ingest": _step({"uri": "s/snapshot.parquet", "rows": 10, "missing_days": []}),
        "validate": _step({"report_uri": "s/validation.json", "quarantined_rows": 0}),
        "split": _step({"profile_uri": "s/profile.json"}),
        "train": _step({"run_id": "r1", "mlflow_run_url": "http://m/r1"}),
        "evaluate": _step({"decision": decision, "champion_before": "1", "candidate_run_id": "r1",
                           "evaluation_uri": "s/evaluation.json"}),
        "promote": _step({"promoted": True, "champion_before": "1", "champion_after": "2",
                          "candidate_version": "2", "model_version_url": "http://m/v2"}),
    }
    steps.update(overrides)
    return steps


@pytest.mark.parametrize("overrides, env_kw, status, promote, failed_step", [
    ({}, {}, "promoted", True, None),
    ({"promote": _step({"promoted": False, "champion_before": "1", "champion_after": "1", "candidate_version": "2"})},
     {}, "not_promoted", False, None),
    ({"promote": _step({"promoted": False, "champion_before": "1", "champion_after": "1", "candidate_version": "2"})},
     {"dry_run": True}, "dry_run", False, None),
    ({"validate": _step(error="ValidationFailed: 2 problems"), "split": None, "train": None, "evaluate": None,
      "promote": None}, {}, "failed", False, "validate"),
    ({"promote": _step(error="ChampionChanged: expected v1, found v3")}, {}, "failed", False, "promote"),
    ({"promote": None}, {}, "failed", False, "promote"),
])
def test_decision_record(spec, settings, overrides, env_kw, status, promote, failed_step):
    env = RunEnv(spec=spec, settings=settings, as_of=to_as_of("2026-02-19"), **env_kw)
    record = build_record(env, _steps(**overrides))
    assert (record["status"], record["promote"], record["failed_step"]) == (status, promote, failed_step)
    assert record["date"] == "2026-02-19" and record["model"] == spec.name and record["reasons"]
    if status == "failed":
        assert record["summary"].startswith(f"run failed at {failed_step}")
        assert "the champion was not touched" in record["reasons"]


def _context(**kw):
    dag_run = SimpleNamespace(conf=kw.pop("conf", {}), run_type=kw.pop("run_type", "scheduled"), dag_id="retrain__m",
                              run_id="r", run_after=kw.pop("run_after", None), triggering_user_name=kw.pop("user", None))
    return {"dag_run": dag_run, "params": kw.pop("params", {}), **kw}


@pytest.mark.parametrize("context, expected", [
    (_context(data_interval_end=datetime(2026, 2, 19, tzinfo=UTC)), "2026-02-19"),
    (_context(data_interval_end=None, logical_date=datetime(2026, 2, 19, 14, 35, tzinfo=UTC)), "2026-02-19"),
    (_context(run_after=datetime(2026, 2, 19, 23, 59, tzinfo=UTC)), "2026-02-19"),
    (_context(data_interval_end=datetime(2026, 2, 19, tzinfo=UTC), params={"as_of_date": "2026-01-31"}), "2026-01-31"),
])
def test_as_of_is_midnight_utc_of_the_interval_end(context, expected):
    assert as_of_from_context(context) == datetime.strptime(expected, "%Y-%m-%d").replace(tzinfo=UTC)


@pytest.mark.parametrize("context, kind", [
    (_context(run_type="scheduled"), "schedule"),
    (_context(run_type="manual", user="ana"), "manual"),
    (_context(run_type="backfill"), "backfill"),
    (_context(run_type="asset_triggered"), "asset"),
    (_context(run_type="manual", conf={"trigger": "drift", "reason": "psi", "report_uri": "r.html"}), "drift"),
])
def test_trigger_kinds(context, kind):
    trigger = trigger_from_context(context)
    assert trigger["kind"] == kind
    if kind == "drift":
        assert trigger["reason"] == "psi" and trigger["report_uri"] == "r.html"


def test_to_as_of_floors_to_midnight_utc():
    assert to_as_of(datetime(2026, 2, 19, 23, 30, tzinfo=UTC)) == datetime(2026, 2, 19, tzinfo=UTC)
    assert to_as_of("2026-02-19T10:00:00") == datetime(2026, 2, 19, tzinfo=UTC)


def test_bins_split_the_reference_evenly_and_count_everything():
    values = np.arange(1000, dtype=float)
    edges = prof.bin_edges(values, 10)
    counts = prof.bin_counts(values, edges)
    assert len(edges) == 9 and sum(counts) == 1000 and max(counts) - min(counts) <= 1
    assert prof.bin_counts(np.array([-1e9, 1e9, np.nan]), edges) == [1] + [0] * 8 + [1]


def test_profile_of_a_tiny_frame(spec):
    df = pd.DataFrame({c: [1.0, 2.0, np.nan, 4.0] for c in spec.numeric_features}
                      | {c: ["a", "a", None, "b"] for c in spec.categorical_features}
                      | {spec.target_column: [0, 1, 0, 1],
                         spec.timestamp_column: pd.date_range("2026-01-01", periods=4, freq="h", tz="UTC")})
    p = prof.build_profile(df, spec, window=("2026-01-01", "2026-01-29"))
    num = p["features"][spec.numeric_features[0]]
    assert (num["count"], num["nulls"], num["min"], num["max"]) == (4, 1, 1.0, 4.0)
    assert sorted(num["sample"]) == [1.0, 2.0, 4.0]
    cat = p["features"][spec.categorical_features[0]]
    assert cat["frequencies"] == {"a": 2, "b": 1} and cat["null_rate"] == 0.25
    assert p["target"] == {"type": "binary", "count": 4, "positive_rate": 0.5}
    assert p["window"]["start"].startswith("2026-01-01")
    assert p["derived_features"]["application_hour"]["sample"] == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"lacks their input column\(s\) \['event_time'\]"):
        prof.build_profile(df.drop(columns=[spec.timestamp_column]), spec)
