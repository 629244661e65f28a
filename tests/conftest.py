"""Shared fixtures. Servers (PostgreSQL, the S3 API server, MLflow stores) are real and local."""

from __future__ import annotations

import itertools
import os
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

REPO = Path(__file__).resolve().parent.parent
# The repo is not installed into the venv: make `pipeline` and `tests.servers` importable.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEMO_START = date(2026, 1, 1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings rooted in a temp dir (and the environment pointing there for the test)."""
    from pipeline.config import Settings

    home = tmp_path / "home"
    monkeypatch.setenv("DRIFTLINE_HOME", str(home))
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", str(REPO / "config"))
    monkeypatch.delenv("DRIFTLINE_ARTIFACT_ROOT", raising=False)
    monkeypatch.delenv("DRIFTLINE_LAKE_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Settings.from_env()


@pytest.fixture
def spec(settings):
    """The demo model spec, resolved against the temp settings."""
    from pipeline.config import load_spec

    return load_spec(REPO / "config" / "credit_default.yaml", settings)


def demo_days(start: date, days: int, **options):
    """Concatenated demo rows for ``days`` days from ``start``."""
    import pandas as pd

    from pipeline.demo import DemoOptions, generate_day

    opts = DemoOptions(**options)
    return pd.concat([generate_day(start + timedelta(days=i), opts) for i in range(days)], ignore_index=True)


@pytest.fixture(scope="session")
def demo_frame():
    """14 days of clean demo rows (400/day) from 2026-01-01; treat as read-only."""
    return demo_days(DEMO_START, 14, rows_per_day=400)


@pytest.fixture(scope="session")
def mlflow_session_uri(tmp_path_factory) -> str:
    """One SQLite-backed MLflow tracking store for the session (migrations run once)."""
    d = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{d / 'mlflow.db'}"


@pytest.fixture
def mlflow_uri(mlflow_session_uri, monkeypatch) -> str:
    """The session MLflow store, set as the tracking and registry URI for this test."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_session_uri)
    mlflow.set_tracking_uri(mlflow_session_uri)
    mlflow.set_registry_uri(mlflow_session_uri)
    return mlflow_session_uri


@pytest.fixture(scope="session")
def postgres_uri():
    """A throwaway PostgreSQL cluster for the session: ``postgresql://postgres@127.0.0.1:PORT/driftline``.

    Fails (never skips) with the install command when the server binaries are missing.
    """
    from tests.servers import PostgresCluster

    with PostgresCluster() as cluster:
        yield cluster.uri


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3 API server (moto) on 127.0.0.1 for the session; yields its endpoint URL."""
    from tests.servers import S3Server

    with S3Server() as server:
        yield server.endpoint_url


@pytest.fixture
def s3_client(s3_endpoint):
    """A boto3 S3 client for the session's S3 API server."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


_bucket_numbers = itertools.count()


@pytest.fixture
def s3_bucket(s3_client) -> str:
    """A fresh, empty bucket name per test (created on the session's S3 API server)."""
    name = f"driftline-test-{os.getpid()}-{next(_bucket_numbers)}"
    s3_client.create_bucket(Bucket=name)
    return name


def latest_record(artifact_root, model: str, day: str, kind: str = "runs", s3_client=None) -> dict:
    """The decision record of the latest completed run of ``model`` for ``day`` (follows
    ``<kind>/<day>/latest.json``; ``artifact_root`` may be ``s3://``)."""
    from pipeline.artifacts import date_prefix, latest_decision_uri
    from pipeline.storage import Store

    store = Store.for_uri(str(artifact_root), s3_client)
    uri = latest_decision_uri(store, date_prefix(str(artifact_root), model, day, kind))
    assert uri is not None, f"no completed {kind} run of {model} for {day} under {artifact_root}"
    return {**store.read_json(uri), "decision_uri": uri}
