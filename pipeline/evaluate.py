"""Evaluation and the promotion decision: candidate vs baseline vs champion on one test window.

Contract:
* ``evaluate(...)`` scores every model on the SAME out-of-time test window and returns an
  :class:`Evaluation`: each metric with a percentile bootstrap confidence interval, the
  candidate-minus-baseline and candidate-minus-champion differences by *paired* bootstrap (every
  replicate resamples the same rows for all models), per-slice metrics, scoring latency and model
  size. Differences are oriented so that positive always means "candidate better" (lower-is-better
  metrics are sign-flipped). With ``out_uri`` it writes ``evaluation.json``.
* ``decide(evidence, policy, ...)`` is pure: it reads an :class:`Evidence` and a
  :class:`~pipeline.config.PromotionPolicy` and returns a :class:`Decision` with one
  :class:`Gate` per rule (floor, beats_baseline, vs_champion, slices, budget, freshness), each with
  a sentence naming the metric, the observed value, the threshold and the margin.
* Every threshold comes from the spec's ``promotion`` policy; nothing here has tunable defaults.

The bootstrap is vectorised: replicate weights (multinomial counts, drawn as index matrices and
bin-counted) are drawn once per block of replicates and shared by all models; ROC AUC and average
precision are computed from cumulative weighted class counts over each model's score order, the
other metrics as matrix-vector products, so 500 replicates on 20k rows cost a few array passes.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import pandas as pd

from pipeline.artifacts import Record
from pipeline.config import ModelSpec, PromotionPolicy, higher_is_better
from pipeline.errors import DriftlineError
from pipeline.storage import Store, join


class EvaluationError(DriftlineError):
    """The test window or a model cannot be evaluated (empty, unlabelled, one class, missing
    columns, a model that fails to score)."""


class DecisionError(DriftlineError):
    """``decide`` was called with arguments it cannot judge (e.g. ``force`` without a reason, or a
    primary metric the evidence does not carry)."""


GATE_NAMES: tuple[str, ...] = ("floor", "beats_baseline", "vs_champion", "slices", "budget", "freshness")
NO_CHAMPION = "no champion yet (first run)"
MISSING_SLICE = "(missing)"
_LATENCY_ROWS = 1000
_LATENCY_REPEATS = 5
# Bound on the float64 cells of one replicate-weight block, so memory stays ~16 MB per array
# whatever the test window size.
_BLOCK_CELLS = 2_000_000


@dataclass(frozen=True)
class Evidence(Record):
    """What :func:`decide` judges; built by :meth:`Evaluation.evidence` (or by hand in tests).

    Every difference is oriented: positive = candidate better.

    Attributes:
        task: ``binary`` or ``regression``.
        confidence: level of every interval below.
        rows: rows in the test window.
        candidate: candidate point estimates, metric -> value (``None`` if undefined).
        vs_baseline: metric -> ``{"estimate", "lower", "upper"}`` of candidate - baseline.
        vs_champion: the same for candidate - champion; ``None`` when there is no champion.
        slices: one dict per slice: ``column``, ``slice``, ``rows``, ``positives`` (binary, else
            ``None``), ``candidate`` and ``champion`` (metric -> value, champion ``None`` without one).
        model_size_mb: candidate size.
        latency_ms_per_1k: candidate scoring latency per 1000 rows.
        candidate_data_end: ISO end of the candidate's training data interval.
        champion_data_end: the champion's, or ``None``.
        candidate_version, champion_version: registry versions when known.
        report_uri: where the full evaluation report is (for messages).
    """

    task: str
    confidence: float
    rows: int
    candidate: dict[str, float | None]
    vs_baseline: dict[str, dict[str, float | None]]
    vs_champion: dict[str, dict[str, float | None]] | None
    slices: list[dict[str, Any]]
    model_size_mb: float
    latency_ms_per_1k: float
    candidate_data_end: str
    champion_data_end: str | None = None
    candidate_version: str | None = None
    champion_version: str | None = None
    report_uri: str | None = None


@dataclass(frozen=True)
class Gate(Record):
    """One promotion rule's verdict.

    Attributes:
        name: one of :data:`GATE_NAMES`.
        passed: ``True``/``False``; ``None`` = skipped (``detail`` says why).
        threshold: what was required (a number, an ISO date, or metric -> number).
        observed: what was measured, in the same shape as ``threshold``.
        interval: the confidence interval behind ``observed`` when there is one.
        detail: one sentence for a reviewer: metric, observed vs threshold, by how much.
    """

    name: str
    passed: bool | None
    threshold: float | str | dict[str, float] | None
    observed: float | str | dict[str, float | None] | None
    interval: tuple[float | None, float | None] | None
    detail: str


@dataclass(frozen=True)
class Decision(Record):
    """Whether the candidate replaces the champion, and why.

    Attributes:
        promote: ``True`` iff no gate failed (skipped gates do not block).
        gates: the six gates in order.
        reasons: sentences saying why it is or is not promoted (failures first).
        summary: one line for logs and UIs, ending with the report URI when known.
        forced: ``force=True`` was used (gates 2-6 skipped).
        primary_metric: the metric gates 2-4 judged.
        force_reason: the reason given with ``force``.
        candidate_version, champion_version, report_uri: copied from the evidence.
        policy: the promotion policy applied (for audit).
    """

    promote: bool
    gates: list[Gate]
    reasons: list[str]
    summary: str
    forced: bool
    primary_metric: str
    force_reason: str | None = None
    candidate_version: str | None = None
    champion_version: str | None = None
    report_uri: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)

    def gate(self, name: str) -> Gate:
        """The gate called ``name``; raises KeyError for an unknown name."""
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Decision":
        data = dict(data)
        gates = []
        for g in data.get("gates", []):
            g = dict(g)
            if g.get("interval") is not None:
                g["interval"] = tuple(g["interval"])
            gates.append(Gate.from_dict(g))
        data["gates"] = gates
        return super().from_dict(data)


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
            ``{"estimate", "lower", "upper"}``.
        differences: ``candidate_vs_baseline`` / ``candidate_vs_champion`` -> metric ->
            ``{"estimate", "lower", "upper"}``, paired bootstrap, oriented (positive = candidate
            better).
        slices: per slice: ``column``, ``slice``, ``rows``, ``positives``, ``gated`` (by the
            spec's policy), ``note`` (why not gated), ``candidate`` and ``champion`` metrics.
        latency_ms_per_1k: role -> median milliseconds to score 1000 rows.
        model_size_mb: role -> size in MiB (given, or the cloudpickled model).
        candidate_info, champion_info: what the caller passed (data_interval_end, version, ...).
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
    uri: str | None = None

    def evidence(self) -> Evidence:
        """The :class:`Evidence` :func:`decide` judges."""
        cand, champ = self.candidate_info, self.champion_info or {}
        return Evidence(
            task=self.task,
            confidence=self.confidence,
            rows=self.rows,
            candidate={m: v["estimate"] for m, v in self.metrics["candidate"].items()},
            vs_baseline=self.differences["candidate_vs_baseline"],
            vs_champion=self.differences.get("candidate_vs_champion"),
            slices=[{k: s[k] for k in ("column", "slice", "rows", "positives", "candidate", "champion")}
                    for s in self.slices],
            model_size_mb=self.model_size_mb["candidate"],
            latency_ms_per_1k=self.latency_ms_per_1k["candidate"],
            candidate_data_end=str(cand["data_interval_end"]),
            champion_data_end=_opt_str(champ.get("data_interval_end") or None),
            candidate_version=_opt_str(cand.get("version")),
            champion_version=_opt_str(champ.get("version")),
            report_uri=self.uri,
        )


# --------------------------------------------------------------------------------------------
# evaluate


def evaluate(spec: ModelSpec, test_df: pd.DataFrame, candidate: Any, baseline: Any, champion: Any = None, *,
             candidate_info: dict[str, Any], champion_info: dict[str, Any] | None = None,
             store: Store | None = None, out_uri: str | None = None, seed: int = 0) -> Evaluation:
    """Score candidate, baseline and (optionally) champion on one test window.

    Args:
        spec: the model spec (task, columns, slice columns, ``promotion`` policy).
        test_df: the out-of-time test window with ``spec.model_columns``, the target and the
            slice columns.
        candidate, baseline, champion: fitted models with ``predict_proba(X)`` (binary; column 1
            is the positive class) or ``predict(X)`` (regression) on ``test_df[spec.model_columns]``.
        candidate_info: at least ``data_interval_end`` (ISO); optionally ``version``, ``run_id``,
            ``model_size_mb`` (otherwise the cloudpickled size is measured).
        champion_info: the same for the champion; required when ``champion`` is given (an empty
            ``data_interval_end`` is recorded as unknown, and the freshness gate then fails closed).
        store: storage for ``out_uri`` (default: from its scheme).
        out_uri: where to write the report: a ``.json`` URI, or a run prefix that gets
            ``evaluation.json`` appended.
        seed: seeds the bootstrap (the same seed gives the same intervals).

    Returns:
        The :class:`Evaluation` (``uri`` set when written).

    Raises:
        EvaluationError: empty test window, missing columns, unlabelled rows, a binary window with
            one class, missing ``data_interval_end``, or a model that fails to score; the message
            names the model, the columns or counts, and the report location.
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
    features = test_df[columns]

    models = {"candidate": candidate, "baseline": baseline}
    if champion is not None:
        models["champion"] = champion
    infos = {"candidate": candidate_info, "baseline": {}, "champion": champion_info or {}}
    predictions = {role: _predict(spec.task, m, features, role, where) for role, m in models.items()}
    threshold = spec.params.decision_threshold

    rng = np.random.default_rng(seed)
    replicates = _bootstrap(spec.task, y, predictions, policy.n_bootstrap, threshold, rng)
    point = {role: _point_metrics(spec.task, y, p, threshold) for role, p in predictions.items()}
    metrics = {role: {m: _interval(point[role][m], replicates[role][m], policy.confidence) for m in point[role]}
               for role in predictions}
    differences = {"candidate_vs_baseline": _paired(point, replicates, "baseline", policy.confidence)}
    if champion is not None:
        differences["candidate_vs_champion"] = _paired(point, replicates, "champion", policy.confidence)

    slice_roles = {r: predictions[r] for r in ("candidate", "champion") if r in predictions}
    slices = _slices(spec, test_df, y, slice_roles, threshold)

    latency = {role: _latency(spec.task, m, features, seed) for role, m in models.items()}
    sizes = {role: _model_size_mb(m, infos[role]) for role, m in models.items()}

    uri = None
    if out_uri:
        uri = out_uri if out_uri.endswith(".json") else join(out_uri, "evaluation.json")
    evaluation = Evaluation(
        model=spec.name, task=spec.task, primary_metric=spec.primary_metric, rows=int(len(y)),
        confidence=policy.confidence, n_bootstrap=policy.n_bootstrap, seed=seed,
        metrics=metrics, differences=differences, slices=slices,
        latency_ms_per_1k=latency, model_size_mb=sizes,
        candidate_info=dict(candidate_info), champion_info=dict(champion_info) if champion is not None else None,
        uri=uri,
    )
    if uri:
        (store or Store.for_uri(uri)).write_json(uri, evaluation.to_dict())
    return evaluation


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
# metrics on replicate weights


@dataclass(frozen=True)
class _Ranked:
    """A binary model's scores, pre-sorted once so every replicate reuses the order."""

    order: np.ndarray
    starts: np.ndarray | None
    y_sorted: np.ndarray
    per_row: np.ndarray  # columns: log loss, squared error, tp, fp, fn at the decision threshold


def _rank(y: np.ndarray, p: np.ndarray, threshold: float) -> _Ranked:
    order = np.argsort(p, kind="stable")
    ps = p[order]
    change = np.flatnonzero(np.diff(ps)) + 1
    # Tied scores must share one threshold step; with no ties reduceat is skipped entirely.
    starts = np.concatenate(([0], change)) if change.size + 1 < p.size else None
    eps = np.finfo(float).eps
    q = np.clip(p, eps, 1 - eps)
    pos = (p >= threshold).astype(float)
    per_row = np.column_stack([
        -(y * np.log(q) + (1 - y) * np.log1p(-q)),
        np.square(p - y),
        y * pos,
        (1 - y) * pos,
        y * (1 - pos),
    ])
    return _Ranked(order=order, starts=starts, y_sorted=y[order], per_row=per_row)


def _binary_block(ranked: _Ranked, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted binary metrics for each row of ``weights`` (shape ``(b, n)``).

    Works in the dtype of ``weights`` (float32 replicate counts are exact integers below 2**24);
    row sums are pairwise and returned in float64.
    """
    pos = weights[:, ranked.order]
    neg = pos.copy()
    pos *= ranked.y_sorted.astype(pos.dtype)
    neg -= pos
    if ranked.starts is not None:
        pos = np.add.reduceat(pos, ranked.starts, axis=1)
        neg = np.add.reduceat(neg, ranked.starts, axis=1)
    cum_pos = np.cumsum(pos, axis=1)
    cum_neg = np.cumsum(neg, axis=1)
    p_tot = cum_pos[:, -1].astype(float)
    n_tot = cum_neg[:, -1].astype(float)
    # Ascending score order: a positive outranks the negatives strictly below it and half of its ties.
    below = cum_neg - 0.5 * neg
    below *= pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = below.sum(axis=1, dtype=float) / (p_tot * n_tot)
        # Descending thresholds: precision at each distinct score (everything scored at least as
        # high is predicted positive), weighted by the recall step it adds.
        tp = np.subtract(p_tot[:, None].astype(pos.dtype), cum_pos, out=cum_pos)
        tp += pos
        predicted = np.subtract(n_tot[:, None].astype(pos.dtype), cum_neg, out=cum_neg)
        predicted += neg
        predicted += tp
        np.maximum(predicted, np.finfo(predicted.dtype).tiny, out=predicted)
        tp /= predicted
        tp *= pos
        ap = tp.sum(axis=1, dtype=float) / p_tot
    sums = (weights @ ranked.per_row.astype(weights.dtype)).astype(float)
    total = weights.sum(axis=1, dtype=float)
    tp_f1, fp_f1, fn_f1 = sums[:, 2], sums[:, 3], sums[:, 4]
    f1_den = 2 * tp_f1 + fp_f1 + fn_f1
    f1 = np.where(f1_den > 0, 2 * tp_f1 / np.where(f1_den > 0, f1_den, 1.0), 0.0)
    return {"roc_auc": auc, "pr_auc": ap, "log_loss": sums[:, 0] / total, "brier": sums[:, 1] / total, "f1": f1}


def _regression_rows(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    err = yhat - y
    return np.column_stack([np.square(err), np.abs(err), y, np.square(y)])


def _regression_block(per_row: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    # Sums of squares need float64 even when replicate counts are float32.
    sums = weights.astype(float) @ per_row
    total = weights.sum(axis=1, dtype=float)
    mse = sums[:, 0] / total
    sst = sums[:, 3] - np.square(sums[:, 2]) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1 - sums[:, 0] / np.where(sst > 0, sst, 1.0), np.nan)
    return {"rmse": np.sqrt(mse), "mae": sums[:, 1] / total, "r2": r2}


def _scorer(task: str, y: np.ndarray, prediction: np.ndarray, threshold: float
            ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function from a weight block ``(b, n)`` to metric -> ``(b,)`` values for one model."""
    if task == "binary":
        ranked = _rank(y, prediction, threshold)
        return lambda w: _binary_block(ranked, w)
    rows = _regression_rows(y, prediction)
    return lambda w: _regression_block(rows, w)


def _point_metrics(task: str, y: np.ndarray, prediction: np.ndarray, threshold: float) -> dict[str, float | None]:
    values = _scorer(task, y, prediction, threshold)(np.ones((1, y.size)))
    return {m: _num(v[0]) for m, v in values.items()}


def _bootstrap(task: str, y: np.ndarray, predictions: dict[str, np.ndarray], n_boot: int, threshold: float,
               rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Paired bootstrap replicates: role -> metric -> ``(n_boot,)``; replicate ``i`` uses the same
    resampled rows for every model."""
    n = y.size
    scorers = {role: _scorer(task, y, p, threshold) for role, p in predictions.items()}
    chunks: dict[str, dict[str, list[np.ndarray]]] = {role: {} for role in predictions}
    block = max(1, min(n_boot, _BLOCK_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        idx += np.arange(b)[:, None] * n
        # float32 halves memory traffic; counts stay exact integers (see _binary_block).
        weights = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float32)
        for role, score in scorers.items():
            for metric, values in score(weights).items():
                chunks[role].setdefault(metric, []).append(values)
        done += b
    return {role: {m: np.concatenate(v) for m, v in per.items()} for role, per in chunks.items()}


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    # A replicate can lack a class on tiny windows; if most do, the interval means nothing.
    if finite.size < max(2, values.size // 2):
        return None, None
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _interval(estimate: float | None, replicates: np.ndarray, confidence: float) -> dict[str, float | None]:
    lo, hi = _percentiles(replicates, confidence)
    return {"estimate": estimate, "lower": lo, "upper": hi}


def _paired(point: dict[str, dict[str, float | None]], replicates: dict[str, dict[str, np.ndarray]],
            other: str, confidence: float) -> dict[str, dict[str, float | None]]:
    out = {}
    for metric, cand in point["candidate"].items():
        sign = 1.0 if higher_is_better(metric) else -1.0
        other_point = point[other][metric]
        estimate = None if cand is None or other_point is None else sign * (cand - other_point)
        diffs = sign * (replicates["candidate"][metric] - replicates[other][metric])
        out[metric] = _interval(estimate, diffs, confidence)
    return out


# --------------------------------------------------------------------------------------------
# slices


def _slice_labels(series: pd.Series) -> np.ndarray:
    """One label per row: the category, or the quartile range for numeric and datetime columns."""
    is_time = pd.api.types.is_datetime64_any_dtype(series)
    numeric = (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)) or is_time
    missing = series.isna().to_numpy()
    if not numeric:
        labels = series.astype(object).to_numpy()
        return np.where(missing, MISSING_SLICE, labels.astype(str))
    if is_time:
        # Nanoseconds since the epoch in UTC, whatever the column's resolution or zone.
        stamps = pd.to_datetime(series, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        values = np.where(missing, np.nan, stamps.astype("int64").astype(float))
    else:
        values = pd.to_numeric(series).to_numpy(dtype=float, na_value=np.nan)
    finite = values[~missing]
    labels = np.full(values.size, MISSING_SLICE, dtype=object)
    if finite.size == 0:
        return labels
    edges = np.unique(np.quantile(finite, [0, 0.25, 0.5, 0.75, 1.0]))
    fmt = (lambda v: pd.Timestamp(int(v), tz="UTC").isoformat()) if is_time else (lambda v: f"{v:.4g}")
    if edges.size == 1:
        labels[~missing] = f"= {fmt(edges[0])}"
        return labels
    bins = np.searchsorted(edges[1:-1], finite, side="left")
    names = [("[" if i == 0 else "(") + f"{fmt(edges[i])}, {fmt(edges[i + 1])}]" for i in range(edges.size - 1)]
    labels[~missing] = np.asarray(names, dtype=object)[bins]
    return labels


def _slice_gating(entry: dict[str, Any], policy: PromotionPolicy, task: str) -> str | None:
    """Why a slice is not gated, or ``None`` when it is."""
    if entry["rows"] < policy.slice_min_rows:
        return f"{entry['rows']} rows < slice_min_rows {policy.slice_min_rows}"
    if task == "binary" and entry["positives"] in (0, entry["rows"]):
        return "only one class in this slice"
    return None


def _slices(spec: ModelSpec, df: pd.DataFrame, y: np.ndarray, predictions: dict[str, np.ndarray],
            threshold: float) -> list[dict[str, Any]]:
    out = []
    for column in spec.slice_columns:
        if column not in df.columns:
            raise EvaluationError(f"model {spec.name!r}: slice column {column!r} is not in the test window")
        labels = _slice_labels(df[column])
        for label in sorted(set(labels.tolist()), key=str):
            mask = labels == label
            ys = y[mask]
            entry: dict[str, Any] = {
                "column": column, "slice": str(label), "rows": int(mask.sum()),
                "positives": int(ys.sum()) if spec.task == "binary" else None,
            }
            for role in ("candidate", "champion"):
                entry[role] = (_point_metrics(spec.task, ys, predictions[role][mask], threshold)
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
    import cloudpickle

    return len(cloudpickle.dumps(model)) / (1024 * 1024)


# --------------------------------------------------------------------------------------------
# decide


def decide(evidence: Evidence, policy: PromotionPolicy, *, primary_metric: str, force: bool = False,
           reason: str | None = None) -> Decision:
    """Apply the promotion gates to the evidence. Pure: no I/O, no clock.

    Gates, in order: ``floor`` (candidate metrics vs ``policy.metric_floors``; ceilings for
    lower-is-better metrics), ``beats_baseline`` (oriented lift on the primary metric >=
    ``min_lift_over_baseline``), ``vs_champion`` (lower bound of the paired, oriented
    candidate - champion interval >= ``champion_margin``), ``slices`` (no gated slice regresses
    by more than ``slice_tolerance``), ``budget`` (``max_model_mb``, ``max_latency_ms_per_1k``),
    ``freshness`` (candidate data end >= champion's unless ``allow_stale``). Without a champion,
    vs_champion, slices and freshness are skipped. ``force`` skips gates 2-6, never the floor.

    Args:
        evidence: from :meth:`Evaluation.evidence`.
        policy: the spec's promotion policy.
        primary_metric: the metric gates 2-4 judge (``spec.primary_metric``).
        force: promote regardless of gates 2-6 (a human decision; needs ``reason``).
        reason: why it is forced (recorded in every skipped gate).

    Returns:
        The :class:`Decision`; ``promote`` is ``True`` iff no gate failed.

    Raises:
        DecisionError: ``force`` without a reason, a primary metric absent from the evidence, or a
            data end that is not ISO.
    """
    if force and not (reason and reason.strip()):
        raise DecisionError("force=True needs a reason (who decided and why); it is recorded in the decision")
    has_champion = evidence.vs_champion is not None
    carried = [evidence.candidate, evidence.vs_baseline] + ([evidence.vs_champion] if has_champion else [])
    if any(primary_metric not in part for part in carried):
        raise DecisionError(f"primary metric {primary_metric!r} is not in the evidence; it carries "
                            f"{sorted(evidence.candidate)}")
    for label, value in (("candidate", evidence.candidate_data_end), ("champion", evidence.champion_data_end)):
        if value is not None:
            try:
                _parse_time(value)
            except ValueError:
                raise DecisionError(f"{label}_data_end {value!r} is not an ISO date or datetime") from None
    gates = [_floor_gate(evidence, policy)]
    if force:
        skipped = f"skipped: promotion forced ({reason.strip()})"
        gates += [Gate(name, None, None, None, None, skipped) for name in GATE_NAMES[1:]]
    else:
        gates.append(_baseline_gate(evidence, policy, primary_metric))
        gates.append(_champion_gate(evidence, policy, primary_metric) if has_champion
                     else Gate("vs_champion", None, policy.champion_margin, None, None, NO_CHAMPION))
        gates.append(_slices_gate(evidence, policy, primary_metric) if has_champion
                     else Gate("slices", None, -policy.slice_tolerance, None, None, NO_CHAMPION))
        gates.append(_budget_gate(evidence, policy))
        gates.append(_freshness_gate(evidence, policy) if has_champion
                     else Gate("freshness", None, None, evidence.candidate_data_end, None, NO_CHAMPION))
    promote = all(g.passed is not False for g in gates)
    reasons, summary = _explain(gates, promote, evidence, force)
    return Decision(
        promote=promote, gates=gates, reasons=reasons, summary=summary, forced=force,
        primary_metric=primary_metric, force_reason=reason.strip() if force and reason else None,
        candidate_version=evidence.candidate_version, champion_version=evidence.champion_version,
        report_uri=evidence.report_uri, policy=policy.model_dump(),
    )


def _floor_gate(evidence: Evidence, policy: PromotionPolicy) -> Gate:
    if not policy.metric_floors:
        return Gate("floor", None, None, None, None, "no metric floors configured (promotion.metric_floors)")
    parts, failures, observed = [], [], {}
    for metric, bound in policy.metric_floors.items():
        value = evidence.candidate.get(metric)
        observed[metric] = value
        higher = higher_is_better(metric)
        word = "floor" if higher else "ceiling"
        if value is None:
            failures.append(metric)
            parts.append(f"{metric} is undefined on the test window ({word} {bound:.4f})")
            continue
        margin = value - bound if higher else bound - value
        ok = margin >= 0
        if not ok:
            failures.append(metric)
        parts.append(f"candidate {metric} {value:.4f} {'meets' if ok else 'misses'} the {word} {bound:.4f} "
                     f"{'with' if ok else 'by'} {abs(margin):.4f}{'' if ok else ' short'}")
    return Gate("floor", not failures, dict(policy.metric_floors), observed, None, "; ".join(parts))


def _baseline_gate(evidence: Evidence, policy: PromotionPolicy, metric: str) -> Gate:
    diff = evidence.vs_baseline[metric]
    lift, lo, hi = diff["estimate"], diff["lower"], diff["upper"]
    need = policy.min_lift_over_baseline
    ci = _ci_text(evidence.confidence, lo, hi)
    if lift is None:
        return Gate("beats_baseline", False, need, None, (lo, hi),
                    f"{metric} lift over the baseline is undefined on the test window (need >= {need:+.4f})")
    ok = lift >= need
    detail = (f"{metric} lift over the baseline {lift:+.4f} ({ci}) "
              f"{'>=' if ok else '<'} required {need:+.4f} ({'by' if ok else 'short by'} {abs(lift - need):.4f})")
    return Gate("beats_baseline", ok, need, lift, (lo, hi), detail)


def _champion_gate(evidence: Evidence, policy: PromotionPolicy, metric: str) -> Gate:
    diff = evidence.vs_champion[metric]  # type: ignore[index]
    est, lo, hi = diff["estimate"], diff["lower"], diff["upper"]
    margin = policy.champion_margin
    kind = "superiority" if margin > 0 else "non-inferiority"
    if lo is None:
        return Gate("vs_champion", False, margin, None, (lo, hi),
                    f"{metric} candidate - champion has no confidence interval on this test window; cannot "
                    f"show {kind} at margin {margin:+.4f}")
    ok = lo >= margin
    point = "undefined" if est is None else f"{est:+.4f}"
    detail = (f"{metric} candidate - champion {point} ({_ci_text(evidence.confidence, lo, hi)}, paired, "
              f"positive = candidate better): lower bound {lo:+.4f} {'>=' if ok else '<'} {kind} margin "
              f"{margin:+.4f} ({'by' if ok else 'short by'} {abs(lo - margin):.4f})")
    return Gate("vs_champion", ok, margin, lo, (lo, hi), detail)


def _slices_gate(evidence: Evidence, policy: PromotionPolicy, metric: str) -> Gate:
    tolerance = -policy.slice_tolerance
    if not evidence.slices:
        return Gate("slices", None, tolerance, None, None, "no slices to judge (spec.slice_columns is empty)")
    sign = 1.0 if higher_is_better(metric) else -1.0
    judged = []
    for entry in evidence.slices:
        if _slice_gating(entry, policy, evidence.task) is not None:
            continue
        cand = (entry.get("candidate") or {}).get(metric)
        champ = (entry.get("champion") or {}).get(metric)
        if cand is None or champ is None:
            continue
        judged.append((sign * (cand - champ), entry))
    if not judged:
        return Gate("slices", None, tolerance, None, None,
                    f"none of {len(evidence.slices)} slices is gated (each has < {policy.slice_min_rows} rows or "
                    "one class); all are reported in the evaluation")
    worst, entry = min(judged, key=lambda t: t[0])
    name = f"{entry['column']}={entry['slice']}"
    ok = worst >= tolerance
    failing = sum(1 for d, _ in judged if d < tolerance)
    detail = (f"worst of {len(judged)} gated slices is {name} ({entry['rows']} rows): {metric} candidate - "
              f"champion {worst:+.4f} {'>=' if ok else '<'} tolerance {tolerance:+.4f} "
              f"({'by' if ok else 'short by'} {abs(worst - tolerance):.4f})")
    if failing > 1:
        detail += f"; {failing} slices regress beyond the tolerance"
    return Gate("slices", ok, tolerance, worst, None, detail)


def _budget_gate(evidence: Evidence, policy: PromotionPolicy) -> Gate:
    size, latency = evidence.model_size_mb, evidence.latency_ms_per_1k
    size_ok = size <= policy.max_model_mb
    latency_ok = latency <= policy.max_latency_ms_per_1k
    detail = (f"model size {size:.2f} MB {'<=' if size_ok else '>'} max {policy.max_model_mb:.2f} MB "
              f"({'headroom' if size_ok else 'over by'} {abs(policy.max_model_mb - size):.2f} MB); "
              f"latency {latency:.1f} ms/1k rows {'<=' if latency_ok else '>'} max "
              f"{policy.max_latency_ms_per_1k:.1f} ({'headroom' if latency_ok else 'over by'} "
              f"{abs(policy.max_latency_ms_per_1k - latency):.1f} ms)")
    return Gate("budget", size_ok and latency_ok,
                {"max_model_mb": policy.max_model_mb, "max_latency_ms_per_1k": policy.max_latency_ms_per_1k},
                {"model_size_mb": size, "latency_ms_per_1k": latency}, None, detail)


def _freshness_gate(evidence: Evidence, policy: PromotionPolicy) -> Gate:
    cand, champ = evidence.candidate_data_end, evidence.champion_data_end
    if champ is None:
        # Unknown is not "older": failing closed keeps a backfill from replacing an untagged champion.
        if policy.allow_stale:
            return Gate("freshness", True, None, cand, None, f"the champion's data_interval_end is unknown; "
                        f"candidate data ends {cand}; allowed by promotion.allow_stale")
        return Gate("freshness", False, None, cand, None,
                    f"the champion's data_interval_end is unknown, so a candidate with data ending {cand} cannot "
                    "be shown not to be older; record the champion's data end, set promotion.allow_stale, or "
                    "force with a reason")
    lag = _parse_time(champ) - _parse_time(cand)
    fresh = lag.total_seconds() <= 0
    if fresh:
        return Gate("freshness", True, champ, cand, None,
                    f"candidate data ends {cand}, not before the champion's {champ}")
    stale = f"candidate data ends {cand}, {_duration(lag)} before the champion's {champ}"
    if policy.allow_stale:
        return Gate("freshness", True, champ, cand, None, f"{stale}; allowed by promotion.allow_stale")
    return Gate("freshness", False, champ, cand, None,
                f"{stale}; a stale candidate never replaces a fresher champion (set promotion.allow_stale or "
                "force with a reason)")


def _explain(gates: list[Gate], promote: bool, evidence: Evidence, force: bool) -> tuple[list[str], str]:
    failed = [g for g in gates if g.passed is False]
    skipped = [g for g in gates if g.passed is None]
    passed = [g for g in gates if g.passed is True]
    reasons = [f"{g.name} failed: {g.detail}" for g in failed]
    if promote:
        reasons.append(f"passed {len(passed)} gate(s): {', '.join(g.name for g in passed) or 'none'}")
    reasons += [f"{g.name} skipped: {g.detail}" for g in skipped]
    who = f"candidate{' v' + evidence.candidate_version if evidence.candidate_version else ''}"
    over = (f" over champion v{evidence.champion_version}" if evidence.champion_version
            else " over the champion" if evidence.vs_champion is not None else " (first champion)")
    if promote:
        summary = (f"PROMOTE {who}{over}{' (forced)' if force else ''}: {len(passed)} gate(s) passed, "
                   f"{len(skipped)} skipped")
    else:
        summary = f"REJECT {who}: failed {', '.join(g.name for g in failed)}"
    if evidence.report_uri:
        summary += f"; report {evidence.report_uri}"
    return reasons, summary


# --------------------------------------------------------------------------------------------
# small helpers


def _num(value: Any) -> float | None:
    """A JSON-safe float: ``None`` for NaN/inf (e.g. AUC on a one-class slice)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _duration(delta: Any) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} day(s)" if days >= 1 else f"{delta.total_seconds() / 3600:.1f} hour(s)"


def _ci_text(confidence: float, lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return f"{confidence:.0%} CI undefined"
    return f"{confidence:.0%} CI [{lo:+.4f}, {hi:+.4f}]"

