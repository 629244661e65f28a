"""The whole retrain run (pipeline.retrain.run_all, the same steps the DAG tasks call) on the
other two kinds of storage: a Postgres source, and an S3 lake with S3 artifacts (the compose
stack's layout), each against a real server on loopback and a real MLflow store."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from pipeline import retrain
from pipeline.demo import DemoOptions, generate
from pipeline.runenv import RunEnv
from pipeline.storage import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AS_OF = "2026-02-12"
DEMO = DemoOptions(rows_per_day=600)


def _spec(settings, repo_root, **source):
    import yaml

    from pipeline.config import parse_spec

    data = yaml.safe_load((repo_root / "config" / "credit_default.yaml").read_text())
    data["source"] = source
    data["promotion"]["min_lift_over_baseline"] = -1.0  # these tests are about storage, not model quality
    return parse_spec(data, settings=settings)


def _run(env):
    report = retrain.run_all(env)
    record = env.store.read_json(report["decision_uri"])
    return report, record


def test_postgres_sourced_run(settings, repo_root, postgres_uri, mlflow_uri, tmp_path):
    generate(None, date(2026, 1, 1), 42, DEMO, pg_uri=postgres_uri, pg_table="public.credit_runs_pg")
    spec = _spec(settings, repo_root, kind="postgres", table="public.credit_runs_pg", conn_id="postgres_default")
    settings = replace(settings, mlflow_tracking_uri=mlflow_uri)
    spec = spec.model_copy(update={"registered_model_name": "credit_default_pg_run"})
    env = RunEnv.local(spec, AS_OF, settings=settings, pg_uri=postgres_uri, trigger={"kind": "manual", "run_id": "pg"})
    report, record = _run(env)
    assert report["status"] == "promoted", record["reasons"]
    assert record["evidence"]["rows"] == 42 * 600
    assert "postgres" in env.store.read_json(record["evidence"]["snapshot"].replace("snapshot.parquet", "snapshot.json"))["source"]


def test_s3_lake_and_s3_artifacts_run(settings, repo_root, s3_client, s3_bucket, mlflow_uri):
    lake = f"s3://{s3_bucket}/lake"
    generate(lake, date(2026, 1, 1), 42, DEMO, store=Store.for_uri(lake, s3_client))
    spec = _spec(settings, repo_root, kind="lake", uri=f"{lake}/credit_default", conn_id="aws_default")
    spec = spec.model_copy(update={"registered_model_name": "credit_default_s3_run"})
    settings = replace(settings, artifact_root=f"s3://{s3_bucket}/artifacts", mlflow_tracking_uri=mlflow_uri)
    env = RunEnv.local(spec, AS_OF, settings=settings, artifact_s3_client=s3_client, source_s3_client=s3_client,
                       trigger={"kind": "manual", "run_id": "s3"})
    report, record = _run(env)
    assert report["status"] == "promoted", record["reasons"]
    assert report["decision_uri"] == f"s3://{s3_bucket}/artifacts/credit_default/runs/{AS_OF}/decision.json"
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="artifacts/")["Contents"]}
    for name in ("snapshot.parquet", "validation.json", "quarantine.parquet", "train.parquet", "profile.json",
                 "evaluation.json", "decision.json", "data_docs/index.html"):
        assert f"artifacts/credit_default/runs/{AS_OF}/{name}" in keys, name
