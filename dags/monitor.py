"""
### monitor__&lt;model&gt;: measure drift against the champion and decide whether to retrain

One DAG per model spec in `$DRIFTLINE_CONFIG_DIR`:

**champion**: load the champion and its reference profile from the registry (no champion → the
run is skipped with a log line, not failed) → **ingest_window**: the spec's monitor window
`[as_of - monitor_days, as_of)` plus the window whose labels have arrived (`label_delay_days`
earlier) → **validate_window** with the model's suite (bad data fails the run as bad data, never
counted as drift) → **measure**: per-feature drift (PSI/KS, Jensen-Shannon/chi-squared, null
rates; Benjamini-Hochberg), importance-weighted drift, prediction drift and realised
performance, then the retraining rule (hysteresis, cooldown, minimum new rows, budget); writes
`decision.json`, `drift.json` and `report.html` and an MLflow run in `<model>-monitoring` →
**should_retrain** → **trigger_retrain**: starts `retrain__<model>` with the reason and report
URI in its conf and emits an asset event.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, Param, dag, task
from driftline_airflow.links import mlflow_task
from driftline_airflow.notify import RunFailureNotifier
from driftline_airflow.runtime import run_step
from driftline_airflow.specs import broken_spec_dag, model_specs, spec_start_date

IO_RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True,
              "max_retry_delay": timedelta(minutes=10)}


def build_monitor_dag(model: str, schedule: str | None, tags: list[str], start_date: Any = None):
    start_date = start_date or pendulum.datetime(2000, 1, 1, tz="UTC")  # any date of the data: tests, backfills
    @dag(
        dag_id=f"monitor__{model}",
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        tags=["driftline", "monitor", *tags],
        doc_md=__doc__,
        render_template_as_native_obj=True,
        # The outcome is logged line by line and set as the run note (driftline_airflow.notes),
        # not dumped as the return value.
        default_args={"owner": "driftline", "execution_timeout": timedelta(minutes=20),
                      "show_return_value_in_logs": False},
        on_failure_callback=RunFailureNotifier(),
        params={
            "verbose": Param(False, type="boolean",
                             description="Also log Great Expectations', MLflow's and boto's INFO messages."),
            "as_of_date": Param(None, type=["null", "string"], format="date", description="Judge the window before this day (UTC)."),
        },
    )
    def monitor_dag():
        @task(**IO_RETRIES)
        def champion() -> dict:
            from pipeline.monitor import champion_step

            return run_step(model, champion_step)

        @task(**IO_RETRIES)
        def ingest_window(champ: dict) -> dict:
            from pipeline.monitor import ingest_step

            return run_step(model, ingest_step, champ)

        @task(**IO_RETRIES)
        def validate_window(window: dict) -> dict:
            from pipeline.monitor import validate_step

            return run_step(model, validate_step, window)

        @mlflow_task(**IO_RETRIES)
        def measure(champ: dict, validated: dict) -> dict:
            from pipeline.monitor import measure_step

            return run_step(model, measure_step, champ, validated)

        @task.short_circuit()
        def should_retrain(decision: dict) -> bool:
            return bool(decision["retrain"])

        trigger = TriggerDagRunOperator(
            task_id="trigger_retrain",
            trigger_dag_id=f"retrain__{model}",
            trigger_run_id="drift__{{ run_id }}",
            conf="{{ ti.xcom_pull(task_ids='measure')['trigger_conf'] }}",
            skip_when_already_exists=True,
            outlets=[Asset(f"driftline_{model}_retrain_request")],
        )

        champ = champion()
        decision = measure(champ, validate_window(ingest_window(champ)))
        should_retrain(decision) >> trigger

    return monitor_dag()


_specs, _broken = model_specs()
for _spec in _specs:
    globals()[f"monitor__{_spec.name}"] = build_monitor_dag(
        _spec.name, _spec.monitor_schedule, [_spec.name, _spec.task], spec_start_date(_spec))
for _bad in _broken:
    globals()[f"monitor__{_bad.stem}"] = broken_spec_dag("monitor", _bad)
