"""docs/add-your-own-model.md, executed: its spec and commands on its own example data.

A scratch project mirrors the repository (its code, DAGs, plugins, docs and venv linked in; its
own config/, expectations/ and .driftline/). The first YAML block of the page becomes
config/delivery_time.yaml, then every ``bash`` block runs in order: ``python -m pipeline ...``
lines through the CLI's ``main`` in this process (one import of GX and MLflow instead of one per
command), every other line with bash, ``export`` lines carried over to later ones. The outcomes
the page shows are then checked on the real stores it wrote.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import parse_spec
from tests.conftest import REPO, latest_record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAGE = REPO / "docs" / "add-your-own-model.md"
MODEL = "delivery_time"


def blocks(markdown: str, language: str) -> list[str]:
    """The contents of the page's fenced code blocks in ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.M | re.S)


def commands(block: str) -> list[str]:
    """A bash block's commands, backslash continuations joined."""
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip() and not c.startswith("#")]


def scratch_project(root: Path) -> Path:
    root.mkdir()
    for name in ("pipeline", "dags", "plugins", "docs"):
        (root / name).symlink_to(REPO / name)
    (root / ".venv").symlink_to(Path(sys.prefix))
    (root / "config").mkdir()
    (root / "expectations").mkdir()
    return root


def run_shell(command: str, cwd: Path, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Run one command with bash; returns its output and the environment after it (``export``)."""
    dump = cwd / ".walkthrough-env"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", f"{command}\nenv -0 > {shlex.quote(str(dump))}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"`{command}` failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout, dict(item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)


def test_the_walkthrough_runs_as_written(tmp_path, monkeypatch, capsys):
    page = PAGE.read_text()
    project = scratch_project(tmp_path / "driftline")
    spec_yaml, *other_yaml = blocks(page, "yaml")
    (project / "config" / f"{MODEL}.yaml").write_text(spec_yaml)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "MLFLOW_", "AIRFLOW"))}
    env.update(DRIFTLINE_HOME=str(project / ".driftline"), DRIFTLINE_CONFIG_DIR=str(project / "config"))
    for key in [k for k in os.environ if k.startswith(("DRIFTLINE_", "MLFLOW_TRACKING_URI"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DRIFTLINE_HOME", env["DRIFTLINE_HOME"])
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", env["DRIFTLINE_CONFIG_DIR"])
    monkeypatch.chdir(project)

    shell_outputs: list[str] = []
    cli_outputs: dict[str, str] = {}
    for block in blocks(page, "bash"):
        for command in commands(block):
            if command.startswith("python -m pipeline "):
                argv = shlex.split(command)[3:]
                status = main(argv)
                captured = capsys.readouterr()
                assert status == 0, f"`{command}` exited {status}:\n{captured.err[-3000:]}"
                cli_outputs[command] = captured.out
            else:
                output, env = run_shell(command, project, env)
                shell_outputs.append(output)

    # 3: a suite drafted from the data, with the reviewable ranges the page describes.
    suite = json.loads((project / "expectations" / f"{MODEL}.json").read_text())
    ranges = {(e["kwargs"].get("column"), e["meta"].get("range")) for e in suite["expectations"]}
    assert ("distance_km", "physical") in ranges and ("distance_km", "typical") in ranges
    assert any(e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "city"
               for e in suite["expectations"])

    # 4: the first run promotes the first champion, trained on the page's windows.
    artifacts = project / ".driftline" / "artifacts"
    record = latest_record(artifacts, MODEL, "2025-10-08")
    assert record["status"] == "promoted" and record["champion_after"] == "1"
    assert record["windows"]["test"][1].startswith("2025-10-07")
    status_out = next(out for cmd, out in cli_outputs.items() if cmd.startswith("python -m pipeline status"))
    assert "champion    v1" in status_out

    # 5: both DAGs of the new spec load in Airflow.
    dag_list = "\n".join(shell_outputs)
    assert f"retrain__{MODEL}" in dag_list and f"monitor__{MODEL}" in dag_list, dag_list

    # 6: a stable day is judged as such; after the shift the drift is reported on distance_km alone.
    stable = latest_record(artifacts, MODEL, "2025-10-10", kind="monitor")
    assert stable["status"] == "no_retrain" and not stable["feature_drift"]["drifted"]
    shifted = latest_record(artifacts, MODEL, "2025-10-12", kind="monitor")
    drift = json.loads(Path(shifted["decision_uri"]).with_name("drift.json").read_text())
    assert drift["drifted_features"] == ["distance_km"]
    assert "distance_km" in next(out for cmd, out in cli_outputs.items() if "--monitor --date 2025-10-12" in cmd)

    # The Postgres variant on the page is a valid spec too.
    for fragment in other_yaml:
        spec = parse_spec({**yaml.safe_load(spec_yaml), **yaml.safe_load(fragment)})
        assert spec.source.kind == "postgres" and spec.source.table
