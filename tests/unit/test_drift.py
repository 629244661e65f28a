"""pipeline.drift: statistics against scipy / hand values, bad inputs, demo data."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from pipeline import drift
from pipeline.config import parse_spec
from pipeline.demo import DemoOptions, generate_day
from pipeline.drift import DriftError, measure_drift
from pipeline.profile import build_profile, numeric_profile, score_profile


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


def test_weighted_drift_uses_normalised_importance_and_derived_inputs(caplog):
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
    with caplog.at_level("DEBUG", logger="pipeline.drift"):
        report = measure_drift(spec, profile, current, feature_importance=importance)
    assert report.drifted_features == ["x", "c"]
    # x_per_w's 0.4 is split over x and w; "gone" is left out (a debug line says why, the report's
    # reader is not told about it); weights renormalised to 1.
    assert report.features["x"]["importance"] == pytest.approx(0.4)
    assert report.weighted_drift == pytest.approx(0.6)
    assert not any("gone" in note or "importance" in note for note in report.notes)
    assert any("'gone'" in r.getMessage() and r.levelname == "DEBUG" for r in caplog.records)
    uniform = measure_drift(spec, profile, current)
    assert uniform.weighted_drift == pytest.approx(2 / 3)


def _train_like_importance(spec):
    """Importance as the train stage writes it: per raw input column, the timestamp included (the
    date_part ``application_hour`` reads it), summing to 1."""
    weights = {c: 1.0 for c in spec.features} | {"income": 6.0, "num_inquiries_6m": 4.0, spec.timestamp_column: 3.0}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


def test_the_timestamps_importance_goes_to_the_derived_feature_that_reads_it(spec, demo_frame):
    profile = build_profile(demo_frame.iloc[: 7 * 400], spec)
    assert set(profile["derived_features"]) == {"loan_to_income", "log_income", "application_hour"}
    importance = _train_like_importance(spec)
    report = measure_drift(spec, profile, demo_frame.iloc[7 * 400:], feature_importance=importance)
    hour = report.features["application_hour"]
    assert hour["derived"] and hour["inputs"] == ["event_time"]
    assert hour["importance"] == pytest.approx(importance["event_time"])
    assert report.features["income"]["importance"] == pytest.approx(importance["income"])
    # a ratio's weight is already in its inputs (the train stage put it there): not counted twice
    assert report.features["loan_to_income"]["importance"] == 0.0
    assert sum(f["importance"] for f in report.features.values()) == pytest.approx(1.0)
    assert report.notes == []


def test_derived_features_are_monitored_and_drift_with_their_inputs(spec, demo_frame):
    profile = build_profile(demo_frame.iloc[: 7 * 400], spec)
    drifted = generate_day(date(2026, 1, 20), DemoOptions(rows_per_day=2000, drift_day=date(2026, 1, 15)))
    report = measure_drift(spec, profile, drifted, feature_importance=_train_like_importance(spec))
    log_income = report.features["log_income"]
    assert log_income["derived"] and log_income["derivation"] == "log1p" and log_income["type"] == "numeric"
    assert log_income["drifted"] and "log_income" in report.drifted_features
    assert not report.features["application_hour"]["drifted"]
    assert list(report.features)[-3:] == ["loan_to_income", "log_income", "application_hour"]
    # the ranking puts drifted features first, the most important first
    ranked = [name for name, _ in report.by_severity()]
    assert ranked[: len(report.drifted_features)] == sorted(
        report.drifted_features, key=lambda n: (-report.features[n]["importance"], -drift.severity(report.features[n])))
    assert ranked[0] == "income"


def test_a_profile_without_derived_features_says_how_to_get_them_monitored(spec, demo_frame):
    profile = build_profile(demo_frame.iloc[: 7 * 400], spec)
    del profile["derived_features"]  # as written before derived features were profiled
    report = measure_drift(spec, profile, demo_frame.iloc[7 * 400:], feature_importance=_train_like_importance(spec))
    assert not any(f["derived"] for f in report.features.values())
    assert report.notes == ["derived features loan_to_income, log_income, application_hour are not monitored: the "
                            "champion's reference profile predates derived-feature profiles; the next retrain's "
                            "champion profiles them"]


# ---------------------------------------------------------------- prediction drift


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


def test_a_window_of_quarantined_bad_data_is_insufficient(spec, demo_frame):
    profile = build_profile(demo_frame, spec)
    bad = generate_day(date(2026, 1, 20), DemoOptions(rows_per_day=400, bad_day=date(2026, 1, 20), bad_kind="schema"))
    clean = bad.iloc[0:0]  # every row quarantined by validation: nothing usable is left
    report = measure_drift(spec, profile, clean)
    assert report.insufficient and report.rows == 0 and report.drifted_features == [] and report.features == {}
    assert "insufficient data" in report.notes[0]
    assert not report.summary(spec.drift)["drifted"]


def test_a_short_window_is_insufficient(spec, demo_frame):
    report = measure_drift(spec, build_profile(demo_frame, spec), demo_frame.iloc[: spec.drift.min_window_rows - 1])
    assert report.insufficient and report.weighted_drift == 0.0


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
