"""Out-of-time split, reference profile, and the feature preprocessing that lives inside the model.

Contract:
* ``split_and_profile(spec, clean_uri, store, out_prefix, data_interval_end, ...)`` reads the
  clean snapshot and writes ``train.parquet``, ``valid.parquet``, ``test.parquet``,
  ``recent.parquet`` (rows whose labels have not arrived), ``reference.parquet`` and
  ``profile.json`` under ``out_prefix``, returning a :class:`Split` whose ``plan`` says how the
  windows were chosen and why.
* Labels arrive late: with ``E = data_interval_end`` (the as-of) and ``d = label_delay_days``,
  only rows stamped before ``L = E - d`` are labelled; train, valid and test hold labelled rows
  only, and ``[L, E)`` is kept unlabelled as ``recent`` (today's feature mix, for adaptation).
* ``standard`` windows are half-open and contiguous, newest last: test = ``[L - test_days, L)``,
  valid = ``[L - test_days - valid_days, L - test_days)``, train = ``[L - total_days, ...)``.
* After a recorded change at day ``c`` inside those windows (:func:`plan_windows`):
  ``anchored``: test and valid are cut from the labelled rows *after* ``c`` (the newest third
  and the third before it, by rows, capped at test_days and valid_days) and training takes the
  rest of the window: post-change rows plus the pre-change rows, which the train stage weights
  (``adaptation.pre_change``); ``covariate``: too few labelled rows after ``c`` for a sound
  test (or a label-free covariate-shift retrain): standard windows, and the train and evaluate
  stages weight labelled rows towards the feature mix after ``c`` (importance weighting).
* A row stamped exactly on a boundary belongs to the later window; rows outside the windows or
  without a timestamp are dropped. Every train timestamp precedes every valid one, and every
  valid one every test one, or :class:`LeakageError` is raised; an empty window raises
  :class:`EmptySplitError`.
* The reference profile describes the rows the model is fitted to: the train window
  (standard), the rows after the change (anchored: labelled and recent), or the recent rows
  after the change (covariate). The monitor's score references are computed on the test
  window (``reference_uri`` is then ``test_uri``), or on the recent post-change rows
  (covariate), written as ``reference.parquet``.
* Derived features are computed by :class:`DerivedFeatures`, a stateless sklearn transformer,
  as the first step of every model pipeline built by :func:`build_preprocessor`, so training
  and serving run the same code on raw columns. Categories unseen at fit time never crash
  scoring: they join the ``<other>`` category.

Encoding (:class:`Encode`) runs without a per-row Python step. Categories are factorised once
(hash tables in C), and only the distinct values are turned into text. For the tree model a
categorical column becomes a pandas ``category`` column whose categories are fixed at fit: the
training categories covering at least :data:`MIN_CATEGORY_FRACTION` of rows, plus ``<other>``
for rarer ones and for categories first seen at scoring time. A missing value stays missing.
XGBoost splits such a column natively: a partition of its categories, or one category against
the rest when there are few, and a default direction for missing values. So one split can
isolate any set of categories, and the result does not depend on their alphabetical order.
There are no one-hot columns to build, and the model's input is the frame's own columns as
float32. For the linear baseline the same codes become one-hot columns, including ``<other>``
and ``<missing>``, written by array indexing.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from pipeline.artifacts import Record
from pipeline.errors import DriftlineError
from pipeline.profile import build_profile
from pipeline.storage import CorruptObject, Store, join

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from pipeline.config import ModelSpec

WINDOW_NAMES: tuple[str, ...] = ("train", "valid", "test")

#: A category must cover at least this share of training rows to be a category of the model;
#: rarer ones join :data:`OTHER`, so a handful of rows cannot become a feature.
MIN_CATEGORY_FRACTION = 0.001
#: The category of values rare at fit time or never seen then.
OTHER = "<other>"
#: The linear baseline's one-hot column for a missing value.
MISSING = "<missing>"


class SplitError(DriftlineError):
    """The out-of-time split could not be made."""


class LeakageError(SplitError):
    """A row of an earlier window is not strictly older than every row of the next window."""


class EmptySplitError(SplitError):
    """A split window holds no rows."""


@dataclass(frozen=True)
class Split(Record):
    """The three out-of-time windows of one run and the training reference profile.

    Attributes:
        train_uri, valid_uri, test_uri: parquet files of the windows (all columns kept).
        profile_uri: ``profile.json`` of the train window (:mod:`pipeline.profile` format).
        windows: window name -> ``[start_iso, end_iso]`` (half-open ``[start, end)``).
        rows: window name -> row count.
        data_interval_end: ISO datetime the windows end at (exclusive).
        source_uri: the clean snapshot the windows were cut from.
        source_sha256: sha256 of the source file's bytes (lineage when no snapshot hash is known).
        labelled_end: ISO instant before which rows are labelled (``data_interval_end - d``).
        recent_uri: unlabelled rows ``[labelled_end, data_interval_end)`` ("" when none).
        reference_uri: rows the monitor's score references are computed on (``test_uri`` when
            they are the test window).
        plan: :class:`WindowPlan` as a dict.
        snapshot_hash: the ingested snapshot's content hash (lineage).
    """

    train_uri: str
    valid_uri: str
    test_uri: str
    profile_uri: str
    windows: dict[str, list[str]]
    rows: dict[str, int]
    data_interval_end: str
    source_uri: str = ""
    source_sha256: str = ""
    labelled_end: str = ""
    recent_uri: str = ""
    reference_uri: str = ""
    plan: dict[str, Any] = field(default_factory=dict)
    snapshot_hash: str = ""

    def window_uri(self, name: str) -> str:
        """The parquet URI of window ``name`` (``train``, ``valid`` or ``test``)."""
        return {"train": self.train_uri, "valid": self.valid_uri, "test": self.test_uri}[name]


@dataclass(frozen=True)
class WindowPlan(Record):
    """How a run's windows were chosen.

    Attributes:
        kind: ``standard``, ``anchored`` or ``covariate`` (see the module docstring).
        reason: one sentence for the decision record.
        change_point: ``YYYY-MM-DD`` of the change the windows are anchored at, or ``None``.
        post_change_rows: labelled rows after the change in train, valid and test.
        labelled_end: ISO instant before which rows are labelled.
    """

    kind: str
    reason: str
    change_point: str | None = None
    post_change_rows: int = 0
    labelled_end: str = ""


def window_bounds(spec: "ModelSpec", data_interval_end: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Standard windows ``{"train": (start, end), "valid": ..., "test": ...}``, half-open, UTC,
    ending at the labelled end ``data_interval_end - label_delay_days``."""
    end = _utc(data_interval_end) - timedelta(days=spec.label_delay_days)
    w = spec.windows
    test_start = end - timedelta(days=w.test_days)
    valid_start = test_start - timedelta(days=w.valid_days)
    train_start = valid_start - timedelta(days=w.train_days)
    return {"train": (train_start, valid_start), "valid": (valid_start, test_start), "test": (test_start, end)}


def plan_windows(spec: "ModelSpec", df: pd.DataFrame, data_interval_end: datetime, *,
                 change_point: str | None = None, mode: str | None = None
                 ) -> tuple[dict[str, tuple[datetime, datetime]], WindowPlan]:
    """Choose the windows of a run (see the module docstring).

    Args:
        spec: the model spec.
        df: the run's rows (timestamps decide the anchored boundaries).
        data_interval_end: the run's as-of.
        change_point: ``YYYY-MM-DD`` of a recorded change, or ``None``.
        mode: ``covariate`` forces the label-free plan after a change (standard windows,
            weighted towards the post-change mix); otherwise the plan is anchored when enough
            labelled rows follow the change.

    Returns:
        ``(bounds, plan)``.
    """
    bounds = window_bounds(spec, data_interval_end)
    labelled_end = bounds["test"][1]
    plan = WindowPlan("standard", f"standard windows ending at the labelled end {labelled_end.isoformat()} "
                      f"(labels arrive {spec.label_delay_days} day(s) late)", labelled_end=labelled_end.isoformat())
    if not change_point:
        return bounds, plan
    c = _utc(datetime.fromisoformat(change_point))
    start = bounds["train"][0]
    if c <= start:
        plan = WindowPlan("standard", f"the recorded change on {change_point} is before the training window: "
                          "standard windows", change_point=change_point, labelled_end=labelled_end.isoformat())
        return bounds, plan
    ts = _as_utc_series(df[spec.timestamp_column])
    after = ((ts >= pd.Timestamp(c)) & (ts < pd.Timestamp(labelled_end))).to_numpy(dtype=bool, na_value=False)
    post = np.sort(ts[after].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]"))
    need = spec.adaptation.min_post_change_rows
    if mode == "covariate" or post.size < need or c >= labelled_end:
        why = ("a label-free covariate-shift retrain" if mode == "covariate" else
               f"only {post.size} labelled rows after the change on {change_point} (a sound test needs "
               f"adaptation.min_post_change_rows {need})")
        plan = WindowPlan("covariate", f"{why}: standard windows, labelled rows weighted towards the feature mix "
                          f"after {change_point}", change_point=change_point, post_change_rows=int(post.size),
                          labelled_end=labelled_end.isoformat())
        return bounds, plan
    w = spec.windows
    stamp = lambda i: pd.Timestamp(post[i]).tz_localize("UTC").to_pydatetime()  # noqa: E731
    test_start = max(stamp(post.size * 2 // 3), labelled_end - timedelta(days=w.test_days))
    before_test = int(np.searchsorted(post, np.datetime64(pd.Timestamp(test_start).tz_convert(None)), side="left"))
    valid_start = max(stamp(before_test // 2) if before_test else c, test_start - timedelta(days=w.valid_days), c)
    anchored = {"train": (start, valid_start), "valid": (valid_start, test_start), "test": (test_start, labelled_end)}
    plan = WindowPlan(
        "anchored", f"windows anchored at the change on {change_point}: test and valid hold only labelled rows "
        f"after it ({post.size} in all), training takes the rest of the window with pre-change rows weighted",
        change_point=change_point, post_change_rows=int(post.size), labelled_end=labelled_end.isoformat())
    return anchored, plan


def split_frame(spec: "ModelSpec", df: pd.DataFrame, data_interval_end: datetime, *,
                bounds: dict[str, tuple[datetime, datetime]] | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cut ``df`` into train, valid and test windows on ``spec.timestamp_column``.

    Args:
        spec: the model spec (timestamp column, window day counts, label delay).
        df: rows to split; rows outside the three windows or without a timestamp are dropped.
        data_interval_end: the run's as-of (naive datetimes are taken as UTC).
        bounds: the windows (default: :func:`window_bounds`).

    Returns:
        ``(train, valid, test)``, each sorted by timestamp with a fresh index.

    Raises:
        EmptySplitError: a window has no rows; names the window, its bounds and the data's span.
        LeakageError: a window's newest row is not strictly older than the next window's oldest.
    """
    if spec.timestamp_column not in df.columns:
        raise SplitError(f"timestamp column {spec.timestamp_column!r} is missing; columns are {sorted(df.columns)}")
    rows = _window_rows(spec, df, bounds or window_bounds(spec, data_interval_end))
    parts = [df.iloc[rows[name]].reset_index(drop=True) for name in WINDOW_NAMES]
    return parts[0], parts[1], parts[2]


def _window_rows(spec: "ModelSpec", df: pd.DataFrame, bounds: dict[str, tuple[datetime, datetime]]
                 ) -> dict[str, np.ndarray]:
    """Each window's row positions in ``df``, in timestamp order (stable); raises
    :class:`EmptySplitError` for an empty window and :class:`LeakageError` when windows overlap."""
    ts = _as_utc_series(df[spec.timestamp_column])
    # datetime64 in UTC (naive): a tz-aware Series' to_numpy() builds one Timestamp object a row.
    stamps = ts.dt.tz_localize(None).to_numpy()
    out: dict[str, np.ndarray] = {}
    for name in WINDOW_NAMES:
        start, end = bounds[name]
        mask = ((ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))).to_numpy(dtype=bool, na_value=False)
        if not mask.any():
            span = (f"the data spans [{ts.min().isoformat()}, {ts.max().isoformat()}] over {len(df)} rows"
                    if ts.notna().any() else f"none of the {len(df)} rows has a timestamp")
            raise EmptySplitError(
                f"{name} window [{start.isoformat()}, {end.isoformat()}) has no rows; {span}. "
                f"Ingest more days or shrink windows.{name}_days in the {spec.name} spec."
            )
        positions = np.flatnonzero(mask)
        out[name] = positions[np.argsort(stamps[positions], kind="stable")]
    for a, b in zip(WINDOW_NAMES, WINDOW_NAMES[1:]):
        a_max, b_min = (pd.Timestamp(stamps[out[a]].max(), tz="UTC"),
                        pd.Timestamp(stamps[out[b]].min(), tz="UTC"))
        if not a_max < b_min:
            raise LeakageError(
                f"{a} window's newest row ({a_max.isoformat()}) is not older than the {b} window's "
                f"oldest ({b_min.isoformat()}): by {(a_max - b_min).total_seconds():.0f} s; the split would "
                f"train on the period it is evaluated on.")
    return out


class _Rows:
    """Rows ``positions`` of ``df`` as a read-only frame-like: ``rows[col]`` copies one column
    (what the profile needs) instead of the whole window."""

    def __init__(self, df: pd.DataFrame, positions: np.ndarray):
        self._df, self._positions = df, positions
        self.columns = df.columns

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, column: str) -> pd.Series:
        return _rows_of(self._df[column], self._positions)


def _rows_of(frame: Any, positions: np.ndarray) -> Any:
    """Rows ``positions`` of a frame or series with a fresh index: a slice when they are one
    ascending run (a time window of time-ordered rows), else a copy. (For values read, not for
    frames written: a slice keeps the Arrow chunks of string columns, and they shape the file.)"""
    if positions.size and positions[-1] - positions[0] + 1 == positions.size and (
            positions.size < 2 or bool(np.all(np.diff(positions) == 1))):
        return frame.iloc[positions[0]:positions[-1] + 1].reset_index(drop=True)
    return frame.iloc[positions].reset_index(drop=True)


def split_and_profile(spec: "ModelSpec", clean_uri: str, store: Store, out_prefix: str,
                      data_interval_end: datetime, *, change_point: str | None = None,
                      mode: str | None = None) -> Split:
    """Write the windows, the unlabelled recent rows and the reference profile of one run.

    Args:
        spec: the model spec.
        clean_uri: the validated snapshot parquet (quarantined rows already removed; targets of
            rows after the labelled end already nulled).
        store: storage for ``clean_uri`` and ``out_prefix``.
        out_prefix: run prefix; the window files and ``profile.json`` are written below it.
        data_interval_end: the run's as-of.
        change_point: a recorded change to anchor at (see :func:`plan_windows`).
        mode: ``covariate`` for a label-free covariate-shift retrain.

    Returns:
        The :class:`Split` record.

    Raises:
        StorageError: ``clean_uri`` cannot be read or an output cannot be written.
        EmptySplitError, LeakageError: see :func:`split_frame`.
    """
    raw = store.read_bytes(clean_uri)
    source_sha256 = hashlib.sha256(raw).hexdigest()
    df = store.handoff.get(clean_uri) if store.handoff is not None else None
    if df is None:
        df = _parquet_frame(raw, clean_uri)
    del raw
    if spec.timestamp_column not in df.columns:
        raise SplitError(f"timestamp column {spec.timestamp_column!r} is missing; columns are {sorted(df.columns)}")
    bounds, plan = plan_windows(spec, df, data_interval_end, change_point=change_point, mode=mode)
    labelled_end = bounds["test"][1]
    ts = _as_utc_series(df[spec.timestamp_column])
    late = (ts >= pd.Timestamp(labelled_end)).to_numpy(dtype=bool, na_value=False)
    recent = df.loc[late].drop(columns=[spec.target_column], errors="ignore").reset_index(drop=True)
    # Windows end at the labelled end, so no recent row is in one. Each window is written
    # straight from the snapshot frame (no copy when its rows are already in time order).
    positions = _window_rows(spec, df, bounds)
    # The files are written by two threads while this one profiles: parquet encoding and numpy's
    # sorts run outside the GIL. Every write is done (or has raised) before the Split is returned.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="driftline-split-write") as pool:
        writes = {name: pool.submit(_write_rows, store, join(out_prefix, f"{name}.parquet"), df, positions[name])
                  for name in WINDOW_NAMES}
        if len(recent):
            writes["recent"] = pool.submit(store.write_parquet, join(out_prefix, "recent.parquet"), recent)
        parts = _LazyParts(df, positions)
        profile_rows, profile_window, reference = _reference_rows(spec, plan, parts, recent, bounds, data_interval_end)
        profile = build_profile(profile_rows, spec, window=profile_window)
        uris = {name: future.result() for name, future in writes.items()}
    recent_uri = uris.pop("recent", "")
    # Usually the reference rows are the test window (None): its file serves, and its scores are reused.
    reference_uri = (uris["test"] if reference is None
                     else store.write_parquet(join(out_prefix, "reference.parquet"), reference))
    profile["plan"] = plan.kind
    profile_uri = store.write_json(join(out_prefix, "profile.json"), profile)
    return Split(
        train_uri=uris["train"], valid_uri=uris["valid"], test_uri=uris["test"], profile_uri=profile_uri,
        windows={n: [s.isoformat(), e.isoformat()] for n, (s, e) in bounds.items()},
        rows={n: int(len(p)) for n, p in positions.items()} | {"recent": int(len(recent))},
        data_interval_end=_utc(data_interval_end).isoformat(),
        source_uri=clean_uri, source_sha256=source_sha256,
        labelled_end=labelled_end.isoformat(), recent_uri=recent_uri, reference_uri=reference_uri,
        plan=plan.to_dict(),
    )


def _write_rows(store: Store, uri: str, df: pd.DataFrame, positions: np.ndarray) -> str:
    """Write rows ``positions`` of ``df`` in that order: straight from ``df`` with a row mask
    when the positions ascend (rows already in time order), else as a reordered copy."""
    if positions.size < 2 or bool(np.all(np.diff(positions) > 0)):
        keep = np.zeros(len(df), dtype=bool)
        keep[positions] = True
        return store.write_parquet(uri, df, rows=keep)
    return store.write_parquet(uri, df.iloc[positions].reset_index(drop=True))


class _LazyParts(dict):
    """Window name -> frame, built on first use; ``profile_rows`` of the train window copies
    column by column (:class:`_Rows`)."""

    def __init__(self, df: pd.DataFrame, positions: dict[str, np.ndarray]):
        super().__init__()
        self._df, self._positions = df, positions

    def __missing__(self, name: str) -> pd.DataFrame:
        frame = self._df.iloc[self._positions[name]].reset_index(drop=True)
        self[name] = frame
        return frame

    def values(self) -> Any:  # type: ignore[override]
        return [self[name] for name in WINDOW_NAMES]

    def rows(self, name: str) -> _Rows:
        return _Rows(self._df, self._positions[name])


def _reference_rows(spec: "ModelSpec", plan: WindowPlan, parts: _LazyParts, recent: pd.DataFrame,
                    bounds: dict[str, tuple[datetime, datetime]], as_of: datetime
                    ) -> tuple[Any, tuple[Any, Any], pd.DataFrame | None]:
    """(profile rows, their window, score-reference rows) for the plan (see the module docstring);
    the reference rows are None when they are the test window (its file is written already, so
    the window is not copied for them)."""
    if plan.kind == "standard":
        return parts.rows("train"), bounds["train"], None
    c = pd.Timestamp(_utc(datetime.fromisoformat(plan.change_point or "")))
    recent_after = recent.loc[(_as_utc_series(recent[spec.timestamp_column]) >= c).to_numpy(dtype=bool)] \
        if len(recent) else recent
    if plan.kind == "covariate":
        if len(recent_after) >= spec.drift.min_window_rows:
            return recent_after, (c, _utc(as_of)), recent_after
        return parts.rows("train"), bounds["train"], None
    post = [p.loc[(_as_utc_series(p[spec.timestamp_column]) >= c).to_numpy(dtype=bool)] for p in parts.values()]
    rows = pd.concat([*post, recent_after], ignore_index=True)
    return rows, (c, _utc(as_of)), None


class DerivedFeatures(TransformerMixin, BaseEstimator):
    """Adds the spec's derived features to a frame of raw columns (stateless).

    Args:
        derived: one mapping per derived feature, as in ``DerivedFeature.model_dump()``
            (``name``, ``kind`` and the kind's arguments). Plain mappings rather than spec
            objects keep the fitted pipeline picklable without pydantic models inside.

    ``transform`` returns the input frame with one float column per derived feature appended:
    ``date_part`` (hour/dayofweek/month/day of a timestamp, UTC), ``ratio`` (NaN where the
    denominator is 0 or missing) and ``log1p`` (negatives clipped to 0).
    """

    def __init__(self, derived: tuple[dict[str, Any], ...] = ()):
        self.derived = derived

    def fit(self, X: pd.DataFrame, y: Any = None) -> "DerivedFeatures":
        _require_frame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        _require_frame(X)
        if not self.derived:
            return X
        return X.assign(**{d["name"]: _derive(X, d) for d in self.derived})

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = list(input_features) if input_features is not None else list(getattr(self, "feature_names_in_", []))
        return np.asarray(names + [d["name"] for d in self.derived], dtype=object)


def score(spec: "ModelSpec", model: Any, frame: pd.DataFrame) -> np.ndarray:
    """The model's score per row of ``frame`` (on ``spec.model_columns``): the positive-class
    probability for a binary model, the prediction for a regression model."""
    X = frame[list(spec.model_columns)]
    if spec.task == "binary":
        return np.asarray(model.predict_proba(X)[:, 1], dtype=float)
    return np.asarray(model.predict(X), dtype=float).reshape(-1)


def build_preprocessor(spec: "ModelSpec", kind: Literal["tree", "linear"]) -> "Pipeline":
    """The unfitted feature pipeline for a model family.

    Args:
        spec: the model spec (features and derived features).
        kind: ``tree``: a frame of float32 numeric and derived columns (missing values stay
            missing; XGBoost routes them) and ``category`` columns (see the module docstring);
            ``linear``: a float32 matrix of median-imputed, standardised numeric columns and
            one-hot categories.

    Returns:
        ``Pipeline([("derive", DerivedFeatures), ("encode", Encode)])`` taking a frame with
        ``spec.model_columns``; :func:`output_sources` names its output columns.
    """
    from sklearn.pipeline import Pipeline

    if kind not in ("tree", "linear"):
        raise ValueError(f"kind must be 'tree' or 'linear', got {kind!r}")
    numeric = tuple(spec.numeric_features) + tuple(d.name for d in spec.derived_features)
    derived = tuple(d.model_dump(exclude_none=True) for d in spec.derived_features)
    return Pipeline([("derive", DerivedFeatures(derived)),
                     ("encode", Encode(numeric, tuple(spec.categorical_features), kind))])


def output_sources(spec: "ModelSpec", preprocessor: "Pipeline") -> list[tuple[str, str]]:
    """For each output column of a fitted :func:`build_preprocessor` pipeline, ``(label, source)``.

    ``label`` is readable (``age``, ``channel`` for a tree's categorical column,
    ``channel=online`` or ``channel=<other>`` for the baseline's one-hot columns); ``source`` is
    the input column it comes from: the feature itself for numeric and categorical columns, the
    derived feature's name for derived columns (see :func:`raw_inputs` to go further).
    """
    return [tuple(pair) for pair in preprocessor.named_steps["encode"].sources_]


class Encode(TransformerMixin, BaseEstimator):
    """Numeric and categorical columns to a model's input (see the module docstring).

    Args:
        numeric: numeric column names (raw and derived).
        categorical: categorical column names.
        kind: ``tree`` (a frame: float32 and ``category`` columns) or ``linear`` (a float32
            matrix: standardised numbers and one-hot categories).
        min_fraction: the share of fit rows a category needs to be one of the model's.

    Fitted attributes: ``categories_`` (column -> the model's categories, ``OTHER`` last),
    ``sources_`` (``[label, source]`` per output column) and, for ``linear``, ``center_``,
    ``fill_`` and ``scale_`` per numeric column.
    """

    def __init__(self, numeric: tuple[str, ...] = (), categorical: tuple[str, ...] = (),
                 kind: str = "tree", min_fraction: float = MIN_CATEGORY_FRACTION):
        self.numeric = numeric
        self.categorical = categorical
        self.kind = kind
        self.min_fraction = min_fraction

    def fit(self, X: pd.DataFrame, y: Any = None) -> "Encode":
        _require_frame(X)
        self._keep_categories({col: category_counts(X[col]) for col in self.categorical}, len(X))
        if self.kind == "linear":
            self.fill_, self.center_, self.scale_ = [], [], []
            for col in self.numeric:
                values = _numeric(X[col], np.float64)
                finite = values[~np.isnan(values)]
                fill = float(np.median(finite)) if finite.size else 0.0
                values = np.where(np.isnan(values), fill, values)
                std = float(values.std()) if values.size else 0.0
                self.fill_.append(fill)
                self.center_.append(float(values.mean()) if values.size else 0.0)
                self.scale_.append(std if std > 0 else 1.0)
            self.sources_ = [[c, c] for c in self.numeric]
            for col in self.categorical:
                self.sources_ += [[f"{col}={v}", col] for v in [*self.categories_[col], MISSING]]
        else:
            self.sources_ = [[c, c] for c in (*self.numeric, *self.categorical)]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    def fit_counts(self, columns: Any, counts: dict[str, dict[str, int]], n_rows: int) -> "Encode":
        """Fit a ``tree`` encoder from rows counted elsewhere: ``counts`` maps each categorical
        column to its :func:`category_counts` summed over every part of ``n_rows`` fit rows
        (the partitions of a window on a cluster); ``columns`` are the input frame's columns.
        The result equals :meth:`fit` on the whole frame (a tree encoder keeps nothing else)."""
        if self.kind != "tree":
            raise ValueError("fit_counts fits a tree encoder only (a linear one needs each numeric column's values)")
        self._keep_categories({col: counts.get(col, {}) for col in self.categorical}, n_rows)
        self.sources_ = [[c, c] for c in (*self.numeric, *self.categorical)]
        self.feature_names_in_ = np.asarray(list(columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def _keep_categories(self, counts: dict[str, dict[str, int]], n_rows: int) -> None:
        """The model's categories of each column: those on at least ``min_fraction`` of the fit
        rows (and at least one), sorted, then ``OTHER``."""
        floor = max(1.0, self.min_fraction * n_rows)
        self.categories_: dict[str, list[str]] = {
            col: sorted(t for t, c in counts[col].items() if c >= floor) + [OTHER] for col in self.categorical}

    def transform(self, X: pd.DataFrame) -> Any:
        _require_frame(X)
        n = len(X)
        if self.kind == "tree":
            out = {col: _numeric(X[col], np.float32) for col in self.numeric}
            for col in self.categorical:
                categories = self.categories_[col]
                out[col] = pd.Categorical.from_codes(self._codes(X[col], categories, missing=-1),
                                                     categories=pd.Index(categories, dtype=object))
            return pd.DataFrame(out, index=X.index)
        width = len(self.numeric) + sum(len(c) + 1 for c in self.categories_.values())
        M = np.zeros((n, width), dtype=np.float32)
        for j, col in enumerate(self.numeric):
            values = _numeric(X[col], np.float64)
            values = np.where(np.isnan(values), self.fill_[j], values)
            M[:, j] = (values - self.center_[j]) / self.scale_[j]
        offset = len(self.numeric)
        for col in self.categorical:
            categories = self.categories_[col]
            codes = self._codes(X[col], categories, missing=len(categories))
            M[np.arange(n), offset + codes] = 1.0
            offset += len(categories) + 1
        return M

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([label for label, _ in self.sources_], dtype=object)

    @staticmethod
    def _codes(series: pd.Series, categories: list[str], missing: int) -> np.ndarray:
        """Each value's index in ``categories`` (unknown -> ``OTHER``, the last; missing -> ``missing``)."""
        codes, text = _factorize_text(series)
        lookup = pd.Index(categories[:-1], dtype=object).get_indexer(pd.Index(text, dtype=object))
        lookup = np.where(lookup >= 0, lookup, len(categories) - 1)
        out = np.full(len(codes), missing, dtype=np.int64)
        present = codes >= 0
        out[present] = lookup[codes[present]]
        return out


def category_counts(series: pd.Series) -> dict[str, int]:
    """Rows per distinct value of ``series`` as text (missing values not counted): what the tree
    encoder's fit counts, so counts of a window's parts add up to the window's."""
    codes, text = _factorize_text(series)
    counts = np.bincount(codes[codes >= 0], minlength=len(text))
    return {t: int(c) for t, c in zip(text, counts)}


def _factorize_text(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """``(codes, distinct values as text)`` of a column of any dtype, missing coded -1.

    Values that read the same as text (``1`` and ``"1"``) share a code, so one column
    encodes alike whether it arrives as strings, ``category`` or numbers."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy(dtype=np.int64)
        uniques: Any = series.cat.categories
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        codes = np.asarray(codes, dtype=np.int64)
    text = [str(u) for u in uniques]
    merged, distinct = pd.factorize(pd.Index(text, dtype=object))
    if len(distinct) != len(text):
        codes = np.where(codes >= 0, np.asarray(merged)[np.maximum(codes, 0)], -1)
    return codes, [str(t) for t in distinct]


def _numeric(series: pd.Series, dtype: Any) -> np.ndarray:
    """A column as a float array (unparseable and missing values as NaN)."""
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        series = pd.to_numeric(series, errors="coerce")
    return series.to_numpy(dtype=dtype, na_value=np.nan)


def raw_inputs(spec: "ModelSpec", source: str) -> tuple[str, ...]:
    """The raw input columns behind ``source``: a derived feature's inputs, else the column."""
    for d in spec.derived_features:
        if d.name == source:
            return d.inputs()
    return (source,)


def derived_columns(spec: "ModelSpec", frame: Any) -> dict[str, pd.Series]:
    """The spec's derived features computed on ``frame`` (a DataFrame, or anything indexable by
    column name), by the same code the model pipeline runs (:class:`DerivedFeatures`).

    Raises:
        KeyError: ``frame`` lacks an input column of a derived feature.
    """
    return {d.name: _derive(frame, d.model_dump(exclude_none=True)) for d in spec.derived_features}


def _categories_as_text(X: Any) -> Any:
    """(Kept so champions trained with the one-hot encoder of driftline <= 0.2 still load and score.)
    Categories as Python strings with missing as NaN (its own category), whatever the input
    dtype (pandas 3 ``str``, object, categorical, numbers): one encoder must see one type at fit
    and at scoring time."""
    return pd.DataFrame(X).astype("str").astype(object)


def _derive(X: pd.DataFrame, d: dict[str, Any]) -> pd.Series:
    kind = d["kind"]
    if kind == "date_part":
        ts = _as_utc_series(X[d["column"]])
        return getattr(ts.dt, d["part"]).astype("float64")
    if kind == "ratio":
        num = pd.to_numeric(X[d["numerator"]], errors="coerce").astype("float64")
        den = pd.to_numeric(X[d["denominator"]], errors="coerce").astype("float64")
        return (num / den.where(den != 0)).astype("float64")
    if kind == "log1p":
        values = pd.to_numeric(X[d["column"]], errors="coerce").astype("float64")
        return np.log1p(values.clip(lower=0))
    raise ValueError(f"unknown derived feature kind {kind!r} for {d.get('name')!r}")


def _parquet_frame(raw: bytes, uri: str) -> pd.DataFrame:
    """Parse parquet bytes already fetched for hashing (one download on S3, not two)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(io.BytesIO(raw)).to_pandas()
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise CorruptObject(f"{uri}: unreadable parquet ({err})") from None


def _require_frame(X: Any) -> None:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"DerivedFeatures needs a pandas DataFrame of named raw columns, got {type(X).__name__}")


def _utc(value: datetime) -> datetime:
    value = pd.Timestamp(value).to_pydatetime()
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _as_utc_series(series: pd.Series) -> pd.Series:
    """Timestamps as tz-aware UTC; naive values are taken as UTC, strings are parsed as ISO 8601
    (any precision or offset) and unparsable ones become NaT."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return pd.to_datetime(series, utc=True)
    return pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")


def _check_no_leakage(parts: list[pd.DataFrame], ts_col: str) -> None:
    for (a_name, a), (b_name, b) in zip(zip(WINDOW_NAMES, parts), zip(WINDOW_NAMES[1:], parts[1:])):
        a_max, b_min = _as_utc_series(a[ts_col]).max(), _as_utc_series(b[ts_col]).min()
        if not a_max < b_min:
            raise LeakageError(
                f"{a_name} window's newest row ({a_max.isoformat()}) is not older than the {b_name} window's "
                f"oldest ({b_min.isoformat()}): by {(a_max - b_min).total_seconds():.0f} s; the split would "
                f"train on the period it is evaluated on."
            )
