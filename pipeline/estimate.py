"""Label-free performance estimate for binary models (confidence-based, after NannyML's CBPE).

Contract:
* :func:`fit_calibration` maps a model's raw scores to calibrated probabilities with isotonic
  regression fitted on labelled rows the model did not train on (its validation window); the
  result is a JSON-safe :class:`Calibration` (a monotone piecewise-linear map), never a pickle.
* :func:`estimate_performance` estimates a metric on *unlabelled* rows from their scores alone:
  if the calibrated probability ``p_i`` is right, row ``i`` is a positive with probability
  ``p_i``, so the expected confusion matrix at a threshold is ``TP = sum(p_i | s_i >= t)``,
  ``FP = sum(1 - p_i | s_i >= t)``, and so on, and the expected ROC AUC is the ratio of the
  expected number of correctly ordered (positive, negative) pairs to the expected number of
  pairs (a row is never paired with itself). The interval is a parametric bootstrap: labels are
  drawn ``y_i ~ Bernoulli(p_i)`` and the metric recomputed, which is the sampling spread of the
  *realised* metric on these rows if the calibration holds.
* The estimate is only as good as the calibration: it follows covariate shift (the feature
  mix moves, ``P(y | x)`` does not), and cannot see concept change (``P(y | x)`` moves), which
  only labels reveal. The monitor therefore lets realised performance override it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import metrics
from pipeline.artifacts import Record
from pipeline.errors import DriftlineError

#: Metrics with a label-free estimate (binary only).
ESTIMABLE = ("roc_auc", "pr_auc", "f1", "brier", "log_loss")
_EPS = 1e-6
_MAX_KNOTS = 256


class EstimateError(DriftlineError):
    """The calibration cannot be fitted or the estimate cannot be computed."""


@dataclass(frozen=True)
class Calibration(Record):
    """A monotone map from raw score to calibrated probability (``np.interp`` over knots).

    Attributes:
        x: increasing raw scores (knots).
        y: calibrated probabilities at the knots (non-decreasing, in ``[0, 1]``).
        rows, positives: labelled rows it was fitted on.
    """

    x: list[float]
    y: list[float]
    rows: int
    positives: int

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, clipped away from exactly 0 and 1."""
        p = np.interp(np.asarray(scores, dtype=float), self.x, self.y)
        return np.clip(p, _EPS, 1 - _EPS)


def fit_calibration(y: np.ndarray, scores: np.ndarray) -> Calibration:
    """Isotonic calibration of ``scores`` against 0/1 labels ``y``.

    Raises:
        EstimateError: fewer than 20 rows, labels other than 0/1, or a single class.
    """
    from sklearn.isotonic import IsotonicRegression

    y = np.asarray(y, dtype=float)
    s = np.asarray(scores, dtype=float)
    keep = np.isfinite(y) & np.isfinite(s)
    y, s = y[keep], s[keep]
    if y.size < 20:
        raise EstimateError(f"calibration needs at least 20 labelled rows, got {y.size}")
    if not set(np.unique(y).tolist()) <= {0.0, 1.0} or np.unique(y).size < 2:
        raise EstimateError(f"calibration needs 0/1 labels with both classes, got {sorted(set(np.unique(y).tolist()))[:5]}")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    x_knots = np.asarray(iso.X_thresholds_, dtype=float)
    y_knots = np.asarray(iso.y_thresholds_, dtype=float)
    if x_knots.size > _MAX_KNOTS:
        # Keep the map small for JSON: sample knots evenly by rank, always keeping both ends.
        pick = np.unique(np.linspace(0, x_knots.size - 1, _MAX_KNOTS).round().astype(int))
        x_knots, y_knots = x_knots[pick], y_knots[pick]
    return Calibration(x=[float(v) for v in x_knots], y=[float(v) for v in y_knots],
                       rows=int(y.size), positives=int(y.sum()))


def expected_confusion(p: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Expected counts of TP, FP, FN, TN at ``threshold`` given calibrated probabilities ``p``."""
    predicted = np.asarray(scores, dtype=float) >= threshold
    return {"tp": float(p[predicted].sum()), "fp": float((1 - p[predicted]).sum()),
            "fn": float(p[~predicted].sum()), "tn": float((1 - p[~predicted]).sum())}


def _expected_auc(p: np.ndarray, scores: np.ndarray, soft_auc: float | None = None) -> float:
    """Expected correctly ordered pairs over expected pairs, self-pairs excluded. ``soft_auc``:
    ``binary_soft(scores, p, 1 - p)``'s ROC AUC if the caller has it (any threshold: AUC has none)."""
    soft = metrics.binary_soft(scores, p[None, :], (1 - p)[None, :])["roc_auc"][0] if soft_auc is None else soft_auc
    pos, neg = p.sum(), (1 - p).sum()
    self_pairs = float(np.sum(p * (1 - p)))
    # binary_soft counts each row against itself as a tie (half a correct pair): take it out.
    numerator = soft * pos * neg - 0.5 * self_pairs
    denominator = pos * neg - self_pairs
    return float(numerator / denominator) if denominator > 0 else float("nan")


def estimate_performance(metric: str, scores: np.ndarray, calibration: Calibration, *, threshold: float = 0.5,
                         confidence: float = 0.95, n_bootstrap: int = 300, seed: int = 0) -> dict:
    """Estimate ``metric`` on unlabelled rows from the model's raw ``scores``.

    Args:
        metric: one of :data:`ESTIMABLE`.
        scores: the model's raw scores on the unlabelled rows.
        calibration: from :func:`fit_calibration` on the model's validation window.
        threshold: decision threshold (F1 and the expected confusion matrix).
        confidence: level of the interval.
        n_bootstrap: label draws for the interval.
        seed: seeds the draws.

    Returns:
        ``{"metric", "method": "cbpe", "estimate", "lower", "upper", "se", "rows",
        "expected_positive_rate", "confusion"}``; ``estimate`` is ``None`` with fewer than 2 rows.

    Raises:
        EstimateError: ``metric`` has no label-free estimate.
    """
    if metric not in ESTIMABLE:
        raise EstimateError(f"no label-free estimate for {metric!r}; estimable: {', '.join(ESTIMABLE)}")
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    out: dict = {"metric": metric, "method": "cbpe", "estimate": None, "lower": None, "upper": None, "se": None,
                 "rows": int(s.size), "expected_positive_rate": None, "confusion": None}
    if s.size < 2:
        return out
    p = calibration.apply(s)
    # The expected metrics at p: the estimate, and what the label draws' replicates are centred on.
    expected = metrics.binary_soft(s, p[None, :], (1 - p)[None, :], threshold)
    if metric == "roc_auc":
        value = _expected_auc(p, s, expected["roc_auc"][0])
    else:
        value = float(expected[metric][0])
    replicates = metrics.label_draw_replicates(s, p, n_bootstrap, np.random.default_rng(seed), threshold,
                                               only=(metric,), expected=expected)[metric]
    ci = metrics.interval(value if np.isfinite(value) else None, replicates, confidence)
    out.update(estimate=ci["estimate"], lower=ci["lower"], upper=ci["upper"], se=ci["se"],
               expected_positive_rate=float(p.mean()), confusion=expected_confusion(p, s, threshold))
    return out
