"""pipeline.metrics: every metric once -- definitions against scikit-learn, weights, the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from pipeline import metrics
from pipeline.config import BINARY_METRICS, REGRESSION_METRICS


@pytest.mark.parametrize("ties", [False, True])
def test_binary_point_and_weighted_metrics_match_sklearn(ties):
    rng = np.random.default_rng(3)
    y = (rng.random(2500) < 0.2).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=y.size) + 1.2 * y)))
    if ties:
        p = np.round(p, 2)
    got = metrics.point("binary", y, p, 0.5)
    want = {"roc_auc": skm.roc_auc_score(y, p), "pr_auc": skm.average_precision_score(y, p),
            "log_loss": skm.log_loss(y, p), "brier": skm.brier_score_loss(y, p), "f1": skm.f1_score(y, p >= 0.5)}
    assert got == pytest.approx(want, abs=1e-10)
    # A bootstrap replicate (or an importance weighting) is a row weighting: it must equal
    # scikit-learn with sample_weight.
    w = rng.integers(0, 4, size=y.size).astype(float)
    weighted = metrics.point("binary", y, p, 0.5, weights=w)
    assert weighted["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w), abs=1e-9)
    assert weighted["pr_auc"] == pytest.approx(skm.average_precision_score(y, p, sample_weight=w), abs=1e-7)
    assert weighted["log_loss"] == pytest.approx(skm.log_loss(y, p, sample_weight=w), rel=1e-9)
    assert weighted["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5, sample_weight=w), rel=1e-9)


def test_regression_point_and_weighted_metrics_match_sklearn():
    rng = np.random.default_rng(4)
    y = rng.normal(size=800)
    yhat = y + rng.normal(scale=0.5, size=y.size)
    got = metrics.point("regression", y, yhat)
    assert got == pytest.approx({"rmse": skm.root_mean_squared_error(y, yhat),
                                 "mae": skm.mean_absolute_error(y, yhat), "r2": skm.r2_score(y, yhat)}, abs=1e-10)
    w = rng.random(y.size)
    weighted = metrics.point("regression", y, yhat, weights=w)
    assert weighted["mae"] == pytest.approx(skm.mean_absolute_error(y, yhat, sample_weight=w))
    assert weighted["r2"] == pytest.approx(skm.r2_score(y, yhat, sample_weight=w))


def test_soft_labels_give_expected_counts():
    # Positive weight p and negative weight 1 - p per row: the confusion counts become expectations.
    s = np.array([0.1, 0.4, 0.6, 0.9])
    out = metrics.binary_soft(s, s[None, :], (1 - s)[None, :], 0.5)
    # Expected F1 from expected counts: TP = 1.5, FP = 0.5, FN = 0.5.
    assert out["f1"][0] == pytest.approx(2 * 1.5 / (2 * 1.5 + 0.5 + 0.5))
    assert out["brier"][0] == pytest.approx(np.mean(s * (1 - s) ** 2 + (1 - s) * s ** 2))


def test_the_table_covers_every_task_metric_and_undefined_values_are_none():
    assert set(metrics.for_task("binary")) == set(BINARY_METRICS)
    assert set(metrics.for_task("regression")) == set(REGRESSION_METRICS)
    one_class = metrics.point("binary", np.zeros(10), np.linspace(0, 1, 10))
    assert set(one_class) == set(BINARY_METRICS) and one_class["roc_auc"] is None
    assert metrics.orient("rmse", 2.0) == -2.0 and metrics.orient("roc_auc", 2.0) == 2.0
    assert not metrics.get("rmse").bounded and metrics.get("roc_auc").bounded
    with pytest.raises(KeyError, match="unknown metric 'accuracy'"):
        metrics.get("accuracy")


def test_bootstrap_is_seeded_and_paired():
    rng = np.random.default_rng(5)
    y = (rng.random(600) < 0.3).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=y.size) + y)))
    preds = {"candidate": p, "champion": p.copy()}
    a = metrics.bootstrap("binary", y, preds, 200, np.random.default_rng(9))
    b = metrics.bootstrap("binary", y, preds, 200, np.random.default_rng(9))
    assert np.array_equal(a["candidate"]["roc_auc"], b["candidate"]["roc_auc"])
    assert a["candidate"]["roc_auc"].std() > 0.005
    # Same rows in every replicate for both models: identical models differ by exactly zero.
    for metric in a["candidate"]:
        assert np.array_equal(a["candidate"][metric], a["champion"][metric], equal_nan=True)
    points = {r: metrics.point("binary", y, q) for r, q in preds.items()}
    diff = metrics.paired(points, a, "candidate", "champion", 0.95)["roc_auc"]
    assert diff == {"estimate": 0.0, "lower": 0.0, "upper": 0.0, "se": 0.0}


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
        reps = metrics.bootstrap("binary", y, {"m": score}, 300, rng)["m"]["roc_auc"]
        lo, hi = metrics.percentiles(reps, 0.95)
        auc_hits += lo <= true_auc <= hi
        target = rng.normal(size=300)
        reps = metrics.bootstrap("regression", target, {"m": target + rng.normal(scale=sigma, size=300)}, 300,
                                 rng)["m"]["mae"]
        lo, hi = metrics.percentiles(reps, 0.95)
        mae_hits += lo <= true_mae <= hi
    assert 0.88 <= auc_hits / sims <= 0.99, auc_hits
    assert 0.88 <= mae_hits / sims <= 0.99, mae_hits


def test_paired_interval_is_tighter_than_unpaired_on_correlated_models():
    rng = np.random.default_rng(12)
    y, champion = _binormal(rng, 3000, 1.0)
    candidate = champion + rng.normal(scale=0.3, size=y.size)  # highly correlated scores
    paired = metrics.bootstrap("binary", y, {"candidate": candidate, "champion": champion}, 400,
                               np.random.default_rng(1))
    paired_diff = paired["candidate"]["roc_auc"] - paired["champion"]["roc_auc"]
    unpaired_diff = (metrics.bootstrap("binary", y, {"m": candidate}, 400, np.random.default_rng(2))["m"]["roc_auc"]
                     - metrics.bootstrap("binary", y, {"m": champion}, 400, np.random.default_rng(3))["m"]["roc_auc"])
    paired_width = np.subtract(*metrics.percentiles(paired_diff, 0.95)[::-1])
    unpaired_width = np.subtract(*metrics.percentiles(unpaired_diff, 0.95)[::-1])
    assert paired_width < 0.5 * unpaired_width, (paired_width, unpaired_width)


def test_realised_gives_value_interval_and_standard_error():
    rng = np.random.default_rng(7)
    y = (rng.random(2000) < 0.2).astype(float)
    s = np.clip(0.25 * y + rng.random(2000) * 0.75, 0, 1)
    r = metrics.realised("binary", "roc_auc", y, s, threshold=0.5, confidence=0.95, n_boot=300, seed=1)
    assert r["estimate"] == pytest.approx(skm.roc_auc_score(y, s))
    assert r["lower"] < r["estimate"] < r["upper"]
    # Hanley & McNeil's standard error of an AUC estimate, for comparison.
    a, n1, n0 = r["estimate"], y.sum(), (1 - y).sum()
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    hanley = np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))
    assert r["se"] == pytest.approx(hanley, rel=0.25)


def _large_binary(n=60_000, seed=21):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(float)
    champion = rng.normal(size=n) + 1.0 * y
    candidate = champion + rng.normal(scale=0.6, size=n) + 0.15 * y
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    return y, {"candidate": sig(candidate - 1), "champion": sig(champion - 1)}


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_large_window_bootstrap_agrees_with_the_exact_one(task, monkeypatch):
    """Above EXACT_MAX_ROWS the Poisson bootstrap on binned scores gives the same intervals as
    the exact multinomial bootstrap: centres on the exact points, spreads within Monte Carlo
    noise (500 replicates: the standard deviation of a standard error is ~3 %)."""
    if task == "binary":
        y, preds = _large_binary()
    else:
        rng = np.random.default_rng(3)
        y = rng.normal(size=60_000)
        preds = {"candidate": y + rng.normal(scale=0.5, size=y.size), "champion": y + rng.normal(scale=0.6, size=y.size)}
    assert y.size > metrics.EXACT_MAX_ROWS
    large = metrics.bootstrap(task, y, preds, 500, np.random.default_rng(1))
    monkeypatch.setattr(metrics, "EXACT_MAX_ROWS", 10**9)
    exact = metrics.bootstrap(task, y, preds, 500, np.random.default_rng(1))
    points = {r: metrics.point(task, y, p) for r, p in preds.items()}
    for metric in metrics.for_task(task):
        for role in preds:
            a, b = large[role][metric], exact[role][metric]
            assert abs(np.median(a) - points[role][metric]) < 0.25 * b.std(), (metric, role)
            assert 0.8 < a.std() / b.std() < 1.25, (metric, role, a.std(), b.std())
        da = large["candidate"][metric] - large["champion"][metric]
        db = exact["candidate"][metric] - exact["champion"][metric]
        assert 0.8 < da.std() / db.std() < 1.25, (metric, da.std(), db.std())


def test_large_window_bootstrap_is_seeded_paired_and_weighted():
    y, preds = _large_binary()
    preds["twin"] = preds["candidate"].copy()
    a = metrics.bootstrap("binary", y, preds, 100, np.random.default_rng(4))
    b = metrics.bootstrap("binary", y, preds, 100, np.random.default_rng(4))
    for metric in a["candidate"]:
        assert np.array_equal(a["candidate"][metric], b["candidate"][metric])
        assert np.allclose(a["candidate"][metric], a["twin"][metric])
    # Weights of 2 on every positive: weighted replicates centre on the weighted point.
    w = np.where(y > 0, 2.0, 1.0)
    reps = metrics.bootstrap("binary", y, {"m": preds["candidate"]}, 200, np.random.default_rng(5), weights=w)["m"]
    point = metrics.point("binary", y, preds["candidate"], weights=w)
    for metric in ("log_loss", "brier", "roc_auc"):
        assert abs(np.median(reps[metric]) - point[metric]) < 0.3 * reps[metric].std(), metric


def test_label_draw_replicates_agree_between_regimes(monkeypatch):
    rng = np.random.default_rng(8)
    s = rng.random(60_000)
    p = np.clip(s * 0.8 + 0.1, 0, 1)
    large = metrics.label_draw_replicates(s, p, 400, np.random.default_rng(2))
    monkeypatch.setattr(metrics, "EXACT_MAX_ROWS", 10**9)
    exact = metrics.label_draw_replicates(s, p, 400, np.random.default_rng(2))
    expected = metrics.binary_soft(s, p[None, :], (1 - p)[None, :])
    for metric in ("roc_auc", "pr_auc", "f1", "log_loss", "brier"):
        a, b = large[metric], exact[metric]
        assert 0.8 < a.std() / b.std() < 1.25, (metric, a.std(), b.std())
        # Both centre on the expected value (AUC of hard draws includes no self-pairs: tiny bias).
        assert abs(np.mean(a) - np.mean(b)) < 0.3 * b.std(), metric
        assert abs(np.mean(a) - expected[metric][0]) < 0.5 * b.std() + 1e-4, metric


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_spread_on_a_subsample_agrees_with_every_row(task, monkeypatch):
    """Above SPREAD_MAX_ROWS the spread comes from a subsample scaled by sqrt(m/n): the same
    standard errors and paired differences as drawing on every row, centred on the exact
    point of all rows, importance weights included. (SPREAD_MAX_ROWS is lowered so the test
    stays small: 20k of 120k rows.)"""
    rng = np.random.default_rng(11)
    n = 120_000
    if task == "binary":
        z = rng.normal(size=n)
        y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        preds = {"candidate": sig(z + rng.normal(scale=0.7, size=n)), "champion": sig(z + rng.normal(scale=1.0, size=n))}
    else:
        y = rng.normal(size=n)
        preds = {"candidate": y + rng.normal(scale=0.5, size=n), "champion": y + rng.normal(scale=0.6, size=n)}
    w = np.where(rng.random(n) < 0.3, 2.0, 1.0)
    monkeypatch.setattr(metrics, "SPREAD_MAX_ROWS", 20_000)
    sub = metrics.bootstrap(task, y, preds, 400, np.random.default_rng(1), weights=w)
    monkeypatch.setattr(metrics, "SPREAD_MAX_ROWS", 10**9)
    every = metrics.bootstrap(task, y, preds, 400, np.random.default_rng(1), weights=w)
    points = {r: metrics.point(task, y, p, weights=w) for r, p in preds.items()}
    for metric in metrics.for_task(task):
        for role in preds:
            a, b = sub[role][metric], every[role][metric]
            assert abs(np.median(a) - points[role][metric]) < 0.25 * b.std(), (metric, role)
            assert 0.8 < a.std() / b.std() < 1.25, (metric, role, a.std(), b.std())
        da = sub["candidate"][metric] - sub["champion"][metric]
        db = every["candidate"][metric] - every["champion"][metric]
        assert 0.8 < da.std() / db.std() < 1.25, (metric, da.std(), db.std())


def test_label_draws_on_a_subsample_agree_with_every_row(monkeypatch):
    rng = np.random.default_rng(9)
    s = rng.random(120_000)
    p = np.clip(s * 0.8 + 0.1, 0, 1)
    monkeypatch.setattr(metrics, "SPREAD_MAX_ROWS", 20_000)
    sub = metrics.label_draw_replicates(s, p, 400, np.random.default_rng(2))
    monkeypatch.setattr(metrics, "SPREAD_MAX_ROWS", 10**9)
    every = metrics.label_draw_replicates(s, p, 400, np.random.default_rng(2))
    expected = metrics.binary_soft(s, p[None, :], (1 - p)[None, :])
    for metric in ("roc_auc", "pr_auc", "f1", "log_loss", "brier"):
        a, b = sub[metric], every[metric]
        assert 0.8 < a.std() / b.std() < 1.25, (metric, a.std(), b.std())
        assert abs(np.mean(a) - expected[metric][0]) < 0.5 * b.std() + 1e-4, metric


@pytest.mark.parametrize("task", ["binary", "regression"])
@pytest.mark.parametrize("n", [3_000, 60_000, 120_000])
def test_bootstrap_and_point_is_bootstrap_plus_point_to_the_bit(task, n, monkeypatch):
    """The shortcut that takes each model's exact point from the bootstrap's own centring
    changes no number: replicates and points equal bootstrap() and point() exactly, in every
    regime (exact, binned, subsampled: SPREAD_MAX_ROWS lowered for the last)."""
    monkeypatch.setattr(metrics, "SPREAD_MAX_ROWS", 100_000)
    rng = np.random.default_rng(n)
    z = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    preds = {"candidate": 1 / (1 + np.exp(-(z + rng.normal(size=n)))), "champion": np.round(1 / (1 + np.exp(-z)), 2)}
    if task == "regression":
        y = y * 3 + z
    w = rng.gamma(2.0, size=n)
    for weights in (None, w):
        reps, points = metrics.bootstrap_and_point(task, y, preds, 120, np.random.default_rng(4), 0.4, weights=weights)
        want = metrics.bootstrap(task, y, preds, 120, np.random.default_rng(4), 0.4, weights=weights)
        for role in preds:
            assert points[role] == metrics.point(task, y, preds[role], 0.4, weights=weights)
            for metric, values in want[role].items():
                np.testing.assert_array_equal(reps[role][metric], values)


@pytest.mark.parametrize("n", [3_000, 60_000, 120_000])
def test_label_draws_of_some_metrics_equal_those_of_all(n, monkeypatch):
    """``only=`` (ranking metrics skip the per-row sums) and ``expected=`` change no replicate."""
    monkeypatch.setattr(metrics, "SPREAD_MAX_ROWS", 100_000)
    rng = np.random.default_rng(n)
    s = np.round(rng.random(n), 3)
    p = np.clip(s * 0.8 + 0.1, 0, 1)
    every = metrics.label_draw_replicates(s, p, 60, np.random.default_rng(2), 0.4)
    expected = metrics.binary_soft(s, p[None, :], (1 - p)[None, :], 0.4)
    for only in (("roc_auc",), ("pr_auc", "roc_auc"), ("f1",), ("brier", "log_loss")):
        for given in (None, expected):
            got = metrics.label_draw_replicates(s, p, 60, np.random.default_rng(2), 0.4, only=only, expected=given)
            assert set(got) == set(only)
            for metric in only:
                np.testing.assert_array_equal(got[metric], every[metric])
