"""Failure notifications for the driftline DAGs, configured by one Airflow connection.

:class:`RunFailureNotifier` is the DAGs' ``on_failure_callback`` (Airflow runs DAG callbacks in
the DAG processor; ``dag.test()`` / ``airflow dags test`` run them in-process). What it does
depends on the connection ``driftline_notify`` (:data:`CONN_ID`):

* absent: one ERROR log line ``driftline: <dag> run <run id> failed: <reason>`` (in the DAG
  processor's log) -- nothing to configure for the embedded default;
* type ``http`` / ``https`` (any type whose URL is an http(s) URL): POST the JSON of
  :func:`failure_payload` to it. The URL is the connection's ``extra.url``, else
  ``<scheme>://<host>[:<port>]/<path>`` from the connection (the URI form
  ``http://host:port/path`` keeps the path in ``schema``); ``login``/``password`` become basic
  auth, ``extra.headers`` are added. A webhook that cannot be reached is logged, never raised:
  a notification must not change the run's outcome.

The payload carries the run's note (:mod:`driftline_airflow.notes`: "failed at validate:
ValidationFailed: ...") when Airflow hands it over (the scheduler's callback request to the DAG
processor does; ``dag.test()`` does not), else the failed task and Airflow's reason, and always
the failed task's log URL.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib import request

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

CONN_ID = "driftline_notify"
TIMEOUT_SECONDS = 10


def failure_payload(context: Any) -> dict[str, Any]:
    """The JSON a failed run is announced with: ``text`` (one line), ``dag_id``, ``run_id``,
    ``state``, ``logical_date``, ``reason``, ``note``, ``failed_task`` and ``log_url`` (when known)."""
    dag_run = context.get("dag_run")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    run_id = getattr(dag_run, "run_id", None)
    note = getattr(dag_run, "note", None)
    reason = context.get("reason") or (str(context["exception"]) if context.get("exception") else None)
    failed_task = getattr(ti, "task_id", None)
    logical_date = getattr(dag_run, "logical_date", None)
    why = note or (f"failed at {failed_task}: {reason}" if failed_task else reason) or "failed"
    return {
        "text": f"driftline: {dag_id} run {run_id} failed -- {why}",
        "dag_id": dag_id,
        "run_id": run_id,
        "state": "failed",
        "logical_date": logical_date.isoformat() if logical_date else None,
        "reason": reason,
        "note": note,
        "failed_task": failed_task,
        "log_url": getattr(ti, "log_url", None),
    }


class RunFailureNotifier(BaseNotifier):
    """Announce a failed driftline DAG run: POST JSON to the ``driftline_notify`` connection, or
    log one line when there is none (see the module docstring)."""

    def __init__(self, conn_id: str = CONN_ID):
        super().__init__()
        self.conn_id = conn_id

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (no template fields). BaseNotifier's would build a Jinja environment
        from ``context["dag"]``, which under ``dag.test()`` is a SerializedDAG without one."""

    def notify(self, context: Any) -> None:
        payload = failure_payload(context)
        conn = _connection(self.conn_id)
        if conn is None:
            log.error("%s (set connection %r to an http URL to have it POSTed)", payload["text"], self.conn_id)
            return
        url = webhook_url(conn)
        body = json.dumps(payload, default=str).encode()
        req = request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json",
                                                                      **_headers(conn)})
        try:
            with request.urlopen(req, timeout=TIMEOUT_SECONDS) as response:
                log.info("driftline: failure of %s run %s posted to %s (HTTP %s)", payload["dag_id"],
                         payload["run_id"], _redacted(url), response.status)
        except OSError as err:
            log.error("%s -- and the notification to connection %r (%s) failed: %s; check the connection",
                      payload["text"], self.conn_id, _redacted(url), err)


def webhook_url(conn: Any) -> str:
    """The URL a connection names (see the module docstring).

    Raises:
        ValueError: the connection names no http(s) URL; the message says what to set.
    """
    extra = conn.extra_dejson or {}
    if extra.get("url"):
        url = str(extra["url"])
    else:
        host = conn.host or ""
        if "://" in host:
            url = host
        else:
            scheme = "https" if str(conn.conn_type or "").lower() == "https" else "http"
            path = (conn.schema or "").lstrip("/")
            url = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}/{path}" if host else ""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"connection {conn.conn_id!r} names no http(s) URL (host {conn.host!r}); set its "
                         "extra.url, or give it type http with host, port and path")
    return url


def _connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _headers(conn: Any) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in ((conn.extra_dejson or {}).get("headers") or {}).items()}
    if conn.login:
        token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return headers


def _redacted(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
