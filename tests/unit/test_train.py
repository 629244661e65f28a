"""Training: candidate vs baseline on real splits, tracked in a real SQLite MLflow store."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import WindowSpec, parse_spec
from pipeline.features import split_and_profile
from pipeline.storage import Store
from pipeline.train import TrainError, TrainResult, _raw_importance, train
from tests.conftest import DEMO_START, demo_days

BINARY_PLOTS = {"plots/roc.svg", "plots/pr.svg", "plots/calibration.svg", "plots/confusion_matrix.svg",
                "plots/feature_importance.svg"}


def quick(spec, *, days=(14, 4, 3), **params):
    """The spec with short windows, labels known at once and a single XGBoost thread (2 threads
    crawl on a busy 2-core box)."""
    train_days, valid_days, test_days = days
    return spec.model_copy(update={
        "label_delay_days": 0,
        "windows": WindowSpec(train_days=train_days, valid_days=valid_days, test_days=test_days),
        "params": spec.params.model_copy(update={"n_jobs": 1, **params}),
    })


def make_split(tmp_path, spec, df, end):
    store = Store.for_uri(str(tmp_path))
    clean = store.write_parquet(str(tmp_path / "clean.parquet"), df)
    return store, split_and_profile(spec, clean, store, str(tmp_path / "run"), end)


def artifact_paths(client, run_id, path=None):
    out = []
    for item in client.list_artifacts(run_id, path):
        out.extend(artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return out


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory, mlflow_session_uri):
    """One training on 21 demo days (~1000 rows/day) with the prior baseline."""
    from pipeline.config import Settings, load_spec

    tmp = tmp_path_factory.mktemp("binary")
    spec = quick(load_spec(Path(__file__).parents[2] / "config" / "credit_default.yaml", Settings.from_env()),
                 baseline="prior", n_estimators=200, learning_rate=0.1, early_stopping_rounds=20)
    df = demo_days(DEMO_START, 21, rows_per_day=1000)
    store, split = make_split(tmp, spec, df, datetime(2026, 1, 22))
    result = train(spec, split, store, tracking_uri=mlflow_session_uri,
                   lineage={"airflow.dag_id": "retrain__credit_default", "airflow.run_id": "manual__1",
                            "driftline.snapshot_hash": "abc123"})
    return spec, split, store, result, df


def test_candidate_beats_prior_baseline_on_demo_data(binary_run):
    _, split, _, result, _ = binary_run
    m = result.metrics
    assert split.rows == {"train": 14_000, "valid": 4_000, "test": 3_000, "recent": 0}
    assert m["baseline_valid_roc_auc"] == pytest.approx(0.5)
    assert m["valid_roc_auc"] > 0.8 > m["baseline_valid_roc_auc"]
    assert m["valid_log_loss"] < m["baseline_valid_log_loss"]
    assert m["valid_brier"] < m["baseline_valid_brier"]
    assert m["valid_pr_auc"] > m["baseline_valid_pr_auc"]
    assert m["baseline_valid_f1"] == 0.0 < m["valid_f1"]
    assert 0 < result.best_iteration < 200
    assert result.train_seconds > 0 and result.timings["log_models"] > 0
    assert TrainResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_run_records_params_metrics_tags_and_inputs(binary_run, mlflow_uri):
    from mlflow import MlflowClient

    spec, split, _, result, _ = binary_run
    client = MlflowClient(mlflow_uri)
    run = client.get_run(result.run_id)
    # "<model> <date> <trigger>", with " #n" when the session's store trained that date before.
    assert re.fullmatch(r"credit_default 2026-01-22 manual( #\d+)?", run.info.run_name)
    assert run.info.run_name == result.run_name
    experiment = client.get_experiment(result.experiment_id)
    assert experiment.name == spec.name
    # the MLflow UI opens it on training runs, not on its GenAI overview
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    p = run.data.params
    assert p["params.max_depth"] == str(spec.params.max_depth) and p["params.baseline"] == "prior"
    assert p["best_iteration"] == str(result.best_iteration)
    assert p["window.train.start"] == "2026-01-01T00:00:00+00:00" and p["window.test.end"] == split.data_interval_end
    assert (p["rows.train"], p["rows.valid"], p["rows.test"]) == ("14000", "4000", "3000")
    for name, value in result.metrics.items():
        assert run.data.metrics[name] == pytest.approx(value)
    tags = run.data.tags
    assert tags["driftline.model"] == "credit_default"
    assert tags["driftline.data_interval_end"] == "2026-01-22T00:00:00+00:00"
    assert tags["driftline.snapshot_hash"] == "abc123"
    assert tags["airflow.dag_id"] == "retrain__credit_default" and tags["airflow.run_id"] == "manual__1"
    assert len(tags.get("driftline.git_sha", "0" * 40)) == 40
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "valid", "test"}
    digests = {d.dataset.digest for d in inputs.values()}
    assert len(digests) == 3 and all(digests)
    from mlflow.types.utils import _infer_schema

    # The logged schema is that of the columns training reads: the model's inputs, target and timestamp.
    spec = binary_run[0]
    train_frame = binary_run[2].read_parquet(split.train_uri, columns=[*spec.model_columns, spec.target_column,
                                                                       spec.timestamp_column])
    assert json.loads(inputs["train"].dataset.schema)["mlflow_colspec"] == _infer_schema(train_frame).to_dict()
    assert spec.target_column in train_frame.columns and "application_id" not in train_frame.columns
    assert json.loads(inputs["train"].dataset.profile)["num_rows"] == 14_000
    for name, d in inputs.items():
        assert json.loads(d.dataset.source)["uri"] == split.window_uri(name)
        assert {t.key: t.value for t in d.tags}["mlflow.data.context"] == {
            "train": "training", "valid": "validation", "test": "testing"}[name]


def test_run_artifacts_and_feature_importance(binary_run, mlflow_uri, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    spec, split, store, result, _ = binary_run
    client = MlflowClient(mlflow_uri)
    paths = set(artifact_paths(client, result.run_id))
    assert BINARY_PLOTS | {"profile.json", "feature_importance.json"} <= paths
    profile = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="profile.json", dst_path=str(tmp_path))).read_text())
    assert profile == store.read_json(split.profile_uri)
    logged = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/feature_importance.json")
    assert logged == pytest.approx(result.feature_importance)
    importance = result.feature_importance
    assert sum(importance.values()) == pytest.approx(1.0)
    assert set(importance) == set(spec.model_columns) and min(importance.values()) >= 0
    assert max(importance, key=importance.get) == "credit_score"
    assert importance["channel"] > 0 and importance["event_time"] > 0


def test_logged_models_load_and_score_unseen_categories(binary_run, mlflow_uri):
    import mlflow

    spec, split, store, result, _ = binary_run
    test = store.read_parquet(split.test_uri)[list(spec.model_columns)].head(200).copy()
    test.loc[:49, "channel"] = "partner_api"
    from pipeline.models import load_model

    candidate = load_model(result.model_uri, expected_sha256=result.model_sha256)
    proba = candidate.predict_proba(test)[:, 1]
    assert proba.shape == (200,) and np.all((proba > 0) & (proba < 1)) and proba.std() > 0.01
    baseline = load_model(result.baseline_uri, expected_sha256=result.baseline_sha256)
    assert np.allclose(baseline.predict_proba(test)[:, 1], baseline.predict_proba(test)[0, 1])
    assert mlflow.sklearn.load_model(f"runs:/{result.run_id}/model").predict_proba(test).shape == (200, 2)
    pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    naive = test.assign(event_time=test["event_time"].dt.tz_localize(None))
    np.testing.assert_allclose(np.asarray(pyfunc.predict(naive))[:, 1], proba, rtol=1e-6)
    version = mlflow.register_model(result.model_uri, "train_test_candidate")
    assert int(version.version) >= 1


def test_models_are_stored_without_code_and_load_only_when_they_verify(binary_run, mlflow_uri, tmp_path):
    """Whoever can write the artifact store can make a run fail, not make it run code: the model
    is skops (no pickle), ships no code, and loads only with its recorded digest and trusted types."""

    import mlflow
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from pipeline.models import UnsafeModel, load_model, sha256_of

    _, _, _, result, _ = binary_run
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=result.model_uri, dst_path=str(tmp_path / "m")))
    assert (local / "model.skops").is_file() and not (local / "code").exists()
    assert sha256_of(local / "model.skops") == result.model_sha256

    with pytest.raises(UnsafeModel, match="no recorded sha256"):
        load_model(result.model_uri, expected_sha256=None)
    with pytest.raises(UnsafeModel, match="the artifact was changed after training"):
        load_model(result.model_uri, expected_sha256="0" * 64)

    with mlflow.start_run():
        pickled = mlflow.sklearn.log_model(FunctionTransformer(), name="pickled", serialization_format="cloudpickle",
                                           pip_requirements=[])
        hostile = mlflow.sklearn.log_model(make_pipeline(FunctionTransformer(func=os.getcwd)), name="hostile",
                                           serialization_format="skops", skops_trusted_types=["posix.getcwd"],
                                           pip_requirements=[])
    with pytest.raises(UnsafeModel, match="stored as 'cloudpickle'"):
        load_model(pickled.model_uri, expected_sha256="0" * 64)
    hostile_file = Path(mlflow.artifacts.download_artifacts(artifact_uri=hostile.model_uri,
                                                            dst_path=str(tmp_path / "h"))) / "model.skops"
    with pytest.raises(UnsafeModel, match="types driftline does not trust"):
        load_model(hostile.model_uri, expected_sha256=sha256_of(hostile_file))


def regression_spec():
    return parse_spec({
        "name": "income_estimate", "task": "regression",
        "source": {"kind": "lake", "uri": "/tmp/unused"},
        "timestamp_column": "event_time", "target_column": "income",
        "numeric_features": ["age", "loan_amount", "credit_score", "months_employed", "interest_rate"],
        "categorical_features": ["employment_type", "home_ownership"],
        "derived_features": [{"name": "log_loan", "kind": "log1p", "column": "loan_amount"},
                             {"name": "hour", "kind": "date_part", "column": "event_time", "part": "hour"}],
        "windows": {"train_days": 6, "valid_days": 2, "test_days": 2},
        "params": {"n_estimators": 60, "n_jobs": 1, "baseline": "linear", "early_stopping_rounds": 10},
    })


def test_regression_trains_logs_and_predicts(tmp_path, mlflow_uri):
    import mlflow
    from mlflow import MlflowClient

    spec = regression_spec()
    df = demo_days(DEMO_START, 10, rows_per_day=300)
    store, split = make_split(tmp_path, spec, df, datetime(2026, 1, 11))
    result = train(spec, split, store, tracking_uri=mlflow_uri)
    m = result.metrics
    assert set(m) == {f"{p}{k}" for p in ("valid_", "baseline_valid_") for k in ("rmse", "mae", "r2")}
    assert m["valid_rmse"] > 0 and m["valid_mae"] > 0 and np.isfinite(m["baseline_valid_r2"])
    client = MlflowClient(mlflow_uri)
    paths = set(artifact_paths(client, result.run_id))
    assert {"plots/residuals.svg", "plots/feature_importance.svg", "feature_importance.json"} <= paths
    assert not paths & (BINARY_PLOTS - {"plots/feature_importance.svg"})
    experiment = client.get_experiment(result.experiment_id)
    assert experiment.name == "income_estimate"
    db_dir = Path(mlflow_uri[len("sqlite:///"):]).parent
    assert experiment.artifact_location == (db_dir / "mlartifacts" / "income_estimate").resolve().as_uri()
    tags = client.get_run(result.run_id).data.tags
    assert tags["driftline.snapshot_hash"] == split.source_sha256 and tags["driftline.source_uri"] == split.source_uri
    assert sum(result.feature_importance.values()) == pytest.approx(1.0)
    assert "log_loan" not in result.feature_importance and "loan_amount" in result.feature_importance
    test = store.read_parquet(split.test_uri)[list(spec.model_columns)]
    for uri in (result.model_uri, result.baseline_uri):
        predicted = mlflow.sklearn.load_model(uri).predict(test)
        assert predicted.shape == (len(test),) and np.isfinite(predicted).all()


@pytest.mark.parametrize("case, mutate, message", [
    ("missing target", lambda df: df.assign(defaulted=df["defaulted"].astype("Float64").mask(df.index % 50 == 0)),
     r"train window: \d+ of \d+ rows have no numeric 'defaulted'"),
    ("one class", lambda df: df.assign(defaulted=0), r"must hold both classes 0 and 1, found \[0\]"),
    ("labels outside 0/1", lambda df: df.assign(defaulted=df["defaulted"] * 2), r"found \[0, 2\]"),
    ("no target column", lambda df: df.drop(columns=["defaulted"]), "train window has no target column 'defaulted'"),
])
def test_unusable_targets_raise_before_tracking(tmp_path, spec, case, mutate, message):
    spec = quick(spec, days=(2, 1, 1))
    df = mutate(demo_days(DEMO_START, 4, rows_per_day=30))
    store, split = make_split(tmp_path, spec, df, datetime(2026, 1, 5))
    with pytest.raises(TrainError, match=message) as err:
        train(spec, split, store, tracking_uri=f"sqlite:///{tmp_path / 'never.db'}")
    assert split.train_uri in str(err.value)
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize("gains, expected", [
    ({"income": ("income", 2.0), "loan_to_income": ("loan_to_income", 2.0)},
     {"income": 0.75, "loan_amount": 0.25}),
    ({"channel=online": ("channel", 1.0), "channel=branch": ("channel", 1.0), "age": ("age", 2.0)},
     {"channel": 0.5, "age": 0.5}),
    ({"application_hour": ("application_hour", 3.0), "log_income": ("log_income", 1.0)},
     {"event_time": 0.75, "income": 0.25}),
])
def test_importance_is_attributed_to_raw_inputs(spec, gains, expected):
    importance = _raw_importance(spec, gains)
    assert sum(importance.values()) == pytest.approx(1.0)
    assert {k: v for k, v in importance.items() if v} == pytest.approx(expected)
    assert set(importance) == set(spec.model_columns)


def test_importance_without_any_split_is_uniform(spec):
    importance = _raw_importance(spec, {"age": ("age", 0.0)})
    assert list(importance.values()) == pytest.approx([1 / len(spec.model_columns)] * len(spec.model_columns))


def test_an_existing_experiment_is_marked_for_model_development(mlflow_uri):
    """Experiments created before driftline set the kind get it on the next run."""
    from mlflow import MlflowClient

    from pipeline.train import _ensure_experiment

    client = MlflowClient(mlflow_uri)
    old = client.create_experiment("made_by_hand")
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert _ensure_experiment("made_by_hand", mlflow_uri) == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.parametrize("where", ["before boosting", "while boosting"])
def test_a_failed_fit_ends_its_run_as_failed_and_never_hangs(tmp_path, spec, monkeypatch, where):
    """The side work (baseline, MLflow run) waits for boosting to start; a fit that fails before
    or during boosting must still release it, end the run it opened as FAILED and raise."""
    import threading

    import xgboost as xgb
    from mlflow import MlflowClient

    import pipeline.train as T

    spec = quick(spec, days=(2, 1, 1))
    store, split = make_split(tmp_path, spec, demo_days(DEMO_START, 4, rows_per_day=60), datetime(2026, 1, 5))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if where == "before boosting":
        def broken(*args, **kwargs):
            raise RuntimeError("the encoder broke")
        monkeypatch.setattr(T, "_fit_candidate", broken)
    else:
        class Breaks(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                raise RuntimeError("boosting broke")
        made = T.candidate_estimator
        monkeypatch.setattr(T, "candidate_estimator", lambda s: made(s).set_params(callbacks=[Breaks()]))

    raised: list[BaseException] = []

    def run() -> None:
        try:
            train(spec, split, store, tracking_uri=uri)
        except BaseException as err:  # noqa: BLE001  (collected for the assertion below)
            raised.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=180)
    assert not worker.is_alive(), "training hung after a failed fit"
    assert len(raised) == 1 and "broke" in str(raised[0])
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(spec.name).experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
