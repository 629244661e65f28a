"""The native stack end to end: `python -m stack up` (what `make stack-up` runs), two models at once
on two Celery workers, a worker killed mid-task, then `python -m stack down` leaving no process.

Real components only: PostgreSQL (Airflow metadata, MLflow backend, the source table), Redis,
moto's S3 server, the MLflow tracking server and Airflow with CeleryExecutor, all on loopback.
Sized for CI: 300 demo rows a day, 30 boosting rounds, short windows (the test specs below).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MODELS = {"credit_default": REPO / "config" / "credit_default.yaml",
          "credit_default_pg": REPO / "config" / "examples" / "credit_default_postgres.yaml"}
SEED_DAY, DRIFT_DAY, MONITOR_DAY = "2026-02-01", "2026-02-04", "2026-02-10"


def _test_spec(path: Path) -> dict:
    """The model's spec, small: short windows, few rounds, one drifted day triggers a retrain."""
    spec = yaml.safe_load(path.read_text())
    spec.update(schedule=None, monitor_schedule=None, expectations_dir=str(REPO / "expectations"),
                label_delay_days=0)
    spec["windows"] = {"train_days": 21, "valid_days": 5, "test_days": 5, "monitor_days": 2}
    spec["params"].update(n_estimators=30, early_stopping_rounds=10)
    spec["validation"]["min_rows"] = 100
    spec["promotion"].update(n_bootstrap=50, slice_min_rows=50)
    spec["drift"].update(consecutive_windows=1, cooldown_days=0)
    spec["adaptation"]["min_post_change_rows"] = 300
    return spec


def _free_port() -> int:
    from stack.native import free_port

    return free_port()


@pytest.fixture(scope="module")
def stack():
    """The native stack, started by its CLI; always stopped by its CLI, then checked for leftovers."""
    import psutil

    from stack.native import MARKER, Stack

    # Not under pytest's tmp_path: PostgreSQL runs as the `postgres` user, which must reach it.
    root = Path(tempfile.mkdtemp(prefix="driftline-stack-test-"))
    root.chmod(0o755)
    config = root / "config"
    config.mkdir()
    for model, path in MODELS.items():
        (config / f"{model}.yaml").write_text(yaml.safe_dump(_test_spec(path), sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DRIFTLINE", "MLFLOW", "AWS_"))}
    env.update({MARKER: str(root), "DRIFTLINE_CONFIG_DIR": str(config), "PYTHONPATH": str(REPO),
                "DEMO_START": "2026-01-01", "DEMO_DAYS": "41", "DEMO_DRIFT_DAY": DRIFT_DAY, "DEMO_ROWS_PER_DAY": "300",
                "STACK_TASK_HEARTBEAT_TIMEOUT": "20", "STACK_TASK_QUEUED_TIMEOUT": "45",
                **{name: str(_free_port()) for name in ("POSTGRES_PORT", "REDIS_PORT", "MINIO_API_PORT",
                                                        "MLFLOW_PORT", "AIRFLOW_PORT")}})
    cli = [sys.executable, "-m", "stack"]
    started = time.monotonic()
    try:
        up = subprocess.run([*cli, "up"], env=env, cwd=REPO, capture_output=True, text=True, timeout=420)
        assert up.returncode == 0, f"stack up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        print(f"\nstack up in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield Stack.from_env(env)
    finally:
        down = subprocess.run([*cli, "down"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        left = [p for p in psutil.process_iter() if _carries(p, MARKER, str(root))]
        # The stack's and the tasks' logs outlive it, for a failure's post-mortem.
        kept = Path(tempfile.mkdtemp(prefix="driftline-stack-test-logs-"))
        for logs in (root / "logs", root / "airflow" / "logs"):
            if logs.exists():
                shutil.copytree(logs, kept / logs.relative_to(root), dirs_exist_ok=True)
        print(f"stack logs kept in {kept}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        assert down.returncode == 0, down.stderr[-2000:]
        assert not left, f"processes left after stack down: {[(p.pid, p.name()) for p in left]}"


def _carries(proc, marker: str, root: str) -> bool:
    import psutil

    try:
        return proc.environ().get(marker) == root
    except (psutil.Error, OSError):
        return False


class Api:
    """Airflow's REST API as the stack's admin."""

    def __init__(self, stack):
        self.base = stack.api_url
        body = json.dumps({"username": stack.values["AIRFLOW_ADMIN_USER"],
                           "password": stack.values["AIRFLOW_ADMIN_PASSWORD"]}).encode()
        req = urllib.request.Request(f"{self.base}/auth/token", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.token = json.loads(resp.read())["access_token"]

    def call(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        req = urllib.request.Request(f"{self.base}/api/v2{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> None:
        self.call(f"/dags/{dag_id}/dagRuns", "POST", {"dag_run_id": run_id, "logical_date": None, "conf": conf})

    def run(self, dag_id: str, run_id: str) -> dict | None:
        try:
            return self.call(f"/dags/{dag_id}/dagRuns/{run_id}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.call(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")


def _wait(what: str, check, timeout: float, every: float = 3.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as err:
            last = err
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def _finished(api: Api, dag_id: str, run_id: str):
    run = api.run(dag_id, run_id)
    return run if run and run["state"] in ("success", "failed") else None


def _worker_running(stack, pid: int) -> str | None:
    """The Celery worker (pid file name) whose process tree holds ``pid``."""
    import psutil

    workers = {pid: name for name, pid in stack.running().items() if name.startswith("airflow-worker-")}
    try:
        chain = [psutil.Process(pid), *psutil.Process(pid).parents()]
    except psutil.NoSuchProcess:
        return None
    return next((workers[p.pid] for p in chain if p.pid in workers), None)


def test_two_models_on_celery_survive_a_killed_worker(stack):
    from mlflow import MlflowClient

    from pipeline import registry
    from pipeline.config import Settings, load_spec

    api = Api(stack)
    dags = [f"{kind}__{m}" for m in MODELS for kind in ("retrain", "monitor")]
    _wait("the four DAGs", lambda: {d["dag_id"] for d in api.call("/dags?limit=100")["dags"]} >= set(dags), 180)
    for dag_id in dags:
        api.call(f"/dags/{dag_id}", "PATCH", {"is_paused": False})

    # 1. First champions, both models at once; the worker running a `train` is killed mid-task.
    for model in MODELS:
        api.trigger(f"retrain__{model}", "seed", {"as_of_date": SEED_DAY})

    def training():
        for model in MODELS:
            ti = api.task(f"retrain__{model}", "seed", "train")
            if ti["state"] == "running" and ti.get("pid"):
                worker = _worker_running(stack, ti["pid"])
                if worker:
                    return model, worker
        return None

    killed_model, killed = _wait("a running train task", training, 300, every=1)
    os.killpg(stack.running()[killed], signal.SIGKILL)
    survivor = next(n for n in stack.running() if n.startswith("airflow-worker-") and n != killed)
    for model in MODELS:
        run = _wait(f"retrain__{model} seed", lambda m=model: _finished(api, f"retrain__{m}", "seed"), 600)
        assert run["state"] == "success", run
    train = api.task(f"retrain__{killed_model}", "seed", "train")
    assert train["state"] == "success" and train["try_number"] >= 2, train
    assert killed not in stack.running()
    assert f"dag_id='retrain__{killed_model}'" in (stack.logs / f"{survivor}.log").read_text(errors="replace") \
        or "retrain__" + killed_model in (stack.logs / f"{survivor}.log").read_text(errors="replace")

    # 2. Each monitor sees the drift and its trigger runs the retrain on the remaining worker.
    for model in MODELS:
        api.trigger(f"monitor__{model}", "drift_check", {"as_of_date": MONITOR_DAY})
    for model in MODELS:
        run = _wait(f"monitor__{model}", lambda m=model: _finished(api, f"monitor__{m}", "drift_check"), 600)
        assert run["state"] == "success", run
        assert api.task(f"monitor__{model}", "drift_check", "trigger_retrain")["state"] == "success", \
            f"monitor__{model} did not trigger a retrain"
        drift = _wait(f"the drift retrain of {model}",
                      lambda m=model: _finished(api, f"retrain__{m}", "drift__drift_check"), 600)
        assert drift["state"] == "success", drift
        assert drift["conf"]["trigger"] == "drift"

    # 3. MLflow links resolve on the tracking server; artifacts are in S3; the champion alias moved
    # exactly once per model: the seed's first champion, though its `train` ran twice (the drift
    # retrain's candidate loses to it on this seeded data: vs_champion and slice gates).
    settings = Settings.from_env({**stack.driftline_env()})
    client = MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)
    s3 = stack.s3_client()
    for model in MODELS:
        links = api.call(f"/dags/retrain__{model}/dagRuns/seed/taskInstances/train/links")["extra_links"]
        run_id = links["MLflow run"].rstrip("/").rsplit("/", 1)[-1]
        with urllib.request.urlopen(f"{stack.mlflow_url}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=30) as r:
            mlflow_run = json.loads(r.read())["run"]
        assert mlflow_run["info"]["status"] == "FINISHED"
        assert client.list_artifacts(run_id), f"run {run_id} of {model} has no artifacts"
        spec = load_spec(stack.config_dir / f"{model}.yaml", settings)
        moves = registry.history(client, spec)
        promoted = _promoted_runs(s3, model)
        assert len(moves) == len(promoted) == 1, (moves, promoted)
        assert f"/runs/{SEED_DAY}/" in promoted[0], promoted
        assert registry.get_champion(client, spec) is not None
    mlflow_objects = s3.list_objects_v2(Bucket="mlflow").get("KeyCount", 0)
    driftline_objects = s3.list_objects_v2(Bucket="artifacts", Prefix="driftline/").get("KeyCount", 0)
    assert mlflow_objects > 0 and driftline_objects > 0


def _promoted_runs(s3, model: str) -> list[str]:
    """Decision records of ``model``'s retrain runs in s3://artifacts that say the champion moved."""
    promoted = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="artifacts", Prefix=f"driftline/{model}/runs/")
    for page in pages:
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/decision.json"):
                record = json.loads(s3.get_object(Bucket="artifacts", Key=obj["Key"])["Body"].read())
                if record.get("status") == "promoted":
                    promoted.append(obj["Key"])
    return promoted
