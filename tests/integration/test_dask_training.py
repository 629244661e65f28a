"""Distributed training: ``training.engine: dask`` on a real local two-worker Dask cluster, beside
the single-process engine on the same split and MLflow store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import Settings, TrainingSpec, WindowSpec, load_spec
from pipeline.errors import is_retryable
from pipeline.features import score, split_and_profile
from pipeline.storage import Store
from pipeline.train import TrainError, train
from tests.conftest import DEMO_START, REPO, demo_days

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def scheduler():
    """A local Dask cluster on loopback: two worker processes of one thread each."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def both(tmp_path_factory, mlflow_session_uri, scheduler):
    """The demo model (linear baseline; the demo's 2000 rows a day) trained on one split by each engine."""
    tmp = tmp_path_factory.mktemp("dask")
    spec = load_spec(REPO / "config" / "credit_default.yaml", Settings.from_env()).model_copy(update={
        "label_delay_days": 0, "windows": WindowSpec(train_days=14, valid_days=4, test_days=3)})
    spec = spec.model_copy(update={"params": spec.params.model_copy(update={"n_jobs": 1})})
    store = Store.for_uri(str(tmp))
    clean = store.write_parquet(str(tmp / "clean.parquet"), demo_days(DEMO_START, 21, rows_per_day=2000))
    split = split_and_profile(spec, clean, store, str(tmp / "run"), datetime(2026, 1, 22))
    local = train(spec, split, store, tracking_uri=mlflow_session_uri)
    dask_spec = spec.model_copy(update={"training": TrainingSpec(engine="dask")})
    distributed = train(dask_spec, split, store, tracking_uri=mlflow_session_uri, dask_scheduler=scheduler)
    return spec, split, store, local, distributed


def artifact_paths(client, run_id, path=None):
    out = []
    for item in client.list_artifacts(run_id, path):
        out.extend(artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return out


def test_dask_candidate_matches_single_process_quality(both, mlflow_uri):
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    from pipeline.models import load_model

    spec, split, store, local, distributed = both
    assert distributed.metrics["valid_roc_auc"] == pytest.approx(local.metrics["valid_roc_auc"], abs=0.002)
    assert distributed.metrics["valid_roc_auc"] > 0.8
    # early stopping on the valid window: a comparable round, well before the 300 allowed
    assert 0 < distributed.best_iteration < spec.params.n_estimators - spec.params.early_stopping_rounds
    assert abs(distributed.best_iteration - local.best_iteration) <= 30
    # the linear baseline is fitted on the same rows by both engines
    assert distributed.metrics["baseline_valid_roc_auc"] == pytest.approx(local.metrics["baseline_valid_roc_auc"],
                                                                         abs=1e-9)
    test = store.read_parquet(split.test_uri)
    auc = {}
    for name, result in (("local", local), ("dask", distributed)):
        model = load_model(result.model_uri, expected_sha256=result.model_sha256)
        assert isinstance(model, Pipeline) and isinstance(model.named_steps["model"], XGBClassifier)
        auc[name] = roc_auc_score(test[spec.target_column].to_numpy(int), score(spec, model, test))
        baseline = load_model(result.baseline_uri, expected_sha256=result.baseline_sha256)
        assert score(spec, baseline, test).shape == (len(test),)
    assert auc["dask"] == pytest.approx(auc["local"], abs=0.002)
    importance = distributed.feature_importance
    assert sum(importance.values()) == pytest.approx(1.0)
    assert max(importance, key=importance.get) == max(local.feature_importance, key=local.feature_importance.get)


def test_dask_run_records_the_same_artifacts_params_and_datasets(both, mlflow_uri):
    from mlflow import MlflowClient

    _, split, _, local, distributed = both
    client = MlflowClient(mlflow_uri)
    assert set(artifact_paths(client, distributed.run_id)) == set(artifact_paths(client, local.run_id))
    runs = {name: client.get_run(r.run_id) for name, r in (("local", local), ("dask", distributed))}
    assert runs["dask"].data.params == runs["local"].data.params | {"best_iteration": str(distributed.best_iteration)}
    assert set(runs["dask"].data.metrics) == set(runs["local"].data.metrics)
    tags = runs["dask"].data.tags
    assert tags["driftline.training.engine"] == "dask" and tags["driftline.training.dask_workers"] == "2"
    assert runs["local"].data.tags["driftline.training.engine"] == "local"
    inputs = {name: {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs} for name, run in runs.items()}
    for window in ("train", "valid", "test"):
        # the train window was never read here whole, but its dataset says what it holds
        assert inputs["dask"][window].profile == inputs["local"][window].profile
        assert inputs["dask"][window].digest == inputs["local"][window].digest
        assert inputs["dask"][window].schema == inputs["local"][window].schema
    assert '"num_rows": 28000' in inputs["dask"]["train"].profile and split.rows["train"] == 28_000


def test_dask_engine_without_a_scheduler_names_the_fix(both, mlflow_uri):
    spec, split, store, _, _ = both
    dask_spec = spec.model_copy(update={"training": TrainingSpec(engine="dask", conn_id="dask_prod")})
    with pytest.raises(TrainError, match="no Dask scheduler address.*AIRFLOW_CONN_DASK_PROD.*DRIFTLINE_DASK_SCHEDULER"):
        train(dask_spec, split, store, tracking_uri=mlflow_uri)


def test_unreachable_scheduler_is_retryable(both, mlflow_uri, monkeypatch):
    import socket

    from pipeline import train_dask

    spec, split, store, _, _ = both
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    monkeypatch.setattr(train_dask, "CONNECT_TIMEOUT_S", 2)
    dask_spec = spec.model_copy(update={"training": TrainingSpec(engine="dask")})
    with pytest.raises(train_dask.DaskUnavailable, match=f"127.0.0.1:{port}.*start it") as err:
        train(dask_spec, split, store, tracking_uri=mlflow_uri, dask_scheduler=f"tcp://127.0.0.1:{port}")
    assert is_retryable(err.value)


def test_workers_count_and_sample_the_train_window_as_the_local_path_does(both, scheduler):
    import pandas as pd

    from pipeline.features import build_preprocessor
    from pipeline.train_dask import DaskTraining, _fit_preprocessor

    spec, split, store, _, _ = both
    with DaskTraining.open(spec, split, store, scheduler) as cluster:
        sample = cluster.train_sample(1000)
        assert cluster.rows == split.rows["train"] and cluster.n_workers == 2
        assert len(cluster.partition_rows) >= 2 and min(cluster.partition_rows) > 0
        by_counts = _fit_preprocessor(spec, cluster.train.meta[list(spec.model_columns)], cluster.counts, cluster.rows)
    full = store.read_parquet(split.train_uri, columns=list(sample.columns))
    # the local baseline's draw (pipeline.train._fit_baseline) over the whole window
    rows = np.sort(np.random.default_rng(spec.params.seed).choice(len(full), 1000, replace=False))
    pd.testing.assert_frame_equal(sample, full.iloc[rows].reset_index(drop=True))
    local = build_preprocessor(spec, "tree").fit(full[list(spec.model_columns)])
    assert by_counts.named_steps["encode"].categories_ == local.named_steps["encode"].categories_
    pd.testing.assert_frame_equal(by_counts.transform(full.head(500)), local.transform(full.head(500)))


@pytest.mark.parametrize("plan, expected", [
    (None, "dask"),
    ({"kind": "standard"}, "dask"),
    ({"kind": "anchored", "change_point": "2026-01-10"}, "local"),
    ({"kind": "covariate", "change_point": "2026-01-10"}, "local"),
    ({"kind": "covariate", "change_point": None}, "dask"),
], ids=["no-plan", "standard", "anchored", "covariate", "no-change-point"])
def test_weighted_retrains_train_locally(spec, plan, expected):
    from dataclasses import replace

    from pipeline.features import Split
    from pipeline.train import training_engine

    split = Split(train_uri="t", valid_uri="v", test_uri="s", profile_uri="p", windows={}, rows={},
                  data_interval_end="2026-01-22T00:00:00+00:00", source_uri="c", source_sha256="")
    dask_spec = spec.model_copy(update={"training": TrainingSpec(engine="dask")})
    assert training_engine(dask_spec, replace(split, plan=plan)) == expected
    assert training_engine(spec, replace(split, plan=plan)) == "local"


def test_cli_and_environment_give_the_scheduler_outside_airflow(spec, settings):
    from dataclasses import replace

    from pipeline.cli import build_parser
    from pipeline.runenv import RunEnv

    args = build_parser().parse_args(["run", "credit_default", "--date", "2026-01-22",
                                      "--dask-scheduler", "tcp://10.0.0.5:8786"])
    assert args.dask_scheduler == "tcp://10.0.0.5:8786"
    from_env = replace(settings, dask_scheduler="tcp://127.0.0.1:8786")
    assert RunEnv.local(spec, "2026-01-22", settings=from_env).dask_scheduler == "tcp://127.0.0.1:8786"
    assert RunEnv.local(spec, "2026-01-22", settings=from_env,
                        dask_scheduler="tcp://10.0.0.5:8786").dask_scheduler == "tcp://10.0.0.5:8786"
    assert RunEnv.local(spec, "2026-01-22", settings=settings).dask_scheduler is None
    assert Settings.from_env({"DRIFTLINE_DASK_SCHEDULER": " tcp://h:1 "}).dask_scheduler == "tcp://h:1"


def test_regression_on_dask_matches_single_process(tmp_path, mlflow_uri, scheduler):
    from mlflow import MlflowClient
    from xgboost import XGBRegressor

    from pipeline.models import load_model

    spec = load_spec(REPO / "config" / "examples" / "claim_cost.yaml", Settings.from_env()).model_copy(update={
        "label_delay_days": 0, "windows": WindowSpec(train_days=14, valid_days=4, test_days=3)})
    spec = spec.model_copy(update={"params": spec.params.model_copy(update={"n_jobs": 1})})
    store = Store.for_uri(str(tmp_path))
    clean = store.write_parquet(str(tmp_path / "clean.parquet"),
                                demo_days(DEMO_START, 21, rows_per_day=2000, task="regression"))
    split = split_and_profile(spec, clean, store, str(tmp_path / "run"), datetime(2026, 1, 22))
    local = train(spec, split, store, tracking_uri=mlflow_uri)
    distributed = train(spec.model_copy(update={"training": TrainingSpec(engine="dask")}), split, store,
                        tracking_uri=mlflow_uri, dask_scheduler=scheduler)
    assert distributed.metrics["valid_rmse"] == pytest.approx(local.metrics["valid_rmse"], rel=0.01)
    assert distributed.metrics["baseline_valid_rmse"] == pytest.approx(local.metrics["baseline_valid_rmse"])
    model = load_model(distributed.model_uri, expected_sha256=distributed.model_sha256)
    assert isinstance(model.named_steps["model"], XGBRegressor)
    predicted = score(spec, model, store.read_parquet(split.test_uri))
    assert np.isfinite(predicted).all() and predicted.std() > 0
    client = MlflowClient(mlflow_uri)
    assert set(artifact_paths(client, distributed.run_id)) == set(artifact_paths(client, local.run_id))
