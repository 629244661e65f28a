"""The retraining loop end to end, day by day through the real step functions (a fast subset of
``benchmarks/retraining.py``): the monitor every day, the retrain it requests the same day, each
stream in its own lake, artifact root and SQLite MLflow store.

Calendar (days from 2026-01-01): the first champion is trained by a scheduled run on day
W = label_delay + train + valid + test days (49), the stream changes on C = W + 2 and the loop
runs to C + label_delay + 3. The first post-change labels (day C) reach the monitor on
C + label_delay + 1. 2,000 rows a day, as in the benchmark: the deadline is in days while the
spec's ``adaptation.min_post_change_rows`` (1,500) is in rows, so with much fewer rows a day the
deadline cannot be met however well the loop works (600 a day reach 1,500 only on C + 10).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from benchmarks import retraining as bench
from tests.conftest import REPO

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS_PER_DAY = 2000
DAYS_BEFORE = 2
EXTRA_DAYS = 3


def _loop(tmp_path, stream: str, label_delay: int) -> tuple[bench.StreamRun, dict]:
    config = bench.Config(streams=(stream,), policies=("loop",), rows_per_day=ROWS_PER_DAY, days_before=DAYS_BEFORE,
                          days_after=label_delay + EXTRA_DAYS, jobs=1, workdir=str(tmp_path / "work"),
                          out=str(tmp_path / "out"))
    run = bench.stream_run(stream, config, code="test")
    run.root.mkdir(parents=True)
    bench.ensure_lake(run)
    bench.ensure_seed(run)
    return run, bench.run_policy(run, "loop", bench._frames(run))


@pytest.fixture(scope="module")
def label_delay() -> int:
    from pipeline.config import Settings, load_spec

    return load_spec(REPO / "config" / "credit_default.yaml", Settings.from_env({})).label_delay_days


def test_abrupt_concept_change_puts_a_post_change_champion_in_service(tmp_path, label_delay, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, result = _loop(tmp_path, "credit_default_concept", label_delay)
    cal = run.calendar
    change = datetime.combine(cal.day(cal.c), datetime.min.time(), timezone.utc)
    days = {d["i"]: d for d in result["days"]}

    requests = [i for i, d in days.items() if d["monitor"]["retrain"]]
    first_labels = cal.c + label_delay + 1  # the monitor on day e sees the labels of day e - label_delay - 1
    assert requests and requests[0] >= first_labels, (
        f"retrain requests on change + {[i - cal.c for i in requests]} days: the features did not move, so none "
        f"should come before the first post-change labels (change + {first_labels - cal.c})")
    first = days[requests[0]]
    assert (first["monitor"]["kind"], first["monitor"]["mode"]) == ("change", "labelled"), first["monitor"]

    deadline = cal.c + label_delay + EXTRA_DAYS
    champion = result["champions"][days[deadline]["champion"]]
    train_end = datetime.fromisoformat(champion["train_window"][1])
    assert train_end > change, (
        f"the champion in service on change + {label_delay + EXTRA_DAYS} days (v{champion['version']}) was trained "
        f"on rows up to {train_end}, before the change on {change.date()}; requests: "
        f"{[(days[i]['day'], days[i]['run']['status']) for i in requests]}")
    assert champion["window_plan"] == "anchored"
    assert cal.iso(cal.c - bench.CHANGE_POINT_SLACK_DAYS) <= champion["change_point"] <= cal.iso(cal.c)

    served = [i for i in range(cal.c, deadline + 1) if days[i]["champion"] == champion["version"]]
    never = {d["i"]: d for d in bench.run_policy(run, "never", bench._frames(run))["days"]}
    new = sum(days[i]["metrics"]["roc_auc"] for i in served) / len(served)
    old = sum(never[i]["metrics"]["roc_auc"] for i in served) / len(served)
    assert new > old + 0.02, f"post-change champion AUC {new:.4f} vs the first champion's {old:.4f} on the same days"


def test_stable_stream_requests_no_retrain(tmp_path, label_delay, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, result = _loop(tmp_path, "credit_default_none", label_delay)
    decisions = [(d["day"], d["monitor"]["status"], d["monitor"]["change"]) for d in result["days"]]
    assert len(decisions) == DAYS_BEFORE + label_delay + EXTRA_DAYS
    assert not [d for d in result["days"] if d["monitor"]["retrain"]], decisions
    assert not [d for d in result["days"] if d["run"]], "a retrain ran although none was requested"
    assert {d["champion"] for d in result["days"]} == {"1"}


def test_benchmark_quick_writes_every_field(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.retraining", "--quick", "--days-before", "1", "--days-after", "2",
         "--workdir", str(tmp_path / "work"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "retraining.json").read_text())
    assert (out / "retraining.md").read_text().startswith("Retraining benchmark")
    assert (out / "retraining_credit_default_concept.png").stat().st_size > 10_000
    assert report["machine"]["cores"] and len(report["machine"]["load_average_at_end"]) == 3
    stream = report["streams"]["credit_default_concept"]
    assert set(stream["summary"]) == set(bench.POLICIES)
    fields = {"detection_delay_days", "days_to_post_change_champion", "days_to_adapted_champion",
              "days_to_labelled_post_change_champion", "false_alarms_per_100_stable_days", "retrains", "promotions",
              "mean_metric_after", "gap_to_oracle", "cost", "wall_seconds"}
    for policy, summary in stream["summary"].items():
        assert fields <= set(summary), (policy, fields - set(summary))
        assert set(summary["cost"]) == {"0.1", "0.5", "2.5"}
    assert stream["summary"]["nightly"]["retrains"] == 3 and stream["summary"]["never"]["retrains"] == 0
    assert set(stream["oracle"]["schedules"]) == {"0.1", "0.5", "2.5"}
    assert len(stream["daily"]["loop"]) == 3 and "roc_auc" in stream["daily"]["loop"][0]
    assert {t["target"] for t in report["targets"]} and all("met" in t for t in report["targets"])
