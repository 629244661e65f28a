"""The dashboard's loader and renderer on small records written the way the monitor and the
retrain write them (real files under a temp artifact root)."""

from __future__ import annotations

import re

import pytest

from pipeline.artifacts import date_prefix, new_run_id, publish_latest
from pipeline.dashboard import NoMonitorHistory, drift_colour, load_dashboard, render_dashboard
from pipeline.storage import Store, join

MODEL = "credit_test"
POLICY = {"drift": {"performance_tolerance": "0.03", "prediction_psi_threshold": 0.1,
                    "weighted_drift_threshold": 0.3}}


def _write(store: Store, root: str, kind: str, day: str, record: dict, drift: dict | None = None) -> None:
    run = new_run_id()
    prefix = join(date_prefix(root, MODEL, day, kind), run)
    if drift is not None:
        record = {**record, "artifacts": {"drift": store.write_json(join(prefix, "drift.json"), drift)}}
    uri = store.write_json(join(prefix, "decision.json"), record)
    publish_latest(store, date_prefix(root, MODEL, day, kind), run_id=run, decision_uri=uri,
                   status=record["status"])


def _monitor_day(store, root, day, *, version, psi, income, retrain=False, estimate=0.88):
    observations = [{"day": day, "source": "estimated", "metric": "roc_auc", "value": estimate, "se": 0.01,
                     "lower": estimate - 0.02, "upper": estimate + 0.02, "reference": 0.88, "rows": 500,
                     "degraded": False}]
    record = {"day": day, "status": "retrain" if retrain else "no_retrain", "retrain": retrain,
              "retrain_kind": "change" if retrain else None, "champion_version": version,
              "observations": observations, "policy": POLICY, "reasons": [f"verdict of {day}"],
              "feature_drift": {"weighted": 0.1, "threshold": 0.3, "prediction_psi": psi}}
    features = {"income": {"value": income, "threshold": 0.2, "effect": "psi", "drifted": income >= 0.2},
                "region": {"value": 0.01, "threshold": 0.1, "effect": "js", "drifted": False}}
    _write(store, root, "monitor", day, record, {"features": features, "prediction": {"psi": psi, "threshold": 0.1}})


@pytest.fixture
def artifact_root(tmp_path):
    root = str(tmp_path / "artifacts")
    store = Store.for_uri(root)
    _write(store, root, "runs", "2026-03-01", {"date": "2026-03-01", "status": "promoted", "champion_before": None,
                                               "champion_after": "1", "summary": "first champion"})
    _monitor_day(store, root, "2026-03-02", version="1", psi=0.02, income=0.01)
    _monitor_day(store, root, "2026-03-03", version="1", psi=0.15, income=0.5, retrain=True, estimate=0.8)
    _write(store, root, "runs", "2026-03-03", {"date": "2026-03-03", "status": "promoted", "champion_before": "1",
                                               "champion_after": "2", "summary": "beat v1"})
    _write(store, root, "runs", "2026-03-04", {"date": "2026-03-04", "status": "not_promoted",
                                               "champion_before": "2", "champion_after": "2", "summary": "no gain"})
    _monitor_day(store, root, "2026-03-04", version="2", psi=0.03, income=0.02)
    _monitor_day(store, root, "2026-03-05", version="1", psi=0.04, income=0.03)
    return root


HISTORY = [
    {"kind": "promotion", "from_version": None, "to_version": "1", "at": "2026-11-30T01:00:00+00:00", "reason": "a"},
    {"kind": "promotion", "from_version": "1", "to_version": "2", "at": "2026-11-30T01:10:00+00:00", "reason": "b"},
    {"kind": "rollback", "from_version": "2", "to_version": "1", "at": "2026-11-30T01:20:00+00:00",
     "reason": "calibration drifted", "actor": "cli:ops"},
]


def test_every_chart_has_one_mark_per_monitored_day_and_the_rule_thresholds(artifact_root):
    data = load_dashboard(Store.for_uri(artifact_root), artifact_root, MODEL, alias_history=HISTORY)
    assert (data.first_day, data.last_day) == ("2026-03-01", "2026-03-05")  # starts at the first promotion
    page = render_dashboard(data)

    cells = re.findall(r"<rect class='cell' data-feature='(\w+)' data-day='([\d-]+)'[^>]*fill='(#\w+)'", page)
    assert len(cells) == 2 * 4
    colour = {(f, d): c for f, d, c in cells}
    assert colour[("income", "2026-03-03")] == drift_colour(2.5) == "#a50026"  # 0.5 / 0.2: beyond 2x
    assert colour[("income", "2026-03-02")] == drift_colour(0.05)
    assert page.count("class='drifted'") == 1

    estimated = re.search(r"class='series' data-series='estimated' points='([^']+)'", page).group(1)
    assert len(estimated.split()) == 4
    psi = re.search(r"data-series='prediction_psi' points='([^']+)'", page).group(1).split()
    threshold = re.search(r"data-threshold='prediction_psi' points='([^']+)'", page).group(1).split()
    assert len(psi) == 4 and len(threshold) == 2 * 4  # a step per day at the recorded threshold
    assert len({p.split(",")[1] for p in threshold}) == 1
    assert "class='threshold tolerance'" in page and "tolerance 0.85" in page  # 0.88 - 0.03

    events = re.findall(r"<g class='event' data-kind='(\w+)' data-day='([\d-]+)'", page)
    kinds = {(k, d) for k, d in events}
    assert kinds == {("promotion", "2026-03-01"), ("retrain_request", "2026-03-03"), ("promotion", "2026-03-03"),
                     ("rollback", "2026-03-05")}  # v1 monitored again after v2: the rollback's day


def test_page_is_self_contained(artifact_root):
    page = render_dashboard(load_dashboard(Store.for_uri(artifact_root), artifact_root, MODEL))
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert re.findall(r"https?://[^'\"]+", page) == ["http://www.w3.org/2000/svg"] * page.count("<svg")
    assert all(f"<title id='{c}-title'>" in page for c in ("performance", "drift-heatmap", "prediction-drift"))


def test_range_and_missing_records(artifact_root, tmp_path):
    store = Store.for_uri(artifact_root)
    data = load_dashboard(store, artifact_root, MODEL, end_day="2026-03-04", days=2)
    assert [d.day for d in data.monitored] == ["2026-03-03", "2026-03-04"]
    assert {e.kind for e in data.events} == {"retrain_request", "promotion"}

    with pytest.raises(NoMonitorHistory, match=r"python -m pipeline monitor credit_test"):
        load_dashboard(Store.for_uri(str(tmp_path)), str(tmp_path), MODEL)
    with pytest.raises(NoMonitorHistory, match="widen --days"):
        load_dashboard(store, artifact_root, MODEL, end_day="2026-02-01", days=3)


@pytest.mark.parametrize("ratio, expected", [
    (None, "#e0e0e0"), (float("nan"), "#e0e0e0"), (0.0, "#ffffff"), (-1.0, "#ffffff"), (1.0, "#fdae61"),
    (2.0, "#a50026"), (9.0, "#a50026"),
])
def test_drift_colour_scale(ratio, expected):
    assert drift_colour(ratio) == expected


def test_a_bad_data_day_is_shown_as_such_and_draws_no_measurement(artifact_root):
    store = Store.for_uri(artifact_root)
    _write(store, artifact_root, "monitor", "2026-03-06", {
        "day": "2026-03-06", "status": "bad_data", "retrain": False, "signal": False, "rows": 500,
        "reasons": ["the window failed validation, so drift was not measured: income has non-finite values"]})
    page = render_dashboard(load_dashboard(store, artifact_root, MODEL))
    cells = re.findall(r"data-day='2026-03-06'[^>]*fill='(#\w+)'><title>([^<]*)</title>", page)
    assert [fill for fill, _ in cells] == ["#e0e0e0"] * 2 and all("not measured" in tip for _, tip in cells)
    psi = re.search(r"class='series' data-series='prediction_psi' points='([^']+)'", page).group(1).split()
    assert len(psi) == 4  # no value was invented for the day
    row = re.search(r"<tr><td>2026-03-06</td>(.*?)</tr>", page).group(1)
    assert "bad data" in row and "non-finite values" in row
    assert re.search(r"last decision \(2026-03-06\)<b>bad data</b>", page)
