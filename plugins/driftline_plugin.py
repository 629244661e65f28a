"""The driftline Airflow plugin: Jinja macros for MLflow URLs, and the listener that sets each
driftline DAG run's note (:mod:`driftline_airflow.notes`).

Operator links are deliberately *not* registered here: in Airflow 3 they are declared on the
operator class (``driftline_airflow.links``) and computed on the worker.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from driftline_airflow import notes


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    """URL of an MLflow run in the configured MLflow UI."""
    from pipeline.config import Settings

    return Settings.from_env().mlflow_run_url(experiment_id, run_id)


def model_version_url(name: str, version: str) -> str:
    """URL of a registered model version in the configured MLflow UI."""
    from pipeline.config import Settings

    return Settings.from_env().model_version_url(name, version)


def artifact_prefix(model: str, day: str) -> str:
    """Where the retrain runs of ``model`` for ``day`` (YYYY-MM-DD) write their artifacts, one
    folder per run id, with ``latest.json`` naming the last completed one."""
    from pipeline.artifacts import date_prefix
    from pipeline.config import Settings

    return date_prefix(Settings.from_env().artifact_root, model, day)


class DriftlinePlugin(AirflowPlugin):
    name = "driftline"
    macros = [mlflow_run_url, model_version_url, artifact_prefix]
    listeners = [notes]
