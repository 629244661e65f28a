"""pipeline.drift: statistics against scipy / hand values, the rule's tables, history, report."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from pipeline import drift
from pipeline.config import DriftPolicy, parse_spec
from pipeline.demo import DemoOptions, generate_day
from pipeline.drift import (
    DriftError, DriftReport, MonitorRecord, decide_retrain, load_history, measure_drift, render_report,
)
from pipeline.profile import build_profile, numeric_profile, score_profile
from pipeline.storage import Store, dumps, join

DAY = "2026-03-10"


def _tiny_spec(**drift_overrides):
    policy = {"min_window_rows": 10, "n_bootstrap": 200, **drift_overrides}
    return parse_spec({
        "name": "tiny", "task": "binary", "source": {"kind": "lake", "uri": "/nowhere"},
        "timestamp_column": "ts", "target_column": "y",
        "numeric_features": ["x"], "categorical_features": ["c"], "drift": policy,
    })


def _tiny_profile(x_edges=(1.0, 2.0), x_counts=(50, 30, 20), sample=None, freq=None, x_nulls=0.0, c_nulls=0.0):
    sample = list(np.linspace(0, 3, 100)) if sample is None else list(sample)
    return {
        "version": 1, "model": "tiny", "rows": 100,
        "features": {
            "x": {"type": "numeric", "null_rate": x_nulls, "std": float(np.std(sample, ddof=1)),
                  "quantiles": {"0.25": float(np.quantile(sample, 0.25)), "0.75": float(np.quantile(sample, 0.75))},
                  "bin_edges": list(x_edges), "bin_counts": list(x_counts), "sample": sorted(sample), "mean": 1.5},
            "c": {"type": "categorical", "null_rate": c_nulls,
                  "frequencies": freq or {"a": 60, "b": 30, "c": 10}},
        },
    }


def _frame(x, c):
    return pd.DataFrame({"x": pd.array(x, dtype="float64"), "c": pd.array(c, dtype="str")})


# ---------------------------------------------------------------- statistics


def test_psi_matches_a_hand_computed_three_bin_example():
    # shares after the 0.5 pseudo-count: reference (50.5, 30.5, 20.5)/101.5, current (20.5, 30.5, 50.5)/101.5
    expected = 2 * (30 / 101.5) * math.log(50.5 / 20.5)
    assert drift._psi(np.array([50, 30, 20]), np.array([20, 30, 50])) == pytest.approx(expected, rel=1e-12)
    assert drift._psi(np.array([50, 30, 20]), np.array([50, 30, 20])) == 0.0


def test_measure_drift_counts_the_current_window_into_the_reference_bins():
    # values equal to an edge fall in the lower bin: (-inf, 1], (1, 2], (2, inf)
    current = _frame([1.0] * 20 + [2.0] * 30 + [2.5] * 50, ["a"] * 100)
    report = measure_drift(_tiny_spec(), _tiny_profile(), current)
    x = report.features["x"]
    assert x["statistics"]["psi"] == pytest.approx(2 * (30 / 101.5) * math.log(50.5 / 20.5), rel=1e-12)
    assert x["histogram"]["current"] == [0.2, 0.3, 0.5]
    assert x["histogram"]["reference"] == [0.5, 0.3, 0.2]


@pytest.mark.parametrize("p, q", [
    ([1, 1, 1], [1, 1, 1]),
    ([0.6, 0.3, 0.1], [0.1, 0.3, 0.6]),
    ([10, 0, 5], [0, 7, 1]),
    ([1, 0], [0, 1]),
    ([600, 300, 100, 0], [400, 180, 120, 300]),
])
def test_js_distance_matches_scipy_base_2(p, q):
    assert drift._js_distance(np.array(p), np.array(q)) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_ks_and_wasserstein_match_scipy():
    rng = np.random.default_rng(3)
    sample = np.sort(rng.normal(0, 1, 300))
    values = rng.normal(0.4, 1.2, 500)
    profile = _tiny_profile(x_edges=list(np.quantile(sample, [0.25, 0.5, 0.75])), x_counts=[75, 75, 75, 75],
                            sample=sample)
    report = measure_drift(_tiny_spec(), profile, _frame(values, ["a"] * 500))
    s = report.features["x"]["statistics"]
    ks = stats.ks_2samp(sample, values)
    assert s["ks"] == pytest.approx(ks.statistic) and report.features["x"]["p"] == pytest.approx(ks.pvalue)
    iqr = np.quantile(sample, 0.75) - np.quantile(sample, 0.25)
    assert s["wasserstein"] == pytest.approx(stats.wasserstein_distance(sample, values))
    assert s["wasserstein_normalised"] == pytest.approx(stats.wasserstein_distance(sample, values) / iqr)


def test_chi_squared_and_js_include_unseen_categories():
    current = _frame([1.5] * 100, ["a"] * 40 + ["b"] * 20 + ["c"] * 10 + ["new"] * 30)
    seen_only = _frame([1.5] * 100, ["a"] * 55 + ["b"] * 35 + ["c"] * 10)
    spec, profile = _tiny_spec(), _tiny_profile()
    c = measure_drift(spec, profile, current).features["c"]
    expected = stats.chi2_contingency(np.array([[60, 30, 10, 0], [40, 20, 10, 30]]))
    assert c["statistics"]["chi2"] == pytest.approx(expected.statistic)
    assert c["p"] == pytest.approx(expected.pvalue)
    assert c["statistics"]["unseen_categories"] == ["new"]
    assert c["value"] == pytest.approx(jensenshannon([60, 30, 10, 0], [40, 20, 10, 30], base=2))
    assert c["statistics"]["linf"] == pytest.approx(0.3)
    baseline = measure_drift(spec, profile, seen_only).features["c"]["value"]
    assert c["value"] > 0.25 > baseline


def test_unseen_categories_go_to_other_when_the_reference_lumped_its_tail():
    profile = _tiny_profile(freq={"a": 60, "b": 30, "__other__": 10})
    c = measure_drift(_tiny_spec(), profile, _frame([1.5] * 100, ["a"] * 60 + ["b"] * 30 + ["z"] * 10)).features["c"]
    assert c["histogram"]["labels"] == ["a", "b", "__other__"]
    assert c["value"] == pytest.approx(0.0, abs=1e-12) and c["statistics"]["unseen_categories"] == []


@pytest.mark.parametrize("p", [
    [0.01], [0.2, 0.01, 0.04, 0.03, 0.5], [0.001, 0.001, 0.001, 0.9], [1.0, 1.0, 0.0],
    list(np.random.default_rng(1).uniform(0, 0.1, 17)), list(np.random.default_rng(2).uniform(0, 1, 40)),
])
def test_benjamini_hochberg_matches_scipy(p):
    np.testing.assert_allclose(drift._bh_adjust(p), stats.false_discovery_control(p, method="bh"), rtol=1e-12)


# ---------------------------------------------------------------- drift decision per feature


def test_effect_size_decides_and_the_test_guards():
    spec = _tiny_spec()
    # Big effect on 12 rows: PSI is large but adjusted p is not below 0.01 -> not drifted.
    small = measure_drift(spec, _tiny_profile(), _frame(np.linspace(1.2, 3.0, 12), ["a"] * 12)).features["x"]
    assert small["value"] >= spec.drift.psi_threshold and small["p_adjusted"] >= spec.drift.fdr_alpha
    assert not small["drifted"]
    # Tiny effect on many rows: significant but PSI far below threshold -> not drifted.
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 200_000)
    prof = numeric_profile(pd.Series(reference), n_bins=10, sample_size=20_000)
    profile = _tiny_profile(x_edges=prof["bin_edges"], x_counts=prof["bin_counts"], sample=prof["sample"])
    big = measure_drift(spec, profile, _frame(rng.normal(0.08, 1, 100_000), ["a"] * 100_000)).features["x"]
    assert big["p_adjusted"] < spec.drift.fdr_alpha and big["value"] < spec.drift.psi_threshold
    assert not big["drifted"]
    shifted = measure_drift(spec, profile, _frame(rng.normal(0.8, 1, 5000), ["a"] * 5000)).features["x"]
    assert shifted["drifted"] and "PSI" in shifted["reason"]


@pytest.mark.parametrize("current_null_share, drifted", [(0.0, False), (0.05, False), (0.1, True), (0.4, True)])
def test_null_rate_change_alone_drifts_a_feature(current_null_share, drifted):
    n = 200
    nulls = int(n * current_null_share)
    x = [np.nan] * nulls + list(np.linspace(0, 3, n - nulls))
    c = [None] * nulls + ["a"] * (n - nulls - 80) + ["b"] * 60 + ["c"] * 20
    report = measure_drift(_tiny_spec(), _tiny_profile(), _frame(x, c))
    assert report.features["x"]["null_rate"]["current"] == pytest.approx(current_null_share)
    assert report.features["x"]["drifted"] is drifted
    assert report.features["c"]["drifted"] is drifted
    assert ("x" in report.drifted_features) is drifted


def test_weighted_drift_uses_normalised_importance_and_derived_inputs():
    spec = parse_spec({
        "name": "tiny", "task": "binary", "source": {"kind": "lake", "uri": "/nowhere"},
        "timestamp_column": "ts", "target_column": "y", "numeric_features": ["x", "w"], "categorical_features": ["c"],
        "derived_features": [{"name": "x_per_w", "kind": "ratio", "numerator": "x", "denominator": "w"}],
        "drift": {"min_window_rows": 10},
    })
    profile = _tiny_profile()
    profile["features"]["w"] = dict(profile["features"]["x"])
    n = 400
    current = pd.DataFrame({"x": [2.5] * n, "w": list(np.linspace(0, 3, n)), "c": ["a", "b"] * (n // 2)})
    importance = {"x": 0.2, "w": 0.2, "c": 0.2, "x_per_w": 0.4, "gone": 1.0}
    report = measure_drift(spec, profile, current, feature_importance=importance)
    assert report.drifted_features == ["x", "c"]
    # x_per_w's 0.4 is split over x and w; "gone" is ignored and noted; weights renormalised to 1.
    assert report.features["x"]["importance"] == pytest.approx(0.4)
    assert report.weighted_drift == pytest.approx(0.6)
    assert any("gone" in note for note in report.notes)
    uniform = measure_drift(spec, profile, current)
    assert uniform.weighted_drift == pytest.approx(2 / 3)


# ---------------------------------------------------------------- prediction drift and performance


def test_prediction_drift_is_psi_on_the_reference_score_bins():
    rng = np.random.default_rng(5)
    reference = score_profile(rng.beta(2, 8, 5000))
    stable = rng.beta(2, 8, 1000)
    moved = rng.beta(4, 6, 1000)
    spec, profile, frame = _tiny_spec(), _tiny_profile(), _frame(np.linspace(0, 3, 1000), ["a"] * 1000)
    a = measure_drift(spec, profile, frame, current_scores=stable, reference_scores=reference).prediction
    b = measure_drift(spec, profile, frame, current_scores=moved, reference_scores=reference).prediction
    assert a["psi"] < 0.05 and not a["drifted"]
    assert b["psi"] > spec.drift.prediction_psi_threshold and b["drifted"]
    assert b["ks"] == pytest.approx(stats.ks_2samp(reference["sample"], moved).statistic)


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "brier", "log_loss", "f1"])
def test_binary_metrics_match_sklearn(metric):
    from sklearn import metrics as m

    rng = np.random.default_rng(11)
    y = (rng.random(400) < 0.3).astype(float)
    s = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1).round(2)  # rounded: ties exercise mid-ranks
    expected = {"roc_auc": m.roc_auc_score(y, s), "pr_auc": m.average_precision_score(y, s),
                "brier": m.brier_score_loss(y, s), "log_loss": m.log_loss(y, s),
                "f1": m.f1_score(y, s >= 0.5)}[metric]
    assert drift._metric_batch(metric, y[None, :], s[None, :], 0.5)[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_regression_metrics_match_sklearn(metric):
    from sklearn import metrics as m

    rng = np.random.default_rng(12)
    y, s = rng.normal(10, 3, 300), rng.normal(10, 3, 300)
    expected = {"rmse": m.root_mean_squared_error(y, s), "mae": m.mean_absolute_error(y, s),
                "r2": m.r2_score(y, s)}[metric]
    assert drift._metric_batch(metric, y[None, :], s[None, :], 0.5)[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("reference, degraded", [(0.80, False), (0.95, True)])
def test_realised_auc_is_degraded_only_when_the_optimistic_bound_is_below_reference(reference, degraded):
    rng = np.random.default_rng(7)
    y = (rng.random(2000) < 0.2).astype(int)
    s = np.clip(0.25 * y + rng.random(2000) * 0.75, 0, 1)
    labelled = pd.DataFrame({"y": y})
    frame = _frame(np.linspace(0, 3, 100), ["a"] * 100)
    perf = measure_drift(_tiny_spec(), _tiny_profile(), frame, labelled=labelled, labelled_scores=s,
                         champion_test_metric=reference).performance
    from sklearn.metrics import roc_auc_score

    assert perf["value"] == pytest.approx(roc_auc_score(y, s))
    lo, hi = perf["ci"]
    assert lo < perf["value"] < hi and hi - lo < 0.06
    assert perf["degraded"] is degraded and perf["rows"] == 2000


@pytest.mark.parametrize("reference, degraded", [(1.0, True), (1.4, False)])
def test_realised_rmse_degradation_is_direction_aware(reference, degraded):
    spec = parse_spec({
        "name": "reg", "task": "regression", "source": {"kind": "lake", "uri": "/nowhere"},
        "timestamp_column": "ts", "target_column": "y", "numeric_features": ["x"], "categorical_features": ["c"],
        "drift": {"min_window_rows": 10, "performance_tolerance": 0.1},
    })
    rng = np.random.default_rng(8)
    y = rng.normal(0, 1, 3000)
    s = y + rng.normal(0, 1.3, 3000)  # rmse ~1.3
    perf = measure_drift(spec, _tiny_profile(), _frame(np.linspace(0, 3, 50), ["a"] * 50),
                         labelled=pd.DataFrame({"y": y}), labelled_scores=s, champion_test_metric=reference).performance
    assert perf["metric"] == "rmse" and not perf["higher_is_better"]
    assert perf["degraded"] is degraded


# ---------------------------------------------------------------- unusable inputs and insufficient data


def test_unusable_inputs_raise_drift_error_naming_the_problem():
    spec, frame = _tiny_spec(), _frame(np.linspace(0, 3, 50), ["a"] * 50)
    with pytest.raises(DriftError, match="version 2"):
        measure_drift(spec, {**_tiny_profile(), "version": 2}, frame)
    with pytest.raises(DriftError, match=r"lacks spec features \['c'\]"):
        measure_drift(spec, _tiny_profile(), frame.drop(columns=["c"]))
    profile = _tiny_profile()
    del profile["features"]["x"]
    with pytest.raises(DriftError, match=r"profile .* lacks spec features \['x'\]"):
        measure_drift(spec, profile, frame)


def test_a_window_of_quarantined_bad_data_is_insufficient_and_never_retrains(spec, demo_frame):
    profile = build_profile(demo_frame, spec)
    bad = generate_day(date(2026, 1, 20), DemoOptions(rows_per_day=400, bad_day=date(2026, 1, 20), bad_kind="schema"))
    clean = bad.iloc[0:0]  # every row quarantined by validation: nothing usable is left
    report = measure_drift(spec, profile, clean)
    assert report.insufficient and report.rows == 0 and report.drifted_features == [] and report.features == {}
    assert "insufficient data" in report.notes[0]
    signalling = [MonitorRecord(day=(date.fromisoformat(DAY) - timedelta(days=k)).isoformat(), signal=True,
                                retrain=False) for k in (1, 2, 3)]
    decision = decide_retrain(report, signalling, spec.drift, day=DAY, champion_data_end="2026-01-01",
                              new_rows_since_champion=10**6)
    assert not decision.retrain and not decision.signal
    assert decision.blocked_by == ["insufficient_data"]


def test_a_short_window_is_insufficient(spec, demo_frame):
    report = measure_drift(spec, build_profile(demo_frame, spec), demo_frame.iloc[: spec.drift.min_window_rows - 1])
    assert report.insufficient and report.weighted_drift == 0.0


# ---------------------------------------------------------------- the retraining rule


def _report(*, weighted=0.5, pred_psi=0.3, degraded=False, rows=1000, insufficient=False):
    perf = {"metric": "roc_auc", "value": 0.7, "ci": [0.68, 0.72], "confidence": 0.95, "reference": 0.8,
            "tolerance": 0.03, "higher_is_better": True, "degraded": degraded, "rows": 1000,
            "note": "optimistic bound 0.72 < champion test 0.8 - tolerance 0.03"}
    pred = None if pred_psi is None else {"psi": pred_psi, "ks": 0.1, "p": 0.001, "threshold": 0.1,
                                          "drifted": pred_psi >= 0.1, "rows": rows}
    return DriftReport(window=None, rows=rows, features={}, drifted_features=["x"] if weighted else [],
                       weighted_drift=weighted, prediction=pred, performance=perf, insufficient=insufficient)


def _history(signals: dict[int, bool], retrains: tuple[int, ...] = ()) -> list[MonitorRecord]:
    """Records ``k`` days before DAY: ``{k: signal}``; ``retrains`` days back had retrain=True."""
    today = date.fromisoformat(DAY)
    days = set(signals) | set(retrains)
    return [MonitorRecord(day=(today - timedelta(days=k)).isoformat(), signal=signals.get(k, True),
                          retrain=k in retrains) for k in sorted(days, reverse=True)]


POLICY = DriftPolicy(consecutive_windows=2, cooldown_days=7, min_new_rows=2000, max_retrains_per_period=2,
                     budget_period_days=30)


@pytest.mark.parametrize("case, report, history, champion_end, new_rows, retrain, blocked", [
    ("all rules pass", _report(), _history({1: True}), "2026-02-01", 5000, True, []),
    ("no signal: prediction stable", _report(pred_psi=0.05), _history({1: True}), "2026-02-01", 5000, False, []),
    ("no signal: prediction unmeasured", _report(pred_psi=None), _history({1: True}), "2026-02-01", 5000, False, []),
    ("no signal: weighted drift low", _report(weighted=0.2), _history({1: True}), "2026-02-01", 5000, False, []),
    ("degraded alone signals", _report(weighted=0.0, pred_psi=0.0, degraded=True), _history({1: True}),
     "2026-02-01", 5000, True, []),
    ("hysteresis: first day", _report(), [], "2026-02-01", 5000, False, ["hysteresis"]),
    ("hysteresis: yesterday quiet", _report(), _history({1: False, 2: True}), "2026-02-01", 5000, False, ["hysteresis"]),
    ("hysteresis: a missing day breaks the run", _report(), _history({2: True}), "2026-02-01", 5000, False,
     ["hysteresis"]),
    ("cooldown: retrain 3 days ago", _report(), _history({1: True}, retrains=(3,)), "2026-02-01", 5000, False,
     ["cooldown"]),
    ("cooldown: retrain exactly cooldown_days ago", _report(), _history({1: True}, retrains=(7,)), "2026-02-01",
     5000, False, ["cooldown"]),
    ("cooldown: retrain cooldown_days+1 ago", _report(), _history({1: True}, retrains=(8,)), "2026-02-01", 5000,
     True, []),
    ("cooldown: champion data ended 2 days ago", _report(), _history({1: True}), "2026-03-08", 5000, False,
     ["cooldown"]),
    ("cooldown: champion newer than the window", _report(), _history({1: True}), "2026-03-12", 5000, False,
     ["cooldown"]),
    ("min rows", _report(), _history({1: True}), "2026-02-01", 1999, False, ["min_new_rows"]),
    ("budget: two retrains in 30 days", _report(), _history({1: True}, retrains=(10, 29)), "2026-02-01", 5000,
     False, ["budget"]),
    ("budget: one of them 30 days ago", _report(), _history({1: True}, retrains=(10, 30)), "2026-02-01", 5000,
     True, []),
    ("several rules at once", _report(), _history({2: True}, retrains=(4, 20)), None, 10, False,
     ["hysteresis", "cooldown", "min_new_rows", "budget"]),
])
def test_retrain_rule(case, report, history, champion_end, new_rows, retrain, blocked):
    decision = decide_retrain(report, history, POLICY, day=DAY, champion_data_end=champion_end,
                              new_rows_since_champion=new_rows)
    assert decision.retrain is retrain, (case, decision.reasons)
    assert decision.blocked_by == blocked, case
    assert decision.reasons and all(r.endswith(".") for r in decision.reasons)
    assert set(decision.checks) >= {"signal", "hysteresis", "cooldown", "min_new_rows", "budget"}
    assert bool(decision.trigger_reason) is decision.signal


def test_hysteresis_of_three_needs_three_consecutive_days():
    policy = POLICY.model_copy(update={"consecutive_windows": 3})
    kwargs = dict(day=DAY, champion_data_end=None, new_rows_since_champion=10**5)
    assert not decide_retrain(_report(), _history({1: True}), policy, **kwargs).retrain
    yes = decide_retrain(_report(), _history({1: True, 2: True, 3: False}), policy, **kwargs)
    assert yes.retrain and yes.checks["hysteresis"]["value"] == 3


def test_decision_ignores_history_on_or_after_its_day():
    history = _history({1: True}) + [MonitorRecord(day="2026-03-11", signal=True, retrain=True),
                                     MonitorRecord(day=DAY, signal=True, retrain=True)]
    decision = decide_retrain(_report(), history, POLICY, day=DAY, champion_data_end=None,
                              new_rows_since_champion=5000)
    assert decision.retrain and decision.checks["cooldown"]["last_retrain"] is None


def test_decision_record_carries_policy_evidence_and_reasons(spec, demo_frame):
    profile = build_profile(demo_frame.iloc[:2800], spec)
    report = measure_drift(spec, profile, demo_frame.iloc[2800:])
    decision = decide_retrain(report, [], spec.drift, day=DAY, champion_data_end="2026-01-08",
                              new_rows_since_champion=2800)
    record = json.loads(dumps(decision.to_dict()))
    assert record["retrain"] is False and record["reasons"]
    assert record["policy"]["psi_threshold"] == spec.drift.psi_threshold
    assert set(record["evidence"]["features"]) == set(spec.features)
    assert {"psi", "ks", "wasserstein_normalised"} <= set(record["evidence"]["features"]["income"]["statistics"])
    assert MonitorRecord.from_dict(record) == MonitorRecord(day=DAY, signal=False, retrain=False,
                                                            trigger_reason="", rows=2800)


# ---------------------------------------------------------------- history and report


def test_load_history_reads_earlier_decisions_newest_last(tmp_path):
    store = Store.for_uri(str(tmp_path))
    root = join(str(tmp_path), "credit_default", "monitor")
    for k, retrain in [(5, False), (3, True), (1, False), (0, True), (-1, True)]:
        day = (date.fromisoformat(DAY) - timedelta(days=k)).isoformat()
        store.write_json(join(root, day, "decision.json"),
                         {"day": day, "signal": retrain, "retrain": retrain, "trigger_reason": "", "rows": 10, "x": 1})
        store.write_text(join(root, day, "report.html"), "<html></html>")
    store.write_json(join(root, "not-a-day", "decision.json"), {"day": "x"})
    history = load_history(store, root, before_day=DAY)
    assert [h.day for h in history] == ["2026-03-05", "2026-03-07", "2026-03-09"]
    assert [h.retrain for h in history] == [False, True, False]
    assert [h.day for h in load_history(store, root, before_day=DAY, limit=2)] == ["2026-03-07", "2026-03-09"]
    assert load_history(store, join(root, "missing"), before_day=DAY) == []


def test_render_report_is_self_contained_html(spec, demo_frame):
    profile = build_profile(demo_frame.iloc[:2800], spec)
    drifted = generate_day(date(2026, 2, 1), DemoOptions(rows_per_day=1500, drift_day=date(2026, 2, 1)))
    rng = np.random.default_rng(0)
    report = measure_drift(spec, profile, drifted, current_scores=rng.beta(3, 7, len(drifted)),
                           reference_scores=score_profile(rng.beta(2, 8, 3000)), window=("2026-02-01", "2026-02-02"))
    decision = decide_retrain(report, [], spec.drift, day="2026-02-01", champion_data_end=None,
                              new_rows_since_champion=len(drifted))
    page = render_report(report, decision, title="credit_default <drift> 2026-02-01")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "credit_default &lt;drift&gt; 2026-02-01" in page
    assert page.count("data:image/png;base64,") == len(spec.features) + 1
    assert "http://" not in page and "https://" not in page
    for reason in decision.reasons:
        assert reason.split(":")[0] in page
    assert "partner_api" in page


# ---------------------------------------------------------------- realistic run on demo data


def test_demo_data_stable_vs_covariate_drift(spec, demo_frame):
    profile = build_profile(demo_frame.iloc[: 7 * 400], spec, window=("2026-01-01", "2026-01-08"))
    stable = measure_drift(spec, profile, demo_frame.iloc[7 * 400:])
    assert stable.drifted_features == [] and not stable.insufficient
    assert max(f["value"] for f in stable.features.values()) < 0.05
    drifted = generate_day(date(2026, 1, 20), DemoOptions(rows_per_day=2000, drift_day=date(2026, 1, 15)))
    report = measure_drift(spec, profile, drifted)
    assert {"income", "num_inquiries_6m", "channel"} <= set(report.drifted_features)
    assert not {"age", "region", "loan_term_months"} & set(report.drifted_features)
    assert report.features["channel"]["statistics"]["unseen_categories"] == ["partner_api"]
    assert report.features["income"]["p_adjusted"] < spec.drift.fdr_alpha
