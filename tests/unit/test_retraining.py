"""pipeline.retraining: observations, change point, forecast and the rule as a table; history."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from pipeline.config import Settings, parse_spec
from pipeline.retraining import (
    ChampionState, MonitorRecord, Observation, cusum, decide_retrain, load_history, observation, recorded_change,
)
from pipeline.storage import Store, join

DAY = "2026-03-20"
TODAY = date.fromisoformat(DAY)
SE = 0.01


def _spec(task="binary", **sections):
    data = {"name": "toy", "task": task, "source": {"kind": "lake", "uri": "/nowhere"},
            "timestamp_column": "ts", "target_column": "y", "numeric_features": ["x"],
            "label_delay_days": 7, "drift": {"min_window_rows": 10, "cooldown_days": 3, "consecutive_windows": 2,
                                             "max_retrains_per_period": 2, "budget_period_days": 30},
            "costs": {"horizon_days": 30, "retrain": 0.5}, "adaptation": {"min_post_change_rows": 1500}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_spec(data, settings=Settings.from_env({}))


SPEC = _spec()
CHAMPION = ChampionState(version="3", data_end="2026-02-20", labelled_end="2026-02-13")


def _day(k: int) -> str:
    """``k`` days before DAY."""
    return (TODAY - timedelta(days=k)).isoformat()


def _obs(data_day: str, source: str, deficit: float, rows: int = 2000, se: float = SE) -> dict:
    return Observation(day=data_day, source=source, metric="roc_auc", value=0.85 - deficit, se=se, lower=None,
                       upper=None, reference=0.85, reference_se=None, deficit=deficit, z=deficit / se, rows=rows,
                       degraded=deficit > 0.03, champion_version="3").to_dict()


def _history(realised: dict[int, float] | None = None, estimated: dict[int, float] | None = None, *,
             drift: dict[int, tuple[bool, bool]] | None = None, retrains: dict[int, str] | None = None,
             rows: int = 2000, version: str = "3") -> list[MonitorRecord]:
    """Monitor records for the days before DAY. ``realised[k]``: the deficit of the labelled window
    judged ``k`` days before DAY (its data day is 8 days earlier); ``estimated[k]``: of that day's
    window (data day k+1); ``drift[k]``: (feature drift, prediction drift); ``retrains[k]``: kind."""
    realised, estimated, drift, retrains = realised or {}, estimated or {}, drift or {}, retrains or {}
    out = []
    for k in sorted(set(realised) | set(estimated) | set(drift) | set(retrains), reverse=True):
        observations = []
        if k in realised:
            observations.append(_obs(_day(k + 8), "realised", realised[k], rows))
        if k in estimated:
            observations.append(_obs(_day(k + 1), "estimated", estimated[k], rows))
        feature, prediction = drift.get(k, (False, False))
        out.append(MonitorRecord(
            day=_day(k), retrain=k in retrains, retrain_kind=retrains.get(k), champion_version=version,
            observations=observations, rows=rows,
            feature_drift={"weighted": 0.5 if feature else 0.05, "drifted": feature, "prediction_drifted": prediction,
                           "prediction_psi": 0.3 if prediction else 0.01, "features": ["x"] if feature else []}))
    return out


def _today(realised: float | None = None, estimated: float | None = None, rows: int = 2000) -> list[Observation]:
    out = []
    if realised is not None:
        out.append(Observation.from_dict(_obs(_day(8), "realised", realised, rows)))
    if estimated is not None:
        out.append(Observation.from_dict(_obs(_day(1), "estimated", estimated, rows)))
    return out


def _decide(history, today, *, drift=(False, False), champion=CHAMPION, outcomes=None, spec=SPEC):
    feature, prediction = drift
    fd = {"weighted": 0.5 if feature else 0.05, "drifted": feature, "prediction_drifted": prediction,
          "prediction_psi": 0.3 if prediction else 0.01, "features": ["x"] if feature else []}
    return decide_retrain(spec, day=DAY, champion=champion, observations=today, feature_drift=fd, rows=2000,
                          history=history, retrain_outcomes=outcomes)


STABLE = {k: (0.004 if k % 2 else -0.006) for k in range(1, 20)}
CHANGED = {**STABLE, 2: 0.1, 1: 0.11}


@pytest.mark.parametrize("case, history, today, kwargs, status, kind", [
    ("stable stream", _history(STABLE, STABLE), _today(0.0, 0.0), {}, "no_retrain", None),
    ("concept change seen in labels", _history(CHANGED), _today(0.1), {}, "retrain", "change"),
    ("concept change, too few labelled rows", _history(CHANGED, rows=400), _today(0.1, rows=400), {}, "waiting",
     "change"),
    ("a detectable change too small to pay for a retrain",
     _history({**STABLE, 2: 0.01, 1: 0.012}), _today(0.011), {}, "no_retrain", None),
    ("label-free loss with feature and prediction drift",
     _history(estimated={**STABLE, 2: 0.08, 1: 0.09}, drift={2: (True, True), 1: (True, True)}),
     _today(estimated=0.09), {"drift": (True, True)}, "retrain", "change"),
    ("label-free loss without feature drift is not trusted",
     _history(estimated={**STABLE, 2: 0.08, 1: 0.09}), _today(estimated=0.09), {}, "held", "change"),
    ("shift on what the champion relies on, not yet priced",
     _history(STABLE, drift={2: (True, True), 1: (True, True)}), _today(0.0), {"drift": (True, True)}, "retrain",
     "shift"),
    ("shift on features the champion ignores: reported only",
     _history(STABLE, drift={2: (True, False), 1: (True, False)}), _today(0.0), {"drift": (True, False)},
     "no_retrain", None),
    ("one day of shift is not a shift", _history(STABLE), _today(0.0), {"drift": (True, True)}, "no_retrain", None),
    ("cooldown holds a second request", _history(CHANGED, retrains={2: "change"}), _today(0.1),
     {"outcomes": {_day(2): "not_promoted"}}, "held", "change"),
    ("budget counts retrains that could have promoted",
     _history(CHANGED, retrains={10: "change", 20: "change"}), _today(0.1),
     {"outcomes": {_day(10): "promoted", _day(20): "not_promoted"}}, "held", "change"),
    ("a failed retrain does not spend the budget",
     _history(CHANGED, retrains={10: "change", 20: "change"}), _today(0.1),
     {"outcomes": {_day(10): "failed", _day(20): "not_promoted"}}, "retrain", "change"),
])
def test_retraining_rule(case, history, today, kwargs, status, kind):
    decision = _decide(history, today, **kwargs)
    assert decision.status == status, (case, decision.reasons)
    assert decision.kind == kind, case
    assert decision.retrain is (status == "retrain")
    assert decision.reasons and all(r.endswith(".") for r in decision.reasons)
    if status == "retrain":
        assert decision.trigger_reason and decision.anchor
    if case.startswith("concept change"):
        assert decision.change["day"] == _day(10) and decision.mode == "labelled"  # the first changed data day
    if case == "concept change, too few labelled rows":
        assert decision.waiting == f"waiting for 300 more labelled rows after {_day(10)}"
    if case.startswith("label-free loss with"):
        assert decision.mode == "covariate" and decision.change["source"] == "estimated"


def test_the_forecast_shows_its_arithmetic():
    decision = _decide(_history(CHANGED), _today(0.1))
    f = decision.forecast
    # Three realised days since the change at 0.10, 0.11 and 0.10, equal weights.
    assert f["level"] == pytest.approx(0.31 / 3) and f["horizon_days"] == 30 and f["alpha"] == 0.5
    assert f["expected_loss"] == pytest.approx(30 * 0.31 / 3)
    assert f["lower"] < f["expected_loss"] < f["upper"]
    assert "summed over 30 days" in f["arithmetic"] and "vs alpha 0.5" in f["arithmetic"]


def test_labels_that_arrive_overrule_the_label_free_estimate():
    estimated = {k: (0.09 if k <= 11 else 0.0) for k in range(1, 20)}
    realised = {k: 0.0 for k in range(1, 4)}  # data days 9-11 back: inside the estimated "change", no loss
    decision = _decide(_history(realised, estimated, drift={1: (True, True), 2: (True, True)}),
                       _today(0.0, 0.09), drift=(True, True))
    assert decision.change is None or decision.change["source"] == "realised"
    assert decision.kind != "change"


def test_shift_is_acted_on_once_and_not_for_an_adapted_champion():
    drift = {2: (True, True), 1: (True, True)}
    requested = _decide(_history(STABLE, drift={**drift, 1: (True, True)}, retrains={1: "shift"}), _today(0.0),
                        drift=(True, True))
    assert requested.status == "no_retrain" or requested.kind != "shift"
    adapted = ChampionState(version="3", data_end="2026-02-20", labelled_end="2026-02-13", change_point=_day(3))
    assert _decide(_history(STABLE, drift=drift), _today(0.0), drift=(True, True), champion=adapted).kind != "shift"


def test_catch_up_after_a_change_when_post_change_rows_have_grown():
    champion = ChampionState(version="3", data_end=_day(6), labelled_end=_day(13), change_point=_day(16),
                             post_change_rows=2000)
    few = _decide([], _today(0.0), champion=champion)
    assert few.status == "no_retrain" and few.checks["catch_up"]["value"] == 2000 + 2000
    many = _decide(_history({1: 0.0, 2: 0.0}), _today(0.0), champion=champion)
    assert many.status == "retrain" and many.kind == "catch_up" and many.anchor == _day(16)
    assert many.checks["catch_up"]["threshold"] == 6000


def test_an_insufficient_window_is_never_judged():
    decision = decide_retrain(SPEC, day=DAY, champion=CHAMPION, observations=[], feature_drift=None, rows=5,
                              history=_history(CHANGED), insufficient=True)
    assert not decision.retrain and decision.blocked_by == ["insufficient_data"]


def test_history_on_or_after_the_day_is_ignored():
    later = [MonitorRecord(day=DAY, retrain=True, champion_version="3"),
             MonitorRecord(day="2026-03-25", retrain=True, champion_version="3")]
    decision = _decide(_history(CHANGED) + later, _today(0.1))
    assert decision.retrain and decision.checks["cooldown"]["last_request"] is None


def test_records_of_an_earlier_champion_do_not_count():
    decision = _decide(_history(CHANGED, version="2"), _today(0.1))
    assert decision.change["days"] == [_day(8)]  # only today's observation of this champion


@pytest.mark.parametrize("zs, change_index", [
    ([0.0, 0.0, 0.0, 8.0, 9.0, 7.0], 3),
    ([0.7, 1.2, 0.8, 0.2, 8.0, 9.0, 7.0], 4),   # slightly positive days before a large shift stay out
    ([0.0, 3.0, 3.0, 3.0, 3.0], 1),
    ([0.0, 1.0, -1.0, 0.5, 0.0], None),
])
def test_cusum_change_point_estimate(zs, change_index):
    points = [{"day": f"2026-03-{i + 1:02d}", "z": z} for i, z in enumerate(zs)]
    change = cusum(points, k=0.5, h=5.0)
    if change_index is None:
        assert change is None
    else:
        assert change["day"] == points[change_index]["day"]
    assert all("cusum" in p for p in points)


def test_observation_is_oriented_and_scale_free():
    binary = observation(SPEC, day="2026-03-01", source="realised", value=0.80, se=0.01, lower=0.78, upper=0.82,
                         reference=0.85, reference_se=None, rows=2000, champion_version="3")
    assert binary.deficit == pytest.approx(0.05) and binary.z == pytest.approx(5.0) and binary.degraded
    for scale in (1.0, 1000.0):
        spec = _spec("regression", promotion={"primary_metric": "rmse"}, drift={"performance_tolerance": "3%"})
        obs = observation(spec, day="2026-03-01", source="realised", value=1.1 * scale, se=0.02 * scale,
                          lower=1.06 * scale, upper=1.14 * scale, reference=1.0 * scale, reference_se=None,
                          rows=2000, champion_version="3")
        assert obs.deficit == pytest.approx(0.1) and obs.z == pytest.approx(5.0) and obs.degraded
    assert observation(SPEC, day="2026-03-01", source="realised", value=None, se=0.01, lower=None, upper=None,
                       reference=0.85, reference_se=None, rows=0, champion_version="3") is None


def test_load_history_and_recorded_change(tmp_path):
    store = Store.for_uri(str(tmp_path))
    root = join(str(tmp_path), "toy", "monitor")
    for k, change in [(5, None), (3, {"day": _day(6), "alarm_day": _day(3)}), (1, None), (0, {"day": "x"})]:
        store.write_json(join(root, _day(k), "decision.json"),
                         {"day": _day(k), "status": "no_retrain", "retrain": False, "change": change, "extra": 1})
    store.write_json(join(root, "not-a-day", "decision.json"), {"day": "x"})
    history = load_history(store, root, before_day=DAY)
    assert [h.day for h in history] == [_day(5), _day(3), _day(1)]
    assert recorded_change(store, root, DAY) == {"day": _day(6), "alarm_day": _day(3)}
    assert recorded_change(store, root, _day(4)) is None
    assert load_history(store, join(root, "missing"), before_day=DAY) == []


def test_a_retrain_that_was_not_promoted_is_retried_once_the_rows_doubled():
    """Right after a change a test window is small and the comparison often inconclusive; the
    retry comes as soon as twice the labelled rows exist, not after the cooldown."""
    history = _history(CHANGED)
    requested = history[-1]
    history[-1] = MonitorRecord(**{**requested.to_dict(), "retrain": True, "retrain_kind": "change",
                                   "checks": {"waiting_for_labels": {"value": 2000}}})
    inconclusive = _decide(history, _today(0.1), outcomes={requested.day: "not_promoted"})
    assert inconclusive.status == "retrain", inconclusive.reasons
    assert inconclusive.checks["cooldown"]["retry_after_inconclusive"]["rows_then"] == 2000
    promoted = _decide(history, _today(0.1), outcomes={requested.day: "promoted"})
    assert promoted.status == "held" and promoted.blocked_by == ["cooldown"]
