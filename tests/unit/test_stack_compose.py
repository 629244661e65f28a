"""The compose file and the native stack (stack/native.py) describe the same topology.

The compose images cannot be pulled on the build machine, so the compose stack is checked by
reading it; the native stack is what runs (tests/integration/test_stack.py). This test keeps the
two from drifting apart: the same services, the same variable names, the same Airflow
environment and connections (compose hosts mapped to 127.0.0.1 ports), the same MLflow server
settings, buckets, databases and demo-data command. The compose file is interpolated with the
native stack's own values, so each comparison is value for value.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose_checks():
    spec = importlib.util.spec_from_file_location("compose_checks", REPO / "tests" / "unit" / "test_compose.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = _compose_checks()


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    from stack.native import Stack

    root = tmp_path_factory.mktemp("stack")
    env = {"DRIFTLINE_STACK_DIR": str(root), "POSTGRES_PORT": "15432", "REDIS_PORT": "16379",
           "MINIO_API_PORT": "19000", "MLFLOW_PORT": "15000", "AIRFLOW_PORT": "18080"}
    return Stack.from_env(env)


@pytest.fixture(scope="module")
def compose_raw():
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def compose(compose_raw, native):
    """The compose file interpolated with the native stack's values (its executor: Celery)."""
    return checks._resolve(compose_raw, native.values)


def _to_loopback(text: str, native) -> str:
    """A compose value as it reads on the native stack: service hosts -> 127.0.0.1 ports."""
    v = native.values
    hosts = {"postgres:5432": f"127.0.0.1:{v['POSTGRES_PORT']}", "minio:9000": f"127.0.0.1:{v['MINIO_API_PORT']}",
             "redis:6379": f"127.0.0.1:{v['REDIS_PORT']}", "mlflow:5000": f"127.0.0.1:{v['MLFLOW_PORT']}",
             "airflow-apiserver:8080": f"127.0.0.1:{v['AIRFLOW_PORT']}", "localhost:": "127.0.0.1:"}
    for host, local in hosts.items():
        text = text.replace(host, local)
    return text


#: Compose values that are container paths; the native stack has its own (checked by name only).
PATH_KEYS = {"DRIFTLINE_HOME", "DRIFTLINE_CONFIG_DIR", "PYTHONPATH", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"}


def test_every_compose_service_has_a_native_counterpart(compose_raw):
    from stack.native import COMPOSE_SERVICES

    assert set(compose_raw["services"]) == set(COMPOSE_SERVICES)


def test_native_stack_reads_every_compose_variable(compose_raw, native):
    from stack.native import COMPOSE_ONLY_VARIABLES

    used = {m.group("name") for _, text in checks._strings(compose_raw) for m in checks._REF.finditer(text)
            if m.group("name")}
    assert set(COMPOSE_ONLY_VARIABLES) <= used, "a compose-only variable the compose file no longer uses"
    missing = sorted(used - set(COMPOSE_ONLY_VARIABLES) - set(native.values))
    assert not missing, f"compose variables the native stack does not read: {missing}"


def test_airflow_environment_matches_compose(compose, native):
    compose_env = checks._environment(compose["x-airflow-common"])
    native_env = native.airflow_env()
    native_only = set(native.native_airflow_env())
    assert set(compose_env) == set(native_env) - native_only, (
        f"only in compose: {sorted(set(compose_env) - set(native_env))}; "
        f"only native: {sorted(set(native_env) - native_only - set(compose_env))}")
    differing = {k: (_to_loopback(v, native), native_env[k]) for k, v in compose_env.items()
                 if k not in PATH_KEYS and k not in native_only and _to_loopback(v, native) != native_env[k]}
    assert not differing, differing


def test_connections_match_compose(compose, native):
    compose_env = checks._environment(compose["x-airflow-common"])
    conns = sorted(k for k in compose_env if k.startswith("AIRFLOW_CONN_"))
    assert conns == sorted(k for k in native.airflow_env() if k.startswith("AIRFLOW_CONN_"))
    aws_compose = json.loads(_to_loopback(compose_env["AIRFLOW_CONN_AWS_DEFAULT"], native))
    assert aws_compose == json.loads(native.airflow_env()["AIRFLOW_CONN_AWS_DEFAULT"])


def test_mlflow_server_matches_compose(compose, native):
    service = compose["services"]["mlflow"]
    compose_env = {k: _to_loopback(v, native) for k, v in checks._environment(service).items()}
    native_env = native.mlflow_env()
    assert set(compose_env) == set(native_env)
    for key in set(compose_env) - {"MLFLOW_SERVER_ALLOWED_HOSTS"}:
        assert compose_env[key] == native_env[key], key
    command = checks._command(service)
    source = (REPO / "stack" / "native.py").read_text()
    for flag in ("--workers", "--serve-artifacts", "--artifacts-destination"):
        value = command[command.index(flag) + 1] if flag != "--serve-artifacts" else None
        assert f'"{flag}"' in source and (value is None or f'"{value}"' in source), (flag, value)


def test_buckets_and_databases_match_compose(compose):
    from stack.native import BUCKETS, DATABASES

    assert set(BUCKETS) == checks._mc_buckets(compose["services"]["minio-init"])
    assert set(DATABASES) == checks._created_databases()


def test_demo_data_command_matches_compose(compose, native):
    compose_cmd = [_to_loopback(a, native) for a in checks._command(compose["services"]["demo-data"])]
    native_cmd = native.demo_command()
    assert native_cmd[0].endswith(("python", "python3", "python3.11")) and compose_cmd[0] == "python"
    extra = native_cmd[len(compose_cmd):]
    assert native_cmd[1:len(compose_cmd)] == compose_cmd[1:], (native_cmd, compose_cmd)
    assert extra[0] == "--rows-per-day"


def test_native_executor_is_celery_and_compose_offers_it(compose_raw, native):
    assert native.airflow_env()["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    worker = compose_raw["services"]["airflow-worker"]
    assert checks._command(worker) == ["celery", "worker"]
    assert re.search(r"AIRFLOW_EXECUTOR", (REPO / ".env.example").read_text())
