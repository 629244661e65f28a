"""Quiet logs by default: driftline's own messages, and only warnings from the libraries it drives.

Great Expectations logs ~200 INFO lines per validation (docstring registration, datasource
set-up), MLflow and Alembic log every store migration and model log, and botocore every
credential lookup. None of that helps a person reading a run. :func:`configure` sets, once per
process and before those libraries are imported:

* ``pipeline`` and ``driftline_airflow`` loggers at the chosen level (``INFO`` by default);
* the noisy third-party loggers (:data:`NOISY`) at ``WARNING`` unless ``verbose``, and MLflow's
  artifact download progress bars off (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``, unless set).

The level comes from the CLI (``--verbose`` / ``--quiet``) or the environment:
``DRIFTLINE_LOG_LEVEL`` (a level name; ``DEBUG`` also makes the libraries verbose) and
``DRIFTLINE_VERBOSE=1`` (libraries at ``INFO``). Airflow tasks read the same variables (set them
in the worker's environment, or per run with the DAGs' ``verbose`` param).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

#: Third-party loggers held at WARNING unless verbose.
NOISY: tuple[str, ...] = (
    "great_expectations", "mlflow", "alembic", "botocore", "boto3", "urllib3", "s3transfer", "matplotlib",
    "numexpr", "skops", "git", "py4j", "sqlalchemy", "PIL", "fsspec", "httpx", "filelock",
)
OWN: tuple[str, ...] = ("pipeline", "driftline_airflow", "benchmarks")


def level_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, bool]:
    """``(level, verbose)`` from ``DRIFTLINE_LOG_LEVEL`` and ``DRIFTLINE_VERBOSE``."""
    env = os.environ if environ is None else environ
    name = (env.get("DRIFTLINE_LOG_LEVEL") or "INFO").strip().upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ValueError(f"DRIFTLINE_LOG_LEVEL={name!r} is not a logging level; use DEBUG, INFO, WARNING or ERROR")
    verbose = (env.get("DRIFTLINE_VERBOSE") or "").strip().lower() in ("1", "true", "yes", "on")
    return level, verbose or level <= logging.DEBUG


def configure(level: int = logging.INFO, verbose: bool = False, *, handler: bool = False) -> None:
    """Set driftline's loggers to ``level`` and the libraries' to WARNING (INFO when ``verbose``).

    ``handler``: also give the root logger a stderr handler (the CLI; Airflow has its own)."""
    if handler:
        logging.basicConfig(level=min(level, logging.INFO if verbose else logging.WARNING),
                            format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger().setLevel(min(level, logging.INFO) if verbose else logging.WARNING)
    if not verbose:
        # MLflow draws a tqdm bar on stderr for every artifact download (a model's digest check).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in OWN:
        logging.getLogger(name).setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(min(level, logging.INFO) if verbose else max(level, logging.WARNING))
