"""Build a :class:`pipeline.runenv.RunEnv` from the Airflow task context.

This is the only place that turns Airflow concepts (connections, params, dag_run) into the plain
values ``pipeline/`` takes: the spec (with the run's window overrides), the as-of instant, the
artifact store, source clients from connections, and who/what triggered the run.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

TRIGGER_KINDS = {"scheduled": "schedule", "manual": "manual", "backfill": "backfill", "asset_triggered": "asset"}


def as_of_from_context(context: Any) -> datetime:
    """Midnight UTC of the run's data-interval end (a run never reads data at or after it).

    A nightly run at 00:00 reads through the previous day; a manual trigger at 14:35 reads the
    same, so a partial day never enters a model. The ``as_of_date`` param overrides it.
    """
    params = context.get("params") or {}
    override = params.get("as_of_date")
    if override:
        day = datetime.strptime(str(override), "%Y-%m-%d")
        return day.replace(tzinfo=timezone.utc)
    dag_run = context["dag_run"]
    end = context.get("data_interval_end") or context.get("logical_date") or dag_run.run_after
    end = end.astimezone(timezone.utc)
    return datetime(end.year, end.month, end.day, tzinfo=timezone.utc)


def run_id_from_context(context: Any) -> str:
    """The run's artifact identity: the DAG run's start (to the millisecond) plus a hash of its
    dag id, run id and clear number -- the same for every task and retry of one DAG run, new when
    the run is cleared and run again (so the earlier attempt's records stay)."""
    from pipeline.artifacts import new_run_id

    dag_run = context["dag_run"]
    started = getattr(dag_run, "start_date", None) or getattr(dag_run, "run_after", None)
    salt = f"{dag_run.dag_id}/{dag_run.run_id}/{getattr(dag_run, 'clear_number', 0) or 0}"
    return new_run_id(started, salt=salt)


def trigger_from_context(context: Any) -> dict[str, Any]:
    """What started this run: schedule / manual / backfill / asset / drift, by whom, and why."""
    dag_run = context["dag_run"]
    conf = dict(dag_run.conf or {})
    params = context.get("params") or {}
    run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
    kind = "drift" if conf.get("trigger") == "drift" else TRIGGER_KINDS.get(run_type, run_type)
    trigger = {
        "kind": kind,
        "run_type": run_type,
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "by": getattr(dag_run, "triggering_user_name", None) or conf.get("requested_by"),
        "reason": conf.get("reason") or params.get("reason") or None,
        "report_uri": conf.get("report_uri"),
        "monitor_run_id": conf.get("monitor_run_id"),
    }
    if kind == "drift":
        # The monitor's request says where the change began and how to adapt (pipeline.retraining).
        trigger.update({k: conf[k] for k in ("change_point", "mode", "expected_loss") if conf.get(k) is not None})
        if conf.get("kind"):
            trigger["retrain_kind"] = conf["kind"]
    return trigger


def _window_overrides(params: dict[str, Any]) -> dict[str, int]:
    return {k: int(params[k]) for k in ("train_days", "valid_days", "test_days") if params.get(k)}


def run_env(model: str, context: Any | None = None) -> Any:
    """The :class:`pipeline.runenv.RunEnv` of the current task.

    Connections: an ``s3://`` artifact root or lake uses the spec's AWS connection
    (``artifacts_conn_id`` / ``source.conn_id``) through ``S3Hook``; a Postgres source uses
    ``PostgresHook`` on ``source.conn_id`` (default ``postgres_default``); a spec that trains on
    Dask (``training.engine: dask``) gets its scheduler address from ``training.conn_id``.
    """
    from airflow.sdk import get_current_context

    from pipeline.config import Settings, find_spec
    from pipeline.runenv import RunEnv
    from pipeline.storage import is_s3

    context = context or get_current_context()
    params = dict(context.get("params") or {})
    settings = Settings.from_env()
    spec = find_spec(model, settings)
    overrides = _window_overrides(params)
    if overrides:
        spec = spec.model_copy(update={"windows": spec.windows.model_copy(update=overrides)})

    artifact_s3 = _s3_client(spec.artifacts_conn_id) if is_s3(settings.artifact_root) else None
    source_s3 = pg_uri = None
    if spec.source.kind == "lake" and is_s3(spec.source.uri or ""):
        source_s3 = _s3_client(spec.source.conn_id or spec.artifacts_conn_id)
    elif spec.source.kind == "postgres":
        pg_uri = _postgres_uri(spec.source.conn_id or "postgres_default")

    dask_scheduler = dask_address(spec.training.conn_id) if spec.training.engine == "dask" else None

    trigger = trigger_from_context(context)
    ti = context.get("ti")
    lineage = {
        "driftline.trigger": trigger["kind"],
        "airflow.dag_id": trigger["dag_id"],
        "airflow.run_id": trigger["run_id"],
        "airflow.run_type": trigger["run_type"],
    }
    if ti is not None:
        lineage["airflow.try_number"] = str(getattr(ti, "try_number", ""))
    return RunEnv(
        spec=spec,
        settings=settings,
        as_of=as_of_from_context(context),
        run_id=run_id_from_context(context),
        artifact_s3_client=artifact_s3,
        source_s3_client=source_s3,
        pg_uri=pg_uri,
        trigger=trigger,
        lineage=lineage,
        dry_run=bool(params.get("dry_run", False)),
        force_promote=bool(params.get("force_promote", False)),
        reason=str(params.get("reason") or "") or None,
        dask_scheduler=dask_scheduler,
    )


def run_step(model: str, step: Callable[..., Any], *args: Any) -> Any:
    """Run ``step(env, *args)`` for the current task and return its result as XCom-ready JSON.

    The task body imports the step function and passes it by reference, so a reader (and a
    debugger) goes straight from the DAG to the code. A typed record is returned as its dict.
    A :class:`pipeline.errors.DriftlineError` (bad data, a failed gate check, a registry
    conflict) fails the task without retries -- retrying cannot fix it; one that ``skips_run``
    ("no champion yet", "no data for the date yet") skips the task and says so in the run note, and
    :class:`pipeline.errors.StepSkipped` (this step has nothing to do) skips only the task. A
    retryable one (:class:`pipeline.errors.RetryableError`: storage, source or tracking I/O, a
    lease another run holds) and anything else (a timeout) propagate and get the task's retries,
    with the secrets of their message redacted.

    The run's outcome line (the run note, :mod:`driftline_airflow.notes`) is pushed here: a
    result's ``headline``, the reason of a run-level skip, or the reason of a failure.
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from driftline_airflow.notes import push_note
    from pipeline.logs import configure, level_from_env
    from pipeline.redact import install_log_redaction

    context = get_current_context()
    level, verbose = level_from_env()
    configure(level, verbose or bool((context.get("params") or {}).get("verbose")))
    install_log_redaction()
    try:
        result = call_step(run_env(model, context), step, *args)
    except AirflowSkipException as err:
        if getattr(err, "skips_run", False):
            push_note(context, f"skipped: {err}")
        raise
    except AirflowFailException as err:
        push_note(context, getattr(err, "headline", None) or f"failed at {context['ti'].task_id}: {err}")
        raise
    if isinstance(result, dict) and result.get("headline"):
        push_note(context, result["headline"])
    return result


def call_step(env: Any, step: Callable[..., Any], *args: Any) -> Any:
    """``step(env, *args)`` with pipeline errors mapped to Airflow's outcomes (see :func:`run_step`).

    A failure keeps the error's one-line ``headline`` (redacted) for the run note; a skip says
    whether it skips the run (``skips_run``) or only this step."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipeline.artifacts import Record
    from pipeline.errors import DriftlineError, StepSkipped, is_retryable
    from pipeline.redact import redact

    try:
        result = step(env, *args)
    except DriftlineError as err:
        if err.skips_run or isinstance(err, StepSkipped):
            skip = AirflowSkipException(redact(str(err)))
            skip.skips_run = err.skips_run
            raise skip from err
        if is_retryable(err):
            raise RetryableTaskError(redact(f"{type(err).__name__}: {err}")) from None
        failure = AirflowFailException(redact(f"{type(err).__name__}: {err}"))
        failure.headline = redact(err.headline) if err.headline else None
        raise failure from None
    return result.to_dict() if isinstance(result, Record) else result


class RetryableTaskError(RuntimeError):
    """A retryable pipeline error, re-raised as a plain error so Airflow retries the task."""


def _s3_client(conn_id: str) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


def dask_address(conn_id: str) -> str | None:
    """The Dask scheduler address of connection ``conn_id``: its host as given when that is
    already an address (``tcp://...``, ``tls://...``), else ``tcp://<host>:<port or 8786>``
    (e.g. ``AIRFLOW_CONN_DASK_DEFAULT='generic://dask-scheduler:8786'``). ``None`` when the
    connection does not exist: every task of the model builds its RunEnv, but only training
    needs the scheduler, and it fails naming the connection to set."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    host = (conn.host or "").strip()
    if not host:
        return None
    return host if "://" in host else f"tcp://{host}:{conn.port or 8786}"


def _postgres_uri(conn_id: str) -> str:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    uri = PostgresHook(postgres_conn_id=conn_id).get_uri()
    return "postgresql://" + uri.split("://", 1)[1] if "://" in uri else uri
