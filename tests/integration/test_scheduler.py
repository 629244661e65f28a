"""driftline under a real Airflow: `airflow standalone` (scheduler, DAG processor, API server,
triggerer; LocalExecutor on SQLite) started and stopped by this test, on loopback.

It shows what dag.test() cannot: the monitor's TriggerDagRunOperator actually starting
retrain__<model>, which runs to completion with the drift trigger recorded; the operator links
resolving through the REST API; the trigger's asset event recorded for lineage; and
`airflow backfill create` over three dates executing runs
that each read only their own past and never move the champion back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MODEL = "credit_default"
DRIFT_DAY = date(2026, 3, 2)
BACKFILL = ("2026-02-13", "2026-02-14", "2026-02-15")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str) -> dict:
    with urllib.request.urlopen(f"{base}{path}", timeout=30) as resp:
        return json.loads(resp.read())


def _wait(what: str, check, timeout: float, every: float = 5.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as err:  # the API server is still starting
            last = err
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Demo lake, a seeded champion and one monitor day of history, then airflow standalone."""
    root = tmp_path_factory.mktemp("scheduler")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DRIFTLINE", "MLFLOW_TRACKING"))},
        "DRIFTLINE_HOME": str(root / "home"),
        "DRIFTLINE_CONFIG_DIR": str(REPO / "config"),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1200",
        "OMP_WAIT_POLICY": "PASSIVE",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    (root / "airflow" / "plugins").mkdir(parents=True)
    seed = (
        "from datetime import date\n"
        "from pipeline import monitor, retrain\n"
        "from pipeline.config import Settings, find_spec\n"
        "from pipeline.demo import DemoOptions, generate\n"
        "from pipeline.runenv import RunEnv\n"
        "s = Settings.from_env(); spec = find_spec('credit_default', s)\n"
        f"generate(s.lake_root, date(2026, 1, 1), 64, DemoOptions(drift_day=date({DRIFT_DAY.year}, {DRIFT_DAY.month}, {DRIFT_DAY.day})))\n"
        "retrain.run_all(RunEnv.local(spec, '2026-02-19', settings=s, trigger={'kind': 'manual', 'run_id': 'seed'}))\n"
        "env = RunEnv.local(spec, '2026-03-03', settings=s, trigger={'kind': 'schedule', 'run_id': 'seed-monitor'})\n"
        "c = monitor.champion_step(env)\n"
        "monitor.measure_step(env, c, monitor.validate_step(env, monitor.ingest_step(env, c)))\n"
    )
    subprocess.run([sys.executable, "-c", seed], env=env, check=True, timeout=900, capture_output=True)

    log = open(root / "standalone.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait("the API server and both DAGs",
              lambda: {d["dag_id"] for d in _get(base, "/api/v2/dags")["dags"]} >= {f"retrain__{MODEL}", f"monitor__{MODEL}"},
              timeout=300)
        yield {"env": env, "base": base, "root": root, "settings_home": root / "home"}
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    """Stop the standalone's children (scheduler, dag-processor, api-server, triggerer), then it."""
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        children = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in children:
        p.terminate()
    psutil.wait_procs(children, timeout=30)
    for p in children:
        if p.is_running():
            p.kill()
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _airflow(stack, *args: str) -> str:
    """Run the airflow CLI against the stack. The SQLite metadata DB admits one writer: while the
    scheduler writes, a CLI insert can meet "database is locked" -- that attempt is retried."""
    for attempt in range(4):
        out = subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=stack["env"],
                             capture_output=True, text=True, timeout=300)
        if out.returncode == 0 or "database is locked" not in out.stderr or attempt == 3:
            break
        time.sleep(5)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _runs(stack, dag_id: str) -> list[dict]:
    return _get(stack["base"], f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def _finished(stack, dag_id: str, run_id: str):
    run = next((r for r in _runs(stack, dag_id) if r["dag_run_id"] == run_id), None)
    return run if run and run["state"] in ("success", "failed") else None


def _decision(stack, kind: str, day: str) -> dict:
    from tests.conftest import latest_record

    return latest_record(stack["settings_home"] / "artifacts", MODEL, day, kind)


def test_monitor_trigger_runs_the_retrain_to_completion(stack):
    conf = json.dumps({"as_of_date": "2026-03-04"})
    _airflow(stack, "dags", "trigger", f"monitor__{MODEL}", "--run-id", "monitor_drift_day_2", "--conf", conf)
    monitor_run = _wait("the monitor run", lambda: _finished(stack, f"monitor__{MODEL}", "monitor_drift_day_2"), 900)
    assert monitor_run["state"] == "success"
    assert _decision(stack, "monitor", "2026-03-04")["retrain"] is True
    # The scheduler's listener set each run's note from its outcome (driftline_airflow.notes).
    assert monitor_run["note"].startswith("drift, retrain requested: "), monitor_run["note"]

    retrain_id = "drift__monitor_drift_day_2"
    retrain_run = _wait("the triggered retrain", lambda: _finished(stack, f"retrain__{MODEL}", retrain_id), 1200)
    assert retrain_run["state"] == "success", retrain_run
    assert retrain_run["conf"]["trigger"] == "drift"
    record = _decision(stack, "runs", "2026-03-04")
    assert record["trigger"]["kind"] == "drift" and record["trigger"]["report_uri"].endswith("report.html")
    assert record["status"] in ("promoted", "not_promoted")
    assert retrain_run["note"].startswith(("promoted: PROMOTE ", "not promoted: REJECT ")), retrain_run["note"]

    from mlflow import MlflowClient

    uri = f"sqlite:///{stack['settings_home'] / 'mlflow.db'}"
    tags = MlflowClient(tracking_uri=uri).get_run(record["candidate_run_id"]).data.tags
    assert tags["driftline.trigger"] == "drift" and tags["driftline.trigger_reason"]

    links = _get(stack["base"], f"/api/v2/dags/retrain__{MODEL}/dagRuns/{retrain_id}/taskInstances/train/links")["extra_links"]
    assert links["MLflow run"].endswith(f"/runs/{record['candidate_run_id']}"), links
    links = _get(stack["base"], f"/api/v2/dags/retrain__{MODEL}/dagRuns/{retrain_id}/taskInstances/promote/links")["extra_links"]
    assert links["Model version"].endswith(f"/versions/{record['candidate_version']}"), links

    events = _get(stack["base"], f"/api/v2/assets/events?source_dag_id=monitor__{MODEL}")["asset_events"]
    assert any(e["source_run_id"] == "monitor_drift_day_2" and e["source_task_id"] == "trigger_retrain"
               for e in events), events


def test_backfill_of_three_dates_never_moves_the_champion_back(stack):
    from mlflow import MlflowClient

    from pipeline import registry
    from pipeline.config import load_spec, Settings

    settings = Settings.from_env({"DRIFTLINE_HOME": str(stack["settings_home"])})
    spec = load_spec(REPO / "config" / f"{MODEL}.yaml", settings)
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    before = registry.get_champion(client, spec).version

    _airflow(stack, "backfill", "create", "--dag-id", f"retrain__{MODEL}", "--from-date", BACKFILL[0],
             "--to-date", BACKFILL[-1], "--max-active-runs", "1")

    def done():
        runs = [r for r in _runs(stack, f"retrain__{MODEL}") if r["run_type"] == "backfill"]
        return runs if len(runs) == len(BACKFILL) and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = _wait("three backfill runs", done, 1800, every=10)
    assert {r["state"] for r in runs} == {"success"}, runs
    for day in BACKFILL:
        record = _decision(stack, "runs", day)
        assert record["trigger"]["kind"] == "backfill"
        assert record["evidence"]["rows"] > 0 and record["status"] == "not_promoted", record["reasons"]
        assert next(g for g in record["gates"] if g["name"] == "freshness")["passed"] is False
    assert registry.get_champion(client, spec).version == before
