"""Reference profiles: the shape of a data window, written at training and compared by the monitor.

Contract (``profile.json``, ``version`` 1):

```
{"version": 1, "model": str, "rows": int, "window": {"start": iso, "end": iso},
 "features": {
   <numeric>: {"type": "numeric", "count", "nulls", "null_rate", "mean", "std", "min", "max",
               "quantiles": {"0.01": v, ... "0.99": v},
               "bin_edges": [e0..eK] (interior quantile edges; bins are (-inf,e0], (e0,e1], ..., (eK,inf)),
               "bin_counts": [K+2 ints], "sample": [<= sample_size non-null values]},
   <categorical>: {"type": "categorical", "count", "nulls", "null_rate",
                   "frequencies": {category: count}  (top ``max_categories``; the rest under "__other__")}},
 "derived_features": {<derived>: {same keys as a numeric feature, "derived": true, "derivation": kind,
                                  "inputs": [raw columns]}}  (the spec's derived features; absent in older profiles),
 "target": {"type": "binary", "count", "positive_rate"} | {"type": "regression", "count", "mean", "std", "quantiles"},
 "predictions": {optional score profile, same keys as a numeric feature}}
```

Bins come from the reference quantiles so each holds about the same share of reference rows;
the drift monitor counts a current window into the same bins (PSI) and tests the ``sample``
with a two-sample KS test. Everything here is deterministic for a given frame and seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

PROFILE_VERSION = 1
OTHER = "__other__"
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def bin_edges(values: np.ndarray, n_bins: int) -> list[float]:
    """Interior edges at the reference's quantiles (duplicates removed for discrete data)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return []
    qs = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return [float(x) for x in np.unique(qs)]


def bin_counts(values: np.ndarray, edges: list[float]) -> list[int]:
    """Counts of finite ``values`` in ``(-inf,e0], (e0,e1], ..., (eK,inf)``."""
    values = values[np.isfinite(values)]
    cuts = np.asarray(edges, dtype=float)
    if not (np.isfinite(cuts).all() and (np.diff(cuts) > 0).all()):
        idx = np.searchsorted(cuts, values, side="left")
        return [int(c) for c in np.bincount(idx, minlength=len(edges) + 1)]
    # Bin i holds edges[i-1] < v <= edges[i]: differences of "at most each edge" counts (a
    # compare per edge instead of a binary search per value; the same integers).
    at_most = [0, *(int(np.count_nonzero(values <= e)) for e in cuts), int(values.size)]
    return [b - a for a, b in zip(at_most, at_most[1:])]


def numeric_profile(series: pd.Series, n_bins: int = 10, sample_size: int = 1000, seed: int = 0) -> dict[str, Any]:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = values[np.isfinite(values)]
    count, nulls = int(values.size), int(values.size - finite.size)
    out: dict[str, Any] = {"type": "numeric", "count": count, "nulls": nulls,
                           "null_rate": nulls / count if count else 0.0}
    if finite.size == 0:
        out.update(mean=None, std=None, min=None, max=None, quantiles={}, bin_edges=[], bin_counts=[0], sample=[])
        return out
    if np.signbit(finite[finite == 0]).any():
        # -0.0 and 0.0 compare equal, so which of them a partition puts at a quantile's rank
        # depends on the partition: keep the two calls the profile has always made.
        edges = bin_edges(finite, n_bins)
        quantiles = np.quantile(finite, QUANTILES)
    else:
        # The bin edges' quantiles and the profile's from one partition of the values: the same
        # order statistics and interpolation, so the same numbers as :func:`bin_edges`.
        edge_qs = np.linspace(0, 1, n_bins + 1)[1:-1]
        both = np.quantile(finite, np.concatenate([edge_qs, QUANTILES]))
        edges = [float(x) for x in np.unique(both[:edge_qs.size])]
        quantiles = both[edge_qs.size:]
    rng = np.random.default_rng(seed)
    sample = finite if finite.size <= sample_size else rng.choice(finite, size=sample_size, replace=False)
    out.update(
        mean=float(finite.mean()), std=float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        min=float(finite.min()), max=float(finite.max()),
        quantiles={str(q): float(v) for q, v in zip(QUANTILES, quantiles)},
        bin_edges=edges, bin_counts=bin_counts(finite, edges),
        sample=[float(x) for x in np.sort(sample)],
    )
    return out


def categorical_profile(series: pd.Series, max_categories: int = 50) -> dict[str, Any]:
    count = int(series.size)
    nulls = int(series.isna().sum())
    freq = series.dropna().astype(str).value_counts()
    top = freq.iloc[:max_categories]
    frequencies = {str(k): int(v) for k, v in top.items()}
    rest = int(freq.iloc[max_categories:].sum())
    if rest:
        frequencies[OTHER] = rest
    return {"type": "categorical", "count": count, "nulls": nulls,
            "null_rate": nulls / count if count else 0.0, "frequencies": frequencies}


def target_profile(series: pd.Series, task: str) -> dict[str, Any]:
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype=float)
    if task == "binary":
        return {"type": "binary", "count": int(values.size),
                "positive_rate": float(values.mean()) if values.size else None}
    return {"type": "regression", "count": int(values.size),
            "mean": float(values.mean()) if values.size else None,
            "std": float(values.std(ddof=1)) if values.size > 1 else None,
            "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES))} if values.size else {}}


def build_profile(df: pd.DataFrame, spec: Any, *, window: tuple[Any, Any] | None = None,
                  n_bins: int | None = None, sample_size: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Profile ``df``'s raw features, derived features and target for ``spec`` (a
    :class:`pipeline.config.ModelSpec`).

    Args:
        df: the reference window (usually the training window); it carries the inputs of the
            spec's derived features (the timestamp column too when one reads it).
        spec: the model spec; its numeric/categorical features and target are profiled.
        window: ``(start, end)`` of the window, recorded as ISO strings.
        n_bins: PSI bins per numeric feature (default: the spec's ``drift.psi_bins``).
        sample_size: values kept per numeric feature for two-sample tests.
        seed: sampling seed.

    Returns:
        The profile mapping described in the module docstring (JSON-serialisable).

    Raises:
        ValueError: ``df`` lacks an input column of a derived feature.
    """
    n_bins = n_bins or spec.drift.psi_bins
    features: dict[str, Any] = {}
    for i, col in enumerate(spec.numeric_features):
        features[col] = numeric_profile(df[col], n_bins=n_bins, sample_size=sample_size, seed=seed + i)
    for col in spec.categorical_features:
        features[col] = categorical_profile(df[col])
    out: dict[str, Any] = {"version": PROFILE_VERSION, "model": spec.name, "rows": int(len(df)),
                           "features": features}
    if spec.derived_features:
        # Imported here: pipeline.features imports this module.
        from pipeline.features import derived_columns

        missing = sorted({c for d in spec.derived_features for c in d.inputs()} - set(map(str, df.columns)))
        if missing:
            raise ValueError(f"cannot profile the derived features of {spec.name!r}: the frame lacks their input "
                             f"column(s) {missing}; profile the rows with every column the model reads "
                             "(spec.model_columns)")
        offset = len(spec.numeric_features)
        out["derived_features"] = {
            d.name: {**numeric_profile(values, n_bins=n_bins, sample_size=sample_size, seed=seed + offset + i),
                     "derived": True, "derivation": d.kind, "inputs": list(d.inputs())}
            for i, (d, values) in enumerate(zip(spec.derived_features, derived_columns(spec, df).values()))}
    if window is not None:
        out["window"] = {"start": pd.Timestamp(window[0]).isoformat(), "end": pd.Timestamp(window[1]).isoformat()}
    if spec.target_column in df.columns:
        out["target"] = target_profile(df[spec.target_column], spec.task)
    return out


def score_profile(scores: np.ndarray, n_bins: int = 10, sample_size: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Profile of a model's scores (probabilities or predictions), same shape as a numeric feature."""
    return numeric_profile(pd.Series(np.asarray(scores, dtype=float)), n_bins=n_bins, sample_size=sample_size, seed=seed)
