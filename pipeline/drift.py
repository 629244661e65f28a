"""Drift statistics: how a monitor window differs from the champion's reference profile.

Contract:
* ``measure_drift(spec, profile, current, ...)`` compares one monitor window with the champion's
  reference profile (:mod:`pipeline.profile`, written from the rows the champion was fitted to)
  and returns a :class:`DriftReport`. It reads nothing and writes nothing, and it decides
  nothing: the retraining rule is :mod:`pipeline.retraining`, the HTML report
  :mod:`pipeline.drift_report`.

Statistics, per raw feature of the spec and per derived feature the champion's profile holds
(``profile["derived_features"]``: its values computed from the window's raw columns by the
model's own code, :func:`pipeline.features.derived_columns`; derived features are numeric):

* numeric: PSI of the current window on the reference quantile bins, a two-sample KS test of the
  reference ``sample`` against the current values, and the Wasserstein distance divided by the
  reference IQR (std when the IQR is 0) as a second, scale-free effect size;
* categorical: Jensen-Shannon distance (base 2) and L-infinity distance of the category shares,
  and a chi-squared test of homogeneity on the 2 x k count table;
* both: the absolute change of the null rate.

Effect size decides, the test guards: a window of many rows makes every trivial shift
"significant", and a tiny window makes large-looking shifts noise. A feature drifts when its effect
size reaches its threshold (PSI >= ``psi_threshold``, JS >= ``js_threshold``) and its
Benjamini-Hochberg adjusted p-value (across all monitored features of the window, raw and
derived) is below ``fdr_alpha``, or when its null rate moved by at least ``null_rate_delta``.

Importance: the champion's importance is per raw input column (:mod:`pipeline.train` spreads a
derived column's gain over its inputs). A raw feature keeps its share. An input that is not a
feature -- the timestamp a ``date_part`` reads -- reaches the model only through the derived
features that read it, so its share goes to them (evenly). A derived feature whose inputs are
features carries no share of its own: its importance is already counted in its inputs, and it is
reported for what it shows, not weighed twice. A key that is none of these (an importance file
of another spec) is dropped, with a debug log line saying why. Weighted drift is the sum of the
normalised importance of the drifted features.

Severity (:meth:`DriftReport.by_severity`): drifted features first, most important first (their
share of the weighted drift), then by effect relative to its threshold; then the others, closest
to drifting first.

PSI smoothing: every bin of both distributions gets a pseudo-count of ``PSI_PSEUDO_COUNT`` (0.5,
the Jeffreys prior) before the shares are taken, so a bin that is empty on one side costs a
finite amount that shrinks as the window grows, instead of an infinite PSI.

Unseen categories: a category the reference never saw is its own bin (reference count 0), which is
what makes a new category raise JS and the chi-squared statistic. When the reference profile lumped
its long tail into ``__other__``, current categories outside its named ones are counted there
instead, because the reference cannot tell them apart from its own tail.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

import logging

from pipeline.artifacts import Record
from pipeline.config import DriftPolicy, ModelSpec
from pipeline.errors import DriftlineError
from pipeline.profile import OTHER, PROFILE_VERSION, bin_counts

log = logging.getLogger(__name__)

#: Pseudo-count added to every PSI bin on both sides (see the module docstring).
PSI_PSEUDO_COUNT = 0.5


class DriftError(DriftlineError):
    """The inputs to a drift measurement are unusable (wrong profile version, missing features)."""


@dataclass(frozen=True)
class DriftReport(Record):
    """What one monitor window looks like next to the champion's reference profile.

    Attributes:
        window: ``[start, end)`` of the monitor window as ISO strings, when given.
        rows: rows in the current window.
        features: feature -> ``{"type", "statistics", "test", "p", "p_adjusted", "effect",
            "value", "threshold", "drifted", "reason", "importance", "null_rate", "histogram",
            "derived"}``; ``histogram`` holds the reference and current shares per bin or
            category; a derived feature (``"derived": True``) also has ``"derivation"`` (its
            kind) and ``"inputs"``. Raw features come first, in spec order, then derived ones.
        drifted_features: names of the drifted features, in the order of ``features``.
        weighted_drift: sum of the (normalised) importance of the drifted features.
        prediction: ``{"psi", "ks", "p", "threshold", "drifted", "rows", "histogram"}`` for the
            champion's scores, or ``None`` when no scores were given.
        insufficient: the window had fewer than ``drift.min_window_rows`` rows and was not judged.
        notes: sentences for the report's reader about anything unusual (statistics that could not
            be computed, derived features the champion's profile predates).
    """

    window: tuple[str, str] | None
    rows: int
    features: dict[str, dict[str, Any]]
    drifted_features: list[str]
    weighted_drift: float
    prediction: dict[str, Any] | None
    insufficient: bool
    notes: list[str] = field(default_factory=list)

    def by_severity(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name, entry)`` of every feature, most severe first (see the module docstring)."""
        def key(item: tuple[str, dict[str, Any]]) -> tuple[int, float, float]:
            entry = item[1]
            if entry["drifted"]:
                return (0, -entry["importance"], -severity(entry))
            return (1, 0.0, -severity(entry))
        return sorted(self.features.items(), key=key)

    def summary(self, policy: DriftPolicy) -> dict[str, Any]:
        """The drift evidence the retraining rule reads: ``{"weighted", "threshold", "drifted",
        "features", "prediction_psi", "prediction_drifted"}`` (``drifted``: weighted drift reached the
        policy's ``weighted_drift_threshold``; ``prediction_drifted``: the champion's score PSI
        reached ``prediction_psi_threshold``)."""
        return {"weighted": self.weighted_drift, "threshold": policy.weighted_drift_threshold,
                "drifted": bool(not self.insufficient and self.weighted_drift >= policy.weighted_drift_threshold),
                "features": list(self.drifted_features),
                "prediction_psi": self.prediction["psi"] if self.prediction else None,
                "prediction_drifted": bool(self.prediction and self.prediction["drifted"])}


def severity(entry: dict[str, Any]) -> float:
    """How far a feature entry is towards drifting: the larger of its effect over its threshold and
    its null-rate change over that threshold (1.0 = at the threshold)."""
    nr = entry["null_rate"]
    effect = entry["value"] / entry["threshold"] if entry["value"] is not None else 0.0
    return float(max(effect, nr["delta"] / nr["threshold"]))


def measure_drift(
    spec: ModelSpec,
    profile: dict[str, Any],
    current: pd.DataFrame,
    *,
    feature_importance: dict[str, float] | None = None,
    current_scores: np.ndarray | None = None,
    reference_scores: dict[str, Any] | None = None,
    window: tuple[str, str] | None = None,
) -> DriftReport:
    """Compare a monitor window with the champion's reference profile.

    Args:
        spec: the model spec; its features are compared and its ``drift`` policy supplies every
            threshold.
        profile: the champion's reference profile (``pipeline.profile`` format, version 1).
        current: the window's validated rows; must carry every spec feature.
        feature_importance: raw input column -> weight of the champion (``feature_importance``
            of its monitoring reference); mapped onto the monitored features as the module
            docstring says and normalised to sum to 1. ``None`` weighs every raw feature equally.
        current_scores: the champion's scores on ``current`` (prediction drift).
        reference_scores: the champion's score profile on its test window
            (``pipeline.profile.score_profile``).
        window: ``(start, end)`` of the monitor window, recorded in the report.

    Returns:
        A :class:`DriftReport`. With fewer than ``drift.min_window_rows`` rows it is marked
        insufficient and nothing in it drifts.

    Raises:
        DriftError: the profile's version is not supported, the profile or the window lacks spec
            features (or an input of a profiled derived feature), or a feature's profiled type
            disagrees with the spec.
    """
    policy = spec.drift
    version = profile.get("version")
    if version != PROFILE_VERSION:
        raise DriftError(
            f"reference profile of model {profile.get('model')!r} has version {version!r}; this monitor reads "
            f"version {PROFILE_VERSION}: re-run the champion's training to rewrite its profile.json"
        )
    ref_features = profile.get("features", {})
    missing_ref = [f for f in spec.features if f not in ref_features]
    if missing_ref:
        raise DriftError(
            f"reference profile of model {profile.get('model')!r} lacks spec features {missing_ref}: "
            "the champion was trained on a different spec; retrain it before monitoring"
        )
    rows = int(len(current))
    window_rec = (str(window[0]), str(window[1])) if window is not None else None
    if rows < policy.min_window_rows:
        return DriftReport(
            window=window_rec, rows=rows, features={}, drifted_features=[], weighted_drift=0.0,
            prediction=None, insufficient=True,
            notes=[f"insufficient data: {rows} rows < drift.min_window_rows {policy.min_window_rows}; "
                   "the window is not judged and nothing drifts"],
        )
    missing_cur = [f for f in spec.features if f not in current.columns]
    if missing_cur:
        raise DriftError(
            f"monitor window ({rows} rows) lacks spec features {missing_cur}; present columns: "
            f"{sorted(map(str, current.columns))}"
        )
    notes: list[str] = []
    derived_refs = _derived_references(spec, profile, notes)
    weights = _normalised_importance(spec, feature_importance, derived_refs, notes)
    features: dict[str, dict[str, Any]] = {}
    for name in spec.features:
        ref = ref_features[name]
        kind = "numeric" if name in spec.numeric_features else "categorical"
        if ref.get("type") != kind:
            raise DriftError(
                f"feature {name!r} is {kind} in spec {spec.name!r} but {ref.get('type')!r} in the reference profile"
            )
        measure = _numeric_feature if kind == "numeric" else _categorical_feature
        features[name] = {**measure(ref, current[name], policy, notes, name), "derived": False}
    for name, values in _derived_values(spec, derived_refs, current).items():
        ref = derived_refs[name]
        features[name] = {**_numeric_feature(ref, values, policy, notes, name), "derived": True,
                          "derivation": ref.get("derivation"), "inputs": list(ref.get("inputs") or [])}

    names = list(features)
    adjusted = _bh_adjust([features[f]["p"] for f in names])
    drifted: list[str] = []
    for name, p_adj in zip(names, adjusted):
        entry = features[name]
        entry["p_adjusted"] = float(p_adj)
        entry["importance"] = weights[name]
        effect_hit = entry["value"] is not None and entry["value"] >= entry["threshold"]
        test_hit = p_adj < policy.fdr_alpha
        nulls_hit = entry["null_rate"]["drifted"]
        entry["drifted"] = bool((effect_hit and test_hit) or nulls_hit)
        entry["reason"] = _feature_reason(entry, effect_hit, test_hit, policy.fdr_alpha)
        if entry["drifted"]:
            drifted.append(name)

    prediction = None
    if current_scores is not None and reference_scores is not None:
        prediction = _prediction_drift(reference_scores, np.asarray(current_scores, dtype=float), policy)
    elif current_scores is not None or reference_scores is not None:
        notes.append("prediction drift not measured: needs both current_scores and reference_scores")

    return DriftReport(
        window=window_rec, rows=rows, features=features, drifted_features=drifted,
        weighted_drift=float(sum(weights[f] for f in drifted)), prediction=prediction,
        insufficient=False, notes=notes,
    )


def _derived_references(spec: ModelSpec, profile: dict[str, Any], notes: list[str]) -> dict[str, dict[str, Any]]:
    """The profiled derived features of the spec, in spec order (a profile written before derived
    features were profiled has none: the report says how to get them)."""
    profiled = profile.get("derived_features") or {}
    refs = {d.name: profiled[d.name] for d in spec.derived_features if d.name in profiled}
    missing = [d.name for d in spec.derived_features if d.name not in profiled]
    if missing:
        notes.append(f"derived features {', '.join(missing)} are not monitored: the champion's reference profile "
                     "predates derived-feature profiles; the next retrain's champion profiles them")
    return refs


def _derived_values(spec: ModelSpec, refs: dict[str, dict[str, Any]], current: pd.DataFrame) -> dict[str, pd.Series]:
    if not refs:
        return {}
    from pipeline.features import derived_columns

    needed = sorted({c for name in refs for c in refs[name].get("inputs") or []} - set(map(str, current.columns)))
    if needed:
        raise DriftError(f"monitor window ({len(current)} rows) lacks {needed}, input(s) of the derived features "
                         f"{sorted(refs)}; present columns: {sorted(map(str, current.columns))}")
    return {name: values for name, values in derived_columns(spec, current).items() if name in refs}


def _normalised_importance(spec: ModelSpec, importance: dict[str, float] | None,
                           derived_refs: dict[str, dict[str, Any]], notes: list[str]) -> dict[str, float]:
    """Importance per monitored feature, summing to 1 (the mapping is in the module docstring)."""
    uniform = {f: 1.0 / len(spec.features) for f in spec.features} | {d: 0.0 for d in derived_refs}
    if importance is None:
        return uniform
    weights = {f: 0.0 for f in spec.features} | {d: 0.0 for d in derived_refs}
    derived = {d.name: d.inputs() for d in spec.derived_features}
    readers: dict[str, list[str]] = {}
    for d in spec.derived_features:
        if d.name in derived_refs:
            for col in d.inputs():
                if col not in weights:
                    readers.setdefault(col, []).append(d.name)
    for name, weight in importance.items():
        if name in spec.features:
            targets = [name]
        elif name in derived:
            targets = [c for c in derived[name] if c in spec.features]
            if not targets and name in derived_refs:
                targets = [name]
        else:
            targets = readers.get(name, [])
        if not targets:
            log.debug("importance of %r (%.4f) left out of the weighted drift: it is neither a monitored feature nor "
                      "an input only a monitored derived feature reads", name, float(weight))
            continue
        for target in targets:
            weights[target] += float(weight) / len(targets)
    total = sum(weights.values())
    if total <= 0:
        notes.append("the champion's feature importance is zero for every monitored feature: features are weighed "
                     "equally")
        return uniform
    return {f: w / total for f, w in weights.items()}


def _bh_adjust(p_values: list[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1), in input order."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out


def _psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index, sum((c - r) * ln(c / r)) over pseudo-count smoothed shares."""
    r = np.asarray(reference_counts, dtype=float) + PSI_PSEUDO_COUNT
    c = np.asarray(current_counts, dtype=float) + PSI_PSEUDO_COUNT
    r /= r.sum()
    c /= c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def _ks(reference_sample: np.ndarray, current: np.ndarray) -> Any:
    """Two-sample KS test; scipy falls back from the exact to the asymptotic p-value on large or
    tied samples with a RuntimeWarning per call, which would flood every monitor run's log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful", category=RuntimeWarning)
        return stats.ks_2samp(reference_sample, current)


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (in [0, 1]); inputs are counts or shares."""
    p = np.asarray(p, dtype=float) / np.sum(p)
    q = np.asarray(q, dtype=float) / np.sum(q)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def _null_rate(ref: dict[str, Any], policy: DriftPolicy, is_null: np.ndarray) -> dict[str, Any]:
    current = float(is_null.mean()) if is_null.size else 0.0
    reference = float(ref.get("null_rate", 0.0))
    delta = abs(current - reference)
    return {"reference": reference, "current": current, "delta": delta, "threshold": policy.null_rate_delta,
            "drifted": bool(delta >= policy.null_rate_delta)}


def _bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    fmt = lambda v: f"{v:.3g}"  # noqa: E731
    return ([f"<={fmt(edges[0])}"] + [f"{fmt(a)}-{fmt(b)}" for a, b in zip(edges[:-1], edges[1:])]
            + [f">{fmt(edges[-1])}"])


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def _numeric_feature(ref: dict[str, Any], series: pd.Series, policy: DriftPolicy, notes: list[str],
                     name: str) -> dict[str, Any]:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = values[np.isfinite(values)]
    null_rate = _null_rate(ref, policy, ~np.isfinite(values))
    edges = list(ref.get("bin_edges") or [])
    ref_counts = np.asarray(ref.get("bin_counts") or [0], dtype=float)
    sample = np.asarray(ref.get("sample") or [], dtype=float)
    entry: dict[str, Any] = {"type": "numeric", "test": "ks", "effect": "psi", "threshold": policy.psi_threshold,
                             "null_rate": null_rate}
    if finite.size == 0 or sample.size == 0 or ref_counts.sum() == 0:
        side = "current window" if finite.size == 0 else "reference profile"
        notes.append(f"{name}: no non-null values in the {side}; only its null rate is compared")
        entry.update(value=None, p=1.0, statistics={"current_rows": int(finite.size)},
                     histogram={"labels": [], "reference": [], "current": []})
        return entry
    cur_counts = np.asarray(bin_counts(finite, edges), dtype=float)
    psi = _psi(ref_counts, cur_counts)
    ks = _ks(sample, finite)
    q = ref.get("quantiles") or {}
    iqr = float(q["0.75"]) - float(q["0.25"]) if "0.75" in q and "0.25" in q else 0.0
    scale = iqr if iqr > 0 else float(ref.get("std") or 0.0)
    wasserstein = float(stats.wasserstein_distance(sample, finite))
    entry.update(
        value=psi, p=float(ks.pvalue),
        statistics={
            "psi": psi, "ks": float(ks.statistic), "wasserstein": wasserstein, "wasserstein_scale": scale,
            "wasserstein_normalised": wasserstein / scale if scale > 0 else None,
            "reference_mean": ref.get("mean"), "current_mean": float(finite.mean()),
            "current_rows": int(finite.size),
        },
        histogram={"labels": _bin_labels(edges), "reference": _shares(ref_counts), "current": _shares(cur_counts)},
    )
    return entry


def _categorical_feature(ref: dict[str, Any], series: pd.Series, policy: DriftPolicy, notes: list[str],
                         name: str) -> dict[str, Any]:
    is_null = series.isna().to_numpy()
    null_rate = _null_rate(ref, policy, is_null)
    ref_freq = {str(k): int(v) for k, v in (ref.get("frequencies") or {}).items()}
    cur_freq = series[~is_null].astype(str).value_counts()
    lump = OTHER in ref_freq
    counts: dict[str, int] = {}
    for cat, n in cur_freq.items():
        key = cat if cat in ref_freq or not lump else OTHER
        counts[key] = counts.get(key, 0) + int(n)
    categories = list(ref_freq) + sorted(c for c in counts if c not in ref_freq)
    r = np.array([ref_freq.get(c, 0) for c in categories], dtype=float)
    c = np.array([counts.get(k, 0) for k in categories], dtype=float)
    entry: dict[str, Any] = {"type": "categorical", "test": "chi2", "effect": "js", "threshold": policy.js_threshold,
                             "null_rate": null_rate}
    if r.sum() == 0 or c.sum() == 0:
        side = "current window" if c.sum() == 0 else "reference profile"
        notes.append(f"{name}: no non-null values in the {side}; only its null rate is compared")
        entry.update(value=None, p=1.0, statistics={"current_rows": int(c.sum())},
                     histogram={"labels": [], "reference": [], "current": []})
        return entry
    js = _js_distance(r, c)
    linf = float(np.max(np.abs(r / r.sum() - c / c.sum())))
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        chi2, p, dof = 0.0, 1.0, 0
    else:
        res = stats.chi2_contingency(table)
        chi2, p, dof = float(res.statistic), float(res.pvalue), int(res.dof)
    unseen = [k for k in categories if k not in ref_freq]
    entry.update(
        value=js, p=p,
        statistics={"js": js, "linf": linf, "chi2": chi2, "dof": dof, "unseen_categories": unseen,
                    "current_rows": int(c.sum())},
        histogram={"labels": categories, "reference": _shares(r), "current": _shares(c)},
    )
    return entry


def _feature_reason(entry: dict[str, Any], effect_hit: bool, test_hit: bool, alpha: float) -> str:
    effect = entry["effect"].upper()
    nr = entry["null_rate"]
    if entry["value"] is None:
        text = f"{effect} not computable"
    else:
        text = (f"{effect} {entry['value']:.3f} {'>=' if effect_hit else '<'} {entry['threshold']}, "
                f"adjusted p {entry['p_adjusted']:.3g} {'<' if test_hit else '>='} {alpha}")
    text += (f"; null rate {nr['reference']:.3f} -> {nr['current']:.3f} "
             f"(delta {nr['delta']:.3f} {'>=' if nr['drifted'] else '<'} {nr['threshold']})")
    unseen = entry["statistics"].get("unseen_categories")
    if unseen:
        text += f"; categories the reference never saw: {', '.join(unseen)}"
    return text


def _prediction_drift(reference: dict[str, Any], scores: np.ndarray, policy: DriftPolicy) -> dict[str, Any]:
    finite = scores[np.isfinite(scores)]
    edges = list(reference.get("bin_edges") or [])
    ref_counts = np.asarray(reference.get("bin_counts") or [0], dtype=float)
    sample = np.asarray(reference.get("sample") or [], dtype=float)
    if finite.size == 0 or sample.size == 0:
        raise DriftError(
            f"prediction drift needs scores on both sides: {finite.size} finite current scores, "
            f"{sample.size} reference sample values; check the champion's score profile"
        )
    cur_counts = np.asarray(bin_counts(finite, edges), dtype=float)
    psi = _psi(ref_counts, cur_counts)
    ks = _ks(sample, finite)
    return {"psi": psi, "ks": float(ks.statistic), "p": float(ks.pvalue), "threshold": policy.prediction_psi_threshold,
            "drifted": bool(psi >= policy.prediction_psi_threshold), "rows": int(finite.size),
            "reference_mean": reference.get("mean"), "current_mean": float(finite.mean()),
            "histogram": {"labels": _bin_labels(edges), "reference": _shares(ref_counts),
                          "current": _shares(cur_counts)}}


