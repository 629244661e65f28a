"""The model specs the DAG files build from -- one bad spec breaks only its own model's DAGs.

Contract: :func:`model_specs` loads every ``*.yaml``/``*.yml`` of ``$DRIFTLINE_CONFIG_DIR`` on its
own, so an invalid file (or a second file claiming a model name) is returned as a
:class:`BrokenSpec` instead of failing the whole DAG file. :func:`broken_spec_dag` turns one into a
paused DAG named after the file, whose description and only task state the file, the field and
the problem (the error is also logged by the DAG processor): the other models' DAGs load as usual.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokenSpec:
    path: Path
    error: str

    @property
    def stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", self.path.stem)


def model_specs() -> tuple[list[Any], list[BrokenSpec]]:
    """``(valid specs, broken spec files)`` of the configured directory."""
    from pipeline.config import Settings, SpecError, load_spec, spec_paths

    settings = Settings.from_env()
    good, broken, seen = [], [], {}
    for path in spec_paths(settings.config_dir):
        try:
            spec = load_spec(path, settings)
        except SpecError as err:
            broken.append(BrokenSpec(path, str(err)))
            log.error("driftline: %s", err)
            continue
        if spec.name in seen:
            error = f"{path}: model name {spec.name!r} is already used by {seen[spec.name]}; rename one of them"
            broken.append(BrokenSpec(path, error))
            log.error("driftline: %s", error)
            continue
        seen[spec.name] = path
        good.append(spec)
    return good, broken


def spec_start_date(spec: Any) -> Any:
    """The DAGs' ``start_date`` from the spec's ``start_date`` (midnight UTC), or ``None`` for the
    factories' default (2000-01-01: `airflow dags test` and backfills accept any date of the data)."""
    import pendulum

    day = getattr(spec, "start_date", None)
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC") if day else None


def broken_spec_dag(kind: str, broken: BrokenSpec) -> Any:
    """A paused DAG ``<kind>__<file stem>`` whose description and only task state the spec's error."""
    import pendulum
    from airflow.sdk import dag, task

    @dag(dag_id=f"{kind}__{broken.stem}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, is_paused_upon_creation=True, tags=["driftline", kind, "broken-spec"],
         description=f"invalid model spec {broken.path.name}: fix the file to get this model's DAGs",
         doc_md=f"### The model spec `{broken.path}` is invalid\n\n```\n{broken.error}\n```\n\n"
                "The other models' DAGs are not affected. Fix the file; the DAG processor picks it up.")
    def broken_spec():
        @task(retries=0)
        def spec_error() -> None:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(broken.error)

        spec_error()

    return broken_spec()
