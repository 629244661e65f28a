"""Real, throwaway servers on loopback for tests and benchmarks.

* :class:`PostgresCluster` -- a private PostgreSQL cluster (Debian's binaries) in a temp dir,
  listening on 127.0.0.1 only, trust auth, one database ``driftline``.
* :class:`S3Server` -- moto's S3 API server on 127.0.0.1.

Both are context managers that clean up after themselves. A missing binary is an error that
names the fix, never a reason to skip: a test that cannot reach its server must fail.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

_PG_TOOLS = ("initdb", "pg_ctl", "postgres")
_PG_INSTALL_HINT = "install Debian's postgresql package: apt-get install -y postgresql"


class ServerError(RuntimeError):
    """A test server could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    # Newest major version first: Debian installs each under its own directory.
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                      reverse=True)
    candidates.extend(Path(p) for p in versions)
    for d in candidates:
        if all((d / tool).is_file() for tool in _PG_TOOLS):
            return d
    raise ServerError(
        f"PostgreSQL server binaries ({', '.join(_PG_TOOLS)}) not found on PATH, under "
        f"`pg_config --bindir` or /usr/lib/postgresql/*/bin; {_PG_INSTALL_HINT}"
    )


class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1.

    Attributes (valid inside ``with``):
        uri: ``postgresql://postgres@127.0.0.1:PORT/driftline``.
        port: the TCP port.
    """

    def __init__(self, database: str = "driftline"):
        self.database = database
        self.port = 0
        self.uri = ""
        self._tmp: Path | None = None
        self._bindir: Path | None = None
        self._started = False

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # The server refuses to run as root; root runs the tools as the `postgres` system user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(prefix + list(args), capture_output=True, text=True, timeout=120)

    def __enter__(self) -> "PostgresCluster":
        self._bindir = _pg_bindir()
        self._tmp = Path(tempfile.mkdtemp(prefix="driftline-pg-"))
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        assert self._tmp is not None and self._bindir is not None
        data, sock = self._tmp / "data", self._tmp / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self._tmp, "postgres", "postgres")
            shutil.chown(sock, "postgres", "postgres")
        out = self._run(str(self._bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--no-sync")
        if out.returncode != 0:
            raise ServerError(f"initdb failed in {data}: {out.stderr.strip() or out.stdout.strip()}")
        for attempt in range(3):
            self.port = free_port()
            opts = (f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                    f"-c synchronous_commit=off -c full_page_writes=off")
            out = self._run(str(self._bindir / "pg_ctl"), "-D", str(data), "-l", str(self._tmp / "server.log"),
                            "-o", opts, "-w", "-t", "60", "start")
            if out.returncode == 0:
                self._started = True
                break
        else:
            log = (self._tmp / "server.log").read_text(errors="replace")[-2000:]
            raise ServerError(f"pg_ctl start failed on port {self.port}: {out.stderr.strip()}\n{log}")
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                                     autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
                return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise ServerError(f"PostgreSQL on 127.0.0.1:{self.port} not reachable: {err}") from None
                time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        if self._started and self._tmp is not None and self._bindir is not None:
            self._run(str(self._bindir / "pg_ctl"), "-D", str(self._tmp / "data"), "-m", "fast", "-w", "stop")
            self._started = False
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class S3Server:
    """moto's S3 API server on 127.0.0.1 (moto keeps buckets per process, so use fresh bucket names).

    Attributes (valid inside ``with``):
        endpoint_url: ``http://127.0.0.1:PORT``.
    """

    def __init__(self) -> None:
        self.endpoint_url = ""
        self._server: Any = None

    def __enter__(self) -> "S3Server":
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO; test output should show only failures.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client().list_buckets()
                return self
            except Exception as err:
                if time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise ServerError(f"S3 API server at {self.endpoint_url} not answering: {err}") from None
                time.sleep(0.1)

    def client(self) -> Any:
        """A boto3 S3 client for this server (dummy ``testing`` credentials, us-east-1)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
