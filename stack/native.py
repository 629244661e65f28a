"""driftline's compose topology, started natively on 127.0.0.1 (``make stack-up`` / ``make stack-down``).

Contract:
* :meth:`Stack.up` starts, in this order and each checked healthy before it returns: PostgreSQL
  (databases ``airflow``, ``mlflow``, ``source`` created by the compose init script), Redis, an S3
  API server (moto's server mode; buckets ``lake``, ``artifacts``, ``mlflow``), the MLflow tracking
  server (PostgreSQL backend, artifacts proxied to ``s3://mlflow``), ``airflow db migrate``, the
  demo data (``python -m pipeline generate`` into ``s3://lake`` and ``source.credit_applications``),
  and Airflow's api-server, scheduler, dag-processor, triggerer and :data:`CELERY_WORKERS` Celery
  workers (``CeleryExecutor``). A service that fails to start raises :class:`StackError` naming it,
  its log and the fix; the processes already started are stopped again.
* Settings use the compose file's variable names (``POSTGRES_PORT``, ``MINIO_ROOT_USER``,
  ``AIRFLOW_FERNET_KEY``, ...): defaults from ``.env.example``, then the values this stack generated
  before (``<root>/stack.env``), then ``.env``, then the process environment. Empty secrets are
  generated once and kept in ``stack.env`` (mode 600).
* Every process runs in its own session with ``DRIFTLINE_STACK_DIR=<root>`` in its environment,
  logs to ``<root>/logs/<name>.log`` and has ``<root>/pids/<name>.pid``. :meth:`Stack.down` stops
  them by pid file, then any process still carrying the marker, and returns what it stopped.
* The stack is ephemeral, like a test fixture: moto keeps objects in memory, so ``down`` also
  drops the PostgreSQL cluster (logs are kept) and ``up`` starts from empty stores.

Only loopback: every server binds 127.0.0.1.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MARKER = "DRIFTLINE_STACK_DIR"
BUCKETS = ("lake", "artifacts", "mlflow")
DATABASES = ("airflow", "mlflow", "source")
CELERY_WORKERS = 2
#: Each compose service and what stands for it here (a process's pid/log name, or a step of `up`).
COMPOSE_SERVICES = {
    "postgres": "postgres",
    "minio": "s3 (moto_server)",
    "minio-init": "up: buckets created through the S3 API",
    "mlflow": "mlflow",
    "airflow-init": "airflow-init (airflow db migrate, admin password file)",
    "airflow-apiserver": "airflow-apiserver",
    "airflow-scheduler": "airflow-scheduler",
    "airflow-dag-processor": "airflow-dag-processor",
    "airflow-triggerer": "airflow-triggerer",
    "redis": "redis",
    "airflow-worker": ", ".join(f"airflow-worker-{i}" for i in range(1, CELERY_WORKERS + 1)),
    "demo-data": "demo-data (run by every up)",
}
#: Compose variables the native stack does not read, and why.
COMPOSE_ONLY_VARIABLES = {
    "MINIO_CONSOLE_PORT": "moto has no web console",
    "AIRFLOW_UID": "processes run as the invoking user; no bind mounts",
}
#: Settings only the native stack has (compose has no host port for Redis, no demo size, and
#: fixed container ports where these processes share one host).
NATIVE_DEFAULTS = {
    "AIRFLOW_EXECUTOR": "CeleryExecutor",
    "REDIS_PORT": "6379",
    "STACK_CELERY_CONCURRENCY": "2",
    "DEMO_ROWS_PER_DAY": "2000",
    # A task whose worker died is failed (and retried) after this many seconds without a heartbeat.
    "STACK_TASK_HEARTBEAT_TIMEOUT": "60",
    # A task a dead worker had received but not yet started stays queued (its Celery message is
    # unacknowledged for hours): the scheduler queues it again after this many seconds (Airflow: 600).
    "STACK_TASK_QUEUED_TIMEOUT": "120",
}
#: Ports Airflow components open besides the ones people use; chosen free at first start.
INTERNAL_PORTS = ("SCHEDULER_HEALTH_PORT", "TRIGGERER_LOG_PORT",
                  *(f"WORKER_{i}_LOG_PORT" for i in range(1, CELERY_WORKERS + 1)))
PUBLISHED_PORTS = ("POSTGRES_PORT", "REDIS_PORT", "MINIO_API_PORT", "MLFLOW_PORT", "AIRFLOW_PORT")
SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY",
           "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY")
INSTALL_HINTS = {
    "postgres": "apt-get install -y postgresql",
    "redis-server": "apt-get install -y redis-server",
    "moto_server": "pip install -r requirements.txt (moto[server])",
    "mlflow": "pip install -r requirements.txt",
    "airflow": "pip install -r requirements.txt",
}


class StackError(RuntimeError):
    """A stack service could not be found, started or reached; the message names the fix."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a compose-style env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _new_secret(name: str) -> str:
    if "FERNET" in name:
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(24)


def resolve_values(root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The stack's settings by compose variable name (see the module contract for precedence)."""
    values = read_env_file(REPO / ".env.example")
    values.update(NATIVE_DEFAULTS)
    for source in (root / "stack.env", REPO / ".env"):
        if source.is_file():
            values.update({k: v for k, v in read_env_file(source).items() if v})
    names = set(values) | set(INTERNAL_PORTS)
    values.update({k: environ[k] for k in names if environ.get(k)})
    for name in SECRETS:
        values[name] = values.get(name) or _new_secret(name)
    for name in INTERNAL_PORTS:
        values[name] = values.get(name) or str(free_port())
    return values


def _pg_bindir() -> Path:
    candidates = [Path(p).resolve().parent for p in filter(None, [shutil.which("pg_ctl")])]
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for d in candidates:
        if all((d / t).exists() for t in ("initdb", "pg_ctl", "postgres")):
            return d
    raise StackError(f"PostgreSQL server binaries not found; install them: {INSTALL_HINTS['postgres']}")


def _which(name: str) -> str:
    found = (BIN / name) if (BIN / name).exists() else shutil.which(name)
    if not found:
        raise StackError(f"{name} not found; install it: {INSTALL_HINTS.get(name, name)}")
    return str(found)


def _get_json(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _get_ok(url: str, timeout: float = 5) -> bool:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status == 200


@dataclass
class Stack:
    """One native stack rooted at ``root`` (default ``<repo>/.driftline/stack``)."""

    root: Path
    values: dict[str, str]
    config_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    _children: list[subprocess.Popen] = field(default_factory=list, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Stack":
        environ = os.environ if environ is None else environ
        root = Path(environ.get(MARKER) or REPO / ".driftline" / "stack").resolve()
        config_dir = Path(environ.get("DRIFTLINE_CONFIG_DIR") or REPO / "config").resolve()
        return cls(root=root, values=resolve_values(root, environ), config_dir=config_dir)

    # -- where things are ------------------------------------------------------------------------

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def pg_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    def port(self, name: str) -> int:
        return int(self.values[name])

    def pg_uri(self, database: str, scheme: str = "postgresql") -> str:
        v = self.values
        return f"{scheme}://{v['POSTGRES_USER']}:{v['POSTGRES_PASSWORD']}@127.0.0.1:{v['POSTGRES_PORT']}/{database}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.values['MINIO_API_PORT']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.values['MLFLOW_PORT']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.values['AIRFLOW_PORT']}"

    @property
    def celery(self) -> bool:
        return self.values["AIRFLOW_EXECUTOR"] == "CeleryExecutor"

    # -- environments (the compose file's, with hosts on loopback) --------------------------------

    def driftline_env(self) -> dict[str, str]:
        """compose ``x-driftline-env``: what pipeline Settings read, plus S3 access."""
        v = self.values
        return {
            "DRIFTLINE_HOME": str(self.root / "home"),
            "DRIFTLINE_CONFIG_DIR": str(self.config_dir),
            "DRIFTLINE_ARTIFACT_ROOT": "s3://artifacts/driftline",
            "DRIFTLINE_LAKE_ROOT": "s3://lake",
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "DRIFTLINE_MLFLOW_UI_URL": self.mlflow_url,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": v["MINIO_ROOT_USER"],
            "AWS_SECRET_ACCESS_KEY": v["MINIO_ROOT_PASSWORD"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": str(REPO),
            "GX_ANALYTICS_ENABLED": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }

    def airflow_env(self) -> dict[str, str]:
        """compose ``x-airflow-common.environment``, then :meth:`native_airflow_env`."""
        v = self.values
        aws = {"conn_type": "aws", "login": v["MINIO_ROOT_USER"], "password": v["MINIO_ROOT_PASSWORD"],
               "extra": {"region_name": "us-east-1", "endpoint_url": self.s3_endpoint}}
        return {
            **self.driftline_env(),
            "AIRFLOW__CORE__EXECUTOR": v["AIRFLOW_EXECUTOR"],
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg_uri("airflow", "postgresql+psycopg2"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{v['REDIS_PORT']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": self.pg_uri("airflow", "db+postgresql"),
            "AIRFLOW__CORE__FERNET_KEY": v["AIRFLOW_FERNET_KEY"],
            "AIRFLOW__API_AUTH__JWT_SECRET": v["AIRFLOW_JWT_SECRET"],
            "AIRFLOW__API__SECRET_KEY": v["AIRFLOW_API_SECRET_KEY"],
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{v['AIRFLOW_ADMIN_USER']}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.airflow_home / "passwords.json"),
            "AIRFLOW__CORE__PARALLELISM": v["AIRFLOW_PARALLELISM"],
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
            "AIRFLOW_CONN_POSTGRES_SOURCE": self.pg_uri("source"),
            **self.native_airflow_env(),
        }

    def native_airflow_env(self) -> dict[str, str]:
        """What containers get from the image or their own network namespace: paths, the API's
        bind address, and distinct ports for the servers several components open on one host."""
        v = self.values
        return {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": v["AIRFLOW_PORT"],
            # One API worker: each costs ~300 MB and seconds of start-up on two cores.
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": v["SCHEDULER_HEALTH_PORT"],
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": v["TRIGGERER_LOG_PORT"],
            # Default 16 prefork slots per worker; two workers share two cores here.
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": v["STACK_CELERY_CONCURRENCY"],
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": v["STACK_TASK_HEARTBEAT_TIMEOUT"],
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": v["STACK_TASK_QUEUED_TIMEOUT"],
            "OMP_WAIT_POLICY": "PASSIVE",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        }

    def mlflow_env(self) -> dict[str, str]:
        """compose ``services.mlflow.environment``."""
        v = self.values
        return {
            "MLFLOW_BACKEND_STORE_URI": self.pg_uri("mlflow", "postgresql+psycopg"),
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": v["MINIO_ROOT_USER"],
            "AWS_SECRET_ACCESS_KEY": v["MINIO_ROOT_PASSWORD"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_SERVER_ALLOWED_HOSTS": "localhost,localhost:*,127.0.0.1,127.0.0.1:*",
        }

    def demo_command(self) -> list[str]:
        """compose ``services.demo-data.command`` (plus the native ``DEMO_ROWS_PER_DAY``)."""
        v = self.values
        return [sys.executable, "-m", "pipeline", "generate", "--model", "credit_default", "--out", "s3://lake",
                "--start", v["DEMO_START"], "--days", v["DEMO_DAYS"], "--drift-day", v["DEMO_DRIFT_DAY"],
                "--to-postgres", self.pg_uri("source"), "--table", "credit_applications",
                "--rows-per-day", v["DEMO_ROWS_PER_DAY"]]

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        base = {k: val for k, val in os.environ.items()
                if not k.startswith(("AIRFLOW", "DRIFTLINE", "MLFLOW", "AWS_"))}
        return {**base, **extra, MARKER: str(self.root)}

    # -- processes ----------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(argv, env=self._env(env), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        finally:
            log.close()
        (self.pids / f"{name}.pid").write_text(f"{proc.pid}\n")
        self._children.append(proc)
        return proc

    def _wait(self, name: str, check: Callable[[], bool], timeout: float,
              proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode} while starting; "
                                 f"see {self.logs / (name + '.log')}:\n{self._tail(name)}")
            try:
                if check():
                    return
            except Exception as err:  # noqa: BLE001 -- not up yet; reported on timeout
                last = err
            time.sleep(0.5)
        raise StackError(f"{name} not healthy after {timeout:.0f}s (last: {last!r}); "
                         f"see {self.logs / (name + '.log')}:\n{self._tail(name)}")

    def _tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _run(self, name: str, argv: list[str], env: Mapping[str, str], timeout: float = 300) -> None:
        with open(self.logs / f"{name}.log", "ab") as log:
            out = subprocess.run(argv, env=self._env(env), stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, timeout=timeout, cwd=REPO)
        if out.returncode != 0:
            raise StackError(f"{name} failed (exit {out.returncode}); see {self.logs / (name + '.log')}:\n"
                             f"{self._tail(name)}")

    def running(self) -> dict[str, int]:
        """Components whose pid file names a live process."""
        import psutil

        alive = {}
        for pid_file in sorted(self.pids.glob("*.pid")) if self.pids.exists() else []:
            pid = int(pid_file.read_text().split()[0])
            if psutil.pid_exists(pid):
                alive[pid_file.stem] = pid
        return alive

    # -- up -----------------------------------------------------------------------------------------

    def up(self, timeout: float = 300) -> dict[str, float]:
        """Start every service and wait until each is healthy; returns seconds per phase."""
        t0 = time.monotonic()
        if self.running():
            raise StackError(f"a stack is already running from {self.root} ({', '.join(self.running())}); "
                             "stop it first: make stack-down")
        self._check_ports()
        for d in (self.logs, self.pids, self.airflow_home / "plugins", self.root / "home", self.root / "redis"):
            d.mkdir(parents=True, exist_ok=True)
        self._save_values()
        try:
            self._up(timeout, t0)
        except BaseException:
            self.down()
            raise
        self.timings["total"] = round(time.monotonic() - t0, 1)
        (self.root / "started.json").write_text(json.dumps(self.timings, indent=2) + "\n")
        return self.timings

    def _check_ports(self) -> None:
        ports = {n: self.port(n) for n in PUBLISHED_PORTS if n != "REDIS_PORT" or self.celery}
        ports.update({n: self.port(n) for n in INTERNAL_PORTS})
        busy = [f"{n}={p}" for n, p in ports.items() if _port_in_use(p)]
        if busy:
            raise StackError(f"ports in use on 127.0.0.1: {', '.join(busy)}; stop what holds them (make down, "
                             "make stack-down) or set other values for these variables")

    def _save_values(self) -> None:
        path = self.root / "stack.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in sorted(self.values.items())))
        path.chmod(0o600)

    def _mark(self, phase: str, since: float) -> None:
        self.timings[phase] = round(time.monotonic() - since, 1)

    def _up(self, timeout: float, t0: float) -> None:
        self._start_postgres()
        redis = self._spawn("redis", [_which("redis-server"), "--bind", "127.0.0.1", "--port", self.values["REDIS_PORT"],
                                      "--save", "", "--appendonly", "no", "--dir", str(self.root / "redis")],
                            {}) if self.celery else None
        s3 = self._spawn("s3", [_which("moto_server"), "-H", "127.0.0.1", "-p", self.values["MINIO_API_PORT"]], {})
        self._wait("postgres", self._postgres_ready, 60)
        self._run("postgres-init", [self._psql(), "-h", "127.0.0.1", "-p", self.values["POSTGRES_PORT"],
                                    "-U", self.values["POSTGRES_USER"], "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                                    "-f", str(REPO / "docker" / "postgres-init" / "01-databases.sql")],
                  {"PGPASSWORD": self.values["POSTGRES_PASSWORD"]}, timeout=60)
        if redis is not None:
            self._wait("redis", self._redis_ready, 30, redis)
        self._wait("s3", self._create_buckets, 30, s3)
        self._mark("stores", t0)

        mlflow = self._spawn("mlflow", [_which("mlflow"), "server", "--host", "127.0.0.1", "--port",
                                        self.values["MLFLOW_PORT"], "--workers", "2", "--serve-artifacts",
                                        "--artifacts-destination", "s3://mlflow"], self.mlflow_env())
        demo = self._spawn("demo-data", self.demo_command(), self.driftline_env())
        self._run("airflow-init", [_which("airflow"), "db", "migrate"], self.airflow_env(), timeout=300)
        passwords = self.airflow_home / "passwords.json"
        passwords.write_text(json.dumps({self.values["AIRFLOW_ADMIN_USER"]: self.values["AIRFLOW_ADMIN_PASSWORD"]}))
        passwords.chmod(0o600)
        self._mark("airflow_db", t0)

        airflow = _which("airflow")
        components = {name: self._spawn(f"airflow-{name}", [airflow, *argv], self.airflow_env())
                      for name, argv in (("apiserver", ["api-server"]), ("scheduler", ["scheduler"]),
                                         ("dag-processor", ["dag-processor"]), ("triggerer", ["triggerer"]))}
        workers = {}
        if self.celery:
            for i in range(1, CELERY_WORKERS + 1):
                name = f"airflow-worker-{i}"
                env = {**self.airflow_env(), "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": self.values[f"WORKER_{i}_LOG_PORT"]}
                workers[name] = self._spawn(name, [airflow, "celery", "worker", "--celery-hostname",
                                                   f"worker-{i}@%h", "--pid", str(self.pids / f"{name}.celery"),
                                                   "--concurrency", self.values["STACK_CELERY_CONCURRENCY"]], env)
        self._wait("mlflow", lambda: _get_ok(f"{self.mlflow_url}/health"), timeout, mlflow)
        self._mark("mlflow", t0)
        self._wait("demo-data", lambda: demo.poll() is not None, timeout)
        if demo.returncode != 0:
            raise StackError(f"demo-data failed (exit {demo.returncode}); see {self.logs / 'demo-data.log'}")
        self._mark("demo_data", t0)
        self._wait("airflow-apiserver", self._airflow_healthy, timeout, components["apiserver"])
        for name, proc in workers.items():
            self._wait(name, lambda n=name: " ready." in (self.logs / f"{n}.log").read_text(errors="replace"),
                       timeout, proc)
        for name, proc in components.items():
            if proc.poll() is not None:
                raise StackError(f"airflow-{name} exited (code {proc.returncode}); see "
                                 f"{self.logs / f'airflow-{name}.log'}:\n{self._tail(f'airflow-{name}')}")
        self._mark("airflow", t0)

    def _airflow_healthy(self) -> bool:
        health = _get_json(f"{self.api_url}/api/v2/monitor/health")
        return all((health.get(k) or {}).get("status") == "healthy"
                   for k in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

    # -- PostgreSQL -------------------------------------------------------------------------------

    def _as_postgres(self) -> list[str]:
        # The server refuses to run as root; root runs it as Debian's `postgres` system user.
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _psql(self) -> str:
        found = shutil.which("psql") or str(_pg_bindir() / "psql")
        if not Path(found).exists():
            raise StackError(f"psql not found; install it: {INSTALL_HINTS['postgres']}")
        return found

    def _start_postgres(self) -> None:
        bindir = _pg_bindir()
        if self.pg_dir.exists():
            shutil.rmtree(self.pg_dir)
        self.pg_dir.mkdir(parents=True)
        log = self.logs / "postgres.log"
        log.touch()
        if os.geteuid() == 0:
            for path in (self.pg_dir, log):
                shutil.chown(path, "postgres", "postgres")
            probe = subprocess.run(self._as_postgres() + ["test", "-w", str(self.pg_dir)])
            if probe.returncode != 0:
                raise StackError(f"the postgres user cannot reach {self.pg_dir}: make every parent directory "
                                 f"world-searchable (chmod o+x) or set {MARKER} to a directory it can reach")
        pwfile = self.pg_dir / "pwfile"
        pwfile.write_text(self.values["POSTGRES_PASSWORD"] + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        data = self.pg_dir / "data"
        self._run("postgres-initdb", self._as_postgres() + [
            str(bindir / "initdb"), "-D", str(data), "-U", self.values["POSTGRES_USER"], f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"], {}, timeout=120)
        pwfile.unlink()
        opts = (f"-p {self.values['POSTGRES_PORT']} -k {self.pg_dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("postgres-start", self._as_postgres() + [
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"],
            {}, timeout=90)
        pid = (data / "postmaster.pid").read_text().split()[0]
        (self.pids / "postgres.pid").write_text(f"{pid}\n")

    def _postgres_ready(self) -> bool:
        import psycopg

        with psycopg.connect(self.pg_uri("postgres"), connect_timeout=3):
            return True

    def _stop_postgres(self) -> None:
        data = self.pg_dir / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(self._as_postgres() + [str(_pg_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast",
                                                  "-w", "-t", "60", "stop"], capture_output=True, timeout=90)
        shutil.rmtree(self.pg_dir, ignore_errors=True)

    # -- Redis, S3 --------------------------------------------------------------------------------

    def _redis_ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port("REDIS_PORT")), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def s3_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                            aws_access_key_id=self.values["MINIO_ROOT_USER"],
                            aws_secret_access_key=self.values["MINIO_ROOT_PASSWORD"])

    def _create_buckets(self) -> bool:
        client = self.s3_client()
        have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket not in have:
                client.create_bucket(Bucket=bucket)
        return True

    def _group_alive(self, pgid: int) -> bool:
        """Whether a process group has a live member (our own exited children are reaped first:
        a zombie would count as alive)."""
        for child in self._children:
            child.poll()
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False

    # -- down ---------------------------------------------------------------------------------------

    def down(self, grace: float = 20) -> list[str]:
        """Stop every process of this stack (pid files, then the environment marker) and drop the
        PostgreSQL cluster. Returns the names stopped; idempotent."""
        import psutil

        stopped = []
        for name, pid in sorted(self.running().items(), key=lambda kv: kv[0] == "postgres"):
            if name == "postgres":
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                continue
            stopped.append(name)
        for name in stopped:
            pid = int((self.pids / f"{name}.pid").read_text())
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self._group_alive(pid):
                time.sleep(0.2)
            if self._group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        if (self.pg_dir / "data" / "postmaster.pid").exists():
            stopped.append("postgres")
        self._stop_postgres()
        # Whatever escaped its process group (or outlived a crash of `up`) still carries the marker;
        # the caller and its parents (make, a shell) may carry it too and are spared.
        me = psutil.Process()
        spared = {me.pid, *(p.pid for p in me.parents())}
        strays = [p for p in psutil.process_iter() if p.pid not in spared and _carries_marker(p, str(self.root))]
        for p in strays:
            p.kill()
        psutil.wait_procs(strays, timeout=10)
        for pid_file in self.pids.glob("*") if self.pids.exists() else []:
            pid_file.unlink()
        return stopped + [f"stray pid {p.pid}" for p in strays]


def _carries_marker(proc, root: str) -> bool:
    import psutil

    try:
        return proc.environ().get(MARKER) == root
    except (psutil.Error, OSError):
        return False
