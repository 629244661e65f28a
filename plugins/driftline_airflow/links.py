"""Operator links from task instances to the MLflow run and the registered model version.

Airflow 3 computes an operator link on the worker when the task ends and stores it as XCom
(key ``_link_<ClassName>``); the API server only reads that XCom. So the links are declared on
the operator class here -- registering them in the plugin as well makes the API server call
them itself and its links endpoint answers 500 (see shared FIELD-NOTES).

A task opts in with ``@mlflow_task`` and returns a mapping carrying ``mlflow_run_url``,
``model_version_url`` and/or ``dashboard_url``; a missing key yields no link (an empty string,
which the UI hides).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import BaseOperatorLink
from airflow.sdk.bases.decorator import task_decorator_factory


class _ReturnValueLink(BaseOperatorLink):
    field: str = ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key="return_value")
        if isinstance(value, dict):
            return str(value.get(self.field) or "")
        return ""


class MlflowRunLink(_ReturnValueLink):
    """The MLflow run this task logged to."""

    name = "MLflow run"
    field = "mlflow_run_url"


class ModelVersionLink(_ReturnValueLink):
    """The registered model version this task created or promoted."""

    name = "Model version"
    field = "model_version_url"


class DashboardLink(_ReturnValueLink):
    """The model-health dashboard the monitor attached to its MLflow run."""

    name = "Model health dashboard"
    field = "dashboard_url"


class MlflowLinkedOperator(_PythonDecoratedOperator):
    """A TaskFlow Python operator that carries the MLflow links."""

    custom_operator_name = "@mlflow_task"
    operator_extra_links = (MlflowRunLink(), ModelVersionLink(), DashboardLink())


def mlflow_task(python_callable: Any = None, multiple_outputs: bool | None = None, **kwargs: Any) -> Any:
    """Like ``@task``, with "MLflow run" and "Model version" links on the task instance."""
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=MlflowLinkedOperator,
        **kwargs,
    )
