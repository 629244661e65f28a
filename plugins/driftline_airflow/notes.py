"""The run note: every driftline DAG run ends with one line in the Airflow UI saying how it ended.

Airflow 3 tasks cannot write the metadata DB, and the Task SDK / Execution API offers no call to
set a DAG run's note (only a run being *triggered* can be given one). So the two halves live
where each is allowed:

* a task states its outcome with :func:`push_note` -- an XCom under :data:`NOTE_KEY` (the
  retrain's ``report``: promoted / not promoted / dry run / failed / skipped and the decision
  record's reason; the monitor's ``measure``: drift, retrain requested / held by cooldown / no
  retrain needed; any task that skips or fails the run: why);
* this module is also an Airflow *listener* (registered by the driftline plugin). When a run of a
  driftline DAG finishes, the component that finishes it -- the scheduler, the API server when a
  person marks the run, ``dag.test()`` / ``airflow dags test`` in-process -- calls
  :func:`on_dag_run_success` / :func:`on_dag_run_failed` inside its own DB session, which copies
  the newest note XCom onto ``DagRun.note`` (flushed in that session; its owner commits). A failed run without a failure note (a timeout, a
  retryable error that ran out of retries) gets "failed at <task>" from the task states.

A note a person wrote (it has a user) is never overwritten; a note driftline wrote earlier (a
cleared and re-run run) is replaced. Notes are cut to the 1,000 characters the column holds.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

#: The XCom key a task's outcome line is pushed under.
NOTE_KEY = "driftline_run_note"
#: DAG ids whose runs get a note (the DAG factories' prefixes).
DAG_PREFIXES = ("retrain__", "monitor__")
MAX_NOTE = 1000


def push_note(context: Any, text: str) -> None:
    """From a running task: state the run's outcome in one line (the newest one wins)."""
    context["ti"].xcom_push(key=NOTE_KEY, value=clip(text))


def clip(text: str) -> str:
    """``text`` on one line, cut to the note column's 1,000 characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_NOTE else line[: MAX_NOTE - 1] + "…"


def compose(state: str, latest: str | None, failed_tasks: list[str]) -> str | None:
    """The note for a finished run from the newest pushed line and the failed tasks (pure).

    A successful run shows its line as is. A failed run shows its line when that line already
    says it failed, else ``failed at <tasks> (see the task log)``, followed by what was known
    before the failure.
    """
    if state != "failed":
        return clip(latest) if latest else None
    if latest and latest.startswith("failed"):
        return clip(latest)
    where = ", ".join(failed_tasks) or "a task"
    return clip(f"failed at {where} (see its log)" + (f"; before that: {latest}" if latest else ""))


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _write_note(dag_run, "success")


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _write_note(dag_run, "failed")


def _write_note(dag_run: Any, state: str) -> None:
    if not str(getattr(dag_run, "dag_id", "")).startswith(DAG_PREFIXES):
        return
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        # dag.test() hands over a run detached from its session; the thread's scoped session is
        # the one it commits right after (a second connection would wait on its write lock).
        from airflow import settings

        session = settings.Session()
        dag_run = session.get(type(dag_run), dag_run.id)
        if dag_run is None:
            return
    existing = dag_run.dag_run_note
    if existing is not None and existing.user_id:
        return  # a person's note
    text = compose(state, _latest_note(session, dag_run), _failed_tasks(session, dag_run) if state == "failed" else [])
    if not text:
        return
    if existing is None:
        from airflow.models.dagrun import DagRunNote

        dag_run.dag_run_note = DagRunNote(content=text)
    else:
        existing.content = text
    session.flush()


def _latest_note(session: Any, dag_run: Any) -> str | None:
    from airflow.models.xcom import XComModel

    row = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, key=NOTE_KEY,
                                             limit=1)).first()
    if row is None:
        return None
    value = XComModel.deserialize_value(row)
    return str(value) if value else None


def _failed_tasks(session: Any, dag_run: Any) -> list[str]:
    from airflow.utils.state import TaskInstanceState

    return sorted(ti.task_id for ti in dag_run.get_task_instances(state=[TaskInstanceState.FAILED], session=session))
