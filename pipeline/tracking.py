"""The MLflow tracking store's failures, told apart from the pipeline's own.

Contract: :func:`as_tracking_error` turns an exception that means "the tracking store cannot be
reached or is locked" -- SQLAlchemy's operational errors (a locked SQLite file, a database that
refuses connections), HTTP connection failures and timeouts, and MLflow's own errors about them
-- into :class:`TrackingUnavailable`, a retryable error whose message names the store with its
secrets redacted and says what to do; anything else is returned as it is. :func:`fail_fast`
sets MLflow's HTTP retry defaults so an unreachable tracking server fails in about half a minute
instead of five (a user's own settings win).
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.errors import RetryableError
from pipeline.redact import redact

_SIGNS = ("database is locked", "unable to open database", "connection refused", "max retries exceeded",
          "failed to establish a new connection", "read timed out", "connect timeout", "temporarily unavailable",
          "could not connect to server", "name or service not known", "server closed the connection")
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5"}


class TrackingUnavailable(RetryableError):
    """The MLflow tracking store is unreachable or locked."""


def fail_fast() -> None:
    """Bound MLflow's HTTP retries (2 retries, 10 s timeout) unless the environment sets them."""
    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def as_tracking_error(err: BaseException, tracking_uri: str) -> BaseException:
    """``err`` as :class:`TrackingUnavailable` when it is a tracking-store outage, else ``err``."""
    if isinstance(err, TrackingUnavailable):
        return err
    text = f"{type(err).__name__}: {err}"
    chain = [err]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt in chain or len(chain) > 8:
            break
        chain.append(nxt)
    names = {type(e).__module__ + "." + type(e).__name__ for e in chain}
    lowered = " ".join(str(e).lower() for e in chain)
    operational = any(n.startswith("sqlalchemy.exc.OperationalError") or n.endswith("ConnectionError")
                      or n.endswith("Timeout") or n.endswith("MaxRetryError") for n in names)
    if not operational and not any(sign in lowered for sign in _SIGNS):
        return err
    what = "locked by another writer" if "locked" in lowered else "unreachable"
    first_line = redact(text.strip().splitlines()[0])[:300]
    return TrackingUnavailable(f"the MLflow tracking store {redact(tracking_uri)} is {what} ({first_line}); "
                               "nothing was promoted by this step -- retry when the store is back")


#: MLflow 3's UI opens an experiment on its GenAI overview (traces, tokens) unless it is told the
#: experiment is for model development: driftline's experiments are.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def mark_model_development(client: Any, experiment: Any) -> None:
    """Tag an existing ``experiment`` (an MLflow Experiment) as model development, once."""
    key, value = next(iter(EXPERIMENT_KIND.items()))
    if (experiment.tags or {}).get(key) != value:
        client.set_experiment_tag(experiment.experiment_id, key, value)
