"""pipeline.evaluate: real fitted models scored on one window -- intervals, paired differences,
slices, weights -- and the promotion rule on that evidence (hand-built evidence tables are in
test_promotion.py, metric definitions in test_metrics.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline import promotion
from pipeline.config import Settings, parse_spec
from pipeline.evaluate import Evaluation, EvaluationError, _slice_labels, evaluate
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


def decide(evidence, spec, **kwargs):
    return promotion.decide(evidence, spec.promotion, spec.costs, primary_metric=spec.primary_metric, **kwargs)


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
                  candidate_info=_info(), champion_info=_info(EARLIER), trigger="drift", seed=1)
    decision = decide(ev.evidence(), spec)
    gate = decision.gate("vs_champion", "candidate")
    assert gate.passed is passes
    assert decision.promote is passes
    diff = ev.differences["candidate_vs_champion"]["roc_auc"]
    assert gate.observed == diff["lower"] and gate.threshold == margin
    if candidate == champion:
        assert diff == {"estimate": 0.0, "lower": 0.0, "upper": 0.0, "se": 0.0}
    assert "roc_auc" in gate.detail and f"{margin:+.4g}" in gate.detail


def test_slice_regression_blocks_while_overall_passes(toy):
    spec = _spec(champion_margin=-0.05, slice_tolerance=0.03, min_lift_over_baseline=0.0)
    sabotaged = _NoisyInRegion(toy["full"], "north", scale=1.0)
    ev = evaluate(spec, toy["test"], sabotaged, toy["prior"], toy["full"],
                  candidate_info=_info(), champion_info=_info(EARLIER), trigger="drift")
    decision = decide(ev.evidence(), spec)
    assert decision.gate("vs_champion", "candidate").passed is True
    slices = decision.gate("slices", "candidate")
    assert slices.passed is False and decision.promote is False
    assert slices.detail.startswith("worst of 8 gated slices is region=north")
    assert slices.observed < -0.03 and "slices regress" not in slices.detail  # only north regresses
    assert any(r.startswith("slices failed") and "region=north" in r for r in decision.reasons)


def test_first_run_skips_champion_gates_and_says_so(toy):
    spec = _spec(metric_floors={"roc_auc": 0.6})
    ev = evaluate(spec, toy["test"], toy["full"], toy["prior"], candidate_info=_info(version="1"))
    assert "candidate_vs_champion" not in ev.differences
    assert all(s["champion"] is None and not s["gated"] for s in ev.slices)
    decision = decide(ev.evidence(), spec)
    assert decision.promote is True and decision.chosen == "candidate"
    for name in ("vs_champion", "gain", "slices", "freshness"):
        gate = decision.gate(name)
        assert gate.passed is None and gate.detail == "no champion yet (first run)"
    assert [decision.gate(n).passed for n in ("floor", "budget")] == [True, True]
    assert "first champion" in decision.summary
    assert any("vs_champion skipped: no champion yet (first run)" == r for r in decision.reasons)


def test_regression_metrics_are_oriented_lower_rmse_is_better():
    train, test = _window(2000, 21, "regression"), _window(2500, 22, "regression")
    full, weak = _fit(train, ["x1", "x2", "x3"], "regression"), _fit(train, ["x3"], "regression")
    spec = _spec("regression", metric_floors={"rmse": 3.0}, min_lift_over_baseline="5%",
                 champion_margin="-0.5%", slice_tolerance="3%")
    assert spec.primary_metric == "rmse"
    better = evaluate(spec, test, full, weak, weak, candidate_info=_info(), champion_info=_info(EARLIER))
    raw = better.metrics["candidate"]["rmse"]["estimate"] - better.metrics["champion"]["rmse"]["estimate"]
    assert raw < 0
    assert better.differences["candidate_vs_champion"]["rmse"]["estimate"] == pytest.approx(-raw)
    assert better.differences["candidate_vs_champion"]["rmse"]["lower"] > 0
    assert better.differences["candidate_vs_champion"]["r2"]["estimate"] > 0
    assert decide(better.evidence(), spec).chosen == "candidate"
    worse = evaluate(spec, test, weak, full, full, candidate_info=_info(), champion_info=_info(EARLIER))
    decision = decide(worse.evidence(), spec)
    assert worse.differences["candidate_vs_champion"]["rmse"]["upper"] < 0
    assert [decision.gate(n, "candidate").passed for n in ("floor", "vs_champion")] == [False, False]
    assert "ceiling 3" in decision.gate("floor", "candidate").detail
    # The baseline here is the strong model, as good as the champion: the simpler model wins.
    assert decision.chosen is None or decision.chosen == "baseline"


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


def _labels(series):
    codes, names = _slice_labels(series)
    return [names[c] for c in codes]


def test_slice_labels_bin_numeric_and_datetime_columns_into_quartiles():
    values = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, None])
    labels = _labels(values)
    assert list(labels) == ["[1, 2.75]"] * 2 + ["(2.75, 4.5]"] * 2 + ["(4.5, 6.25]"] * 2 + ["(6.25, 8]"] * 2 \
        + ["(missing)"]
    assert set(_labels(pd.Series([3, 3, 3]))) == {"= 3"}
    stamps = pd.Series(pd.date_range("2026-01-01", periods=8, freq="D", tz="UTC"))
    assert len(set(_labels(stamps))) == 4
    assert _labels(stamps)[0].startswith("[2026-01-01T00:00:00+00:00")
    cats = pd.Series(["a", None, "b"], dtype="str")
    assert _labels(cats) == ["a", "(missing)", "b"]
    # The same value as text and as a category is one slice.
    assert _labels(pd.Series(["1", 1, None], dtype=object)) == ["1", "1", "(missing)"]


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

    decision = decide(ev.evidence(), spec)
    gate = decision.gate("vs_champion", "candidate")
    assert gate.passed is True, gate.detail
    assert decision.gate("freshness", "candidate").passed is True
    assert decision.gate("budget", "candidate").passed is True and decision.gate("floor", "candidate").passed is True
    assert decision.promote is (decision.chosen is not None)
    assert decision.report_uri == ev.uri and ev.uri in decision.summary
    json.dumps(decision.to_dict())


def test_importance_weights_weight_every_metric_and_are_recorded(toy):
    spec = _spec()
    test = toy["test"]
    weights = np.where(test["region"] == "north", 4.0, 1.0)
    ev = evaluate(spec, test, toy["full"], toy["prior"], toy["weak"], candidate_info=_info(),
                  champion_info=_info(EARLIER), weights=weights, weights_info={"kind": "importance"})
    p = toy["full"].predict_proba(test)[:, 1]
    assert ev.metrics["candidate"]["roc_auc"]["estimate"] == pytest.approx(
        skm.roc_auc_score(test["y"], p, sample_weight=weights))
    assert ev.weights["kind"] == "importance" and ev.weights["rows"] == len(test)
    assert len(test) / 2 < ev.weights["effective_rows"] < len(test)
    with pytest.raises(EvaluationError, match="weights must be finite"):
        evaluate(spec, test, toy["full"], toy["prior"], candidate_info=_info(), weights=-weights)
