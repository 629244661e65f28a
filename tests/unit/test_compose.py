"""Static checks of the compose stack: docker-compose.yaml, docker/Dockerfile, .env.example, the
Postgres init script and the example Postgres spec.

No Docker engine runs where this suite runs, so the stack is verified by reading it: the compose
file is parsed and interpolated the way compose does it (with .env.example, secrets filled in),
and each cross-file contract is checked (variables, secrets, volumes, ports, health checks,
connections vs specs, buckets, databases, image tag vs pins, the demo-data command vs the CLI).
Real components where they exist here: the init SQL runs on a throwaway PostgreSQL cluster,
Airflow parses the connection strings, and `docker compose config` validates the file when the
compose plugin is installed. Each checker returns its problems as a list, and is also run on
small broken snippets to show it catches what it claims to.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
INIT_DIR = REPO / "docker" / "postgres-init"
PG_EXAMPLE = REPO / "config" / "examples" / "credit_default_postgres.yaml"

EXPECTED_SERVICES = {
    "postgres", "minio", "minio-init", "mlflow", "airflow-init", "airflow-apiserver",
    "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "redis", "airflow-worker",
    "demo-data",
}
ONE_SHOT = {"minio-init", "airflow-init", "demo-data"}
LONG_RUNNING_RESTART = {"always", "unless-stopped"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET")
#: Flags of `python -m pipeline generate` the stack relies on (pipeline/cli.py).
GENERATE_FLAGS = {"--model", "--out", "--start", "--days", "--drift-day", "--to-postgres", "--table"}

# `$$` is an escaped dollar; `${NAME[op arg]}` a reference; a bare `$NAME` is also interpolated.
_REF = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_PG_URI_DB = re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^@\s\"]*@postgres(?::5432)?/(?P<db>\w+)")
_USERINFO = re.compile(r"://(?P<user>[^:@/\s\"]+):(?P<password>[^@/\s\"]+)@")


class UnsetVariable(Exception):
    """A required ``${VAR:?...}`` is unset or empty."""


# -- helpers -------------------------------------------------------------------------------------

def _strings(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in a parsed YAML tree, with its dotted location."""
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, Mapping):
        for k, v in node.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{where}[{i}]")


def _interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution (``$$``, ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``,
    ``${V?e}``, ``${V:+r}``, ``${V+r}``, bare ``$V``)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        if m.group("bare"):
            return env.get(m.group("bare"), "")
        name, op, arg = m.group("name"), m.group("op") or "", m.group("arg")
        value = env.get(name)
        empty = not value
        if op in (":-", "-"):
            return arg if (value is None or (op == ":-" and empty)) else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and empty):
                raise UnsetVariable(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return "" if (value is None or (op == ":+" and empty)) else arg
        return value or ""

    return _REF.sub(sub, text)


def _resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _interpolate(node, env)
    if isinstance(node, Mapping):
        return {k: _resolve(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, env) for v in node]
    return node


def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            env[key.strip()] = value.strip()
    return env


def _filled(env: Mapping[str, str]) -> dict[str, str]:
    """.env.example with its empty (secret) values filled as the file tells the user to."""
    out = dict(env)
    for key, value in env.items():
        if not value:
            out[key] = (base64.urlsafe_b64encode(os.urandom(32)).decode() if "FERNET" in key
                        else f"test-{key.lower().replace('_', '-')}-x9")
    return out


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _depends_on(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: {"condition": "service_started"} for d in deps}
    return {k: (v or {"condition": "service_started"}) for k, v in deps.items()}


def _command(service: Mapping[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def _host_ports(service: Mapping[str, Any]) -> list[str]:
    ports = []
    for p in service.get("ports") or []:
        if isinstance(p, Mapping):
            if p.get("published"):
                ports.append(str(p["published"]))
            continue
        parts = str(p).split("/")[0].split(":")
        if len(parts) >= 2:
            ports.append(parts[-2])
    return ports


def _is_named_volume(source: str) -> bool:
    return not source.startswith((".", "/", "~", "$"))


# -- checkers (each returns a list of problems) ---------------------------------------------------

def undefined_variables(compose: Mapping[str, Any], defined: Mapping[str, str]) -> list[str]:
    problems = []
    for where, text in _strings(compose):
        for m in _REF.finditer(text):
            if m.group("bare"):
                problems.append(f"{where}: bare ${m.group('bare')} (write ${{{m.group('bare')}}} or $$)")
            elif m.group("name") and m.group("name") not in defined:
                problems.append(f"{where}: ${{{m.group('name')}}} is not defined in .env.example")
    return problems


def secret_problems(compose: Mapping[str, Any], example: Mapping[str, str]) -> list[str]:
    """Secrets must come from .env: required references (``:?``), never defaults or literals,
    and left empty in .env.example."""
    problems = []
    for where, text in _strings(compose):
        for m in _REF.finditer(text):
            name = m.group("name")
            if name and SECRET_NAME.search(name) and m.group("op") != ":?":
                problems.append(f"{where}: secret ${{{name}}} must be written ${{{name}:?...}}")
        # References may contain ':' and spaces; mask them before reading a URI's userinfo.
        masked = _REF.sub(lambda m: "__REF__" if m.group("name") else m.group(0), text)
        for m in _USERINFO.finditer(masked):
            if m.group("password") != "__REF__":
                problems.append(f"{where}: literal password in a URI")
        key = where.rsplit(".", 1)[-1]
        is_secret_key = SECRET_NAME.search(key) and not key.endswith("_FILE")
        if ".environment." in f".{where}" and is_secret_key and not _REF.fullmatch(text.strip()):
            problems.append(f"{where}: secret {key} is not a single ${{...}} reference")
    for name, value in example.items():
        if SECRET_NAME.search(name) and value:
            problems.append(f".env.example: {name} has a value; ship secrets empty")
    return problems


def undeclared_volumes(compose: Mapping[str, Any]) -> list[str]:
    declared = set((compose.get("volumes") or {}).keys())
    problems = []
    for name, svc in compose["services"].items():
        for v in svc.get("volumes") or []:
            source = v.get("source", "") if isinstance(v, Mapping) else str(v).split(":")[0]
            kind = v.get("type", "volume") if isinstance(v, Mapping) else (
                "volume" if _is_named_volume(source) else "bind")
            if kind == "volume" and source and source not in declared:
                problems.append(f"{name}: named volume {source!r} is not declared under volumes:")
            if kind == "bind" and source.startswith(".") and not (REPO / source).exists():
                problems.append(f"{name}: bind source {source!r} does not exist in the repo")
    return problems


def duplicate_host_ports(resolved: Mapping[str, Any]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for name, svc in resolved["services"].items():
        for port in _host_ports(svc):
            if port in seen:
                problems.append(f"host port {port} published by both {seen[port]} and {name}")
            seen[port] = name
    return problems


def health_problems(compose: Mapping[str, Any]) -> list[str]:
    services = compose["services"]
    problems = []
    for name, svc in services.items():
        for dep, spec in _depends_on(svc).items():
            if dep not in services:
                problems.append(f"{name} depends on unknown service {dep!r}")
                continue
            cond = spec.get("condition")
            if cond == "service_healthy" and not (services[dep].get("healthcheck") or {}).get("test"):
                problems.append(f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck")
            if cond == "service_completed_successfully" and dep not in ONE_SHOT:
                problems.append(f"{name} waits for {dep} to complete, but {dep} is not a one-shot")
        if name not in ONE_SHOT and not (svc.get("healthcheck") or {}).get("test"):
            problems.append(f"long-running service {name} has no healthcheck")
    return problems


def restart_problems(compose: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, svc in compose["services"].items():
        restart = str(svc.get("restart", ""))
        if name in ONE_SHOT and restart != "no":
            problems.append(f"one-shot {name} must say restart: \"no\", has {restart!r}")
        if name not in ONE_SHOT and restart not in LONG_RUNNING_RESTART:
            problems.append(f"long-running {name} needs restart in {sorted(LONG_RUNNING_RESTART)}, has {restart!r}")
        if not (svc.get("image") or svc.get("build")):
            problems.append(f"{name} has neither image nor build")
    return problems


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return _read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def env(example_env) -> dict[str, str]:
    return _filled(example_env)


@pytest.fixture(scope="module")
def resolved(compose, env) -> dict[str, Any]:
    return _resolve(compose, env)


@pytest.fixture(scope="module")
def services(resolved) -> dict[str, Any]:
    return resolved["services"]


@pytest.fixture(scope="module")
def airflow_env(resolved) -> dict[str, str]:
    return _environment(resolved["x-airflow-common"])


# -- the stack as written -------------------------------------------------------------------------

def test_compose_has_the_expected_services(compose):
    assert set(compose["services"]) == EXPECTED_SERVICES
    assert compose["services"]["redis"]["profiles"] == ["celery"]
    assert compose["services"]["airflow-worker"]["profiles"] == ["celery"]


@pytest.mark.parametrize("checker", [health_problems, restart_problems, undeclared_volumes],
                         ids=lambda f: f.__name__)
def test_structure(compose, checker):
    assert checker(compose) == []


def test_every_variable_is_defined_in_env_example(compose, example_env):
    assert undefined_variables(compose, example_env) == []
    used = {m.group("name") for _, t in _strings(compose) for m in _REF.finditer(t) if m.group("name")}
    unused = sorted(set(example_env) - used)
    assert unused == [], f".env.example defines variables the compose file never uses: {unused}"


def test_secrets_only_from_env_file(compose, example_env):
    assert secret_problems(compose, example_env) == []


def test_compose_refuses_to_start_without_secrets(compose, example_env):
    with pytest.raises(UnsetVariable, match="PASSWORD|SECRET|FERNET"):
        _resolve(compose, example_env)


def test_host_ports_are_unique(resolved):
    assert duplicate_host_ports(resolved) == []
    published = sorted(p for s in resolved["services"].values() for p in _host_ports(s))
    assert published == sorted(["5432", "9000", "9001", "5000", "8080"])


def test_airflow_services_share_one_environment(compose, services, airflow_env):
    airflow_services = sorted(n for n in services if n.startswith("airflow-"))
    assert len(airflow_services) == 6
    for name in airflow_services:
        env = _environment(services[name])
        differing = sorted(k for k, v in airflow_env.items() if env.get(k) != v)
        assert not differing, f"{name} overrides the shared Airflow environment: {differing}"
        assert services[name]["image"] == compose["x-driftline-image"]["image"]
        assert services[name]["volumes"] == compose["x-airflow-common"]["volumes"]


@pytest.mark.parametrize(("key", "expected"), [
    ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
    ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow-apiserver:8080/execution/"),
    ("DRIFTLINE_ARTIFACT_ROOT", "s3://artifacts/driftline"),
    ("DRIFTLINE_LAKE_ROOT", "s3://lake"),
    ("DRIFTLINE_CONFIG_DIR", "/opt/driftline/config"),
    ("MLFLOW_TRACKING_URI", "http://mlflow:5000"),
    ("DRIFTLINE_MLFLOW_UI_URL", "http://localhost:5000"),
    ("AWS_ENDPOINT_URL", "http://minio:9000"),
    ("AIRFLOW__CORE__PARALLELISM", "4"),
    ("AIRFLOW__CORE__LOAD_EXAMPLES", "false"),
])
def test_shared_airflow_environment_values(airflow_env, key, expected):
    assert airflow_env.get(key) == expected


def test_shared_airflow_environment_wiring(airflow_env, env):
    assert _PG_URI_DB.search(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).group("db") == "airflow"
    assert airflow_env["AWS_ACCESS_KEY_ID"] == env["MINIO_ROOT_USER"]
    assert airflow_env["AWS_SECRET_ACCESS_KEY"] == env["MINIO_ROOT_PASSWORD"]
    aws = json.loads(airflow_env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["conn_type"] == "aws"
    assert aws["extra"]["endpoint_url"] == airflow_env["AWS_ENDPOINT_URL"]
    assert (aws["login"], aws["password"]) == (env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"])
    # The same jwt secret everywhere, or task tokens signed by one component fail in another.
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        assert airflow_env[key]


def test_mounts_match_the_paths_the_environment_names(compose, airflow_env):
    mounts = dict(str(v).split(":")[:2][::-1] for v in compose["x-airflow-common"]["volumes"])
    assert mounts[airflow_env["DRIFTLINE_CONFIG_DIR"]] == "./config"
    assert mounts[airflow_env["DRIFTLINE_HOME"]] == "driftline-home"
    pythonpath = airflow_env["PYTHONPATH"].split(":")
    assert any(mounts.get(f"{p}/pipeline") == "./pipeline" for p in pythonpath)
    assert mounts.get(f"{pythonpath[0]}/expectations") == "./expectations"
    assert mounts.get("/opt/airflow/dags") == "./dags"
    assert mounts.get("/opt/airflow/plugins") == "./plugins"
    passwords = airflow_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert mounts.get(str(Path(passwords).parent)) == "airflow-auth"


def test_settings_resolve_to_the_stack(airflow_env):
    from pipeline.config import Settings

    s = Settings.from_env(airflow_env)
    assert (s.artifact_root, s.lake_root, s.mlflow_tracking_uri) == (
        "s3://artifacts/driftline", "s3://lake", "http://mlflow:5000")
    assert (str(s.home), str(s.config_dir)) == ("/opt/driftline/home", "/opt/driftline/config")
    assert s.mlflow_run_url("1", "abc").startswith("http://localhost:5000/")


def _all_specs(settings):
    from pipeline.config import load_spec, spec_paths

    paths = spec_paths(REPO / "config") + spec_paths(REPO / "config" / "examples")
    assert len(paths) >= 2
    return [load_spec(p, settings) for p in paths]


def test_connections_cover_every_spec(airflow_env):
    from pipeline.config import Settings

    specs = _all_specs(Settings.from_env(airflow_env))
    needed = set()
    for spec in specs:
        needed.add(spec.artifacts_conn_id)
        if spec.source.kind == "postgres":
            needed.add(spec.source.conn_id or "postgres_default")
        elif spec.source.uri and spec.source.uri.startswith("s3://"):
            needed.add(spec.source.conn_id or spec.artifacts_conn_id)
    defined = {k[len("AIRFLOW_CONN_"):].lower() for k in airflow_env if k.startswith("AIRFLOW_CONN_")}
    assert needed <= defined, f"specs use connections the stack does not define: {sorted(needed - defined)}"
    assert {s.name for s in specs} >= {"credit_default", "credit_default_pg"}
    lake = [s for s in specs if s.name == "credit_default"][0]
    assert lake.source.uri == "s3://lake/credit_default"


def test_airflow_parses_the_connections(airflow_env, tmp_path):
    # A subprocess: importing airflow here would fix AIRFLOW_HOME for the rest of the session.
    script = (
        "import json, os\n"
        "from airflow.models.connection import Connection\n"
        "out = {}\n"
        "for key, value in os.environ.items():\n"
        "    if key.startswith('AIRFLOW_CONN_'):\n"
        "        cid = key[len('AIRFLOW_CONN_'):].lower()\n"
        "        c = Connection.from_json(value, conn_id=cid) if value.lstrip().startswith('{') "
        "else Connection(conn_id=cid, uri=value)\n"
        "        out[cid] = {'type': c.conn_type, 'host': c.host, 'schema': c.schema, "
        "'extra': c.extra_dejson}\n"
        "print(json.dumps(out))\n"
    )
    conns = {k: v for k, v in airflow_env.items() if k.startswith("AIRFLOW_CONN_")}
    env = {"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(tmp_path), **conns}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert parsed["aws_default"]["type"] == "aws"
    assert parsed["aws_default"]["extra"]["endpoint_url"] == "http://minio:9000"
    assert parsed["postgres_source"] == {"type": "postgres", "host": "postgres", "schema": "source", "extra": {}}


def _mc_buckets(minio_init: Mapping[str, Any]) -> set[str]:
    script = " ".join(_command(minio_init) + [str(e) for e in minio_init.get("entrypoint") or []])
    buckets = set()
    for line in re.findall(r"mc mb[^\n]*", script):
        buckets |= {tok.split("/", 1)[1] for tok in line.split() if "/" in tok}
    return buckets


def _bucket(uri: str) -> str:
    assert uri.startswith("s3://"), uri
    return uri[len("s3://"):].split("/")[0]


def test_buckets_the_stack_uses_are_created(services, airflow_env):
    created = _mc_buckets(services["minio-init"])
    mlflow_cmd = _command(services["mlflow"])
    demo_cmd = _command(services["demo-data"])
    used = {
        "DRIFTLINE_ARTIFACT_ROOT": _bucket(airflow_env["DRIFTLINE_ARTIFACT_ROOT"]),
        "DRIFTLINE_LAKE_ROOT": _bucket(airflow_env["DRIFTLINE_LAKE_ROOT"]),
        "mlflow --artifacts-destination": _bucket(mlflow_cmd[mlflow_cmd.index("--artifacts-destination") + 1]),
        "demo-data --out": _bucket(demo_cmd[demo_cmd.index("--out") + 1]),
    }
    missing = {k: b for k, b in used.items() if b not in created}
    assert not missing, f"buckets not created by minio-init ({sorted(created)}): {missing}"
    assert created == {"lake", "artifacts", "mlflow"}


def test_mlflow_server_configuration(services):
    mlflow = services["mlflow"]
    env = _environment(mlflow)
    assert _command(mlflow)[:2] == ["mlflow", "server"]
    assert "--port" in _command(mlflow) and "5000" in _command(mlflow)
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert _PG_URI_DB.search(env["MLFLOW_BACKEND_STORE_URI"]).group("db") == "mlflow"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    allowed = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    from fnmatch import fnmatch

    for host in ("mlflow:5000", "localhost:5000"):
        assert any(fnmatch(host, pattern) for pattern in allowed), f"MLflow would reject Host {host}"


def _created_databases() -> set[str]:
    sql = "\n".join(p.read_text() for p in sorted(INIT_DIR.glob("*.sql")))
    return set(re.findall(r"CREATE DATABASE (\w+)", sql))


def test_init_script_creates_the_databases_the_uris_use(resolved):
    used = {m.group("db") for _, text in _strings(resolved["services"]) for m in _PG_URI_DB.finditer(text)}
    assert used == _created_databases() == {"airflow", "mlflow", "source"}
    healthcheck = " ".join(resolved["services"]["postgres"]["healthcheck"]["test"])
    assert "-h 127.0.0.1" in healthcheck


def test_dockerfile_matches_the_pins():
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    base = re.search(r"^FROM (\S+)", text, re.M).group(1)
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    requirements = (REPO / "requirements.txt").read_text()
    airflow_pin = re.search(r"^apache-airflow==(\S+)$", requirements, re.M).group(1)
    python = re.search(r"--python-version (\S+)", requirements).group(1)
    assert base == f"apache/airflow:{airflow_pin}-python{python}"
    install = re.search(r"pip install[^\n]*", text).group(0)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install and "-r /opt/driftline/requirements.txt" in install
    pythonpath = re.search(r"PYTHONPATH=(\S+)", text).group(1)
    assert re.search(rf"^COPY .*pipeline {re.escape(pythonpath)}/pipeline$", text, re.M)


def test_compose_builds_the_dockerfile_with_a_narrow_context(compose):
    build = compose["x-driftline-image"]["build"]
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    lines = (DOCKERFILE.parent / f"{DOCKERFILE.name}.dockerignore").read_text().splitlines()
    ignore = [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    assert ignore[0] == "*" and "!.venv" not in ignore
    copied = set(re.findall(r"^COPY (?:--\S+ )*(\S+) ", DOCKERFILE.read_text(), re.M))
    assert {f"!{c}" for c in copied} <= set(ignore)


def test_demo_data_command_is_accepted_by_the_cli(services):
    cmd = _command(services["demo-data"])
    assert cmd[:4] == ["python", "-m", "pipeline", "generate"]
    argv = cmd[3:]
    cli = importlib.import_module("pipeline.cli") if importlib.util.find_spec("pipeline.cli") else None
    if cli is None or not hasattr(cli, "build_parser"):
        flags = {a for a in argv if a.startswith("--")}
        assert flags <= GENERATE_FLAGS, f"flags the CLI does not document: {sorted(flags - GENERATE_FLAGS)}"
        pytest.skip("pipeline.cli.build_parser() not available: flags checked against the documented list only")
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`python -m pipeline {' '.join(argv)}` is rejected by the CLI parser (exit {exc.code})")
    assert (args.out, args.table) == ("s3://lake", "credit_applications")
    assert str(args.to_postgres).startswith("postgresql://")


def test_demo_data_fills_what_the_specs_read(services, airflow_env, env):
    from datetime import date, timedelta

    from pipeline.config import Settings, load_spec

    cmd = _command(services["demo-data"])
    arg = {cmd[i]: cmd[i + 1] for i in range(4, len(cmd) - 1) if cmd[i].startswith("--")}
    settings = Settings.from_env(airflow_env)
    lake = load_spec(REPO / "config" / f"{arg['--model']}.yaml", settings)
    assert lake.source.uri == f"{arg['--out']}/{arg['--model']}"
    pg = load_spec(PG_EXAMPLE, settings)
    assert pg.source.table.rpartition(".")[2] == arg["--table"]
    assert _PG_URI_DB.search(arg["--to-postgres"]).group("db") == "source"
    assert arg["--to-postgres"].split("@")[1] == airflow_env["AIRFLOW_CONN_POSTGRES_SOURCE"].split("@")[1]
    start, drift = date.fromisoformat(arg["--start"]), date.fromisoformat(arg["--drift-day"])
    assert start < drift < start + timedelta(days=int(arg["--days"]))
    assert "--to-postgres" in cmd and env["POSTGRES_PASSWORD"] in arg["--to-postgres"]


def test_postgres_example_is_the_same_model_from_postgres(settings):
    from pipeline.config import load_spec

    lake = load_spec(REPO / "config" / "credit_default.yaml", settings)
    pg = load_spec(PG_EXAMPLE, settings)
    assert pg.name == "credit_default_pg"
    assert (pg.source.kind, pg.source.table, pg.source.conn_id) == ("postgres", "public.credit_applications", "postgres_source")
    rest = lambda s: s.model_dump(exclude={"name", "description", "source", "expectations_dir"})  # noqa: E731
    assert rest(pg) == rest(lake)
    from pipeline.validate import load_suite

    assert load_suite(pg) == load_suite(lake), "both find the same suite wherever the example sits"


# -- real components where they exist here --------------------------------------------------------

def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return None
    candidate = Path(bindir) / name
    return str(candidate) if candidate.exists() else None


def test_init_script_runs_on_postgres():
    initdb, pg_ctl, psql = _pg_bin("initdb"), _pg_bin("pg_ctl"), _pg_bin("psql")
    if not (initdb and pg_ctl and psql):
        pytest.skip("no PostgreSQL server binaries on this machine")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    work = Path(tempfile.mkdtemp(prefix="driftline-pginit-"))
    try:
        if as_postgres:
            shutil.chown(work, "postgres")
        data, sock = work / "data", work
        run = lambda *a, **k: subprocess.run([*as_postgres, *a], capture_output=True, text=True, timeout=60, **k)  # noqa: E731
        assert run(initdb, "-D", str(data), "-U", "driftline", "--auth=trust", "--no-sync").returncode == 0
        port = str(20000 + os.getpid() % 20000)
        started = run(pg_ctl, "-D", str(data), "-w", "-l", str(work / "log"), "-o", f"-p {port} -k {sock} -c listen_addresses=''", "start")
        assert started.returncode == 0, started.stderr
        try:
            psql_args = [psql, "-h", str(sock), "-p", port, "-U", "driftline", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]
            for script in sorted(INIT_DIR.glob("*.sql")):
                for attempt in (1, 2):  # the second run proves it is idempotent
                    done = run(*psql_args, "-f", str(script))
                    assert done.returncode == 0, f"{script.name} run {attempt}: {done.stderr}"
            listed = run(*psql_args, "-At", "-c", "SELECT datname FROM pg_database")
            assert _created_databases() <= set(listed.stdout.split())
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_docker_compose_config_accepts_the_file(env, tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    proc = subprocess.run([docker, "compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file),
                           "--profile", "celery", "--profile", "demo", "config", "-q"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


# -- the checkers catch what they claim to --------------------------------------------------------

_OK_SERVICE = {"image": "x", "restart": "unless-stopped", "healthcheck": {"test": ["CMD", "true"]}}


@pytest.mark.parametrize(("checker", "snippet", "expected"), [
    (undefined_variables, {"services": {"a": {"environment": {"X": "${NOPE}"}}}}, "NOPE"),
    (undefined_variables, {"services": {"a": {"command": "echo $HOME"}}}, "bare $HOME"),
    (secret_problems, {"services": {"a": {"environment": {"P": "${DB_PASSWORD:-hunter2}"}}}}, "must be written"),
    (secret_problems, {"services": {"a": {"environment": {"U": "postgresql://u:hunter2@h/db"}}}}, "literal password"),
    (secret_problems, {"services": {"a": {"environment": {"U": "postgresql://${U:?u}:hunter2@h/db"}}}}, "literal password"),
    (secret_problems, {"services": {"a": {"environment": {"API_SECRET": "hunter2"}}}}, "not a single"),
    (undeclared_volumes, {"services": {"a": {"volumes": ["data:/data"]}}, "volumes": {}}, "'data'"),
    (undeclared_volumes, {"services": {"a": {"volumes": ["./no-such-dir:/x"]}}}, "does not exist"),
    (duplicate_host_ports, {"services": {"a": {"ports": ["127.0.0.1:80:80"]}, "b": {"ports": ["80:81"]}}}, "port 80"),
    (health_problems, {"services": {"a": {**_OK_SERVICE, "depends_on": {"b": {"condition": "service_healthy"}}},
                                    "b": {"image": "x", "restart": "always"}}}, "b has no healthcheck"),
    (health_problems, {"services": {"a": {**_OK_SERVICE, "depends_on": {"b": {"condition": "service_completed_successfully"}}},
                                    "b": _OK_SERVICE}}, "not a one-shot"),
    (restart_problems, {"services": {"a": {"image": "x"}}}, "long-running a"),
    (restart_problems, {"services": {"minio-init": {"image": "x", "restart": "always"}}}, "one-shot"),
    (restart_problems, {"services": {"a": {"restart": "always"}}}, "neither image nor build"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_checkers_catch_broken_snippets(checker, snippet, expected):
    if checker in (undefined_variables, secret_problems):
        problems = checker(snippet, {})
    else:
        problems = checker(snippet)
    assert any(expected in p for p in problems), problems


def test_secret_check_catches_a_filled_env_example():
    problems = secret_problems({"services": {}}, {"DB_PASSWORD": "hunter2", "DB_USER": "u"})
    assert problems == [".env.example: DB_PASSWORD has a value; ship secrets empty"]


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${A}", {"A": "1"}, "1"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A:-d}", {}, "d"),
    ("$${HOSTNAME}", {}, "${HOSTNAME}"),
    ("${A:+r}", {"A": "1"}, "r"),
    ("x-${A:?need A}-y", {"A": "v"}, "x-v-y"),
])
def test_interpolation_follows_compose(text, env, expected):
    assert _interpolate(text, env) == expected


@pytest.mark.parametrize("env", [{}, {"A": ""}])
def test_interpolation_refuses_missing_required(env):
    with pytest.raises(UnsetVariable, match="need A"):
        _interpolate("${A:?need A}", env)
