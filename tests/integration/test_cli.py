"""`python -m pipeline` end to end through main(): run twice, status, show, rollback,
suggest-suite, and the errors a user meets -- on a real lake and MLflow store."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.demo import DemoOptions, generate
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_cli_run_status_show_rollback_suggest(settings, mlflow_uri, tmp_path, capsys):
    settings = replace(settings, mlflow_tracking_uri=mlflow_uri, config_dir=tmp_path / "config")
    (tmp_path / "config").mkdir()
    text = (REPO / "config" / "credit_default.yaml").read_text().replace("name: credit_default", "name: credit_cli")
    (tmp_path / "config" / "credit_cli.yaml").write_text(text)
    generate(settings.lake_root, date(2026, 1, 1), 50, DemoOptions(rows_per_day=500), model="credit_default")

    assert main(["run", "credit_cli", "--date", "2026-02-12", "--force-promote", "--reason", "cli test"], settings) == 0
    assert "python -m pipeline data-docs credit_cli --date 2026-02-12" in capsys.readouterr().err
    assert main(["run", "credit_cli", "--date", "2026-02-19", "--force-promote", "--reason", "cli test",
                 "--data-docs"], settings) == 0
    assert "Data Docs are pending" not in capsys.readouterr().err
    runs = sorted((Path(settings.artifact_root) / "credit_cli" / "runs").glob("*/*/validation.json"))
    pending = {p.parent.parent.name: json.loads(p.read_text())["data_docs_pending"] for p in runs}
    assert pending == {"2026-02-12": True, "2026-02-19": False}
    assert not (runs[0].parent / "data_docs" / "index.html").exists()
    assert (runs[1].parent / "data_docs" / "index.html").exists()
    # The run left its Data Docs to `data-docs`, which renders them from the stored GX results.
    assert main(["data-docs", "credit_cli"], settings) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rendered"] == [str(runs[0].parent / "data_docs" / "index.html")]
    assert (runs[0].parent / "data_docs" / "index.html").exists()
    assert json.loads(runs[0].read_text())["data_docs_pending"] is False
    site = (Path(settings.artifact_root) / "credit_cli" / "data_docs" / "index.html").read_text()
    assert "2026-02-12 retrain" in site and "2026-02-19 retrain" in site
    assert main(["data-docs", "credit_cli"], settings) == 0
    assert json.loads(capsys.readouterr().out)["rendered"] == []

    assert main(["status", "credit_cli"], settings) == 0
    out = capsys.readouterr().out
    assert "champion    v2" in out and "v1 -> v2" in out

    assert main(["show", "credit_cli", "--date", "2026-02-19"], settings) == 0
    out = capsys.readouterr().out
    assert "PROMOTED" in out and "[pass] floor" in out and "decision.json" in out

    assert main(["rollback", "credit_cli", "--reason", "bad calibration"], settings) == 0
    out = capsys.readouterr().out
    assert "rolled back from v2 to v1" in out
    assert main(["status", "credit_cli", "--json"], settings) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["history"][-1]["kind"] == "rollback" and state["history"][-1]["reason"] == "bad calibration"

    with pytest.raises(SystemExit) as exit_info:
        main(["run", "credit_cli", "--date", "2026-02-20", "--force-promote"], settings)
    assert exit_info.value.code == 2 and "--force-promote needs --reason" in capsys.readouterr().err

    suite_path = tmp_path / "suite.json"
    assert main(["suggest-suite", "credit_cli", "--date", "2026-02-01", "--days", "7",
                 "--out", str(suite_path)], settings) == 0
    suite = json.loads(suite_path.read_text())
    assert len(suite["expectations"]) > 20 and suite["name"]

    assert main(["rollback", "credit_cli", "--to-version", "9", "--reason", "x"], settings) == 2
    err = capsys.readouterr().err
    assert "NoSuchVersion" in err and "9" in err
