"""pipeline.estimate: the label-free (CBPE) estimate, by hand on a tiny frame and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.estimate import Calibration, EstimateError, estimate_performance, fit_calibration

IDENTITY = Calibration(x=[0.0, 1.0], y=[0.0, 1.0], rows=0, positives=0)


def test_expected_auc_and_confusion_by_hand():
    # Calibrated probabilities 0.1, 0.4, 0.6, 0.9 (identity calibration). Correctly ordered
    # (positive above negative) pairs, expected: 0.4*0.9 + 0.6*0.9 + 0.6*0.6 + 0.9*0.9 + 0.9*0.6
    # + 0.9*0.4 = 2.97; expected pairs: sum(p) * sum(1 - p) - sum(p(1 - p)) = 4 - 0.66 = 3.34.
    s = np.array([0.1, 0.4, 0.6, 0.9])
    out = estimate_performance("roc_auc", s, IDENTITY, threshold=0.5, n_bootstrap=200)
    assert out["estimate"] == pytest.approx(2.97 / 3.34, rel=1e-12)
    assert out["confusion"] == pytest.approx({"tp": 1.5, "fp": 0.5, "fn": 0.5, "tn": 1.5})
    assert out["expected_positive_rate"] == pytest.approx(0.5, abs=1e-6)
    assert out["method"] == "cbpe" and out["rows"] == 4


def test_estimate_tracks_realised_auc_under_covariate_shift():
    """With P(y | x) fixed and the model calibrated, moving the feature mix changes the AUC; the
    estimate follows it without a single label, within the sampling error its interval states."""
    rng = np.random.default_rng(0)

    def window(n, shift):
        x = rng.normal(shift, 1.0, n)
        p = 1 / (1 + np.exp(-(2.0 * x - 1.0)))
        return p, (rng.random(n) < p).astype(float)

    p_ref, y_ref = window(4000, 0.0)
    calibration = fit_calibration(y_ref, p_ref)
    estimates, realised = [], []
    for shift in (0.0, 1.5):
        p, y = window(3000, shift)
        est = estimate_performance("roc_auc", p, calibration, n_bootstrap=300, seed=1)
        realised.append(roc_auc_score(y, p))
        assert abs(est["estimate"] - realised[-1]) < 3 * est["se"], (shift, est, realised[-1])
        estimates.append(est["estimate"])
    # The shift moved the AUC, and the estimate moved the same way.
    assert abs(realised[1] - realised[0]) > 0.01
    assert np.sign(estimates[1] - estimates[0]) == np.sign(realised[1] - realised[0])


def test_calibration_is_monotone_json_safe_and_refuses_bad_labels():
    rng = np.random.default_rng(1)
    s = rng.random(500)
    y = (rng.random(500) < s ** 2).astype(float)  # raw scores over-estimate the rate
    cal = fit_calibration(y, s)
    assert np.all(np.diff(cal.y) >= 0) and cal.rows == 500
    assert Calibration.from_dict(cal.to_dict()) == cal
    assert cal.apply(np.array([0.5]))[0] < 0.5
    with pytest.raises(EstimateError, match="at least 20 labelled rows"):
        fit_calibration(np.array([0, 1]), np.array([0.2, 0.8]))
    with pytest.raises(EstimateError, match="both classes"):
        fit_calibration(np.zeros(50), rng.random(50))
    with pytest.raises(EstimateError, match="no label-free estimate for 'rmse'"):
        estimate_performance("rmse", s, cal)
