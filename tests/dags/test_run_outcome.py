"""What a user sees of a run in Airflow without opening a log: the run note, the failure
notification, and a green "skipped" run for a date whose data has not landed yet.

Real dag.test() runs of retrain__<model> on a small demo lake (30 days from 2026-01-01); neither
run trains, so the module stays quick. The webhook is a real HTTP server on loopback.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.dags.homes import driftline_home

pytestmark = [pytest.mark.integration]

MODEL = "credit_default"
DEFAULT_CONF = {"dry_run": False, "force_promote": False, "reason": "", "as_of_date": None,
                "train_days": None, "valid_days": None, "test_days": None}


@pytest.fixture(scope="module")
def home(tmp_path_factory, airflow_db):
    with driftline_home(tmp_path_factory.mktemp("driftline-outcome"), 30, rows_per_day=200) as settings:
        yield settings


@pytest.fixture(scope="module")
def retrain_dag(home, dagbag):
    return dagbag.dags[f"retrain__{MODEL}"]


@pytest.fixture
def webhook(monkeypatch):
    """A loopback HTTP receiver named by the connection ``driftline_notify``; yields the JSON
    bodies it received."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append({"path": self.path, "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AIRFLOW_CONN_DRIFTLINE_NOTIFY", f"http://127.0.0.1:{server.server_port}/hooks/driftline")
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def run(dag, day: str, **conf):
    dr = dag.test(logical_date=datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc),
                  run_conf={**DEFAULT_CONF, **conf})
    return dr


def state_and_note(dr) -> tuple[str, str | None, dict[str, str]]:
    """The run's state, its note as the UI shows it, and its task states -- read back from the
    metadata DB."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = session.query(DagRun).filter(DagRun.dag_id == dr.dag_id, DagRun.run_id == dr.run_id).one()
        tasks = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in stored.get_task_instances(session=session)}
        return str(getattr(stored.state, "value", stored.state)), stored.note, tasks


def test_a_date_with_no_data_yet_is_skipped_with_a_note_not_failed(home, retrain_dag):
    """Unpausing the DAG starts a run for today, long after the lake's newest partition."""
    state, note, tasks = state_and_note(run(retrain_dag, "2026-03-15"))
    assert state == "success", note
    assert tasks["ingest"] == "skipped" and tasks["train"] == "skipped" and tasks["report"] == "success"
    assert note.startswith("skipped: no data for 2026-03-14 yet; the newest partition of")
    assert "is 2026-01-30" in note and "as_of_date 2026-01-31" in note
    from tests.conftest import latest_record

    record = latest_record(home.artifact_root, MODEL, "2026-03-15")
    assert record["status"] == "skipped" and record["failed_step"] is None


def test_a_failed_run_notes_why_and_posts_to_the_webhook(home, retrain_dag, webhook):
    """A window before the lake's first day is a gap, not data still to come: the run fails."""
    dr = run(retrain_dag, "2025-06-01")
    state, note, tasks = state_and_note(dr)
    assert state == "failed" and tasks["ingest"] == "failed"
    assert note.startswith("failed at ingest: EmptyWindow: ") and "no rows with" in note, note
    assert len(webhook) == 1, webhook
    posted = webhook[0]
    assert posted["path"] == "/hooks/driftline"
    assert posted["body"]["dag_id"] == f"retrain__{MODEL}" and posted["body"]["run_id"] == dr.run_id
    body = posted["body"]
    assert body["state"] == "failed" and body["logical_date"].startswith("2025-06-01")
    assert body["text"].startswith(f"driftline: retrain__{MODEL} run {dr.run_id} failed -- failed at ")
    assert body["failed_task"] in {"ingest", "report"} and body["log_url"].startswith("http")
    # dag.test() builds the callback's dag_run without the note; the scheduler -> DAG processor
    # path passes the note, and then it is the payload's reason.
    assert body["note"] in (None, note)


def test_without_a_connection_a_failure_is_one_log_line(home, retrain_dag, caplog):
    assert "AIRFLOW_CONN_DRIFTLINE_NOTIFY" not in os.environ
    with caplog.at_level("ERROR", logger="driftline_airflow.notify"):
        dr = run(retrain_dag, "2025-06-02")
    lines = [r.getMessage() for r in caplog.records if r.name == "driftline_airflow.notify"]
    assert len(lines) == 1 and lines[0].startswith(f"driftline: retrain__{MODEL} run {dr.run_id} failed -- failed at ")
    assert "set connection 'driftline_notify'" in lines[0]


@pytest.mark.parametrize("state,latest,failed,expected", [
    ("success", "promoted: PROMOTE candidate v3", [], "promoted: PROMOTE candidate v3"),
    ("success", None, [], None),
    ("failed", "failed at validate: ValidationFailed: 12 % nulls", ["validate", "report"],
     "failed at validate: ValidationFailed: 12 % nulls"),
    # a timeout or retries running out push no line: the note names the task, then what was known
    ("failed", "drift, retrain requested: shift", ["trigger_retrain"],
     "failed at trigger_retrain (see its log); before that: drift, retrain requested: shift"),
    ("failed", None, [], "failed at a task (see its log)"),
])
def test_the_note_of_a_finished_run(state, latest, failed, expected):
    from driftline_airflow.notes import compose

    assert compose(state, latest, failed) == expected


def test_a_note_fits_the_column_on_one_line():
    from driftline_airflow.notes import MAX_NOTE, clip

    assert clip("a\n  b") == "a b"
    assert len(clip("x" * 5000)) == MAX_NOTE
