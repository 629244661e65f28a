"""
### retrain__&lt;model&gt;: retrain, evaluate and (maybe) promote one model

One DAG per model spec in `$DRIFTLINE_CONFIG_DIR`. Each task calls one stage of `pipeline/`:

**ingest** the spec's window `[as_of - (train+valid+test) days, as_of)` → **validate** it with the
Great Expectations suite (bad rows quarantined; a critical failure fails the run and leaves the
champion untouched) → **split_profile** out-of-time into train/valid/test and profile the
training window → **train** the XGBoost candidate and the baseline (MLflow run) → **evaluate**
candidate, baseline and champion on the same test window and apply the promotion gates →
**promote**: register the candidate, move `champion` by compare-and-set if the gates say so →
**publish_champion**: emit the `driftline_<model>_champion` Asset event -- only when this run moved
the champion (skipped otherwise: dry runs, rejections and backfills emit nothing), its `extra`
naming the model, version, previous version, primary metric and value, date and run →
**report**: write the decision record (`decision.json`, also on the MLflow run) and the version's
description in the registry.

`as_of` is midnight UTC of the run's data-interval end (or the `as_of_date` param). A failing
gate is not a failed run: it ends "not promoted" with its reasons. Backfills recompute history
but never move the champion back to older data (freshness gate).

Params (Trigger DAG w/ config): `dry_run`, `force_promote` + `reason`, `as_of_date`,
`train_days` / `valid_days` / `test_days`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task
from driftline_airflow.links import mlflow_task
from driftline_airflow.notify import RunFailureNotifier
from driftline_airflow.runtime import run_step
from driftline_airflow.specs import broken_spec_dag, model_specs, spec_start_date

# Every task retries I/O (storage, source, tracking store, a lease another run holds); bad data,
# a failed gate or a conflict fails the task at once (AirflowFailException), whatever the retries.
IO_RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True,
              "max_retry_delay": timedelta(minutes=10)}


def build_retrain_dag(model: str, schedule: str | None, tags: list[str], start_date: Any = None):
    start_date = start_date or pendulum.datetime(2000, 1, 1, tz="UTC")  # any date of the data: tests, backfills
    champion_asset = Asset(f"driftline_{model}_champion")

    @dag(
        dag_id=f"retrain__{model}",
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        tags=["driftline", "retrain", *tags],
        doc_md=__doc__,
        render_template_as_native_obj=True,
        # The outcome is logged line by line and set as the run note (driftline_airflow.notes),
        # not dumped as the return value.
        default_args={"owner": "driftline", "execution_timeout": timedelta(minutes=30),
                      "show_return_value_in_logs": False},
        on_failure_callback=RunFailureNotifier(),
        params={
            "dry_run": Param(False, type="boolean", description="Evaluate and register, never move the champion."),
            "force_promote": Param(False, type="boolean", description="Skip gates 2-6 (not validation, not the floor)."),
            "reason": Param(None, type=["null", "string"], maxLength=2000,
                            description="Why (up to 2,000 characters; link a ticket): required with force_promote, "
                                        "which the run enforces; recorded."),
            "verbose": Param(False, type="boolean",
                             description="Also log Great Expectations', MLflow's and boto's INFO messages."),
            "as_of_date": Param(None, type=["null", "string"], format="date", description="Read data before this day (UTC)."),
            "train_days": Param(None, type=["null", "integer"], minimum=1, description="Override the spec's train window."),
            "valid_days": Param(None, type=["null", "integer"], minimum=1, description="Override the valid window."),
            "test_days": Param(None, type=["null", "integer"], minimum=1, description="Override the test window."),
        },
    )
    def retrain_dag():
        @task(**IO_RETRIES)
        def ingest() -> dict:
            from pipeline.retrain import ingest_step

            return run_step(model, ingest_step)

        @task(execution_timeout=timedelta(minutes=20), **IO_RETRIES)
        def validate(snapshot: dict) -> dict:
            from pipeline.retrain import validate_step

            return run_step(model, validate_step, snapshot)

        # GX's import and page rendering (~3 s) run beside split and train, not before them.
        @task(**IO_RETRIES)
        def data_docs(validation: dict) -> dict:
            from pipeline.retrain import data_docs_step

            return run_step(model, data_docs_step, validation)

        @task(**IO_RETRIES)
        def split_profile(validation: dict) -> dict:
            from pipeline.retrain import split_step

            return run_step(model, split_step, validation)

        @mlflow_task(execution_timeout=timedelta(hours=2), **IO_RETRIES)
        def train(split: dict) -> dict:
            from pipeline.retrain import train_step

            return run_step(model, train_step, split)

        @mlflow_task(**IO_RETRIES)
        def evaluate(split: dict, trained: dict) -> dict:
            from pipeline.retrain import evaluate_step

            return run_step(model, evaluate_step, split, trained)

        @mlflow_task(**IO_RETRIES)
        def promote(evaluation: dict) -> dict:
            from pipeline.retrain import promote_step

            return run_step(model, promote_step, evaluation)

        # A task's outlets emit an event whenever it succeeds: this one is skipped unless the
        # champion moved, so assets scheduled on the champion fire only for a new champion.
        @task(outlets=[champion_asset], **IO_RETRIES)
        def publish_champion(promotion: dict) -> dict:
            from airflow.sdk import get_current_context

            from pipeline.retrain import champion_event_step

            event = run_step(model, champion_event_step, promotion)
            get_current_context()["outlet_events"][champion_asset].extra = event
            return event

        @mlflow_task(trigger_rule="all_done", **IO_RETRIES)
        def report() -> dict:
            from pipeline.retrain import report_step

            return run_step(model, report_step)

        validated = validate(ingest())
        data_docs(validated)
        split = split_profile(validated)
        promoted = promote(evaluate(split, train(split)))
        publish_champion(promoted)
        promoted >> report()

    return retrain_dag()


_specs, _broken = model_specs()
for _spec in _specs:
    globals()[f"retrain__{_spec.name}"] = build_retrain_dag(
        _spec.name, _spec.schedule, [_spec.name, _spec.task], spec_start_date(_spec))
for _bad in _broken:
    globals()[f"retrain__{_bad.stem}"] = broken_spec_dag("retrain", _bad)
