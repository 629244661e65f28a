"""The model-health dashboard end to end: real retrains, monitor days, a rollback and a covariate
shift on a demo lake and a real MLflow store, then the page rendered by headless Chromium.

Assertions are on what the browser rendered (the DOM after load, a screenshot), not on the HTML
text: a malformed SVG or a chart that depends on something unavailable offline would fail here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.demo import DemoOptions, generate
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "credit_board"
MONITORED = ("2026-02-13", "2026-02-15", "2026-02-16", "2026-02-17")


def chromium() -> str:
    """Debian's ``chromium``. ``.ci/run`` installs it when absent and sets
    ``DRIFTLINE_REQUIRE_CHROMIUM=1``, so in CI a missing browser fails the test instead of skipping it."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    message = ("no Chromium on PATH: run .ci/run, or `apt-get install -y chromium` (Debian), to render the "
               "dashboard in a real browser")
    if os.environ.get("DRIFTLINE_REQUIRE_CHROMIUM") == "1":
        pytest.fail(message)
    pytest.skip(message)


def headless(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run Chromium headless with a throwaway profile and no network."""
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", *args],
        capture_output=True, text=True, timeout=90, check=False)


@pytest.fixture
def monitored_model(settings, mlflow_uri, tmp_path):
    """Two forced promotions (v1 on 2026-02-12, v2 on 2026-02-15), a rollback to v1, four monitored
    days, and a covariate shift from 2026-02-16 on: every kind of record the dashboard draws (the
    spec's boosting rounds and bootstrap replicates cut down to keep the test fast)."""
    settings = replace(settings, mlflow_tracking_uri=mlflow_uri, config_dir=tmp_path / "config")
    (tmp_path / "config").mkdir()
    text = (REPO / "config" / "credit_default.yaml").read_text().replace("name: credit_default", f"name: {MODEL}")
    text = text.replace("n_estimators: 300", "n_estimators: 60").replace("n_bootstrap: 500", "n_bootstrap: 100")
    (tmp_path / "config" / f"{MODEL}.yaml").write_text(text)
    generate(settings.lake_root, date(2026, 1, 1), 47, DemoOptions(rows_per_day=500, drift_day=date(2026, 2, 16),
                                                                 drift_kind="covariate"), model="credit_default")

    def run(day: str) -> None:
        assert main(["run", MODEL, "--date", day, "--force-promote", "--reason", "dashboard test", "-q"], settings) == 0

    def monitor(day: str) -> None:
        assert main(["monitor", MODEL, "--date", day, "-q"], settings) == 0

    run("2026-02-12")
    monitor("2026-02-13")
    run("2026-02-15")
    monitor("2026-02-15")
    assert main(["rollback", MODEL, "--reason", "calibration drifted", "-q"], settings) == 0
    monitor("2026-02-16")
    monitor("2026-02-17")
    return settings


def test_dashboard_written_by_the_monitor_and_rendered_in_a_browser(monitored_model, tmp_path, capsys):
    from mlflow import MlflowClient

    from tests.conftest import latest_record

    settings = monitored_model
    browser = chromium()
    record = latest_record(settings.artifact_root, MODEL, "2026-02-17", "monitor")
    page = Path(record["artifacts"]["dashboard"])
    assert page.exists() and "data-day='2026-02-17'" in page.read_text(), "the monitor wrote no dashboard"
    run_id = record["links"]["mlflow_run"].rsplit("/", 1)[-1]
    logged = {a.path for a in MlflowClient(tracking_uri=settings.mlflow_tracking_uri).list_artifacts(run_id)}
    assert "dashboard.html" in logged, f"the monitor's MLflow run has {sorted(logged)}"

    out = tmp_path / "board.html"
    capsys.readouterr()
    assert main(["dashboard", MODEL, "--out", str(out)], settings) == 0
    assert "4 monitored day(s)" in capsys.readouterr().out

    dom = headless(browser, tmp_path, "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert "<svg" in rendered and "<script" not in rendered

    cells = re.findall(r"<rect class=\"cell\" data-feature=\"([^\"]+)\" data-day=\"([^\"]+)\"[^>]*fill=\"(#[0-9a-f]{6})\"",
                       rendered)
    features = json.loads(Path(record["artifacts"]["drift"]).read_text())["features"]
    assert len(cells) == len(features) * len(MONITORED), f"{len(cells)} heatmap cells for {len(features)} features"
    assert {name for name, _, _ in cells} == set(features)
    assert {day for _, day, _ in cells} == set(MONITORED)
    colours_before = {c for _, day, c in cells if day < "2026-02-16"}
    colours_after = {c for _, day, c in cells if day >= "2026-02-16"}
    assert colours_after - colours_before, "the covariate shift from 2026-02-16 coloured no cell differently"

    estimated = re.search(r"<polyline class=\"series\" data-series=\"estimated\" points=\"([^\"]+)\"", rendered)
    assert estimated, "no estimated-performance line"
    assert len(estimated.group(1).split()) == len(MONITORED)  # one point per monitored day
    psi = re.search(r"<polyline class=\"series\" data-series=\"prediction_psi\" points=\"([^\"]+)\"", rendered)
    assert psi and len(psi.group(1).split()) == len(MONITORED)
    assert 'data-threshold="prediction_psi"' in rendered and "threshold tolerance" in rendered

    events = dict(re.findall(r"<g class=\"event\" data-kind=\"(\w+)\" data-day=\"([\d-]+)\"", rendered))
    assert events.get("promotion") in ("2026-02-12", "2026-02-15")
    promotions = set(re.findall(r"data-kind=\"promotion\" data-day=\"([\d-]+)\"", rendered))
    assert promotions == {"2026-02-12", "2026-02-15"}
    assert events.get("rollback") == "2026-02-16"  # the first monitored day of v1 again after v2

    shot = tmp_path / "board.png"
    result = headless(browser, tmp_path, f"--screenshot={shot}", "--window-size=1100,2400", out.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, f"the screenshot has {len(colours)} colours: the page rendered blank"
    reds = sum(n for n, (r, g, b) in colours if r > 150 and g < 120 and b < 120)
    assert reds > 50, "no drifted (red) heatmap cell is visible in the screenshot"

