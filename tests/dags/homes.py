"""An isolated DRIFTLINE_HOME with demo data, shared by the DAG end-to-end tests."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import date
from pathlib import Path


ISOLATED_VARS = ("DRIFTLINE_HOME", "MLFLOW_TRACKING_URI", "DRIFTLINE_ARTIFACT_ROOT", "DRIFTLINE_LAKE_ROOT")


@contextmanager
def driftline_home(root: Path, days: int, **demo_options):
    """DRIFTLINE_HOME at ``root`` (lake, artifacts and MLflow store inside it) with ``days`` of
    demo data from 2026-01-01; the environment is restored afterwards. Tasks run by dag.test()
    read it through Settings.from_env(), as they would on a worker."""
    from pipeline.config import Settings
    from pipeline.demo import DemoOptions, generate

    saved = {k: os.environ.get(k) for k in ISOLATED_VARS}
    os.environ["DRIFTLINE_HOME"] = str(root)
    for k in ISOLATED_VARS[1:]:
        os.environ.pop(k, None)
    try:
        settings = Settings.from_env()
        generate(settings.lake_root, date(2026, 1, 1), days, DemoOptions(**demo_options), model="credit_default")
        yield settings
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
