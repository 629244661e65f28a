"""pipeline.adaptation: density-ratio weights towards a shifted mix, and the pre-change strategies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.adaptation import STRATEGIES, density_ratio, pre_change_weights
from pipeline.config import Settings, parse_spec


def _spec(**adaptation):
    return parse_spec({"name": "toy", "task": "binary", "source": {"kind": "lake", "uri": "/nowhere"},
                       "timestamp_column": "ts", "target_column": "y", "numeric_features": ["x"],
                       "categorical_features": ["c"], "params": {"n_jobs": 1},
                       "adaptation": {"max_importance_weight": 20.0, **adaptation}},
                      settings=Settings.from_env({}))


def _frame(n, mean, seed, start="2026-02-01"):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(mean, 1.0, n), "c": rng.choice(["a", "b"], n),
                         "ts": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.integers(0, 86400 * 10, n), "s")})


def test_density_ratio_recovers_a_known_shift():
    """Before: x ~ N(0, 1); after: x ~ N(1, 1). The true ratio is exp(x - 1/2): rows with large x
    must weigh more, and the weighted mean of x moves towards the new mix."""
    before, after = _frame(4000, 0.0, 1), _frame(4000, 1.0, 2)
    (w,), info = density_ratio(_spec(), before, after, [before])
    assert w.mean() == pytest.approx(1.0, abs=0.05)
    true = np.exp(before["x"].to_numpy() - 0.5)
    assert np.corrcoef(np.log(w), np.log(true))[0, 1] > 0.9
    assert np.average(before["x"], weights=w) == pytest.approx(1.0, abs=0.2)
    assert 0.6 < info["classifier_auc"] < 0.8 and info["effective_rows"][0] < 4000


def test_density_ratio_is_flat_without_a_shift_and_declines_too_few_rows():
    before, after = _frame(3000, 0.0, 3), _frame(3000, 0.0, 4)
    (w,), info = density_ratio(_spec(), before, after, [before])
    assert np.percentile(w, 90) / np.percentile(w, 10) < 2.0
    (ones,), info = density_ratio(_spec(), before, after.iloc[:10], [before])
    assert np.all(ones == 1.0) and info["method"] == "none" and "too few rows" in info["note"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pre_change_strategies(strategy):
    train = pd.concat([_frame(1000, 0.0, 5, "2026-01-20"), _frame(500, 1.0, 6, "2026-02-01")], ignore_index=True)
    w, info = pre_change_weights(_spec(age_half_life_days=7.0), train, "2026-01-30", strategy,
                                 after=_frame(800, 1.0, 7, "2026-02-05"))
    pre = (train["ts"] < pd.Timestamp("2026-01-30", tz="UTC")).to_numpy()
    assert np.all(w[~pre] == 1.0) and info["strategy"] == strategy
    if strategy == "drop":
        assert np.all(w[pre] == 0.0)
    elif strategy == "keep":
        assert np.all(w[pre] == 1.0)
    elif strategy == "age":
        age = (pd.Timestamp("2026-01-30", tz="UTC") - train.loc[pre, "ts"]).dt.total_seconds() / 86400
        assert w[pre] == pytest.approx(0.5 ** (age.to_numpy() / 7.0))
    else:
        assert np.corrcoef(w[pre], train.loc[pre, "x"])[0, 1] > 0.5  # towards the new, larger x
    with pytest.raises(ValueError, match="unknown pre-change strategy"):
        pre_change_weights(_spec(), train, "2026-01-30", "shrug")
