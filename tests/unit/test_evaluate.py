"""pipeline.evaluate: metrics and bootstrap intervals, paired differences, slices, and the gates.

Models are real fitted scikit-learn estimators on synthetic windows with known properties; the
decision tables feed hand-built Evidence to the pure ``decide``.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.config import PromotionPolicy, Settings, parse_spec
from pipeline.evaluate import (
    GATE_NAMES,
    Decision,
    DecisionError,
    Evaluation,
    EvaluationError,
    Evidence,
    _bootstrap,
    _binary_block,
    _percentiles,
    _point_metrics,
    _rank,
    _slice_labels,
    decide,
    evaluate,
)
from pipeline.storage import Store

FEATURES = ["x1", "x2", "x3", "x4"]
REGIONS = ["north", "south", "east", "west"]
END = "2026-03-01T00:00:00+00:00"
EARLIER = "2026-02-20T00:00:00+00:00"


def _spec(task: str = "binary", **promotion):
    data = {
        "name": "toy", "task": task, "source": {"kind": "lake", "uri": "/nonexistent"},
        "timestamp_column": "ts", "target_column": "y",
        "numeric_features": FEATURES, "categorical_features": ["region"],
        "slice_columns": ["region", "x1"],
        "promotion": {"n_bootstrap": 300, "metric_floors": {}, **promotion},
    }
    return parse_spec(data, settings=Settings.from_env({}))


def _window(n: int, seed: int, task: str = "binary") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    df = pd.DataFrame(x, columns=FEATURES)
    df["region"] = rng.choice(REGIONS, size=n)
    df["ts"] = pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 28 * 86400, n), unit="s")
    signal = 1.5 * x[:, 0] + 1.0 * x[:, 1] + 0.6 * x[:, 2]
    if task == "binary":
        df["y"] = (rng.random(n) < 1 / (1 + np.exp(-(signal - 1.0)))).astype("int64")
    else:
        df["y"] = 3.0 * signal + rng.normal(scale=2.0, size=n)
    return df


def _fit(df: pd.DataFrame, columns: list[str], task: str = "binary"):
    estimator = LogisticRegression() if task == "binary" else LinearRegression()
    model = make_pipeline(ColumnTransformer([("keep", "passthrough", columns)]), estimator)
    return model.fit(df, df["y"])


class _NoisyInRegion:
    """A fitted model with log-odds noise added in one region (a slice regression)."""

    def __init__(self, model, region: str, scale: float):
        self.model, self.region, self.scale = model, region, scale

    def predict_proba(self, X):
        p = self.model.predict_proba(X)[:, 1]
        logit = np.log(p / (1 - p))
        bad = (X["region"] == self.region).to_numpy()
        logit[bad] += np.random.default_rng(0).normal(scale=self.scale, size=int(bad.sum()))
        q = 1 / (1 + np.exp(-logit))
        return np.column_stack([1 - q, q])


class _Broken:
    def predict_proba(self, X):
        raise KeyError("x9")


@pytest.fixture(scope="module")
def toy():
    """Train/test windows and models on x1..x4: ``full`` (all signal), ``weak`` (x3 only)."""
    train, test = _window(3000, 1), _window(4000, 2)
    return {
        "train": train, "test": test,
        "full": _fit(train, ["x1", "x2", "x3"]),
        "weak": _fit(train, ["x3"]),
        "prior": _fit(train, ["x4"]),
    }


def _info(end: str = END, **more) -> dict:
    return {"data_interval_end": end, **more}


# ---------------------------------------------------------------------------------------------
# metrics and bootstrap


@pytest.mark.parametrize("ties", [False, True])
def test_binary_point_and_weighted_metrics_match_sklearn(ties):
    rng = np.random.default_rng(3)
    y = (rng.random(2500) < 0.2).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=y.size) + 1.2 * y)))
    if ties:
        p = np.round(p, 2)
    got = _point_metrics("binary", y, p, 0.5)
    want = {"roc_auc": skm.roc_auc_score(y, p), "pr_auc": skm.average_precision_score(y, p),
            "log_loss": skm.log_loss(y, p), "brier": skm.brier_score_loss(y, p), "f1": skm.f1_score(y, p >= 0.5)}
    assert got == pytest.approx(want, abs=1e-10)
    # A bootstrap replicate is a weighting: it must equal sklearn with sample_weight.
    w = rng.integers(0, 4, size=y.size)
    block = _binary_block(_rank(y, p, 0.5), w[None, :].astype(np.float32))
    assert block["roc_auc"][0] == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w), abs=1e-9)
    assert block["pr_auc"][0] == pytest.approx(skm.average_precision_score(y, p, sample_weight=w), abs=1e-7)
    assert block["log_loss"][0] == pytest.approx(skm.log_loss(y, p, sample_weight=w), rel=1e-5)


def test_regression_point_metrics_match_sklearn():
    rng = np.random.default_rng(4)
    y = rng.normal(size=800)
    yhat = y + rng.normal(scale=0.5, size=y.size)
    got = _point_metrics("regression", y, yhat, 0.5)
    assert got == pytest.approx({"rmse": skm.root_mean_squared_error(y, yhat),
                                 "mae": skm.mean_absolute_error(y, yhat), "r2": skm.r2_score(y, yhat)}, abs=1e-10)


def test_bootstrap_is_seeded_and_paired():
    rng = np.random.default_rng(5)
    y = (rng.random(600) < 0.3).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=y.size) + y)))
    preds = {"candidate": p, "champion": p.copy()}
    a = _bootstrap("binary", y, preds, 200, 0.5, np.random.default_rng(9))
    b = _bootstrap("binary", y, preds, 200, 0.5, np.random.default_rng(9))
    assert np.array_equal(a["candidate"]["roc_auc"], b["candidate"]["roc_auc"])
    assert a["candidate"]["roc_auc"].std() > 0.005
    # Same rows in every replicate for both models: identical models differ by exactly zero.
    for metric in a["candidate"]:
        assert np.array_equal(a["candidate"][metric], a["champion"][metric], equal_nan=True)


def _binormal(rng, n, d):
    y = (rng.random(n) < 0.4).astype(float)
    return y, rng.normal(size=n) + d * y


def test_bootstrap_interval_coverage_simulation():
    """95 % percentile intervals cover the true AUC and the true mean absolute error in ~95 % of
    simulated windows (binormal scores with AUC = Phi(d / sqrt 2); Gaussian errors with
    E|e| = sigma * sqrt(2 / pi))."""
    rng = np.random.default_rng(11)
    d, sigma, sims = 1.0, 2.0, 150
    true_auc, true_mae = norm.cdf(d / np.sqrt(2)), sigma * np.sqrt(2 / np.pi)
    auc_hits = mae_hits = 0
    for _ in range(sims):
        y, score = _binormal(rng, 400, d)
        reps = _bootstrap("binary", y, {"m": score}, 300, 0.5, rng)["m"]["roc_auc"]
        lo, hi = _percentiles(reps, 0.95)
        auc_hits += lo <= true_auc <= hi
        target = rng.normal(size=300)
        reps = _bootstrap("regression", target, {"m": target + rng.normal(scale=sigma, size=300)}, 300, 0.5,
                          rng)["m"]["mae"]
        lo, hi = _percentiles(reps, 0.95)
        mae_hits += lo <= true_mae <= hi
    assert 0.88 <= auc_hits / sims <= 0.99, auc_hits
    assert 0.88 <= mae_hits / sims <= 0.99, mae_hits


def test_paired_interval_is_tighter_than_unpaired_on_correlated_models():
    rng = np.random.default_rng(12)
    y, champion = _binormal(rng, 3000, 1.0)
    candidate = champion + rng.normal(scale=0.3, size=y.size)  # highly correlated scores
    preds = {"candidate": candidate, "champion": champion}
    paired = _bootstrap("binary", y, preds, 400, 0.5, np.random.default_rng(1))
    paired_diff = paired["candidate"]["roc_auc"] - paired["champion"]["roc_auc"]
    unpaired_diff = (_bootstrap("binary", y, {"m": candidate}, 400, 0.5, np.random.default_rng(2))["m"]["roc_auc"]
                     - _bootstrap("binary", y, {"m": champion}, 400, 0.5, np.random.default_rng(3))["m"]["roc_auc"])
    paired_width = np.subtract(*_percentiles(paired_diff, 0.95)[::-1])
    unpaired_width = np.subtract(*_percentiles(unpaired_diff, 0.95)[::-1])
    assert paired_width < 0.5 * unpaired_width, (paired_width, unpaired_width)


# ---------------------------------------------------------------------------------------------
# evaluate -> decide on real models


@pytest.mark.parametrize(
    "candidate, champion, margin, passes",
    [
        ("weak", "full", -0.005, False),   # clearly worse: rejected
        ("full", "weak", -0.005, True),    # clearly better: accepted
        ("full", "full", -0.01, True),     # equal: non-inferiority holds
        ("full", "full", 0.01, False),     # equal: superiority not shown
    ],
)
def test_vs_champion_gate_on_paired_interval(toy, candidate, champion, margin, passes):
    spec = _spec(champion_margin=margin, min_lift_over_baseline=0.0)
    ev = evaluate(spec, toy["test"], toy[candidate], toy["prior"], toy[champion],
                  candidate_info=_info(), champion_info=_info(EARLIER), seed=1)
    decision = decide(ev.evidence(), spec.promotion, primary_metric="roc_auc")
    gate = decision.gate("vs_champion")
    assert gate.passed is passes
    assert decision.promote is passes
    diff = ev.differences["candidate_vs_champion"]["roc_auc"]
    assert gate.observed == diff["lower"] and gate.threshold == margin
    if candidate == champion:
        assert diff == {"estimate": 0.0, "lower": 0.0, "upper": 0.0}
    assert "roc_auc" in gate.detail and f"{margin:+.4f}" in gate.detail


def test_slice_regression_blocks_while_overall_passes(toy):
    spec = _spec(champion_margin=-0.05, slice_tolerance=0.03, min_lift_over_baseline=0.0)
    sabotaged = _NoisyInRegion(toy["full"], "north", scale=1.0)
    ev = evaluate(spec, toy["test"], sabotaged, toy["prior"], toy["full"],
                  candidate_info=_info(), champion_info=_info(EARLIER))
    decision = decide(ev.evidence(), spec.promotion, primary_metric="roc_auc")
    assert decision.gate("vs_champion").passed is True
    slices = decision.gate("slices")
    assert slices.passed is False and decision.promote is False
    assert slices.detail.startswith("worst of 8 gated slices is region=north")
    assert slices.observed < -0.03 and "slices regress" not in slices.detail  # only north regresses
    assert any(r.startswith("slices failed") and "region=north" in r for r in decision.reasons)


def test_first_run_skips_champion_gates_and_says_so(toy):
    spec = _spec(metric_floors={"roc_auc": 0.6})
    ev = evaluate(spec, toy["test"], toy["full"], toy["prior"], candidate_info=_info(version="1"))
    assert "candidate_vs_champion" not in ev.differences
    assert all(s["champion"] is None and not s["gated"] for s in ev.slices)
    decision = decide(ev.evidence(), spec.promotion, primary_metric="roc_auc")
    assert decision.promote is True
    for name in ("vs_champion", "slices", "freshness"):
        gate = decision.gate(name)
        assert gate.passed is None and gate.detail == "no champion yet (first run)"
    assert [decision.gate(n).passed for n in ("floor", "beats_baseline", "budget")] == [True, True, True]
    assert "first champion" in decision.summary
    assert any("vs_champion skipped: no champion yet (first run)" == r for r in decision.reasons)


def test_regression_metrics_are_oriented_lower_rmse_is_better():
    train, test = _window(2000, 21, "regression"), _window(2500, 22, "regression")
    full, weak = _fit(train, ["x1", "x2", "x3"], "regression"), _fit(train, ["x3"], "regression")
    spec = _spec("regression", metric_floors={"rmse": 3.0}, min_lift_over_baseline=0.5)
    assert spec.primary_metric == "rmse"
    better = evaluate(spec, test, full, weak, weak, candidate_info=_info(), champion_info=_info(EARLIER))
    raw = better.metrics["candidate"]["rmse"]["estimate"] - better.metrics["champion"]["rmse"]["estimate"]
    assert raw < 0
    assert better.differences["candidate_vs_champion"]["rmse"]["estimate"] == pytest.approx(-raw)
    assert better.differences["candidate_vs_champion"]["rmse"]["lower"] > 0
    assert better.differences["candidate_vs_champion"]["r2"]["estimate"] > 0
    assert decide(better.evidence(), spec.promotion, primary_metric="rmse").promote is True
    worse = evaluate(spec, test, weak, full, full, candidate_info=_info(), champion_info=_info(EARLIER))
    decision = decide(worse.evidence(), spec.promotion, primary_metric="rmse")
    assert worse.differences["candidate_vs_champion"]["rmse"]["upper"] < 0
    assert [decision.gate(n).passed for n in ("floor", "beats_baseline", "vs_champion")] == [False, False, False]
    assert "ceiling 3.0000" in decision.gate("floor").detail


# ---------------------------------------------------------------------------------------------
# decide on hand-built evidence


def _evidence(**overrides) -> Evidence:
    diff = lambda e, lo, hi: {"estimate": e, "lower": lo, "upper": hi}  # noqa: E731
    base = Evidence(
        task="binary", confidence=0.95, rows=5000,
        candidate={"roc_auc": 0.80, "pr_auc": 0.5, "log_loss": 0.35, "brier": 0.11, "f1": 0.4},
        vs_baseline={"roc_auc": diff(0.05, 0.04, 0.06), "log_loss": diff(0.02, 0.01, 0.03)},
        vs_champion={"roc_auc": diff(0.01, 0.002, 0.018), "log_loss": diff(0.0, -0.002, 0.002)},
        slices=[{"column": "region", "slice": "north", "rows": 800, "positives": 120,
                 "candidate": {"roc_auc": 0.79}, "champion": {"roc_auc": 0.78}},
                {"column": "region", "slice": "tiny", "rows": 50, "positives": 8,
                 "candidate": {"roc_auc": 0.5}, "champion": {"roc_auc": 0.9}},
                {"column": "region", "slice": "onecls", "rows": 400, "positives": 0,
                 "candidate": {"roc_auc": None}, "champion": {"roc_auc": None}}],
        model_size_mb=2.0, latency_ms_per_1k=10.0,
        candidate_data_end=END, champion_data_end=EARLIER,
        candidate_version="7", champion_version="6", report_uri="/runs/2026-03-01/evaluation.json",
    )
    return replace(base, **overrides)


def test_all_gates_pass_and_small_or_one_class_slices_are_not_gated():
    decision = decide(_evidence(), PromotionPolicy(metric_floors={"roc_auc": 0.7}), primary_metric="roc_auc")
    assert decision.promote is True
    assert [g.name for g in decision.gates] == list(GATE_NAMES)
    assert all(g.passed is True for g in decision.gates)
    # 'tiny' regresses by 0.4 but has 50 rows; 'onecls' has one class: only 'north' is judged.
    assert "region=north" in decision.gate("slices").detail
    assert decision.summary == ("PROMOTE candidate v7 over champion v6: 6 gate(s) passed, 0 skipped; "
                                "report /runs/2026-03-01/evaluation.json")


@pytest.mark.parametrize(
    "floors, candidate, passed, needle",
    [
        ({}, {}, None, "no metric floors configured"),
        ({"roc_auc": 0.75}, {}, True, "candidate roc_auc 0.8000 meets the floor 0.7500 with 0.0500"),
        ({"roc_auc": 0.85}, {}, False, "candidate roc_auc 0.8000 misses the floor 0.8500 by 0.0500 short"),
        ({"log_loss": 0.30}, {}, False, "candidate log_loss 0.3500 misses the ceiling 0.3000 by 0.0500 short"),
        ({"log_loss": 0.40}, {}, True, "meets the ceiling 0.4000"),
        ({"roc_auc": 0.6}, {"roc_auc": None}, False, "roc_auc is undefined"),
    ],
)
def test_floor_gate(floors, candidate, passed, needle):
    evidence = _evidence(candidate={**_evidence().candidate, **candidate})
    gate = decide(evidence, PromotionPolicy(metric_floors=floors), primary_metric="roc_auc").gate("floor")
    assert gate.passed is passed
    assert needle in gate.detail


@pytest.mark.parametrize("lift, passed", [(0.05, True), (0.02, True), (0.019, False), (-0.01, False)])
def test_beats_baseline_gate(lift, passed):
    evidence = _evidence(vs_baseline={"roc_auc": {"estimate": lift, "lower": lift - 0.01, "upper": lift + 0.01}})
    decision = decide(evidence, PromotionPolicy(min_lift_over_baseline=0.02), primary_metric="roc_auc")
    gate = decision.gate("beats_baseline")
    assert gate.passed is passed and gate.observed == lift and gate.threshold == 0.02
    assert gate.interval == (lift - 0.01, lift + 0.01)
    assert decision.promote is passed


@pytest.mark.parametrize(
    "estimate, lower, margin, passed, kind",
    [
        (0.0, -0.004, -0.005, True, "non-inferiority"),
        (0.0, -0.008, -0.005, False, "non-inferiority"),  # point estimate fine, the bound is not
        (0.02, 0.012, 0.01, True, "superiority"),
        (0.02, 0.005, 0.01, False, "superiority"),
    ],
)
def test_vs_champion_gate_judges_the_lower_confidence_bound(estimate, lower, margin, passed, kind):
    diff = {"estimate": estimate, "lower": lower, "upper": estimate + (estimate - lower)}
    gate = decide(_evidence(vs_champion={"roc_auc": diff}), PromotionPolicy(champion_margin=margin),
                  primary_metric="roc_auc").gate("vs_champion")
    assert gate.passed is passed and gate.observed == lower and gate.interval == (lower, diff["upper"])
    assert f"lower bound {lower:+.4f} {'>=' if passed else '<'} {kind} margin {margin:+.4f}" in gate.detail


@pytest.mark.parametrize(
    "size, latency, passed, needle",
    [
        (2.0, 10.0, True, "model size 2.00 MB <= max 50.00 MB"),
        (80.0, 10.0, False, "model size 80.00 MB > max 50.00 MB (over by 30.00 MB)"),
        (2.0, 400.0, False, "latency 400.0 ms/1k rows > max 250.0 (over by 150.0 ms)"),
    ],
)
def test_budget_gate(size, latency, passed, needle):
    decision = decide(_evidence(model_size_mb=size, latency_ms_per_1k=latency), PromotionPolicy(),
                      primary_metric="roc_auc")
    gate = decision.gate("budget")
    assert gate.passed is passed and needle in gate.detail
    assert gate.observed == {"model_size_mb": size, "latency_ms_per_1k": latency}
    assert decision.promote is passed


@pytest.mark.parametrize(
    "candidate_end, allow_stale, passed",
    [
        (END, False, True),
        (EARLIER, False, True),  # same data end as the champion
        ("2026-02-10T00:00:00+00:00", False, False),
        ("2026-02-10T00:00:00+00:00", True, True),
    ],
)
def test_freshness_gate(candidate_end, allow_stale, passed):
    decision = decide(_evidence(candidate_data_end=candidate_end), PromotionPolicy(allow_stale=allow_stale),
                      primary_metric="roc_auc")
    gate = decision.gate("freshness")
    assert gate.passed is passed and decision.promote is passed
    if candidate_end.startswith("2026-02-10"):
        assert "10 day(s) before the champion's" in gate.detail
        expected = "allowed by promotion.allow_stale" if allow_stale else "never replaces a fresher champion"
        assert expected in gate.detail


@pytest.mark.parametrize("allow_stale", [False, True])
def test_unknown_champion_data_end_fails_freshness_closed(toy, allow_stale):
    spec = _spec(allow_stale=allow_stale, min_lift_over_baseline=0.0)
    ev = evaluate(spec, toy["test"], toy["full"], toy["prior"], toy["weak"], candidate_info=_info(),
                  champion_info={"data_interval_end": "", "version": "3"})
    assert ev.evidence().champion_data_end is None
    gate = decide(ev.evidence(), spec.promotion, primary_metric="roc_auc").gate("freshness")
    assert gate.passed is allow_stale
    assert "champion's data_interval_end is unknown" in gate.detail


def test_force_skips_gates_two_to_six_but_not_the_floor():
    bad = _evidence(vs_champion={"roc_auc": {"estimate": -0.2, "lower": -0.3, "upper": -0.1}},
                    candidate_data_end="2026-01-01", model_size_mb=500.0)
    assert decide(bad, PromotionPolicy(), primary_metric="roc_auc").promote is False
    forced = decide(bad, PromotionPolicy(), primary_metric="roc_auc", force=True, reason="rollback of v6, INC-42")
    assert forced.promote is True and forced.forced is True and forced.force_reason == "rollback of v6, INC-42"
    assert forced.gate("floor").passed is None  # no floors configured
    for name in GATE_NAMES[1:]:
        gate = forced.gate(name)
        assert gate.passed is None and "forced (rollback of v6, INC-42)" in gate.detail
    assert "(forced)" in forced.summary
    floored = decide(bad, PromotionPolicy(metric_floors={"roc_auc": 0.9}), primary_metric="roc_auc",
                     force=True, reason="urgent")
    assert floored.promote is False and floored.gate("floor").passed is False
    assert floored.summary.startswith("REJECT candidate v7: failed floor")
    with pytest.raises(DecisionError, match="needs a reason"):
        decide(bad, PromotionPolicy(), primary_metric="roc_auc", force=True)
    with pytest.raises(DecisionError, match="needs a reason"):
        decide(bad, PromotionPolicy(), primary_metric="roc_auc", force=True, reason="  ")


def test_decide_rejects_unknown_primary_metric_and_bad_dates():
    with pytest.raises(DecisionError, match="'rmse' is not in the evidence"):
        decide(_evidence(), PromotionPolicy(), primary_metric="rmse")
    with pytest.raises(DecisionError, match="'pr_auc' is not in the evidence"):
        decide(_evidence(), PromotionPolicy(), primary_metric="pr_auc")
    with pytest.raises(DecisionError, match="champion_data_end 'last week' is not an ISO date"):
        decide(_evidence(champion_data_end="last week"), PromotionPolicy(), primary_metric="roc_auc")


def test_decision_record_serialises_and_names_metric_threshold_and_observed():
    evidence = _evidence(vs_champion={"roc_auc": {"estimate": -0.012, "lower": -0.02, "upper": -0.004}})
    decision = decide(evidence, PromotionPolicy(champion_margin=-0.005), primary_metric="roc_auc")
    assert decision.promote is False
    text = json.dumps(decision.to_dict())
    back = Decision.from_dict(json.loads(text))
    assert back == decision
    detail = back.gate("vs_champion").detail
    assert detail == ("roc_auc candidate - champion -0.0120 (95% CI [-0.0200, -0.0040], paired, positive = "
                      "candidate better): lower bound -0.0200 < non-inferiority margin -0.0050 (short by 0.0150)")
    assert back.reasons[0] == f"vs_champion failed: {detail}"
    assert back.summary.endswith("failed vs_champion; report /runs/2026-03-01/evaluation.json")
    assert back.policy["champion_margin"] == -0.005
    assert Evidence.from_dict(json.loads(json.dumps(evidence.to_dict()))) == evidence


# ---------------------------------------------------------------------------------------------
# unusable inputs


@pytest.mark.parametrize(
    "mutate, champion, champion_info, candidate_info, match",
    [
        (lambda df: df.iloc[:0], None, None, _info(), "test window is empty"),
        (lambda df: df.assign(y=0), None, None, _info(), "all 4000 test rows have 'y' = 0"),
        (lambda df: df.drop(columns=["x2"]), None, None, _info(), r"lacks model column\(s\) \['x2'\]"),
        (lambda df: df.assign(y=df["y"].astype("Float64").mask(df.index < 7)), None, None, _info(),
         "7 of 4000 test rows have no usable 'y' label"),
        (lambda df: df, "full", None, _info(), "champion model was given without champion_info"),
        (lambda df: df, None, None, {"version": "3"}, "candidate_info lacks 'data_interval_end'"),
        (lambda df: df, None, None, _info("yesterday"), "is not an ISO date"),
    ],
)
def test_evaluation_errors_name_what_and_where(toy, mutate, champion, champion_info, candidate_info, match):
    with pytest.raises(EvaluationError, match=match) as err:
        evaluate(_spec(), mutate(toy["test"]), toy["full"], toy["prior"],
                 toy[champion] if champion else None, candidate_info=candidate_info, champion_info=champion_info,
                 out_uri="/tmp/run/evaluation.json")
    assert "model 'toy' (report /tmp/run/evaluation.json)" in str(err.value)


def test_a_model_that_cannot_score_is_named(toy):
    with pytest.raises(EvaluationError, match=r"the baseline model failed to score the test window \(KeyError"):
        evaluate(_spec(), toy["test"], toy["full"], _Broken(), candidate_info=_info())


# ---------------------------------------------------------------------------------------------
# slices


def test_slice_labels_bin_numeric_and_datetime_columns_into_quartiles():
    values = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, None])
    labels = _slice_labels(values)
    assert list(labels) == ["[1, 2.75]"] * 2 + ["(2.75, 4.5]"] * 2 + ["(4.5, 6.25]"] * 2 + ["(6.25, 8]"] * 2 \
        + ["(missing)"]
    assert set(_slice_labels(pd.Series([3, 3, 3]))) == {"= 3"}
    stamps = pd.Series(pd.date_range("2026-01-01", periods=8, freq="D", tz="UTC"))
    assert len(set(_slice_labels(stamps))) == 4
    assert _slice_labels(stamps)[0].startswith("[2026-01-01T00:00:00+00:00")
    cats = pd.Series(["a", None, "b"], dtype="str")
    assert list(_slice_labels(cats)) == ["a", "(missing)", "b"]


def test_slices_report_small_and_one_class_segments_without_gating(toy):
    spec = _spec(slice_min_rows=900)
    test = toy["test"].copy()
    test.loc[test["region"] == "west", "y"] = 0
    test.loc[:99, "region"] = "islands"
    ev = evaluate(spec, test, toy["full"], toy["prior"], toy["weak"], candidate_info=_info(),
                  champion_info=_info(EARLIER))
    by_name = {(s["column"], s["slice"]): s for s in ev.slices}
    assert {s for c, s in by_name if c == "region"} == set(REGIONS) | {"islands"}
    assert sum(1 for c, _ in by_name if c == "x1") == 4
    west = by_name[("region", "west")]
    assert west["positives"] == 0 and west["gated"] is False and west["note"] == "only one class in this slice"
    assert west["candidate"]["roc_auc"] is None and west["candidate"]["log_loss"] is not None
    gated = [s for s in ev.slices if s["gated"]]
    assert gated and all(s["rows"] >= 900 for s in gated)
    small = [s for s in ev.slices if s["rows"] < 900]
    assert [s["slice"] for s in small] == ["islands"] and small[0]["note"] == "100 rows < slice_min_rows 900"
    assert sum(s["rows"] for s in ev.slices if s["column"] == "region") == len(test)


# ---------------------------------------------------------------------------------------------
# a realistic run on demo data


def test_demo_run_writes_report_and_decides(spec, demo_frame, tmp_path):
    df = demo_frame.sort_values("event_time", ignore_index=True)
    cut = df["event_time"].min() + pd.Timedelta(days=10)
    train, test = df[df["event_time"] < cut], df[df["event_time"] >= cut]
    numeric, categorical = list(spec.numeric_features), list(spec.categorical_features)
    encode = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    candidate = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(train, train["defaulted"])
    baseline = make_pipeline(ColumnTransformer([("num", SimpleImputer(), ["credit_score", "interest_rate",
                                                                         "debt_to_income"])]),
                             LogisticRegression(max_iter=500)).fit(train, train["defaulted"])
    champion = make_pipeline(ColumnTransformer([("num", SimpleImputer(), ["credit_score", "interest_rate"])]),
                             LogisticRegression()).fit(train, train["defaulted"])
    run = str(tmp_path / "credit_default" / "runs" / "2026-01-15")

    ev = evaluate(spec, test, candidate, baseline, champion,
                  candidate_info={"data_interval_end": "2026-01-15T00:00:00+00:00", "version": "2"},
                  champion_info={"data_interval_end": "2026-01-08T00:00:00+00:00", "version": "1"},
                  out_uri=run, seed=3)

    assert ev.rows == len(test) and ev.uri == f"{run}/evaluation.json"
    auc = ev.metrics["candidate"]["roc_auc"]
    assert auc["estimate"] == pytest.approx(skm.roc_auc_score(test["defaulted"],
                                                              candidate.predict_proba(test)[:, 1]))
    assert auc["lower"] < auc["estimate"] < auc["upper"]
    assert set(ev.metrics) == {"candidate", "baseline", "champion"}
    assert {s["column"] for s in ev.slices} == {"region", "channel"}
    assert all(ms > 0 for ms in ev.latency_ms_per_1k.values())
    assert 0 < ev.model_size_mb["baseline"] < ev.model_size_mb["candidate"] < 5
    stored = Store.for_uri(run).read_json(ev.uri)
    assert Evaluation.from_dict(stored).evidence() == ev.evidence()

    decision = decide(ev.evidence(), spec.promotion, primary_metric=spec.primary_metric)
    assert decision.gate("vs_champion").passed is True, decision.gate("vs_champion").detail
    assert decision.gate("freshness").passed is True and decision.gate("budget").passed is True
    assert decision.gate("floor").passed is True
    assert decision.promote is all(g.passed is not False for g in decision.gates)
    assert decision.report_uri == ev.uri and ev.uri in decision.summary
    json.dumps(decision.to_dict())
