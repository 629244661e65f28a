"""Run, in this process, the DAG runs a monitor queued -- what a scheduler would do -- for the
embedded demo, so it leaves no queued run behind.

``airflow dags test monitor__<model> <day>`` runs the monitor without a scheduler; its
``trigger_retrain`` task still creates a *queued* ``retrain__<model>`` run (with the drift conf).
Nothing runs it until a scheduler starts -- then it would run a second time what the demo already
ran, and register another version. ``python -m driftline_airflow.queued retrain__<model>`` runs
each queued run of the DAG with ``dag.test()`` on the queued run's own logical date and conf:
``dag.test()`` replaces the run of that logical date, so the queued run becomes the executed one
(its run id becomes ``manual__...``; its conf, and so its trigger, reason and window anchor, are
kept).

Exit status: 0 when every run it ran succeeded, 1 when one failed, 2 when there was nothing
queued and ``--expect`` was given. Needs the metadata DB of the ``dags test`` that queued the
runs (same ``AIRFLOW_HOME``), never one a live scheduler uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def queued_runs(dag_id: str) -> list[dict[str, Any]]:
    """``{"run_id", "logical_date", "conf"}`` of the queued runs of ``dag_id``, oldest first."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.state == DagRunState.QUEUED)
                               .order_by(DagRun.run_after)).all()
        return [{"run_id": r.run_id, "logical_date": r.logical_date, "conf": dict(r.conf or {})} for r in runs]


def run_queued(dag: Any, conf: dict | None = None) -> list[tuple[str, str, str]]:
    """Run the queued runs of ``dag`` with ``dag.test()`` -- only those whose conf equals
    ``conf`` when it is given (the one a monitor run just queued: a metadata DB can hold runs
    queued by earlier demos, which are not this demo's story); ``[(queued run id, executed run
    id, state)]``.

    Raises:
        ValueError: a queued run has no logical date (``dag.test()`` could not replace it);
            run it from a scheduler instead.
    """
    done = []
    for queued in queued_runs(dag.dag_id):
        if conf is not None and _canonical(queued["conf"]) != _canonical(conf):
            continue
        if queued["logical_date"] is None:
            raise ValueError(f"queued run {queued['run_id']} of {dag.dag_id} has no logical date: dag.test() "
                             "cannot take it over; start a scheduler (make up) to run it")
        executed = dag.test(logical_date=queued["logical_date"], run_conf=queued["conf"])
        state = str(getattr(executed.state, "value", executed.state))
        log.info("ran queued %s of %s as %s: %s", queued["run_id"], dag.dag_id, executed.run_id, state)
        done.append((queued["run_id"], executed.run_id, state))
    return done


def _canonical(conf: dict) -> str:
    return json.dumps(conf, sort_keys=True, default=str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driftline_airflow.queued", description=__doc__.split("\n\n")[0])
    parser.add_argument("dag_id", help="the DAG whose queued runs to run, e.g. retrain__credit_default")
    parser.add_argument("--expect", action="store_true", help="exit 2 when nothing is queued")
    parser.add_argument("--conf", help="run only the queued runs with this conf (JSON), e.g. the trigger conf "
                                       "`python -m pipeline show <model> --monitor --date D --trigger-conf` prints")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=conf.get("core", "dags_folder")).dags.get(args.dag_id)
    if dag is None:
        print(f"no DAG {args.dag_id!r} in {conf.get('core', 'dags_folder')}", file=sys.stderr)
        return 1
    done = run_queued(dag, json.loads(args.conf) if args.conf else None)
    if not done:
        print(f"no queued run of {args.dag_id}", file=sys.stderr)
        return 2 if args.expect else 0
    for queued, executed, state in done:
        print(f"{args.dag_id}: queued {queued} ran as {executed}: {state}")
    return 0 if all(state == "success" for _, _, state in done) else 1


if __name__ == "__main__":
    sys.exit(main())
