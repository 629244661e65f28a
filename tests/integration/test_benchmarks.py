"""The benchmarks stay runnable: each one end to end at a tiny size, its JSON complete. Nothing
here asserts a time (measurements live in benchmarks/results/, taken on an idle machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run(args: list[str], tmp_path) -> dict:
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "MLFLOW_TRACKING"))}
    env.update(PYTHONPATH=str(REPO), DRIFTLINE_HOME=str(tmp_path / "home"), GX_ANALYTICS_ENABLED="false")
    proc = subprocess.run([sys.executable, "-m", *args, "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_pipeline_benchmark_compares_the_whole_run_with_the_bare_work(tmp_path):
    report = _run(["benchmarks.pipeline", "--rows", "20000", "--workdir", str(tmp_path / "work")], tmp_path)
    assert report["rows"] == 20000 and report["machine"]["cores"]
    assert len(report["machine"]["load_average_before"]) == 3
    stages = report["pipeline"]["stages"]
    assert list(stages) == ["ingest", "validate", "split", "train", "evaluate", "promote"]
    for name, stage in stages.items():
        assert stage["seconds"] > 0 and stage["cpu_seconds"] > 0 and stage["peak_rss_mb"] > 0, name
    for side in ("pipeline", "bare"):
        assert report[side]["seconds"] > 0 and report[side]["peak_rss_mb"] > 0
    assert report["pipeline"]["status"] == "promoted"
    # Same rows, same parameters, same model: the comparison is of orchestration only.
    assert abs(report["quality"]["roc_auc_difference"]) < 0.002
    assert report["quality"]["best_iteration"][0] == report["quality"]["best_iteration"][1]
    assert set(report["ratio"]) == {"wall", "cpu", "peak_rss"}
    docs = report["pipeline"]["data_docs_rendered_apart"]
    assert docs["seconds"] > 0 and docs["cpu_seconds"] > 0
    assert report["ratio_including_data_docs"]["wall"] > report["ratio"]["wall"]
    assert len(report["pairs"]) == 1


@pytest.mark.parametrize("args,fields", [
    (["benchmarks.ingest", "--rows", "20000"], {"summary", "measurements"}),
    (["benchmarks.train", "--rows", "20000"], {"seconds", "cpu_seconds", "ratios", "best_iteration"}),
    (["benchmarks.evaluate", "--rows", "5000", "--replicates", "50"],
     {"driftline_bootstrap_all_metrics", "sklearn_loop_roc_auc_only", "speedup_vs_anchor"}),
], ids=["ingest", "train", "evaluate"])
def test_stage_benchmarks_write_their_json(tmp_path, args, fields):
    report = _run(args, tmp_path)
    assert fields <= set(report), (args[0], fields - set(report))
    if args[0] == "benchmarks.ingest":
        assert report["summary"] and all(row["ratio"] > 0 for row in report["summary"])


def test_validation_benchmark_agrees_with_its_numpy_anchor(tmp_path):
    """benchmarks/validate.py on 20k rows: GX's engine, the fast engine, the pipeline's
    validation and the numpy anchor all reach the same verdict on every expectation, gx_native
    gives GX's whole result for every one of them, and the injected bad values fail some."""
    report = _run(["benchmarks.validate", "--rows", "20000"], tmp_path)
    assert report["rows"] == 20000 and report["failed_expectations"] > 0 and report["quarantined_rows"] > 0
    assert report["verdicts_agree"] == {"gx_own_vs_fast": True, "anchor_vs_gx": True, "anchor_disagreements": [],
                                        "pipeline_report_vs_gx": True}
    assert report["native_vs_gx"] == {"verdicts": True, "unexpected_counts": True, "results_equal": True,
                                      "fallbacks": 0}
    for side in ("gx_import", "gx_own_engine", "gx_fast_engine", "pipeline_validate_frame", "numpy_anchor",
                 "native_engine"):
        assert report[side]["seconds"] > 0, side


def test_monitor_benchmark_flags_exactly_the_strong_shifts(tmp_path):
    """The driftline side of benchmarks/monitor.py on a tiny shape: every strongly shifted column
    flagged, no slightly shifted or unshifted one."""
    from benchmarks import monitor

    paths = monitor.generate(20_000, 24, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.monitor", "--side", "driftline", "--columns", "24",
                           "--paths", json.dumps(paths)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["drifted"]) == monitor._truth(24), result["drifted"]
    assert result["seconds"] > 0 and result["peak_rss_mb"] > 0


@pytest.mark.skipif(not (REPO / ".venv-evidently" / "bin" / "python").exists(),
                    reason="Evidently runs from its own venv (pandas < 3): `make bench-monitor` creates .venv-evidently")
def test_monitor_benchmark_against_evidently(tmp_path):
    report = _run(["benchmarks.monitor", "--shapes", "5000x12", "--workdir", str(tmp_path / "work")], tmp_path)
    shape = report["shapes"][0]
    assert shape["verdicts"]["of"] == 12 and shape["evidently"]["version"]
    assert shape["driftline"]["seconds"] > 0 and shape["evidently"]["seconds"] > 0
