"""monitor__<model> end to end with dag.test(): no champion skips; stable days do not retrain;
covariate drift from 2026-03-02 on features the champion relies on requests an importance-weighted
retrain on its second day (before any post-change label exists), and the trigger queues
retrain__<model> with the change point, mode, reason and report in its conf."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from tests.dags.homes import driftline_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "credit_default"
DRIFT_DAY = date(2026, 3, 2)


@pytest.fixture(scope="module")
def home(tmp_path_factory, airflow_db):
    with driftline_home(tmp_path_factory.mktemp("driftline-monitor"), 64, drift_day=DRIFT_DAY) as settings:
        yield settings


@pytest.fixture(scope="module")
def monitor_dag(home, dagbag):
    return dagbag.dags[f"monitor__{MODEL}"]


def run(dag, day: str):
    """One dag.test() run: its state, task states and the note the Airflow UI shows (from the DB)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    dr = dag.test(logical_date=datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc),
                  run_conf={"as_of_date": None})
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dr.get_task_instances()}
    with create_session() as session:
        note = session.query(DagRun).filter(DagRun.dag_id == dr.dag_id, DagRun.run_id == dr.run_id).one().note
    return str(getattr(dr.state, "value", dr.state)), states, note


def decision(settings, day: str) -> dict:
    from tests.conftest import latest_record

    return latest_record(settings.artifact_root, MODEL, day, "monitor")


def test_no_champion_skips_the_run(home, monitor_dag):
    state, tasks, note = run(monitor_dag, "2026-02-20")
    assert tasks["champion"] == "skipped" and tasks["trigger_retrain"] == "skipped"
    assert state == "success" and note.startswith("skipped: no champion for credit_default yet"), note


def test_stable_then_drift_then_trigger(home, monitor_dag, caplog):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from pipeline import retrain
    from pipeline.config import find_spec
    from pipeline.runenv import RunEnv

    spec = find_spec(MODEL, home)
    retrain.run_all(RunEnv.local(spec, "2026-02-19", settings=home, trigger={"kind": "manual", "run_id": "seed"}))

    for day in ("2026-02-26", "2026-02-27"):
        state, tasks, note = run(monitor_dag, day)
        rec = decision(home, day)
        assert state == "success" and rec["retrain"] is False and rec["signal"] is False, rec["reasons"]
        assert note.startswith("no retrain needed: "), note
        assert tasks["should_retrain"] == "success" and tasks["trigger_retrain"] == "skipped"
        assert (Path(rec["decision_uri"]).parent / "report.html").exists()

    state, tasks, note = run(monitor_dag, "2026-03-03")
    first = decision(home, "2026-03-03")
    assert first["retrain"] is False and first["checks"]["shift"]["value"] == 1, first["reasons"]
    assert "needs drift.consecutive_windows 2 days" in first["reasons"][-1]
    assert note.startswith("drift, no retrain yet: A covariate shift"), note
    assert tasks["trigger_retrain"] == "skipped"

    with caplog.at_level("INFO", logger="pipeline.monitor"):
        state, tasks, note = run(monitor_dag, "2026-03-04")
    second = decision(home, "2026-03-04")
    assert note.startswith("drift, retrain requested: covariate shift since 2026-03-02"), note
    signals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("signal ")]
    drifted = [line for line in signals if line.startswith("signal feature ") and ": DRIFT -- " in line]
    assert drifted and all(" >= " in line for line in drifted), signals  # statistic vs threshold, one a line
    assert any(line.startswith("signal prediction: ") for line in signals), signals
    assert any(line.startswith("signal guard cooldown: pass") for line in signals), signals
    assert second["retrain"] is True and second["kind"] == "shift", second["reasons"]
    assert tasks["trigger_retrain"] == "success"
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == f"retrain__{MODEL}").all()
        conf = [r.conf for r in runs if r.run_id.startswith("drift__")]
    assert conf and conf[0]["trigger"] == "drift" and conf[0]["as_of_date"] == "2026-03-04"
    assert conf[0]["change_point"] == "2026-03-02" and conf[0]["mode"] == "covariate"
    assert conf[0]["report_uri"].endswith("report.html") and conf[0]["reason"]

    board = (Path(second["decision_uri"]).parent / "dashboard.html").read_text()
    assert "data-kind='retrain_request' data-day='2026-03-04'" in board
    from airflow.models.xcom import XComModel

    with create_session() as session:
        links = [x.value for x in session.query(XComModel).filter(
            XComModel.dag_id == f"monitor__{MODEL}", XComModel.task_id == "measure",
            XComModel.key == "_link_DashboardLink")]
    assert links and all("/artifacts/dashboard.html" in str(v) for v in links), links

    from mlflow import MlflowClient

    client = MlflowClient(home.mlflow_tracking_uri)
    for name in (MODEL, f"{MODEL}-monitoring"):  # both open on their runs in the MLflow UI, not on GenAI
        assert client.get_experiment_by_name(name).tags["mlflow.experimentKind"] == "custom_model_development"

    # The last report ranks the drifted features first, monitors derived features and shows each
    # feature's history over the days monitored before it; no internal note reaches it.
    page = (Path(second["decision_uri"]).parent / "report.html").read_text()
    names = re.findall(r"<tr class='(drift)?'><td>([a-z_0-9]+)", page)
    flags = [flag == "drift" for flag, _ in names]
    assert flags == sorted(flags, reverse=True) and flags[0], "drifted features first"
    assert "derived: date_part of event_time" in page and "not mapped" not in page
    income = re.search(r"<td>income</td>.*?</tr>", page, re.S).group(0)
    for day in ("2026-02-26", "2026-02-27", "2026-03-03", "2026-03-04"):
        assert re.search(rf"{day}: \d", income), day
    assert "2026-02-28: n/a" in income

    # MLflow's chart view: one trend run, one point per monitored date in date order, linked
    # from each day's record beside that day's own run.
    experiment = client.get_experiment_by_name(f"{MODEL}-monitoring")
    [trend] = client.search_runs([experiment.experiment_id], filter_string="tags.`driftline.trend` = 'daily'")
    days = ["2026-02-26", "2026-02-27", "2026-03-03", "2026-03-04"]
    history = client.get_metric_history(trend.info.run_id, "weighted_drift")
    assert [m.step for m in history] == [(date.fromisoformat(d) - date(2000, 1, 1)).days for d in days]
    assert [m.value for m in history] == [decision(home, d)["feature_drift"]["weighted"] for d in days]
    assert second["links"]["mlflow_trend_run"].endswith(trend.info.run_id)
    day_run = client.get_run(second["links"]["mlflow_run"].rstrip("/").split("/")[-1])
    assert day_run.data.tags["driftline.trend_run_id"] == trend.info.run_id

def test_the_demo_runs_the_queued_retrain_and_leaves_nothing_queued(home, monitor_dag, dagbag):
    """`make run`'s sequence: the monitor's trigger under dags test queued retrain__<model>; the
    demo runs that queued run (driftline_airflow.queued) instead of a second, separate run, so a
    later unpause has nothing left to run again."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from driftline_airflow.queued import queued_runs, run_queued

    retrain_id = f"retrain__{MODEL}"
    queued = queued_runs(retrain_id)
    assert [q["conf"]["trigger"] for q in queued] == ["drift"]  # left by the test above
    # Only the run with the monitor's trigger conf is run (not, say, one an earlier demo queued).
    assert run_queued(dagbag.dags[retrain_id], conf={**queued[0]["conf"], "reason": "another"}) == []
    done = run_queued(dagbag.dags[retrain_id], conf=queued[0]["conf"])
    assert len(done) == 1 and done[0][0].startswith("drift__") and done[0][2] == "success", done
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == retrain_id).all()
        assert [r.run_id for r in runs if r.state in (DagRunState.QUEUED, DagRunState.RUNNING)] == []
        executed = next(r for r in runs if r.run_id == done[0][1])
        assert executed.conf["trigger"] == "drift" and executed.conf["change_point"] == "2026-03-02"
        assert executed.note.split(":")[0] in ("promoted", "not promoted"), executed.note
    assert queued_runs(retrain_id) == []
    from tests.conftest import latest_record

    assert latest_record(home.artifact_root, MODEL, "2026-03-04")["trigger"]["kind"] == "drift"
