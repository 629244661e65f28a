"""Scaling by configuration: the same retrain DAG code reading a Postgres source and an S3 lake,
writing artifacts to S3, with every client built from Airflow connections (PostgresHook, S3Hook
on AIRFLOW_CONN_* variables) -- real PostgreSQL and S3 API servers on loopback."""

from __future__ import annotations

import json
import runpy
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

from pipeline.demo import DemoOptions, generate
from pipeline.storage import Store
from tests.conftest import latest_record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONF = {"dry_run": False, "force_promote": True, "reason": "connection test", "as_of_date": None,
        "train_days": None, "valid_days": None, "test_days": None}
DEMO = DemoOptions(rows_per_day=500)


def _configure(tmp_path, monkeypatch, name: str, **spec_updates) -> None:
    spec = yaml.safe_load((REPO / "config" / "credit_default.yaml").read_text())
    spec.update(name=name, **spec_updates)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", str(tmp_path / "config"))
    for var in ("MLFLOW_TRACKING_URI", "DRIFTLINE_ARTIFACT_ROOT", "DRIFTLINE_LAKE_ROOT"):
        monkeypatch.delenv(var, raising=False)


def _run(name: str) -> str:
    dags = runpy.run_path(str(REPO / "dags" / "retrain.py"))
    dr = dags[f"retrain__{name}"].test(logical_date=datetime(2026, 2, 12, tzinfo=timezone.utc), run_conf=CONF)
    return str(getattr(dr.state, "value", dr.state))


def test_postgres_source_through_a_postgres_connection(airflow_db, tmp_path, monkeypatch, postgres_uri):
    generate(None, date(2026, 1, 1), 42, DEMO, pg_uri=postgres_uri, pg_table="public.credit_conn_pg")
    _configure(tmp_path, monkeypatch, "credit_conn_pg",
               source={"kind": "postgres", "table": "public.credit_conn_pg", "conn_id": "driftline_source"})
    monkeypatch.setenv("AIRFLOW_CONN_DRIFTLINE_SOURCE", postgres_uri)

    assert _run("credit_conn_pg") == "success"
    record = latest_record(tmp_path / "home" / "artifacts", "credit_conn_pg", "2026-02-12")
    run_dir = Path(record["decision_uri"]).parent
    assert record["status"] == "promoted" and record["evidence"]["rows"] == 42 * 500
    assert "postgres" in json.loads((run_dir / "snapshot.json").read_text())["source"]


def test_s3_lake_and_artifacts_through_an_aws_connection(airflow_db, tmp_path, monkeypatch, s3_endpoint,
                                                         s3_client, s3_bucket):
    lake = f"s3://{s3_bucket}/lake"
    generate(lake, date(2026, 1, 1), 42, DEMO, store=Store.for_uri(lake, s3_client))
    _configure(tmp_path, monkeypatch, "credit_conn_s3", artifacts_conn_id="driftline_s3",
               source={"kind": "lake", "uri": f"{lake}/credit_default", "conn_id": "driftline_s3"})
    monkeypatch.setenv("DRIFTLINE_ARTIFACT_ROOT", f"s3://{s3_bucket}/artifacts")
    monkeypatch.setenv("AIRFLOW_CONN_DRIFTLINE_S3", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": s3_endpoint}}))

    assert _run("credit_conn_s3") == "success"
    record = latest_record(f"s3://{s3_bucket}/artifacts", "credit_conn_s3", "2026-02-12", s3_client=s3_client)
    run_key = record["decision_uri"][len(f"s3://{s3_bucket}/"):].rsplit("/", 1)[0]
    assert run_key.startswith("artifacts/credit_conn_s3/runs/2026-02-12/")
    assert record["status"] == "promoted" and record["evidence"]["rows"] == 42 * 500
    assert record["evidence"]["snapshot"] == f"s3://{s3_bucket}/{run_key}/snapshot.parquet"
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="artifacts/")["Contents"]}
    for name in ("snapshot.parquet", "validation.json", "quarantine.parquet", "clean.parquet", "train.parquet",
                 "profile.json", "evaluation.json", "decision.json", "data_docs/index.html"):
        assert f"{run_key}/{name}" in keys, name
    assert "artifacts/credit_conn_s3/runs/2026-02-12/latest.json" in keys


def test_dask_training_through_a_dask_connection(airflow_db, tmp_path, monkeypatch, s3_endpoint, s3_client,
                                                 s3_bucket):
    """The retrain DAG with ``training.engine: dask``: the scheduler address comes from an Airflow
    connection, the workers of a real two-worker cluster read the S3 windows with their own
    credentials, and evaluation and promotion take the model as they take a local one."""
    from distributed import LocalCluster

    lake = f"s3://{s3_bucket}/lake"
    generate(lake, date(2026, 1, 1), 42, DEMO, store=Store.for_uri(lake, s3_client))
    _configure(tmp_path, monkeypatch, "credit_conn_dask", artifacts_conn_id="driftline_s3",
               source={"kind": "lake", "uri": f"{lake}/credit_default", "conn_id": "driftline_s3"},
               training={"engine": "dask", "conn_id": "driftline_dask"})
    monkeypatch.setenv("DRIFTLINE_ARTIFACT_ROOT", f"s3://{s3_bucket}/artifacts")
    monkeypatch.setenv("AIRFLOW_CONN_DRIFTLINE_S3", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": s3_endpoint}}))
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(var, value)  # the workers' own credentials (started below, they inherit them)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        host, port = cluster.scheduler_address.rsplit("/", 1)[1].rsplit(":", 1)
        monkeypatch.setenv("AIRFLOW_CONN_DRIFTLINE_DASK", f"generic://{host}:{port}")
        assert _run("credit_conn_dask") == "success"

    record = latest_record(f"s3://{s3_bucket}/artifacts", "credit_conn_dask", "2026-02-12", s3_client=s3_client)
    assert record["status"] == "promoted" and record["evidence"]["rows"] == 42 * 500
    from mlflow import MlflowClient

    from pipeline.config import Settings

    run = MlflowClient(Settings.from_env().mlflow_tracking_uri).get_run(record["candidate_run_id"])
    assert run.data.tags["driftline.training.engine"] == "dask"
    assert run.data.tags["driftline.training.dask_workers"] == "2"


@pytest.mark.parametrize("value, expected", [
    ("generic://dask-scheduler:8790", "tcp://dask-scheduler:8790"),
    ("generic://dask-scheduler", "tcp://dask-scheduler:8786"),
    (json.dumps({"conn_type": "generic", "host": "tls://dask-scheduler:8786"}), "tls://dask-scheduler:8786"),
    (json.dumps({"conn_type": "generic"}), None),
    (None, None),
], ids=["host-port", "default-port", "address-as-host", "no-host", "no-connection"])
def test_dask_scheduler_address_from_a_connection(monkeypatch, value, expected):
    """A missing or hostless connection gives no address: tasks that do not train still run, and
    the train step fails naming the connection to set (tests/integration/test_dask_training.py)."""
    from driftline_airflow.runtime import dask_address

    if value is None:
        monkeypatch.delenv("AIRFLOW_CONN_DRIFTLINE_DASK_PROBE", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_CONN_DRIFTLINE_DASK_PROBE", value)
    assert dask_address("driftline_dask_probe") == expected
