"""Training after a change: how rows from before a change point are weighted.

Contract:
* :func:`density_ratio` estimates ``w(x) = p_after(x) / p_before(x)`` with a domain classifier
  (a shallow XGBoost separating rows from before and after the change, on the model's own
  features): ``w = P(after | x) / P(before | x) * n_before / n_after``, clipped at
  ``adaptation.max_importance_weight`` and scaled to mean 1 on the rows it weights. Under a
  covariate shift (the feature mix moves, ``P(y | x)`` does not) training and evaluating on
  labelled rows weighted by ``w`` estimates what a model does on the new mix (importance
  weighting, Shimodaira 2000; importance-weighted validation, Sugiyama et al. 2007).
* :func:`pre_change_weights` gives the pre-change rows of a training window their weight under
  one strategy of :data:`STRATEGIES` (post-change rows always weigh 1):

  - ``drop``: 0 -- right after a concept change, old rows teach the old concept;
  - ``age``: ``0.5 ** (days before the change / adaptation.age_half_life_days)``;
  - ``importance``: the density ratio towards the post-change feature mix;
  - ``keep``: 1 -- the change did not touch ``P(y | x)`` and more rows help.

  The train stage tries each (``adaptation.pre_change: auto``) and keeps the one whose model
  scores best on the post-change validation window, so the choice is measured, not assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pipeline.config import ModelSpec

STRATEGIES: tuple[str, ...] = ("drop", "age", "importance", "keep")
_MIN_DOMAIN_ROWS = 50


def density_ratio(spec: "ModelSpec", before: pd.DataFrame, after: pd.DataFrame,
                  to_weight: list[pd.DataFrame]) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Importance weights ``p_after / p_before`` for the rows of each frame in ``to_weight``.

    Args:
        spec: the model spec (model columns, params, ``adaptation.max_importance_weight``).
        before: rows from before the change (the distribution the weights move away from).
        after: rows from after the change (labelled or not: only features are used).
        to_weight: frames of pre-change-distribution rows to weight (e.g. train, valid, test).

    Returns:
        ``(weights, info)``: one array per frame, scaled so the first frame's weights average 1
        (the others on the same scale); ``info`` has the classifier's AUC on its training rows,
        the clip, the share of clipped rows and each frame's effective sample size.
    """
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    from pipeline.features import build_preprocessor

    columns = list(spec.model_columns)
    if len(before) < _MIN_DOMAIN_ROWS or len(after) < _MIN_DOMAIN_ROWS:
        ones = [np.ones(len(f)) for f in to_weight]
        return ones, {"method": "none", "note": f"too few rows to separate before ({len(before)}) and after "
                                                f"({len(after)}) the change; weights are 1"}
    both = pd.concat([before[columns], after[columns]], ignore_index=True)
    label = np.r_[np.zeros(len(before)), np.ones(len(after))]
    prep = build_preprocessor(spec, "tree")
    M = prep.fit_transform(both)
    # Shallow and regularised: the weights should follow broad shifts, not memorise rows.
    clf = xgb.XGBClassifier(n_estimators=80, max_depth=3, learning_rate=0.1, min_child_weight=20, subsample=0.8,
                            n_jobs=spec.params.n_jobs, random_state=spec.params.seed, tree_method="hist",
                            enable_categorical=True)
    clf.fit(M, label, sample_weight=np.where(label == 1, len(before) / len(after), 1.0))
    auc = float(roc_auc_score(label, clf.predict_proba(M)[:, 1]))
    clip = spec.adaptation.max_importance_weight
    out, ess, clipped = [], [], 0
    scale = None
    for frame in to_weight:
        if len(frame) == 0:
            out.append(np.ones(0))
            ess.append(0.0)
            continue
        p = np.clip(clf.predict_proba(prep.transform(frame[columns]))[:, 1], 1e-6, 1 - 1e-6)
        # The classifier was fitted on balanced classes, so the odds are the density ratio.
        w = p / (1 - p)
        if scale is None:
            scale = float(np.mean(np.minimum(w, np.quantile(w, 0.99))))
        w = w / scale
        clipped += int((w > clip).sum())
        w = np.minimum(w, clip)
        out.append(w)
        ess.append(float(w.sum() ** 2 / np.square(w).sum()))
    total = sum(len(f) for f in to_weight)
    return out, {"method": "domain_classifier", "classifier_auc": round(auc, 4), "clip": clip,
                 "clipped_share": clipped / total if total else 0.0, "effective_rows": [round(e, 1) for e in ess],
                 "rows": [len(f) for f in to_weight]}


def pre_change_weights(spec: "ModelSpec", train: pd.DataFrame, change_point: str, strategy: str, *,
                       after: pd.DataFrame | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Weights of a training window's rows under ``strategy`` (post-change rows weigh 1).

    Args:
        spec: the model spec.
        train: the training window (timestamp column present).
        change_point: ``YYYY-MM-DD`` of the change.
        strategy: one of :data:`STRATEGIES`.
        after: post-change rows (features) the ``importance`` strategy moves towards.

    Returns:
        ``(weights, info)``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown pre-change strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    ts = pd.to_datetime(train[spec.timestamp_column], utc=True)
    c = pd.Timestamp(change_point, tz="UTC")
    pre = (ts < c).to_numpy(dtype=bool, na_value=False)
    w = np.ones(len(train))
    info: dict[str, Any] = {"strategy": strategy, "pre_change_rows": int(pre.sum()),
                            "post_change_rows": int((~pre).sum())}
    if strategy == "drop":
        w[pre] = 0.0
    elif strategy == "age":
        age_days = ((c - ts[pre]).dt.total_seconds() / 86400.0).to_numpy(dtype=float)
        w[pre] = 0.5 ** (age_days / spec.adaptation.age_half_life_days)
    elif strategy == "importance":
        target = after if after is not None and len(after) else train.loc[~pre]
        (ratio,), ratio_info = density_ratio(spec, train.loc[pre], target, [train.loc[pre]])
        w[pre] = ratio
        info["density_ratio"] = ratio_info
    info["pre_change_weight"] = float(w[pre].sum())
    info["effective_rows"] = float(w.sum() ** 2 / np.square(w).sum()) if w.sum() > 0 else 0.0
    return w, info
