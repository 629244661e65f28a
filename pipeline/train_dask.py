"""The candidate fitted on a Dask cluster (``training.engine: dask``), for windows one machine cannot hold.

Contract:
* :meth:`DaskTraining.open` connects to the scheduler (a :class:`DaskUnavailable`, retryable,
  when it cannot be reached; a :class:`~pipeline.train.TrainError` when no address is configured
  or the workers run another XGBoost) and reads the train window on the workers, a piece per
  parquet row group (row groups sliced when there are fewer than workers): one pass counts
  rows, checks the target exactly as the local path does, and counts each categorical column's
  values. For the fit, piece ``i`` of the train and of the valid window is read and kept on
  worker ``i mod n`` (XGBoost trains each worker on the partitions it holds), so every worker
  gets a share and none holds a whole window.
* :meth:`DaskTraining.fit_candidate` returns ``(Pipeline, best_iteration)`` like the local
  ``pipeline.train._fit_candidate``: the same tree preprocessor (fitted from the category counts
  summed over the partitions, which equals fitting it on the whole window), the same XGBoost
  parameters (``candidate_estimator``), early-stopped on the valid window (read on the workers
  too) with the same rounds and best-iteration semantics, trained by ``xgboost.dask.train`` and
  held by the same ``XGBClassifier``/``XGBRegressor`` in the same pipeline -- so the logged model
  has the same types (:data:`pipeline.models.TRUSTED_TYPES`) and evaluation, promotion and the
  monitor do not know which engine trained it.
* :meth:`DaskTraining.train_sample` gathers the rows the baseline is fitted on: the whole train
  window up to ``max_rows``, else the same uniform sample the local path draws (so a linear
  baseline is identical; a prior baseline is the sample's prior).
* Categorical columns reach XGBoost as their codes in the encoder's categories (float, missing as
  NaN) with feature type ``c``, not as pandas categoricals: XGBoost refuses a worker holding no
  rows of a categorical frame ("cannot infer the categories"), which a small valid window leaves.
  The fitted pipeline feeds the booster categoricals with exactly those categories, so it splits
  on the same codes; the category names live in the encoder, as in the local model.
* Workers need the ``pipeline`` package and the same XGBoost as this process; they use their own
  thread count (``dask worker --nthreads``), not ``params.n_jobs``. Distributed ``hist`` merges
  per-worker quantile sketches and each worker samples its own rows (``subsample``), so the model
  is equivalent, not bit-identical, to the local one.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pandas as pd

from pipeline.errors import RetryableError
from pipeline.features import Split, build_preprocessor, category_counts
from pipeline.storage import Store, is_s3

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from pipeline.config import ModelSpec

log = logging.getLogger(__name__)

#: Seconds to wait for the scheduler to answer, and for at least one worker to join it.
CONNECT_TIMEOUT_S = 30
WORKER_TIMEOUT_S = 60


class DaskUnavailable(RetryableError):
    """The Dask scheduler cannot be reached or has no workers (a retry may find it up)."""


@dataclass
class DaskTraining:
    """A connection to the cluster and the train window read on its workers.

    Attributes:
        spec, split: what is trained.
        client: the ``distributed.Client``.
        address: the scheduler's address.
        n_workers: workers when the window was read.
        train: the train window's pieces.
        rows: rows of the train window; ``partition_rows``: per piece, in file order.
        counts: categorical column -> value (as text) -> rows in the train window.
    """

    spec: "ModelSpec"
    split: Split
    client: Any
    address: str
    n_workers: int
    train: "_Window"
    rows: int = 0
    partition_rows: list[int] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    store: Store | None = None

    @classmethod
    @contextmanager
    def open(cls, spec: "ModelSpec", split: Split, store: Store, address: str | None) -> Iterator["DaskTraining"]:
        """Connect, read and check the train window; the client is closed on exit (the cluster stays).

        Raises:
            TrainError: no address configured, workers without driftline or with another XGBoost,
                or a target the local path would refuse (same messages).
            DaskUnavailable: the scheduler does not answer, or no worker joins it in time.
        """
        client = _connect(spec, address)
        try:
            n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
            needed = [*spec.model_columns, spec.target_column, spec.timestamp_column]
            training = cls(spec=spec, split=split, client=client, address=str(address), n_workers=n_workers,
                           train=_Window.open(client, split.window_uri("train"), list(dict.fromkeys(needed)),
                                              store, n_workers), store=store)
            training._summarise()
            yield training
        finally:
            client.close()

    def _summarise(self) -> None:
        from dask import delayed

        from pipeline.train import check_target

        spec, uri = self.spec, self.split.window_uri("train")
        parts = self.train.partitions()
        summaries = _gather(self.client, [delayed(_summary)(p, spec.target_column, spec.task == "binary",
                                                            tuple(spec.categorical_features)) for p in parts])
        self.partition_rows = [s["rows"] for s in summaries]
        self.rows = sum(self.partition_rows)
        classes = sorted(set().union(*(s["classes"] for s in summaries)))
        check_target(spec, "train", uri, self.rows, sum(s["missing"] for s in summaries), classes)
        self.counts = {col: {} for col in spec.categorical_features}
        for s in summaries:
            for col, counts in s["counts"].items():
                merged = self.counts[col]
                for text, n in counts.items():
                    merged[text] = merged.get(text, 0) + n
        log.info("dask: train window %s: %d rows in %d partitions on %d workers (%s)", uri, self.rows,
                 len(parts), self.n_workers, self.address)

    def train_sample(self, max_rows: int) -> pd.DataFrame:
        """The train rows the baseline is fitted on (see the module docstring), in file order."""
        from dask import delayed

        if self.rows <= max_rows:
            return _gather_frame(self.client, self.train.partitions())
        rows = np.sort(np.random.default_rng(self.spec.params.seed).choice(self.rows, max_rows, replace=False))
        offsets = np.concatenate([[0], np.cumsum(self.partition_rows)])
        pieces = []
        for i, part in enumerate(self.train.partitions()):
            local = rows[(rows >= offsets[i]) & (rows < offsets[i + 1])] - offsets[i]
            if local.size:
                pieces.append(delayed(_take)(part, local))
        return _gather_frame(self.client, pieces)

    def fit_candidate(self, w_train: np.ndarray | None = None, w_valid: np.ndarray | None = None
                      ) -> tuple["Pipeline", int]:
        """The candidate trained on the cluster (see the module docstring); unweighted only."""
        import xgboost.dask as dxgb
        from sklearn.pipeline import Pipeline

        from pipeline.train import TrainError, candidate_estimator

        if w_train is not None or w_valid is not None:
            raise TrainError(f"{self.spec.name}: the dask engine trains unweighted windows only; a weighted "
                             "retrain (after a change point) trains locally")
        spec, columns = self.spec, list(self.spec.model_columns)
        preprocess = _fit_preprocessor(spec, self.train.meta[columns], self.counts, self.rows)
        meta = _model_input(self.train.meta[columns], preprocess)
        if meta.shape[1] == 0:
            raise TrainError(f"{spec.name}: the preprocessor produced no feature columns from {columns}")
        categorical = set(spec.categorical_features)
        feature_types = ["c" if c in categorical else "float" for c in meta.columns]
        label = np.int64 if spec.task == "binary" else np.float64
        valid = _Window.open(self.client, self.split.window_uri("valid"), [*columns, spec.target_column],
                             self.store, self.n_workers)
        workers = sorted(self.client.scheduler_info(n_workers=-1)["workers"])

        def matrix(window: _Window) -> Any:
            import dask.dataframe as dd

            X = dd.from_delayed(window.placed(self.client, workers, columns, _model_input, preprocess), meta=meta,
                                verify_meta=False)
            y = dd.from_delayed(window.placed(self.client, workers, [spec.target_column], _label, spec.target_column,
                                              label), meta=pd.Series(dtype=label, name=spec.target_column),
                                verify_meta=False)
            return dxgb.DaskDMatrix(self.client, X, y, enable_categorical=True, feature_types=feature_types)

        model = candidate_estimator(spec)
        params = {k: v for k, v in model.get_xgb_params().items() if v is not None and k != "n_jobs"}
        # xgboost.dask looks the client up as the current one even when it is given one.
        with self.client.as_current(), _worker_errors("the train and valid windows"):
            out = dxgb.train(self.client, params, matrix(self.train), num_boost_round=model.n_estimators,
                             evals=[(matrix(valid), "validation_0")],
                             early_stopping_rounds=model.early_stopping_rounds, verbose_eval=False)
        # What XGBClassifier/XGBRegressor.fit (and xgboost's own Dask estimators) leave on a
        # fitted model: the booster, the class count, the evaluation history.
        model._Booster = out["booster"]
        if spec.task == "binary":
            model.n_classes_ = 2
        model.evals_result_ = out["history"]
        best = getattr(model, "best_iteration", None)
        return (Pipeline([("preprocess", preprocess), ("model", model)]),
                int(best if best is not None else spec.params.n_estimators - 1))


def _connect(spec: "ModelSpec", address: str | None) -> Any:
    from distributed import Client

    from pipeline.train import TrainError

    if not address:
        raise TrainError(f"{spec.name}: training.engine is dask but no Dask scheduler address is set: under Airflow "
                         f"set connection {spec.training.conn_id!r} (e.g. AIRFLOW_CONN_"
                         f"{spec.training.conn_id.upper()}='generic://dask-scheduler:8786'); elsewhere set "
                         "DRIFTLINE_DASK_SCHEDULER or pass `run --dask-scheduler tcp://host:8786`; or set "
                         "training.engine: local")
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise DaskUnavailable(f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s ({err}); "
                              "start it (`dask scheduler`) or fix the address "
                              f"(connection {spec.training.conn_id!r} / DRIFTLINE_DASK_SCHEDULER)") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT_S)
        except (OSError, TimeoutError):
            raise DaskUnavailable(f"the Dask scheduler at {address} has no worker after {WORKER_TIMEOUT_S} s; start "
                                  f"workers with `dask worker {address}`") from None
        versions = client.get_versions(check=False, packages=["xgboost"])
        mine = versions["client"]["packages"]["xgboost"]
        other = {w: v["packages"].get("xgboost") for w, v in versions["workers"].items()
                 if v["packages"].get("xgboost") != mine}
        if other:
            raise TrainError(f"{spec.name}: Dask workers run another XGBoost than this process ({mine}): {other}; "
                             "install the same requirements.txt on the workers")
    except BaseException:
        client.close()
        raise
    return client


@dataclass(frozen=True)
class _Window:
    """A parquet window as pieces the workers read -- ``(row group, first row, end row)``, a row
    group per piece, or slices of each when there are fewer row groups than workers -- and the
    empty frame of its columns. A worker reads the file's footer too, so only the workers need
    to reach (and be allowed to read) the window."""

    filesystem: Any
    path: str
    columns: list[str]
    meta: pd.DataFrame
    pieces: list[tuple[int, int, int]]

    @classmethod
    def open(cls, client: Any, uri: str, columns: list[str], store: Store | None, n_workers: int) -> "_Window":
        from dask import delayed

        filesystem, path = _filesystem(uri, store)
        ((meta, groups),) = _gather(client, [delayed(_layout)(filesystem, path, columns)], uri)
        slices = max(1, -(-n_workers // max(1, len(groups))))
        pieces = []
        for group, rows in enumerate(groups):
            bounds = np.linspace(0, rows, slices + 1).astype(int)
            pieces += [(group, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        return cls(filesystem, path, list(meta.columns), meta, pieces or [(-1, 0, 0)])

    def partitions(self) -> list[Any]:
        """The window's pieces as delayed frames, in file order (placed by Dask). Strings keep the
        dtype the local engine reads (Dask would convert them to its own string type)."""
        import dask
        import dask.dataframe as dd

        with dask.config.set({"dataframe.convert-string": False}):
            return dd.from_map(_read_piece, self.pieces, args=[self.filesystem, self.path, self.columns, self.meta],
                               meta=self.meta, enforce_metadata=False, label="read-window").to_delayed()

    def placed(self, client: Any, workers: list[str], columns: list[str], fn: Any, *args: Any) -> list[Any]:
        """Futures of ``fn(piece's columns, *args)``, piece ``i`` read and kept on worker ``i mod n``:
        XGBoost trains each worker on the partitions it holds, so every worker gets a share."""
        return [client.submit(_read_piece_then, fn, piece, self.filesystem, self.path, columns,
                              self.meta[columns], *args, workers=[workers[i % len(workers)]],
                              allow_other_workers=False, pure=False)
                for i, piece in enumerate(self.pieces)]


def _filesystem(uri: str, store: Store | None) -> tuple[Any, str]:
    """``(pyarrow filesystem, path in it)`` of a window's URI."""
    import pyarrow.fs

    if is_s3(uri):
        return _s3_filesystem(store), uri[len("s3://"):]
    return pyarrow.fs.LocalFileSystem(), str(Path(uri[len("file://"):] if uri.startswith("file://") else uri).resolve())


def _s3_filesystem(store: Store | None) -> Any:
    """A pyarrow S3 filesystem at the artifact store's endpoint and region. No credentials are put
    in the task graph: each worker finds its own (environment, config file or instance role)."""
    from urllib.parse import urlparse

    import pyarrow.fs

    meta = getattr(getattr(store, "client", None), "meta", None)
    endpoint = urlparse(getattr(meta, "endpoint_url", "") or "")
    options: dict[str, Any] = {}
    if getattr(meta, "region_name", None):
        options["region"] = meta.region_name
    if endpoint.netloc and not endpoint.netloc.endswith("amazonaws.com"):
        options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "https")
    return pyarrow.fs.S3FileSystem(**options)


def _fit_preprocessor(spec: "ModelSpec", meta: pd.DataFrame, counts: dict[str, dict[str, int]],
                      rows: int) -> "Pipeline":
    preprocess = build_preprocessor(spec, "tree")
    derive = preprocess.named_steps["derive"].fit(meta)
    preprocess.named_steps["encode"].fit_counts(derive.transform(meta).columns, counts, rows)
    return preprocess


def _gather(client: Any, tasks: list[Any], what: str = "the train window") -> list[Any]:
    with _worker_errors(what):
        return client.gather(client.compute(tasks))


@contextmanager
def _worker_errors(what: str) -> Iterator[None]:
    """A worker's import or file error raised as driftline's, naming the fix."""
    from pipeline.storage import StorageError
    from pipeline.train import TrainError

    try:
        yield
    except ImportError as err:
        raise TrainError(f"a Dask worker cannot import what training needs ({err}); install driftline (the "
                         "`pipeline` package) and requirements.txt on every worker") from None
    except OSError as err:
        raise StorageError(f"a Dask worker cannot read {what} ({type(err).__name__}: {err}); workers read "
                           "windows themselves: give them access to the artifact store (for s3://, AWS "
                           "credentials in their environment)") from None


def _gather_frame(client: Any, parts: list[Any]) -> pd.DataFrame:
    return pd.concat(_gather(client, parts), ignore_index=True)


# Run on the workers.

def _summary(part: pd.DataFrame, target: str, binary: bool, categorical: tuple[str, ...]) -> dict[str, Any]:
    values = pd.to_numeric(part[target], errors="coerce")
    return {"rows": len(part), "missing": int(values.isna().sum()),
            "classes": sorted(values.dropna().unique().tolist()) if binary else [],
            "counts": {col: category_counts(part[col]) for col in categorical}}


def _layout(filesystem: Any, path: str, columns: list[str]) -> tuple[pd.DataFrame, int]:
    """A parquet file's empty frame of ``columns`` (the Dask meta) and the rows of each row group."""
    import pyarrow.parquet as pq

    with filesystem.open_input_file(path) as f:
        parquet = pq.ParquetFile(f)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        return (parquet.schema_arrow.empty_table().select(present).to_pandas(),
                [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)])


def _read_piece(piece: tuple[int, int, int], filesystem: Any, path: str, wanted: list[str],
                meta: pd.DataFrame) -> pd.DataFrame:
    # (not named ``columns``: Dask's from_map passes a column projection by that name)
    import pyarrow.parquet as pq

    group, start, stop = piece
    if group < 0:
        return meta
    with filesystem.open_input_file(path) as f:
        table = pq.ParquetFile(f).read_row_group(group, columns=wanted)
    return table.slice(start, stop - start).to_pandas()


def _read_piece_then(fn: Any, piece: tuple[int, int, int], filesystem: Any, path: str, wanted: list[str],
                     meta: pd.DataFrame, *args: Any) -> Any:
    return fn(_read_piece(piece, filesystem, path, wanted, meta), *args)


def _take(part: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    return part.iloc[rows]


def _model_input(part: pd.DataFrame, preprocess: "Pipeline") -> pd.DataFrame:
    """The preprocessor's output with categorical columns as their codes (float, missing NaN)."""
    out = preprocess.transform(part)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            codes = out[col].cat.codes.to_numpy()
            out[col] = np.where(codes >= 0, codes, np.nan).astype(np.float32)
    return out


def _label(part: pd.DataFrame, target: str, dtype: Any) -> pd.Series:
    return pd.to_numeric(part[target], errors="coerce").astype(dtype)
