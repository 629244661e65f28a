"""Fault injection: kill -9 at named points, a tracking store that is locked mid-run, an S3 API
that goes away mid-run, two runs of one date at once. After each, the next ordinary run must
leave the registry consistent and every earlier record readable -- with no human step.

Invariants checked after every fault:
* the champion alias equals the ``to_version`` of the last completed history entry;
* every registered version has a reachable decision record;
* rollback walks back through the champions;
* the first run's decision record (and its latest pointer) is untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, latest_record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "credit_fault"
FIRST, KILLED, NEXT = "2026-01-20", "2026-01-21", "2026-01-22"


def _spec_text() -> str:
    spec = yaml.safe_load((REPO / "config" / "credit_default.yaml").read_text())
    spec.update(name=MODEL, label_delay_days=2, expectations_suite="credit_default",
                source={**spec["source"], "uri": "${DRIFTLINE_LAKE_ROOT}/credit_default"})
    spec["windows"] = {"train_days": 8, "valid_days": 3, "test_days": 3}
    spec["params"] = {**spec["params"], "n_estimators": 60, "n_jobs": 1}
    spec["promotion"] = {**spec["promotion"], "lock_lease_seconds": 1}
    spec["runtime"] = {"run_lease_minutes": 0.05}
    return yaml.safe_dump(spec)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A home with a lake, the fault spec and a first champion from an ordinary run on FIRST."""
    from pipeline.demo import DemoOptions, generate

    root = tmp_path_factory.mktemp("fault-template")
    (root / "config").mkdir()
    (root / "config" / f"{MODEL}.yaml").write_text(_spec_text())
    generate(str(root / "home" / "lake"), date(2026, 1, 1), 25, DemoOptions(rows_per_day=300), model="credit_default")
    out = _cli(root, "run", MODEL, "--date", FIRST)
    assert out.returncode == 0, out.stderr[-3000:]
    return root


@pytest.fixture
def world(template, tmp_path):
    shutil.copytree(template, tmp_path / "w")
    return tmp_path / "w"


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "MLFLOW_TRACKING"))}
    env.update(PYTHONPATH=str(REPO), DRIFTLINE_HOME=str(root / "home"), DRIFTLINE_CONFIG_DIR=str(root / "config"),
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'home' / 'mlflow.db'}", OMP_WAIT_POLICY="PASSIVE",
               GX_ANALYTICS_ENABLED="false")
    env.update(extra)
    return env


def _cli(root: Path, *args: str, fault: str | None = None, **extra: str) -> subprocess.CompletedProcess:
    env = _env(root, **({"DRIFTLINE_FAULT": fault} if fault else {}), **extra)
    return subprocess.run([sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=root)


def _forced(root: Path, day: str, **kw) -> subprocess.CompletedProcess:
    return _cli(root, "run", MODEL, "--date", day, "--force-promote", "--reason", "fault test", **kw)


def _client_spec(root: Path):
    from mlflow import MlflowClient

    from pipeline.config import Settings, find_spec

    settings = Settings.from_env({"DRIFTLINE_HOME": str(root / "home"), "DRIFTLINE_CONFIG_DIR": str(root / "config"),
                                  "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'home' / 'mlflow.db'}"})
    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri), find_spec(MODEL, settings), settings


def _check_invariants(root: Path, first_record: dict) -> None:
    from pipeline import registry
    from pipeline.storage import Store

    client, spec, settings = _client_spec(root)
    champion = registry.get_champion(client, spec)
    history = registry.history(client, spec)
    assert champion is not None and history and history[-1]["to_version"] == champion.version, (
        "the champion alias equals the last completed history entry")
    assert registry.status(client, spec)["pending_lock"] is None
    store = Store.for_uri(settings.artifact_root)
    for mv in client.search_model_versions(f"name = '{spec.registry_name}'"):
        uri = (mv.tags or {}).get("driftline.decision_uri")
        assert uri, f"v{mv.version} has no decision record"
        assert store.read_json(uri)["candidate_version"] == str(mv.version)
    assert latest_record(settings.artifact_root, MODEL, FIRST) == first_record, "the first run's record is intact"
    back = registry.rollback(client, spec, reason="invariant check", actor="pytest")
    assert back.champion_after != champion.version


@pytest.mark.parametrize("point", ["snapshot_publish", "train", "register", "alias_move", "history_write", "report"])
def test_a_run_killed_at_any_point_is_repaired_by_the_next_run(world, point):
    _, _, settings = _client_spec(world)
    first = latest_record(settings.artifact_root, MODEL, FIRST)
    killed = _forced(world, KILLED, fault=point)
    assert killed.returncode == 137, killed.stderr[-3000:]
    time.sleep(1.5)  # the dead mover's registry lease lapses
    nxt = _forced(world, NEXT)
    assert nxt.returncode == 0, nxt.stderr[-3000:]
    assert latest_record(settings.artifact_root, MODEL, NEXT)["status"] == "promoted"
    killed_runs = list((Path(settings.artifact_root) / MODEL / "runs" / KILLED).iterdir())
    assert [p for p in killed_runs if p.is_dir()], "the killed run's artifacts are kept as evidence"
    _check_invariants(world, first)


def test_two_runs_of_one_date_at_once_never_mix(world):
    _, _, settings = _client_spec(world)
    first = latest_record(settings.artifact_root, MODEL, FIRST)
    env = _env(world)
    cmd = [sys.executable, "-m", "pipeline", "run", MODEL, "--date", KILLED, "--force-promote", "--reason", "race"]
    procs = [subprocess.Popen(cmd, env=env, cwd=world, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser_err = next(err for p, (_, err) in zip(procs, outs) if p.returncode == 2)
    assert "LeaseHeld" in loser_err and "has held this date since" in loser_err
    record = latest_record(settings.artifact_root, MODEL, KILLED)
    assert record["status"] == "promoted"
    _check_invariants(world, first)


def test_a_locked_tracking_store_fails_the_run_cleanly_and_the_next_run_recovers(world):
    """A writer holds the SQLite tracking store's lock for the whole run: the run fails with a
    message naming the store (no traceback, no half-moved champion), the next run succeeds."""
    import sqlite3

    _, _, settings = _client_spec(world)
    first = latest_record(settings.artifact_root, MODEL, FIRST)
    db = sqlite3.connect(world / "home" / "mlflow.db", timeout=1, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        locked = _forced(world, KILLED)
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert locked.returncode == 2, locked.stderr[-3000:]
    assert "Traceback" not in locked.stderr and "tracking store" in locked.stderr and "mlflow.db" in locked.stderr
    time.sleep(1.5)
    assert _forced(world, NEXT).returncode == 0
    _check_invariants(world, first)


class _Proxy:
    """A TCP proxy to a real S3 API server that can be cut and restored, so the server (and its
    objects) survive an 'outage' the pipeline sees as connections refused."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.up = target, True
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while self.up and (data := a.recv(65536)):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


def test_an_s3_outage_mid_run_loses_nothing(world, s3_endpoint, s3_client, s3_bucket):
    """Artifacts on S3 behind a proxy; the proxy is cut while the run trains. The run fails with a
    retryable storage error naming the object; once S3 is back the next run completes and the
    first run's records are still there."""
    from urllib.parse import urlsplit

    from pipeline.storage import Store

    target = urlsplit(s3_endpoint)
    proxy = _Proxy((target.hostname, target.port))
    endpoint = f"http://127.0.0.1:{proxy.port}"
    s3 = {"DRIFTLINE_ARTIFACT_ROOT": f"s3://{s3_bucket}/artifacts", "AWS_ENDPOINT_URL": endpoint,
          "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_MAX_ATTEMPTS": "1"}
    assert _forced(world, FIRST, **s3).returncode == 0
    root = f"s3://{s3_bucket}/artifacts"
    first = latest_record(root, MODEL, FIRST, s3_client=s3_client)

    env = _env(world, **s3)
    cmd = [sys.executable, "-m", "pipeline", "run", MODEL, "--date", KILLED, "--force-promote", "--reason", "outage"]
    proc = subprocess.Popen(cmd, env=env, cwd=world, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = Store.for_uri(root, s3_client)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(u.endswith("steps/split.json")
                                                  for u in store.list(f"{root}/{MODEL}/runs/{KILLED}")):
        time.sleep(0.2)
    proxy.up = False
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, err[-3000:]
    assert "StorageError" in err and "Traceback" not in err
    proxy.up = True
    time.sleep(1.5)
    nxt = _forced(world, NEXT, **s3)
    assert nxt.returncode == 0, nxt.stderr[-3000:]
    assert latest_record(root, MODEL, FIRST, s3_client=s3_client) == first
    assert latest_record(root, MODEL, NEXT, s3_client=s3_client)["status"] == "promoted"
    assert json.loads(json.dumps(first))["status"] == "promoted"


def test_re_running_a_date_keeps_every_earlier_record(world):
    """The finding: re-running a date deleted the earlier run's snapshot, reports and record, even
    when that run made the live champion. Now every run keeps its own prefix."""
    from pipeline.artifacts import date_prefix, list_runs
    from pipeline.storage import Store

    client, spec, settings = _client_spec(world)
    first = latest_record(settings.artifact_root, MODEL, FIRST)
    again = _cli(world, "run", MODEL, "--date", FIRST, "--dry-run")
    assert again.returncode == 0, again.stderr[-3000:]
    runs = list_runs(Store.for_uri(settings.artifact_root), date_prefix(settings.artifact_root, MODEL, FIRST))
    assert [r["status"] for r in runs] == ["promoted", "dry_run"]
    assert latest_record(settings.artifact_root, MODEL, FIRST)["status"] == "dry_run"
    v1 = client.get_model_version(spec.registry_name, "1")
    assert v1.tags["driftline.decision_uri"] == first["decision_uri"]
    assert json.loads(Path(first["decision_uri"]).read_text())["status"] == "promoted"
    for name in ("snapshot.parquet", "validation.json", "quarantine.parquet", "evaluation.json"):
        assert (Path(first["decision_uri"]).parent / name).exists(), name
    shown = _cli(world, "show", MODEL, "--date", FIRST, "--list")
    assert shown.returncode == 0 and "promoted" in shown.stdout and "dry_run" in shown.stdout and "<- latest" in shown.stdout


def test_a_window_of_impossible_values_is_bad_data_never_no_drift(world):
    """The finding: the monitor called a window full of inf "0 of 17 features drifted, no retrain"."""
    import numpy as np

    from pipeline.demo import DemoOptions, generate_day

    _, _, settings = _client_spec(world)
    day = date(2026, 1, 21)
    frame = generate_day(day, DemoOptions(rows_per_day=300))
    frame["income"] = np.inf
    part = Path(settings.lake_root) / "credit_default" / f"ds={day}" / "part-0.parquet"
    frame.to_parquet(part, index=False)
    out = _cli(world, "monitor", MODEL, "--date", "2026-01-22")
    assert out.returncode == 2 and "ValidationFailed" in out.stderr and "non-finite values in income" in out.stderr
    record = latest_record(settings.artifact_root, MODEL, "2026-01-22", "monitor")
    assert record["status"] == "bad_data" and record["retrain"] is False


def test_an_unreachable_tracking_server_fails_fast_naming_it(world):
    from tests.servers import free_port

    uri = f"http://driftline:s3cret@127.0.0.1:{free_port()}"
    started = time.monotonic()
    out = _cli(world, "run", MODEL, "--date", NEXT, MLFLOW_TRACKING_URI=uri)
    elapsed = time.monotonic() - started
    assert out.returncode == 2, out.stderr[-3000:]
    assert "TrackingUnavailable" in out.stderr and "127.0.0.1" in out.stderr and "s3cret" not in out.stderr
    assert "Traceback" not in out.stderr
    assert elapsed < 120, f"{elapsed:.0f} s to give up on an unreachable tracking server"
