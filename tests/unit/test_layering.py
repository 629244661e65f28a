"""``pipeline/`` never imports airflow: neither in its source nor by importing its modules."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipeline"


def airflow_imports(source: str) -> list[str]:
    """Names of airflow modules imported anywhere in ``source`` (top level or inside functions)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n == "airflow" or n.startswith("airflow.")]
    return found


@pytest.mark.parametrize("source, expected", [
    ("import airflow", ["airflow"]),
    ("from airflow.sdk import dag", ["airflow.sdk"]),
    ("import os, airflow.providers.amazon as amazon", ["airflow.providers.amazon"]),
    ("def task():\n    from airflow.hooks.base import BaseHook\n", ["airflow.hooks.base"]),
    ("import airflowish\nfrom pipeline import config\nfrom . import airflow", []),
], ids=["import", "from", "alias", "nested", "look-alikes"])
def test_checker_finds_airflow_imports(source, expected):
    assert airflow_imports(source) == expected


def _modules() -> list[str]:
    return sorted(f"pipeline.{p.stem}" for p in PIPELINE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def test_pipeline_sources_do_not_import_airflow():
    offenders = {str(p.relative_to(REPO)): airflow_imports(p.read_text())
                 for p in sorted(PIPELINE.rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert "pipeline.ingest" in _modules()


_PROBE = """
import importlib, json, sys
loaded = {}
for name in sys.argv[1:]:
    importlib.import_module(name)
    loaded[name] = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))[:5]
print(json.dumps(loaded))
"""


def test_importing_pipeline_modules_does_not_load_airflow():
    """One interpreter imports every module in turn, recording whether airflow got loaded."""
    modules = ["pipeline", *_modules()]
    out = subprocess.run([sys.executable, "-c", _PROBE, *modules], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), "GX_ANALYTICS_ENABLED": "false"})
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(loaded) == modules
    first = next((m for m, mods in loaded.items() if mods), None)
    assert first is None, f"importing {first} loaded {loaded[first]}"
