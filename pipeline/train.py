"""Training: an XGBoost candidate and a simple baseline on the same split, tracked in one MLflow run.

Contract:
* ``train(spec, split, store, tracking_uri=...)`` fits, on the train window,
  - the candidate: ``Pipeline([("preprocess", build_preprocessor(spec, "tree")), ("model",
    XGBClassifier|XGBRegressor(tree_method="hist", enable_categorical=True, **spec.params))])``
    (float32 numbers and native categorical splits: see :mod:`pipeline.features`), early-stopped on the
    valid window (``spec.params.early_stopping_rounds``); predictions use the best iteration;
  - the baseline (``spec.params.baseline``): ``prior`` (class prior / mean) or ``linear``
    (logistic / ridge regression on ``build_preprocessor(spec, "linear")``, fitted on a uniform
    sample of at most :data:`BASELINE_MAX_ROWS` train rows, in a thread beside the candidate),
  and records both in one MLflow run of experiment ``spec.name`` (created if absent) named
  ``<model>-<YYYY-MM-DD>``: params (spec params, best iteration, window bounds, row counts),
  valid-window metrics (``valid_*`` candidate, ``baseline_valid_*`` baseline), the three windows
  as dataset inputs (source URI and digest), lineage tags, the two models (``model``,
  ``baseline``), plots (``plots/*.svg``), ``profile.json`` and ``feature_importance.json``.
* Models take raw columns (``spec.model_columns``): derived features and encodings are inside
  them, so scoring code never re-implements preprocessing. They are stored in the skops format
  with no code attached and loaded only after their sha256 and types verify
  (:mod:`pipeline.models`); the ``pipeline`` package must be installed where they are loaded.
* ``feature_importance.json`` maps every raw input column to its share of the candidate's total
  split gain (sums to 1): one-hot columns add up to their categorical feature and a derived
  feature's gain is shared equally among its inputs. The drift monitor weights drift by it. The
  linear baseline's importance (its absolute standardised coefficients, mapped the same way) is
  in ``TrainResult.baseline_importance``.
* After a recorded change (``split.plan``) rows are weighted (:mod:`pipeline.adaptation`):
  ``anchored`` windows try each pre-change strategy (or the spec's one) and keep the model that
  scores best on the post-change validation window; ``covariate`` windows weight every labelled
  row towards the post-change feature mix (and write ``test_weights.parquet`` beside the test
  window for the evaluation). The choice and every strategy's score are in ``adaptation.json``.
* ``spec.training.engine: dask`` fits the candidate on a Dask cluster (:mod:`pipeline.train_dask`):
  the train window is read by the workers and never held here whole; this process holds the
  baseline's sample of it and the valid and test windows. Same parameters, early stopping,
  artifacts and logged model types; the run is tagged ``driftline.training.engine``. A weighted
  retrain (windows anchored at a change point) is fitted locally (:func:`training_engine`).
* With a ``sqlite:///`` tracking URI, a newly created experiment stores its artifacts in
  ``mlartifacts/`` beside the database file instead of ``./mlruns`` under the current directory.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pandas as pd

from pipeline.artifacts import Record, day_key
from pipeline.errors import DriftlineError
from pipeline.features import (
    WINDOW_NAMES,
    Split,
    build_preprocessor,
    output_sources,
    raw_inputs,
    score,
)
from pipeline.storage import Store, join

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from pipeline.config import ModelSpec

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
_INPUT_CONTEXTS = {"train": "training", "valid": "validation", "test": "testing"}
#: Distributions the logged models need at load time; pinned to the versions that trained them.
#: The linear baseline is fitted on a uniform sample of at most this many train rows.
BASELINE_MAX_ROWS = 200_000
_MODEL_REQUIREMENTS = ("xgboost", "scikit-learn", "pandas", "numpy", "scipy", "skops", "pyarrow")


class TrainError(DriftlineError):
    """The training data cannot produce a model (missing target, one class, no features)."""


@dataclass(frozen=True)
class TrainResult(Record):
    """What one training produced.

    Attributes:
        run_id, experiment_id: the MLflow run and its experiment.
        model_uri: the candidate as a logged-model URI (``models:/m-...``); accepted by
            ``mlflow.sklearn.load_model``, ``mlflow.pyfunc.load_model`` and
            ``mlflow.register_model`` (``runs:/<run_id>/model`` resolves to the same model).
        baseline_uri: the baseline, same form.
        metrics: valid-window metrics, ``valid_<m>`` (candidate) and ``baseline_valid_<m>``.
        best_iteration: the early-stopped boosting round the candidate predicts with.
        train_seconds: wall time fitting candidate and baseline (fitted side by side).
        feature_importance: raw input column -> share of total gain (sums to 1).
        timings: seconds by part: ``fit`` (= train_seconds, wall; ``fit_candidate`` incl. its
            preprocessing, ``fit_baseline``, which overlap), ``mlflow_setup`` (client, store,
            experiment), ``log_models`` (both models), ``log_total`` (all MLflow work).
        run_name: the MLflow run name, ``<model> <YYYY-MM-DD> <trigger>``, with `` #<n>`` for the
            n-th training of that model and date (a re-run of a date never shares a name).
        adaptation: how rows were weighted (plan kind, strategy chosen, each strategy's valid
            score, effective rows).
        baseline_importance: the baseline's importance per raw column (``{}`` for a prior).
        test_weights_uri: per-row weights of the test window ("" when unweighted).
        model_sha256, baseline_sha256: digests of the stored models (loading verifies them).
        valid_scores_uri: both models' scores on the validation window (columns ``candidate``,
            ``baseline``); "" when the models were refitted after scoring it.
        mlflow_run_url: the run in the MLflow UI (set by the retrain step).
    """

    run_id: str
    experiment_id: str
    model_uri: str
    baseline_uri: str
    metrics: dict[str, float]
    best_iteration: int
    train_seconds: float
    feature_importance: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    run_name: str = ""
    adaptation: dict[str, Any] = field(default_factory=dict)
    baseline_importance: dict[str, float] = field(default_factory=dict)
    test_weights_uri: str = ""
    model_sha256: str = ""
    baseline_sha256: str = ""
    valid_scores_uri: str = ""
    mlflow_run_url: str = ""


def train(spec: "ModelSpec", split: Split, store: Store, *, tracking_uri: str,
          lineage: dict[str, str] | None = None, trigger: str | None = None,
          dask_scheduler: str | None = None) -> TrainResult:
    """Fit candidate and baseline on ``split`` and record them in one MLflow run.

    Args:
        spec: the model spec (task, columns, ``params``).
        split: the out-of-time windows (from :func:`pipeline.features.split_and_profile`).
        store: storage the split's URIs are read from.
        tracking_uri: MLflow tracking URI (also left set as MLflow's global URI: see ``_tracking``).
        lineage: extra run tags, used verbatim as tag keys (e.g. ``airflow.dag_id``,
            ``airflow.run_id``, ``driftline.trigger``). ``driftline.snapshot_hash`` and
            ``driftline.git_sha`` given here win over the defaults (the source file's sha256
            and ``git rev-parse HEAD``).
        trigger: what started the run, as the run name shows it (``scheduled``, ``manual``,
            ``backfill``, ``drift``, ``cli``, ...); default: ``lineage["driftline.trigger"]``,
            else ``manual``.
        dask_scheduler: the Dask scheduler the candidate trains on when ``spec.training.engine``
            is ``dask`` (:mod:`pipeline.train_dask`); ignored otherwise.

    Returns:
        The :class:`TrainResult`.

    Raises:
        TrainError: the target is missing in some rows, a binary target does not have exactly
            two classes 0/1 in the train window, or there are no feature columns.
        StorageError: a split file cannot be read.
        DaskUnavailable: (engine ``dask``) the scheduler cannot be reached or has no workers.
    """
    from pipeline import prewarm

    prewarm.wait()
    engine = training_engine(spec, split)
    trigger = trigger or (lineage or {}).get("driftline.trigger") or "manual"
    lineage = {**(lineage or {}), "driftline.training.engine": engine}
    if engine != "dask":
        return _train_windows(spec, split, store, tracking_uri, lineage, trigger, None)
    from pipeline.train_dask import DaskTraining

    with DaskTraining.open(spec, split, store, dask_scheduler) as cluster:
        lineage["driftline.training.dask_workers"] = str(cluster.n_workers)
        return _train_windows(spec, split, store, tracking_uri, lineage, trigger, cluster)


def training_engine(spec: "ModelSpec", split: Split) -> str:
    """Where the candidate of ``split`` is fitted: ``spec.training.engine``, except that a retrain
    with weighted windows (a plan anchored at a change point) is fitted locally: its weights are
    computed from all rows in this process."""
    kind = (split.plan or {}).get("kind", "standard")
    if spec.training.engine == "dask" and kind != "standard" and (split.plan or {}).get("change_point"):
        log.warning("%s: the %s windows after a change are weighted, which the dask engine does not do: "
                    "training locally", spec.name, kind)
        return "local"
    return spec.training.engine


def _train_windows(spec: "ModelSpec", split: Split, store: Store, tracking_uri: str, lineage: dict[str, str],
                   trigger: str, cluster: Any) -> TrainResult:
    """Read the windows (the train window stays on the cluster when there is one) and train."""
    # Only the columns training uses (the windows keep every column for evaluation and audits).
    needed = [*spec.model_columns, spec.target_column, spec.timestamp_column]
    columns = list(spec.model_columns)
    rows: dict[str, int] = {}
    if cluster is None:
        frames = {name: store.read_parquet(split.window_uri(name), columns=needed) for name in WINDOW_NAMES}
        recent = store.read_parquet(split.recent_uri, columns=needed) if split.recent_uri else None
        fit_candidate = None
    else:
        # This process holds the baseline's sample of the train window (at most BASELINE_MAX_ROWS
        # rows) and the valid and test windows (scores, metrics, datasets).
        frames = {"train": cluster.train_sample(BASELINE_MAX_ROWS),
                  **{name: store.read_parquet(split.window_uri(name), columns=needed) for name in ("valid", "test")}}
        rows["train"] = cluster.rows
        recent, fit_candidate = None, cluster.fit_candidate
    X = {name: frame[columns] for name, frame in frames.items()}
    y = {name: _target(spec, frame, name if name not in rows else f"{name} (sample)", split.window_uri(name))
         for name, frame in frames.items()}

    # The MLflow run (experiment, tags, window params, datasets) is opened beside the fit: that
    # bookkeeping waits on the tracking store and needs no model. Like the baseline, it starts
    # once the candidate's matrices are built (see _Side).
    side = _Side(threading.Event())
    side.start("mlflow_run", _open_run, spec, split, lineage, tracking_uri, frames, trigger, rows)
    try:
        return _train(spec, split, store, tracking_uri, frames, X, y, recent, side, fit_candidate)
    except BaseException:
        side.release()
        _abandon_run(side, tracking_uri)
        raise


def _train(spec: "ModelSpec", split: Split, store: Store, tracking_uri: str, frames: dict[str, pd.DataFrame],
           X: dict[str, pd.DataFrame], y: dict[str, np.ndarray], recent: pd.DataFrame | None,
           side: "_Side", fit_candidate: Any = None) -> TrainResult:
    started = time.perf_counter()
    trials, w_valid, w_test, adaptation = _weighting(spec, split, frames, recent)
    # The baseline is cheap and single-threaded: it is fitted beside the candidate, not after it,
    # whenever its weights are known in advance (one weighting to try).
    if len(trials) == 1:
        only = next(iter(trials.values()))
        side.start("baseline", _fit_baseline, spec, X["train"], y["train"], only)
    fitted: dict[str, tuple[Any, int, float | None]] = {}
    valid_scores: dict[str, np.ndarray] = {}
    for strategy, w_train in trials.items():
        if fit_candidate is None:
            model, best = _fit_candidate(spec, X["train"], y["train"], X["valid"], y["valid"], w_train, w_valid,
                                         on_boosting=side.release)
        else:
            side.release()  # a cluster fits it: nothing here competes for this process's GIL
            model, best = fit_candidate(w_train, w_valid)
        side.release()
        valid_scores[strategy] = score(spec, model, X["valid"])
        value = _metrics(spec, y["valid"], valid_scores[strategy], w_valid)[spec.primary_metric]
        fitted[strategy] = (model, best, value)
    chosen = _best_strategy(spec, fitted)
    candidate, best_iteration, _ = fitted[chosen]
    w_train = trials[chosen]
    if len(trials) > 1 or chosen != "none":
        adaptation["strategy"] = chosen
        adaptation["valid_scores"] = {s: v for s, (_, _, v) in fitted.items()}
        adaptation["valid_metric"] = spec.primary_metric
    candidate_seconds = time.perf_counter() - started
    if "baseline" not in side:
        side.start("baseline", _fit_baseline, spec, X["train"], y["train"], w_train)
    baseline, baseline_seconds = side.result("baseline")
    scores = {"candidate": valid_scores[chosen], "baseline": score(spec, baseline, X["valid"])}
    metrics = {f"valid_{k}": v for k, v in _metrics(spec, y["valid"], scores["candidate"], w_valid).items()}
    metrics |= {f"baseline_valid_{k}": v for k, v in _metrics(spec, y["valid"], scores["baseline"], w_valid).items()}
    if (split.plan or {}).get("kind") == "anchored":
        # Right after a change the post-change rows are few: once the validation window has
        # chosen the weighting and the number of rounds, both models are refitted on train and
        # valid together (the test window stays untouched for the promotion decision).
        X_fit = pd.concat([X["train"], X["valid"]], ignore_index=True)
        y_fit = np.concatenate([y["train"], y["valid"]])
        w_fit = None if w_train is None else np.concatenate([w_train, np.ones(len(y["valid"]))])
        side.start("baseline_refit", _fit_baseline, spec, X_fit, y_fit, w_fit)
        clock = time.perf_counter()
        candidate = _refit_candidate(spec, X_fit, y_fit, w_fit, rounds=best_iteration + 1)
        candidate_seconds += time.perf_counter() - clock
        baseline, refit_seconds = side.result("baseline_refit")
        baseline_seconds += refit_seconds
        adaptation["refit"] = {"rows": int(len(y_fit)), "rounds": best_iteration + 1,
                               "why": "refitted on train + valid with the chosen weighting and rounds; valid "
                                      "metrics are of the model before the refit"}
    train_seconds = time.perf_counter() - started
    column_gain = _column_gain(spec, candidate)
    importance = _raw_importance(spec, column_gain)
    baseline_importance = _linear_importance(spec, baseline)
    test_weights_uri = ""
    valid_scores_uri = ""
    if "refit" not in adaptation:
        valid_scores_uri = store.write_parquet(join(_parent(split.test_uri), "valid_scores.parquet"),
                                               pd.DataFrame(scores))
    if w_test is not None:
        test_weights_uri = store.write_parquet(join(_parent(split.test_uri), "test_weights.parquet"),
                                               pd.DataFrame({"weight": w_test}))

    clock = time.perf_counter()
    timings = {"fit": round(train_seconds, 3), "fit_candidate": round(candidate_seconds, 3),
               "fit_baseline": round(baseline_seconds, 3)}
    (experiment_id, run_id, run_name), open_seconds = side.result("mlflow_run")
    timings["mlflow_setup"] = round(open_seconds, 3)
    timings["mlflow_setup_wait"] = round(time.perf_counter() - clock, 3)
    with _tracking(tracking_uri):
        import mlflow

        with mlflow.start_run(run_id=run_id) as run:
            mlflow.log_param("best_iteration", best_iteration)
            mlflow.log_metrics(metrics)
            models_started = time.perf_counter()
            model_uri, model_sha256 = _log_model(spec, candidate, X["train"], "model")
            baseline_uri, baseline_sha256 = _log_model(spec, baseline, X["train"], "baseline")
            mlflow.set_tags({"driftline.sha256.model": model_sha256, "driftline.sha256.baseline": baseline_sha256})
            timings["log_models"] = round(time.perf_counter() - models_started, 3)
            mlflow.log_text(store.read_text(split.profile_uri), "profile.json")
            mlflow.log_dict(importance, "feature_importance.json")
            mlflow.log_dict(adaptation, "adaptation.json")
            with tempfile.TemporaryDirectory(prefix="driftline-plots-") as tmp:
                _write_plots(spec, Path(tmp), y["valid"], scores, column_gain)
                mlflow.log_artifacts(tmp, "plots")
            timings["log_total"] = round(time.perf_counter() - clock, 3)
            mlflow.log_metrics({f"seconds_{k}": v for k, v in timings.items()})
    return TrainResult(
        run_id=run.info.run_id, experiment_id=experiment_id, model_uri=model_uri, baseline_uri=baseline_uri,
        metrics=metrics, best_iteration=best_iteration, train_seconds=round(train_seconds, 3),
        feature_importance=importance, timings=timings, run_name=run_name, adaptation=adaptation,
        baseline_importance=baseline_importance, test_weights_uri=test_weights_uri, valid_scores_uri=valid_scores_uri,
        model_sha256=model_sha256, baseline_sha256=baseline_sha256,
    )


def _open_run(spec: "ModelSpec", split: Split, lineage: dict[str, str], tracking_uri: str,
              frames: dict[str, pd.DataFrame], trigger: str, rows: dict[str, int] | None = None
              ) -> tuple[str, str, str]:
    """Create the training run: ``(experiment id, run id, run name)``, with its tags (MLflow's
    context tags, as ``mlflow.start_run`` sets them, plus driftline's and ``lineage``), the
    spec's parameters and windows, and the three windows as datasets. Everything but the model
    and its results, so it runs beside the fit. ``rows`` gives the true row count of a window
    of which ``frames`` holds a sample (its dataset's profile says the window's)."""
    import json

    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag, Param
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from pipeline.tracking import fail_fast

    fail_fast()
    experiment_id = _ensure_experiment(spec.name, tracking_uri)
    run_name = _run_name(tracking_uri, experiment_id, spec.name, day_key(split.data_interval_end), trigger)
    client = MlflowClient(tracking_uri)
    run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(_tags(spec, split, lineage)))
    run_id = run.info.run_id
    params = {k: v for k, v in _params(spec, split, None).items() if k != "best_iteration"}
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    inputs = []
    for name, frame in frames.items():
        dataset = mlflow.data.from_pandas(frame, source=split.window_uri(name), name=name,
                                          targets=spec.target_column, digest=_window_digest(split, name))
        _preset_schema(dataset, frame)
        entity = dataset._to_mlflow_entity()
        if name in (rows or {}):
            entity = Dataset(name=entity.name, digest=entity.digest, source_type=entity.source_type,
                             source=entity.source, schema=entity.schema,
                             profile=json.dumps({"num_rows": rows[name], "num_elements": rows[name] * frame.shape[1]}))
        inputs.append(DatasetInput(dataset=entity,
                                   tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=_INPUT_CONTEXTS[name])]))
    client.log_inputs(run_id, datasets=inputs)
    _warm_imports()
    _warm_requirements()
    return experiment_id, run_id, run_name


def _warm_imports() -> None:
    """Import what logging the models and drawing the plots needs (skops, MLflow's sklearn
    flavour, sklearn's calibration curve): about 2 s of imports that would otherwise wait until
    the fit ends."""
    import mlflow.sklearn  # noqa: F401
    import skops.io  # noqa: F401
    from sklearn import calibration  # noqa: F401


def _warm_requirements() -> None:
    """Build MLflow's map of installed packages to modules (0.4 s, once a process) beside the
    fit: its first ``log_model`` would build it after the fit to check the pinned requirements."""
    try:  # a private helper: warming is optional, log_model builds the map itself otherwise
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map
    except ImportError:
        return
    _init_packages_to_modules_map()


def _abandon_run(side: "_Side", tracking_uri: str) -> None:
    """After a failed fit: end the run opened beside it as FAILED (if it was opened at all)."""
    try:
        (_, run_id, _), _ = side.result("mlflow_run")
        from mlflow import MlflowClient

        MlflowClient(tracking_uri).set_terminated(run_id, status="FAILED")
    except Exception as err:  # the fit's own error is what the caller reports
        log.warning("could not end the training run opened beside the failed fit: %s", err)


def _weighting(spec: "ModelSpec", split: Split, frames: dict[str, pd.DataFrame], recent: pd.DataFrame | None
               ) -> tuple[dict[str, np.ndarray | None], np.ndarray | None, np.ndarray | None, dict[str, Any]]:
    """(train weights per strategy to try, valid weights, test weights, record) for the split's plan."""
    from pipeline.adaptation import STRATEGIES, density_ratio, pre_change_weights

    plan = split.plan or {"kind": "standard"}
    kind, cp = plan.get("kind", "standard"), plan.get("change_point")
    record: dict[str, Any] = {"plan": kind, "change_point": cp, "reason": plan.get("reason", "")}
    if kind == "standard" or not cp:
        return {"none": None}, None, None, record
    ts_col = spec.timestamp_column
    c = pd.Timestamp(cp, tz="UTC")

    def part(frame: pd.DataFrame, after: bool) -> pd.DataFrame:
        ts = pd.to_datetime(frame[ts_col], utc=True)
        return frame.loc[((ts >= c) if after else (ts < c)).to_numpy(dtype=bool, na_value=False)]

    recent_after = part(recent, True) if recent is not None and len(recent) else pd.DataFrame()
    after = pd.concat([*(part(f, True) for f in frames.values()), recent_after], ignore_index=True)
    if kind == "covariate":
        before = pd.concat([part(f, False) for f in frames.values()], ignore_index=True)
        (w_train, w_valid, w_test), info = density_ratio(spec, before, after, [frames[n] for n in WINDOW_NAMES])
        record["importance"] = info
        if info.get("method") == "none":
            return {"none": None}, None, None, record
        return {"importance": w_train}, w_valid, w_test, record
    wanted = STRATEGIES if spec.adaptation.pre_change == "auto" else (spec.adaptation.pre_change,)
    trials, infos = {}, {}
    for strategy in wanted:
        trials[strategy], infos[strategy] = pre_change_weights(spec, frames["train"], cp, strategy, after=after)
    record["strategies"] = infos
    return trials, None, None, record


def _best_strategy(spec: "ModelSpec", fitted: dict[str, tuple[Any, int, float | None]]) -> str:
    """The strategy whose model scores best on the validation window (ties: the earlier one)."""
    from pipeline import metrics as metric_table

    sign = 1.0 if metric_table.higher_is_better(spec.primary_metric) else -1.0
    scored = [(s, v) for s, (_, _, v) in fitted.items() if v is not None]
    if not scored:
        return next(iter(fitted))
    return max(scored, key=lambda sv: sign * sv[1])[0]


def _parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0]


def candidate_estimator(spec: "ModelSpec") -> Any:
    """The unfitted XGBoost estimator of the spec (``hist``, the spec's params, early stopping)."""
    import xgboost as xgb

    p = spec.params
    common = dict(
        n_estimators=p.n_estimators, max_depth=p.max_depth, learning_rate=p.learning_rate, subsample=p.subsample,
        colsample_bytree=p.colsample_bytree, min_child_weight=p.min_child_weight, reg_lambda=p.reg_lambda,
        early_stopping_rounds=p.early_stopping_rounds, n_jobs=p.n_jobs, random_state=p.seed, tree_method="hist",
        enable_categorical=True,
    )
    if spec.task == "binary":
        return xgb.XGBClassifier(objective="binary:logistic", eval_metric="logloss", **common)
    return xgb.XGBRegressor(objective="reg:squarederror", eval_metric="rmse", **common)


def _fit_candidate(spec: "ModelSpec", X_train: pd.DataFrame, y_train: np.ndarray, X_valid: pd.DataFrame,
                   y_valid: np.ndarray, w_train: np.ndarray | None = None,
                   w_valid: np.ndarray | None = None, on_boosting: Any = None) -> tuple["Pipeline", int]:
    """Fit the preprocessor on train only, early-stop on the transformed valid window, then
    assemble the fitted steps into one pipeline (so valid rows never shape the encoding).
    ``on_boosting()`` is called once both matrices are built, as boosting starts."""
    from sklearn.pipeline import Pipeline

    preprocess = build_preprocessor(spec, "tree")
    M_train = preprocess.fit_transform(X_train)
    if M_train.shape[1] == 0:
        raise TrainError(f"{spec.name}: the preprocessor produced no feature columns from {list(X_train.columns)}")
    M_valid = preprocess.transform(X_valid)
    model = candidate_estimator(spec)
    with _plain_dmatrix(model, on_built=on_boosting, matrices=2):
        model.fit(M_train, y_train, sample_weight=w_train, eval_set=[(M_valid, y_valid)],
                  sample_weight_eval_set=None if w_valid is None else [w_valid], verbose=False)
    best = getattr(model, "best_iteration", None)
    return Pipeline([("preprocess", preprocess), ("model", model)]), int(best if best is not None else spec.params.n_estimators - 1)


@contextmanager
def _plain_dmatrix(model: Any, on_built: Any = None, matrices: int = 1) -> Iterator[None]:
    """Fit ``model`` on ``xgboost.DMatrix`` rather than the ``QuantileDMatrix`` the scikit-learn
    wrapper picks for ``hist``: same trees (same quantile sketch and bins), and training measured
    16 % faster on the demo at 1M rows (benchmarks/pipeline.py), for ~8 bytes per cell more while
    it fits. Nothing of this is kept on the fitted model. ``on_built()`` is called once the
    wrapper has built ``matrices`` of them (the train and eval sets: boosting starts)."""
    import xgboost as xgb

    built = 0

    def create(ref: Any, **kwargs: Any) -> Any:
        nonlocal built
        matrix = xgb.DMatrix(**kwargs, nthread=model.n_jobs)
        built += 1
        if built == matrices and on_built is not None:
            on_built()
        return matrix

    model._create_dmatrix = create
    try:
        yield
    finally:
        del model._create_dmatrix


def _refit_candidate(spec: "ModelSpec", X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None,
                     rounds: int) -> "Pipeline":
    """The candidate fitted on ``X`` with a fixed number of rounds (no early stopping)."""
    from sklearn.pipeline import Pipeline

    preprocess = build_preprocessor(spec, "tree")
    M = preprocess.fit_transform(X)
    model = candidate_estimator(spec).set_params(n_estimators=max(1, rounds), early_stopping_rounds=None)
    with _plain_dmatrix(model):
        model.fit(M, y, sample_weight=w, verbose=False)
    return Pipeline([("preprocess", preprocess), ("model", model)])


def _fit_baseline(spec: "ModelSpec", X_train: pd.DataFrame, y_train: np.ndarray,
                  w_train: np.ndarray | None = None) -> "Pipeline":
    """The baseline, fitted on at most :data:`BASELINE_MAX_ROWS` rows of the train window.

    A linear model has a few dozen coefficients: a uniform random sample of that size pins them
    to within noise of the full fit, so the baseline keeps its role (the floor the candidate
    must beat) at a fixed cost whatever the window's size."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    if spec.params.baseline == "prior":
        model: Any = DummyClassifier(strategy="prior") if spec.task == "binary" else DummyRegressor(strategy="mean")
        return Pipeline([("model", model)]).fit(X_train, y_train, model__sample_weight=w_train)
    if len(X_train) > BASELINE_MAX_ROWS:
        rows = np.sort(np.random.default_rng(spec.params.seed).choice(len(X_train), BASELINE_MAX_ROWS, replace=False))
        X_train, y_train = X_train.iloc[rows], y_train[rows]
        w_train = None if w_train is None else w_train[rows]
    model = LogisticRegression(max_iter=1000) if spec.task == "binary" else Ridge()
    return Pipeline([("preprocess", build_preprocessor(spec, "linear")), ("model", model)]).fit(
        X_train, y_train, model__sample_weight=w_train)


class _Side:
    """Work started in a background thread and collected later: ``(result, seconds)``.

    Only for work that shares no mutable state. With a ``gate``, work waits until
    :meth:`release` is called: the side work beside the fit (the baseline, opening the MLflow
    run) holds the GIL for much of its second or two, which costs nothing while XGBoost boosts
    in native code but serialises with the candidate's own GIL-bound start (encoding the frames,
    building the matrices) -- in four alternated one-off runs (no benchmark keeps them) the fit
    took 14.98 s (median) with the gate against 15.43 s without."""

    def __init__(self, gate: "threading.Event | None" = None) -> None:
        self._futures: dict[str, Any] = {}
        self._gate = gate

    def release(self) -> None:
        """Let gated work start (idempotent)."""
        if self._gate is not None:
            self._gate.set()

    def __contains__(self, name: str) -> bool:
        return name in self._futures

    def start(self, name: str, fn: Any, *args: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        def timed() -> tuple[Any, float]:
            if self._gate is not None:
                self._gate.wait()
            clock = time.perf_counter()
            return fn(*args), time.perf_counter() - clock

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"driftline-{name}")
        self._futures[name] = pool.submit(timed)
        pool.shutdown(wait=False)

    def result(self, name: str) -> tuple[Any, float]:
        return self._futures[name].result()


def _linear_importance(spec: "ModelSpec", baseline: "Pipeline") -> dict[str, float]:
    """A linear baseline's importance per raw column: absolute coefficients on standardised
    inputs, mapped back like the candidate's gain (``{}`` for a prior baseline)."""
    if "preprocess" not in baseline.named_steps:
        return {}
    coef = np.abs(np.asarray(baseline.named_steps["model"].coef_, dtype=float)).reshape(-1)
    sources = output_sources(spec, baseline.named_steps["preprocess"])
    return _raw_importance(spec, {label: (source, float(c)) for (label, source), c in zip(sources, coef)})


def _target(spec: "ModelSpec", frame: pd.DataFrame, window: str, uri: str) -> np.ndarray:
    col = spec.target_column
    if col not in frame.columns:
        raise TrainError(f"{window} window has no target column {col!r} ({uri})")
    values = pd.to_numeric(frame[col], errors="coerce")
    binary = spec.task == "binary"
    check_target(spec, window, uri, len(frame), int(values.isna().sum()),
                 sorted(values.dropna().unique().tolist()) if binary else [])
    return values.to_numpy(dtype=np.int64 if binary else float)


def check_target(spec: "ModelSpec", window: str, uri: str, rows: int, missing: int, classes: list[Any]) -> None:
    """Raise :class:`TrainError` when a window's target (``rows`` rows, ``missing`` of them without
    a number, the distinct ``classes`` of a binary one) cannot train or score a model."""
    col = spec.target_column
    if missing:
        raise TrainError(f"{window} window: {missing} of {rows} rows have no numeric {col!r}; validation "
                         f"should have quarantined them ({uri})")
    if spec.task == "binary" and (not set(classes) <= {0, 1} or (window == "train" and len(classes) != 2)):
        raise TrainError(f"{window} window: binary target {col!r} must hold both classes 0 and 1, found {classes} "
                         f"in {rows} rows ({uri})")


def _metrics(spec: "ModelSpec", y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None
             ) -> dict[str, float]:
    from pipeline import metrics as metric_table

    values = metric_table.point(spec.task, y, score, spec.params.decision_threshold, weights=weights)
    return {k: (float("nan") if v is None else v) for k, v in values.items()}


def _column_gain(spec: "ModelSpec", candidate: "Pipeline") -> dict[str, tuple[str, float]]:
    """Total split gain per model column: ``label -> (source column, gain)``. Total (not
    average) gain, so a feature split on often counts more than one split on once."""
    sources = output_sources(spec, candidate.named_steps["preprocess"])
    gain = candidate.named_steps["model"].get_booster().get_score(importance_type="total_gain")
    # Keys are the input frame's column names (a matrix would give f0, f1, ...).
    return {label: (source, float(gain.get(label, gain.get(f"f{i}", 0.0)))) for i, (label, source) in enumerate(sources)}


def _raw_importance(spec: "ModelSpec", column_gain: dict[str, tuple[str, float]]) -> dict[str, float]:
    raw: dict[str, float] = {c: 0.0 for c in spec.model_columns}
    for source, gain in column_gain.values():
        inputs = raw_inputs(spec, source)
        for col in inputs:
            raw[col] = raw.get(col, 0.0) + gain / len(inputs)
    total = sum(raw.values())
    if total <= 0:
        # A model without a single split (constant target) carries no ranking: weigh all equally.
        return {c: 1.0 / len(raw) for c in raw}
    return {c: v / total for c, v in sorted(raw.items(), key=lambda kv: -kv[1])}


def _params(spec: "ModelSpec", split: Split, best_iteration: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {f"params.{k}": v for k, v in spec.params.model_dump().items()}
    params["best_iteration"] = best_iteration
    for name, (start, end) in split.windows.items():
        params[f"window.{name}.start"] = start
        params[f"window.{name}.end"] = end
    for name, rows in split.rows.items():
        params[f"rows.{name}"] = rows
    params["data_interval_end"] = split.data_interval_end
    return params


def _tags(spec: "ModelSpec", split: Split, lineage: dict[str, str]) -> dict[str, str]:
    tags = {
        "driftline.model": spec.name,
        "driftline.task": spec.task,
        "driftline.data_interval_end": split.data_interval_end,
        "driftline.snapshot_hash": split.source_sha256,
        "driftline.source_uri": split.source_uri,
    }
    sha = _git_sha()
    if sha:
        tags["driftline.git_sha"] = sha
    tags.update({str(k): str(v) for k, v in lineage.items()})
    return tags


def _git_sha() -> str | None:
    """The repository's HEAD commit, when this code runs from a git checkout with git installed."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_PACKAGE_DIR, capture_output=True, text=True,
                             timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha or None


def _requirements() -> list[str]:
    pins = []
    for dist in _MODEL_REQUIREMENTS:
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pins.append(dist)
    return pins


def _log_model(spec: "ModelSpec", model: "Pipeline", X_train: pd.DataFrame, name: str) -> tuple[str, str]:
    """Log ``model`` under ``name`` in the active run in the safe format (:mod:`pipeline.models`);
    returns its logged-model URI and the sha256 of the stored file. Requirements are pinned
    explicitly because inferring them costs a 9-15 s subprocess."""
    from mlflow.models import infer_signature

    from pipeline.models import log_model

    example = _naive_utc(X_train.head(5))
    binary = spec.task == "binary"
    output = model.predict_proba(example) if binary else model.predict(example)
    return log_model(model, name=name, signature=infer_signature(example, output), input_example=example,
                     pip_requirements=_requirements(), predict_fn="predict_proba" if binary else "predict")


def _window_digest(split: Split, name: str) -> str:
    """A window's MLflow dataset digest: its identity -- the snapshot's content hash, the window's
    bounds and row count -- so equal windows compare equal in the MLflow UI. (MLflow's own digest
    maps ``type`` over every cell of the frame: seconds per million rows.)"""
    import hashlib

    identity = "|".join([split.snapshot_hash or split.source_sha256, name, *split.windows.get(name, []),
                         str(split.rows.get(name, ""))])
    return hashlib.sha256(identity.encode()).hexdigest()[:8]


def _preset_schema(dataset: Any, frame: pd.DataFrame) -> None:
    """Give a ``PandasDataset`` its schema before MLflow infers it value by value.

    MLflow 3.17 infers a dataset's schema with a Python loop over every value of every object
    or pandas-3 ``str`` column and every column's nulls (12 s for 200k demo rows, about a
    minute for a 1M-row run). Types are the same when inferred from an evenly spaced sample,
    and ``required`` (no missing value) is computed over all rows with vectorised ``notna``.
    ``schema`` is a ``cached_property``, so a value set on the instance is what MLflow logs;
    if a later MLflow changes that, it falls back to its own (slow, equal) inference.
    """
    import functools
    import inspect

    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    if not isinstance(inspect.getattr_static(type(dataset), "schema", None), functools.cached_property):
        return
    sample = frame.iloc[:: max(1, len(frame) // 2000)]
    inferred = infer_signature(sample).inputs
    dataset.__dict__["schema"] = Schema([
        ColSpec(type=col.type, name=col.name, required=bool(frame[col.name].notna().all())) for col in inferred.inputs
    ])


def _naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """MLflow schemas only hold timezone-naive datetimes: pyfunc callers pass UTC wall time
    (which :class:`~pipeline.features.DerivedFeatures` reads as UTC)."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` (and leave it there).

    Restoring the previous URI would be wrong: ``mlflow.set_tracking_uri`` also writes the
    ``MLFLOW_TRACKING_URI`` environment variable, so "restoring" MLflow's default would make
    every later reader of the environment (our Settings included) use MLflow's default store.
    """
    import mlflow

    from pipeline.tracking import fail_fast

    fail_fast()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield


def _run_name(tracking_uri: str, experiment_id: str, model: str, day: str, trigger: str) -> str:
    """``<model> <day> <trigger>``, suffixed `` #<n>`` when n-1 runs of that model and day exist
    already (deleted ones included). Runs of one model and day are serialised by the day's lease
    (:mod:`pipeline.lease`), so two of them never count the same runs."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    pattern = f"{model} {day} %".replace("'", "''")
    earlier = MlflowClient(tracking_uri).search_runs(
        [experiment_id], filter_string=f"attributes.run_name LIKE '{pattern}'", run_view_type=ViewType.ALL,
        max_results=50_000)
    base = f"{model} {day} {trigger}"
    return base if not earlier else f"{base} #{len(earlier) + 1}"


def _ensure_experiment(name: str, tracking_uri: str) -> str:
    """The experiment's id, creating it when absent (a concurrent creator wins harmlessly)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipeline.tracking import EXPERIMENT_KIND, mark_model_development

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        mark_model_development(client, found)
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location(tracking_uri, name),
                                        tags=EXPERIMENT_KIND)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///"):])
    return (db.parent / "mlartifacts" / experiment).resolve().as_uri()


#: A curve drawn in a 450-pixel plot needs no more points than this (its metric uses them all).
_PLOT_POINTS = 2000


def _thinned(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most ``_PLOT_POINTS`` evenly spaced points of a curve, its two ends included (a
    precision-recall curve has a point per distinct score: 166k on a 1M-row run's window)."""
    if len(x) <= _PLOT_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, _PLOT_POINTS).astype(int))
    return x[keep], y[keep]


def _write_plots(spec: "ModelSpec", out: Path, y: np.ndarray, scores: dict[str, np.ndarray],
                 column_gain: dict[str, tuple[str, float]]) -> None:
    """SVG diagnostics of the valid window (:mod:`pipeline.svgplot`: text, no plotting library)."""
    from sklearn import metrics as skm

    from pipeline import svgplot

    if spec.task == "binary" and len(np.unique(y)) == 2:
        from sklearn.calibration import calibration_curve

        roc = []
        for who, s in scores.items():
            fpr, tpr, _ = skm.roc_curve(y, s)
            roc.append((f"{who} (AUC {skm.roc_auc_score(y, s):.3f})", *_thinned(fpr, tpr)))
        svgplot.write(out / "roc.svg", svgplot.line_chart(
            roc, title="ROC (valid window)", xlabel="false positive rate", ylabel="true positive rate",
            references=[(0, 0, 1, 1)], legend="lower right"))

        pr = []
        for who, s in scores.items():
            precision, recall, _ = skm.precision_recall_curve(y, s)
            pr.append((f"{who} (AP {skm.average_precision_score(y, s):.3f})", *_thinned(recall, precision)))
        rate = float(np.mean(y))
        svgplot.write(out / "pr.svg", svgplot.line_chart(
            pr, title="Precision-recall (valid window)", xlabel="recall", ylabel="precision",
            references=[(0, rate, 1, rate)], legend="upper right"))

        calibration = []
        for who, s in scores.items():
            observed, predicted = calibration_curve(y, s, n_bins=10, strategy="quantile")
            calibration.append((who, predicted, observed))
        svgplot.write(out / "calibration.svg", svgplot.line_chart(
            calibration, title="Calibration (valid window)", xlabel="mean predicted probability",
            ylabel="observed rate", references=[(0, 0, 1, 1)], markers=True, legend="upper left"))

        threshold = spec.params.decision_threshold
        cm = skm.confusion_matrix(y, (scores["candidate"] >= threshold).astype(int), labels=[0, 1])
        svgplot.write(out / "confusion_matrix.svg", svgplot.matrix_chart(
            cm.tolist(), title=f"Confusion at {threshold:g} (candidate)", xlabel="predicted", ylabel="actual",
            x_ticks=["0", "1"], y_ticks=["0", "1"]))
    elif spec.task == "regression":
        predicted = scores["candidate"]
        shown = np.linspace(0, len(predicted) - 1, min(len(predicted), _PLOT_POINTS * 5)).astype(int)
        svgplot.write(out / "residuals.svg", svgplot.scatter_chart(
            predicted[shown].tolist(), (y - predicted)[shown].tolist(), title="Residuals (valid window, candidate)",
            xlabel="predicted", ylabel="actual - predicted", hline=0.0))

    top = sorted(((label, g) for label, (_, g) in column_gain.items()), key=lambda kv: -kv[1])[:25]
    svgplot.write(out / "feature_importance.svg", svgplot.bar_chart(
        [label for label, _ in top], [g for _, g in top], title="Candidate feature importance", xlabel="total gain"))
