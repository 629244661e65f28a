"""The monitor's HTML report: features most severe first, derived ones marked, no internal notes,
and each feature's history read back from the monitor records of earlier days on disk."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from pipeline.artifacts import date_prefix, monitor_prefix, new_run_id, publish_latest
from pipeline.demo import DemoOptions, generate_day
from pipeline.drift import measure_drift
from pipeline.drift_report import render_report
from pipeline.profile import build_profile
from pipeline.retraining import ChampionState, decide_retrain
from pipeline.storage import Store, join
from pipeline.trend import drift_history

DRIFT_DAY = date(2026, 1, 17)


def _importance(spec):
    weights = {c: 1.0 for c in spec.features} | {"income": 6.0, "num_inquiries_6m": 4.0, spec.timestamp_column: 3.0,
                                                 "a_column_of_another_spec": 2.0}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


@pytest.fixture
def profile(spec, demo_frame):
    return build_profile(demo_frame.iloc[: 7 * 400], spec)


def _measure(spec, profile, day: date):
    rows = generate_day(day, DemoOptions(rows_per_day=1500, drift_day=DRIFT_DAY))
    return measure_drift(spec, profile, rows, feature_importance=_importance(spec),
                         window=(day.isoformat(), (day + timedelta(days=1)).isoformat()))


def _decide(spec, report, day: date):
    champion = ChampionState(version="1", data_end="2026-01-15", labelled_end="2026-01-08")
    return decide_retrain(spec, day=day.isoformat(), champion=champion, observations=[],
                          feature_drift=report.summary(spec.drift), rows=report.rows, history=[])


def _rows(page: str) -> list[str]:
    """Feature names in the order of the report's feature table."""
    return re.findall(r"<tr class='(?:drift)?'><td>([a-z_0-9]+)", page)


def test_features_are_listed_most_severe_first_with_derived_ones_marked_and_no_internal_note(spec, profile):
    day = date(2026, 1, 20)
    report = _measure(spec, profile, day)
    page = render_report(report, _decide(spec, report, day), title="credit_default: monitor 2026-01-20")
    names = _rows(page)
    assert sorted(names) == sorted(report.features) and len(names) == len(spec.features) + 3
    drifted = [n for n in names if report.features[n]["drifted"]]
    assert names[: len(drifted)] == drifted, "drifted features come first"
    weights = [report.features[n]["importance"] for n in drifted]
    assert weights == sorted(weights, reverse=True), "the most important drifted feature first"
    assert names[0] == "income"
    assert "derived: log1p of income" in page and "derived: date_part of event_time" in page
    assert "derived: ratio of loan_amount, income" in page
    assert "not mapped" not in page and "a_column_of_another_spec" not in page and "ignored" not in page


def test_the_report_shows_each_features_history_from_earlier_monitor_records(spec, profile, tmp_path):
    store = Store.for_uri(str(tmp_path))
    root = join(str(tmp_path), "credit_default", "monitor")
    days = [date(2026, 1, 14) + timedelta(days=i) for i in range(5)]
    skipped = days[2]  # no monitor run that day: a gap in the line
    report = None
    for day in days:
        if day == skipped:
            continue
        report = _measure(spec, profile, day)
        run_id = new_run_id()
        prefix = monitor_prefix(str(tmp_path), "credit_default", day, run_id)
        drift_uri = store.write_json(join(prefix, "drift.json"), report.to_dict())
        decision_uri = store.write_json(join(prefix, "decision.json"), {"day": day.isoformat(), "status": "no_retrain",
                                                                         "artifacts": {"drift": drift_uri}})
        publish_latest(store, date_prefix(str(tmp_path), "credit_default", day, "monitor"), run_id=run_id,
                       decision_uri=decision_uri, status="no_retrain")

    history = drift_history(store, root, days[-1].isoformat(), spec.drift.history_days, report)
    assert len(history.days) == 14 and history.days[-1] == "2026-01-18"
    income = history.values["income"]
    assert income[:9] == [None] * 9 and income[11] is None
    measured = [income[9], income[10], income[12], income[13]]
    assert all(v is not None for v in measured) and measured[-1] == report.features["income"]["value"]
    assert measured[0] < spec.drift.psi_threshold < measured[-1], "stable before the drift, drifted after"
    assert history.drifted["income"][-1] and not history.drifted["income"][9]
    assert history.values["log_income"][-1] == report.features["log_income"]["value"]

    page = render_report(report, _decide(spec, report, days[-1]), title="monitor 2026-01-18", history=history)
    assert "<th>last 14 days</th>" in page
    row = re.search(r"<td>income</td>.*?</tr>", page, re.S).group(0)
    assert row.count("<svg") == 1 and row.count("<polyline") == 2, "two lines: before and after the day without a run"
    title = re.search(r"<title>(income by day.*?)</title>", row).group(1)
    assert "2026-01-14: " + f"{income[9]:.3f}" in title and "2026-01-16: n/a" in title
    assert f"2026-01-18: {income[13]:.3f} (drifted)" in title
    assert "http" not in page.split("<body>", 1)[1], "no network resources"
