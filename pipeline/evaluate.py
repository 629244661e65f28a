"""Evaluation: candidate, baseline and champion scored on one out-of-time test window.

Contract:
* ``evaluate(...)`` scores every model on the SAME test window and returns an
  :class:`Evaluation`: each metric with a percentile bootstrap interval and standard error, and
  the differences candidate - baseline, candidate - champion and baseline - champion by *paired*
  bootstrap (every replicate resamples the same rows for all models), per-slice metrics, scoring
  latency and model size. Differences are oriented so that positive always means "the first
  model is better" (lower-is-better metrics are sign-flipped). With ``out_uri`` it writes
  ``evaluation.json``.
* Optional per-row ``weights`` (importance weights after a covariate shift) weight every metric,
  interval and slice; the evaluation records their effective sample size.
* :meth:`Evaluation.evidence` is what the promotion rule (:mod:`pipeline.promotion`) judges.
  Metrics and the bootstrap come from :mod:`pipeline.metrics`; nothing here has tunable defaults.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.artifacts import Record
from pipeline.config import ModelSpec, PromotionPolicy
from pipeline.errors import DriftlineError
from pipeline.promotion import NO_CHAMPION, ChallengerEvidence, Evidence
from pipeline.storage import Store, join


class EvaluationError(DriftlineError):
    """The test window or a model cannot be evaluated (empty, unlabelled, one class, missing
    columns, a model that fails to score)."""


MISSING_SLICE = "(missing)"
_LATENCY_ROWS = 1000
_LATENCY_REPEATS = 5
PAIRS: tuple[tuple[str, str], ...] = (("candidate", "baseline"), ("candidate", "champion"), ("baseline", "champion"))


@dataclass(frozen=True)
class Evaluation(Record):
    """Everything measured on one test window (the content of ``evaluation.json``).

    Attributes:
        model: spec name.
        task: ``binary`` or ``regression``.
        primary_metric: the spec's primary metric.
        rows: rows in the test window.
        confidence, n_bootstrap, seed: how intervals were computed.
        metrics: role (``candidate``/``baseline``/``champion``) -> metric ->
            ``{"estimate", "lower", "upper", "se"}``.
        differences: ``<a>_vs_<b>`` for each pair of :data:`PAIRS` that was scored -> metric ->
            ``{"estimate", "lower", "upper", "se"}``, paired bootstrap, oriented (positive = a better).
        slices: per slice: ``column``, ``slice``, ``rows``, ``positives``, ``gated`` (by the
            spec's policy), ``note`` (why not gated), and each role's metrics on it.
        latency_ms_per_1k: role -> median milliseconds to score 1000 rows.
        model_size_mb: role -> size in MiB (given, or the model in the stored skops format).
        candidate_info, champion_info: what the caller passed (data_interval_end, version, ...).
        weights: ``None``, or ``{"kind", "effective_rows", ...}`` when rows were weighted.
        baseline_promotable: the baseline is a model that may be promoted (not a ``prior``).
        trigger: what started the run (copied into the evidence).
        test_window: how the test window was chosen (copied into the evidence).
        uri: where ``evaluation.json`` was written, if it was.
    """

    model: str
    task: str
    primary_metric: str
    rows: int
    confidence: float
    n_bootstrap: int
    seed: int
    metrics: dict[str, dict[str, dict[str, float | None]]]
    differences: dict[str, dict[str, dict[str, float | None]]]
    slices: list[dict[str, Any]]
    latency_ms_per_1k: dict[str, float]
    model_size_mb: dict[str, float]
    candidate_info: dict[str, Any]
    champion_info: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None
    baseline_promotable: bool = True
    trigger: str = "manual"
    test_window: dict[str, Any] | None = None
    uri: str | None = None

    def evidence(self) -> Evidence:
        """The :class:`~pipeline.promotion.Evidence` the promotion rule judges."""
        cand, champ = self.candidate_info, self.champion_info or {}
        has_champion = "champion" in self.metrics
        roles = ("candidate", "baseline") if self.baseline_promotable else ("candidate",)
        challengers = {}
        for role in roles:
            challengers[role] = ChallengerEvidence(
                metrics={m: v["estimate"] for m, v in self.metrics[role].items()},
                vs_champion=self.differences.get(f"{role}_vs_champion") if has_champion else None,
                slices=[{"column": s["column"], "slice": s["slice"], "rows": s["rows"], "positives": s["positives"],
                         "gated": s["gated"], "note": s["note"], "challenger": s.get(role),
                         "champion": s.get("champion")} for s in self.slices],
                model_size_mb=self.model_size_mb[role],
                latency_ms_per_1k=self.latency_ms_per_1k[role],
            )
        return Evidence(
            task=self.task, confidence=self.confidence, rows=self.rows, challengers=challengers,
            candidate_vs_baseline=self.differences["candidate_vs_baseline"],
            champion={m: v["estimate"] for m, v in self.metrics["champion"].items()} if has_champion else None,
            champion_test_metric=_opt_float(champ.get("test_metric")),
            candidate_data_end=str(cand["data_interval_end"]),
            champion_data_end=_opt_str(champ.get("data_interval_end") or None),
            candidate_version=_opt_str(cand.get("version")),
            champion_version=_opt_str(champ.get("version")),
            trigger=self.trigger, report_uri=self.uri, test_window=self.test_window,
        )


def evaluate(spec: ModelSpec, test_df: pd.DataFrame, candidate: Any, baseline: Any, champion: Any = None, *,
             candidate_info: dict[str, Any], champion_info: dict[str, Any] | None = None,
             weights: np.ndarray | None = None, weights_info: dict[str, Any] | None = None,
             trigger: str = "manual", test_window: dict[str, Any] | None = None,
             store: Store | None = None, out_uri: str | None = None, seed: int = 0,
             scores_out: dict[str, np.ndarray] | None = None) -> Evaluation:
    """Score candidate, baseline and (optionally) champion on one test window.

    Args:
        spec: the model spec (task, columns, slice columns, ``promotion`` policy).
        test_df: the out-of-time test window with ``spec.model_columns``, the target and the
            slice columns.
        candidate, baseline, champion: fitted models with ``predict_proba(X)`` (binary; column 1
            is the positive class) or ``predict(X)`` (regression) on ``test_df[spec.model_columns]``.
        candidate_info: at least ``data_interval_end`` (ISO); optionally ``version``, ``run_id``,
            ``model_size_mb`` (otherwise its size in the stored skops format is measured).
        champion_info: the same for the champion (plus ``test_metric``, its primary metric on its
            own test window); required when ``champion`` is given (an empty ``data_interval_end``
            is recorded as unknown, and the freshness gate then fails closed).
        weights: optional non-negative per-row weights of the test rows.
        weights_info: what the weights are (recorded), e.g. ``{"kind": "importance"}``.
        trigger: what started the run (``schedule``, ``manual``, ``drift``, ...).
        test_window: how the test window was chosen (recorded).
        store: storage for ``out_uri`` (default: from its scheme).
        out_uri: where to write the report: a ``.json`` URI, or a run prefix that gets
            ``evaluation.json`` appended.
        seed: seeds the bootstrap (the same seed gives the same intervals).
        scores_out: if given, receives each role's scores on the test window (so a caller that
            needs them again does not score twice).

    Returns:
        The :class:`Evaluation` (``uri`` set when written).

    Raises:
        EvaluationError: empty test window, missing columns, unlabelled rows, a binary window with
            one class, missing ``data_interval_end``, bad weights, or a model that fails to score;
            the message names the model, the columns or counts, and the report location.
    """
    where = f"model {spec.name!r}" + (f" (report {out_uri})" if out_uri else "")
    policy = spec.promotion
    _check_info("candidate", candidate_info, where)
    if champion is not None:
        if champion_info is None:
            raise EvaluationError(f"{where}: a champion model was given without champion_info; pass at least "
                                  "{'data_interval_end': <iso>} for it")
        _check_info("champion", champion_info, where, required=False)
    y = _target(spec, test_df, where)
    columns = list(spec.model_columns)
    missing = [c for c in columns if c not in test_df.columns]
    if missing:
        raise EvaluationError(f"{where}: test window lacks model column(s) {missing}; the models score "
                              f"{len(columns)} columns of spec.model_columns")
    w = _weights(weights, len(y), where)
    features = test_df[columns]
    numeric = features.select_dtypes("number")
    bad = [c for c in numeric.columns if not np.isfinite(numeric[c].to_numpy(dtype=float, na_value=0.0)).all()]
    if bad:
        raise EvaluationError(f"{where}: test window columns {bad} hold inf or -inf; validation quarantines such rows "
                              "(its built-in finite check): was the window validated?")

    models = {"candidate": candidate, "baseline": baseline}
    if champion is not None:
        models["champion"] = champion
    infos = {"candidate": candidate_info, "baseline": {}, "champion": champion_info or {}}
    predictions = {role: _predict(spec.task, m, features, role, where) for role, m in models.items()}
    threshold = spec.params.decision_threshold
    if scores_out is not None:
        scores_out.update(predictions)

    rng = np.random.default_rng(seed)
    replicates, point = metrics.bootstrap_and_point(spec.task, y, predictions, policy.n_bootstrap, rng, threshold,
                                                    weights=w)
    intervals = {role: {m: metrics.interval(point[role][m], replicates[role][m], policy.confidence)
                        for m in point[role]} for role in predictions}
    differences = {f"{a}_vs_{b}": metrics.paired(point, replicates, a, b, policy.confidence)
                   for a, b in PAIRS if a in predictions and b in predictions}
    slices = _slices(spec, test_df, y, predictions, threshold, w)

    latency = {role: _latency(spec.task, m, features, seed) for role, m in models.items()}
    sizes = {role: _model_size_mb(m, infos[role]) for role, m in models.items()}

    uri = None
    if out_uri:
        uri = out_uri if out_uri.endswith(".json") else join(out_uri, "evaluation.json")
    weights_record = None
    if w is not None:
        weights_record = {**(weights_info or {"kind": "given"}),
                          "effective_rows": float(w.sum() ** 2 / np.square(w).sum()), "rows": int(w.size)}
    evaluation = Evaluation(
        model=spec.name, task=spec.task, primary_metric=spec.primary_metric, rows=int(len(y)),
        confidence=policy.confidence, n_bootstrap=policy.n_bootstrap, seed=seed,
        metrics=intervals, differences=differences, slices=slices,
        latency_ms_per_1k=latency, model_size_mb=sizes,
        candidate_info=dict(candidate_info), champion_info=dict(champion_info) if champion is not None else None,
        weights=weights_record, baseline_promotable=spec.params.baseline != "prior",
        trigger=trigger, test_window=test_window, uri=uri,
    )
    if uri:
        (store or Store.for_uri(uri)).write_json(uri, evaluation.to_dict())
    return evaluation


def _weights(weights: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise EvaluationError(f"{where}: {w.shape} weights for {n} test rows")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise EvaluationError(f"{where}: test weights must be finite, non-negative and not all zero")
    return w * (n / w.sum())


def _check_info(role: str, info: dict[str, Any], where: str, required: bool = True) -> None:
    end = info.get("data_interval_end")
    if not end and not required:
        return
    if not end:
        raise EvaluationError(f"{where}: {role}_info lacks 'data_interval_end' (the ISO end of the data the "
                              f"{role} was trained on); the freshness gate needs it")
    try:
        _parse_time(str(end))
    except ValueError:
        raise EvaluationError(f"{where}: {role}_info data_interval_end {end!r} is not an ISO date or "
                              "datetime") from None


def _target(spec: ModelSpec, df: pd.DataFrame, where: str) -> np.ndarray:
    col = spec.target_column
    if len(df) == 0:
        raise EvaluationError(f"{where}: the test window is empty (0 rows); widen windows.test_days or check "
                              "the snapshot's time range")
    if col not in df.columns:
        raise EvaluationError(f"{where}: the test window has no target column {col!r}")
    target = pd.to_numeric(df[col], errors="coerce")
    unlabelled = int(target.isna().sum())
    if unlabelled:
        raise EvaluationError(f"{where}: {unlabelled} of {len(df)} test rows have no usable {col!r} label; "
                              "validation should have quarantined them")
    y = target.to_numpy(dtype=float)
    if spec.task == "binary":
        values = set(np.unique(y).tolist())
        if not values <= {0.0, 1.0}:
            raise EvaluationError(f"{where}: binary target {col!r} has values other than 0/1: "
                                  f"{sorted(values - {0.0, 1.0})[:5]}")
        if len(values) < 2:
            only = int(next(iter(values)))
            raise EvaluationError(f"{where}: all {len(y)} test rows have {col!r} = {only}; ROC AUC and the "
                                  "other ranking metrics need both classes in the test window")
    return y


def _predict(task: str, model: Any, features: pd.DataFrame, role: str, where: str) -> np.ndarray:
    try:
        if task == "binary":
            raw = np.asarray(model.predict_proba(features), dtype=float)
            if raw.ndim != 2 or raw.shape[1] != 2:
                raise EvaluationError(f"{where}: {role} predict_proba returned shape {raw.shape}; expected "
                                      f"({len(features)}, 2) for a binary model")
            out = raw[:, 1]
        else:
            out = np.asarray(model.predict(features), dtype=float).reshape(-1)
    except EvaluationError:
        raise
    except Exception as err:
        raise EvaluationError(f"{where}: the {role} model failed to score the test window "
                              f"({type(err).__name__}: {err})") from err
    if out.shape[0] != len(features):
        raise EvaluationError(f"{where}: {role} returned {out.shape[0]} predictions for {len(features)} rows")
    bad = int((~np.isfinite(out)).sum())
    if bad:
        raise EvaluationError(f"{where}: {role} returned {bad} non-finite predictions on {len(features)} rows")
    return out


# --------------------------------------------------------------------------------------------
# slices


def _slice_labels(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """``(codes, names)``: each row's slice -- its category, or the quartile range for numeric and
    datetime columns, or :data:`MISSING_SLICE` -- as an index into ``names`` (no per-row Python)."""
    is_time = pd.api.types.is_datetime64_any_dtype(series)
    numeric = (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)) or is_time
    missing = series.isna().to_numpy()
    if not numeric:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        names = [str(u) for u in uniques]
        # Values that read the same as text (1 and "1") are one slice.
        merged, distinct = pd.factorize(pd.Index([*names, MISSING_SLICE], dtype=object))
        codes = np.where(np.asarray(codes) >= 0, merged[np.maximum(codes, 0)], merged[-1])
        return codes, [str(d) for d in distinct]
    if is_time:
        # Nanoseconds since the epoch in UTC, whatever the column's resolution or zone.
        stamps = pd.to_datetime(series, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        values = np.where(missing, np.nan, stamps.astype("int64").astype(float))
    else:
        values = pd.to_numeric(series).to_numpy(dtype=float, na_value=np.nan)
    finite = values[~missing]
    codes = np.zeros(values.size, dtype=np.int64)
    if finite.size == 0:
        return codes, [MISSING_SLICE]
    edges = np.unique(np.quantile(finite, [0, 0.25, 0.5, 0.75, 1.0]))
    fmt = (lambda v: pd.Timestamp(int(v), tz="UTC").isoformat()) if is_time else (lambda v: f"{v:.4g}")
    if edges.size == 1:
        names = [f"= {fmt(edges[0])}"]
    else:
        names = [("[" if i == 0 else "(") + f"{fmt(edges[i])}, {fmt(edges[i + 1])}]" for i in range(edges.size - 1)]
        codes[~missing] = np.searchsorted(edges[1:-1], finite, side="left")
    codes[missing] = len(names)
    return codes, [*names, MISSING_SLICE]


def _slice_gating(entry: dict[str, Any], policy: PromotionPolicy, task: str) -> str | None:
    """Why a slice is not gated, or ``None`` when it is."""
    if entry["rows"] < policy.slice_min_rows:
        return f"{entry['rows']} rows < slice_min_rows {policy.slice_min_rows}"
    if task == "binary" and entry["positives"] in (0, entry["rows"]):
        return "only one class in this slice"
    return None


def _slices(spec: ModelSpec, df: pd.DataFrame, y: np.ndarray, predictions: dict[str, np.ndarray],
            threshold: float, weights: np.ndarray | None) -> list[dict[str, Any]]:
    out = []
    for column in spec.slice_columns:
        if column not in df.columns:
            raise EvaluationError(f"model {spec.name!r}: slice column {column!r} is not in the test window")
        codes, names = _slice_labels(df[column])
        present = np.bincount(codes, minlength=len(names)) > 0
        for code, label in sorted(((c, n) for c, n in enumerate(names) if present[c]), key=lambda cn: cn[1]):
            mask = codes == code
            ys = y[mask]
            entry: dict[str, Any] = {
                "column": column, "slice": str(label), "rows": int(mask.sum()),
                "positives": int(ys.sum()) if spec.task == "binary" else None,
            }
            ws = None if weights is None else weights[mask]
            for role in ("candidate", "baseline", "champion"):
                entry[role] = (metrics.point(spec.task, ys, predictions[role][mask], threshold, weights=ws)
                               if role in predictions else None)
            note = _slice_gating(entry, spec.promotion, spec.task)
            entry["gated"] = note is None and "champion" in predictions
            entry["note"] = note if note else (None if "champion" in predictions else NO_CHAMPION)
            out.append(entry)
    return out


# --------------------------------------------------------------------------------------------
# operational budget


def _latency(task: str, model: Any, features: pd.DataFrame, seed: int) -> float:
    """Median milliseconds to score 1000 rows, after one warm-up call."""
    if len(features) >= _LATENCY_ROWS:
        batch = features.iloc[:_LATENCY_ROWS]
    else:
        batch = features.sample(_LATENCY_ROWS, replace=True, random_state=seed)
    score = model.predict_proba if task == "binary" else model.predict
    score(batch)
    timings = []
    for _ in range(_LATENCY_REPEATS):
        start = time.perf_counter()
        score(batch)
        timings.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(timings))


def _model_size_mb(model: Any, info: dict[str, Any]) -> float:
    if info.get("model_size_mb") is not None:
        return float(info["model_size_mb"])
    import skops.io

    return len(skops.io.dumps(model)) / (1024 * 1024)


# --------------------------------------------------------------------------------------------
# small helpers


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
