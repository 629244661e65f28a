"""The CLI's run hands frames from step to step in memory: same frames, same model, same decision.

Every frame a step gets from the :class:`~pipeline.storage.FrameHandoff` is compared with what
reading the file it stands for gives (values, dtypes, column order, index); then a run with the
handoff off (``DRIFTLINE_HANDOFF_MB=0``) on the same data must train the same model to the same
test metric and reach the same decision.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd
import pytest

from pipeline import retrain
from pipeline.demo import DemoOptions, generate
from pipeline.runenv import RunEnv
from pipeline.storage import FrameHandoff, LocalStore

pytestmark = [pytest.mark.integration]


class CheckedHandoff(FrameHandoff):
    """A handoff that checks every frame it hands out against a read of its file."""

    def __init__(self, budget_bytes: int):
        super().__init__(budget_bytes)
        self.checked: list[str] = []

    def get(self, uri, columns=None):
        kept = super().get(uri, columns)
        if kept is not None:
            from_file = LocalStore().read_parquet(uri, columns)
            pd.testing.assert_frame_equal(kept, from_file, check_exact=True)
            self.checked.append(uri.rsplit("/", 1)[-1] + (f"[{len(columns)} columns]" if columns else ""))
        return kept


def _outcome(report: dict, env: RunEnv) -> tuple:
    record = env.store.read_json(report["decision_uri"])
    evaluation = env.store.read_json(record["evidence"]["evaluation"])
    return (record["status"], record["promote"],
            evaluation["metrics"]["candidate"]["roc_auc"]["estimate"], evaluation["rows"])


def test_handed_frames_equal_their_files_and_the_run_decides_the_same(settings, spec, mlflow_uri, monkeypatch):
    settings = replace(settings, mlflow_tracking_uri=mlflow_uri)
    generate(settings.lake_root, date(2026, 1, 1), 45, DemoOptions(rows_per_day=400), model=spec.name)

    handoff = CheckedHandoff(1 << 30)
    with_handoff = RunEnv.local(spec, "2026-02-12", settings=settings, handoff=handoff, dry_run=True,
                                trigger={"kind": "manual", "run_id": "handoff"})
    first = retrain.run_all(with_handoff)
    # The snapshot, the clean rows and every window reached their readers without a file read.
    assert {"snapshot.parquet", "clean.parquet", "test.parquet"} <= {c.split("[")[0] for c in handoff.checked}
    assert any(c.startswith("train.parquet[") for c in handoff.checked), handoff.checked
    assert handoff.used_bytes == 0  # cleared when the run ended

    # DRIFTLINE_HANDOFF_MB=0: run_all makes no handoff at all, so every step reads its files.
    import pipeline.storage

    made: list[int] = []

    class CountedHandoff(FrameHandoff):
        def __init__(self, budget_bytes: int):
            made.append(budget_bytes)
            super().__init__(budget_bytes)

    monkeypatch.setattr(pipeline.storage, "FrameHandoff", CountedHandoff)
    without = RunEnv.local(spec, "2026-02-12", settings=replace(settings, handoff_mb=0), dry_run=True,
                           trigger={"kind": "manual", "run_id": "files"})
    second = retrain.run_all(without)
    assert made == []
    assert _outcome(first, with_handoff) == _outcome(second, without)


def test_a_run_over_the_budget_reads_its_files(tmp_path):
    frame = pd.DataFrame({"x": range(1000), "s": pd.Series([f"v{i}" for i in range(1000)], dtype="str")})
    handoff = FrameHandoff(budget_bytes=8_000)
    store = LocalStore()
    store.handoff = handoff
    small = store.write_parquet(str(tmp_path / "small.parquet"), frame.head(100))
    assert handoff.get(small) is not None
    # A frame that does not fit turns the handoff off: nothing stays held beside the next step.
    uri = store.write_parquet(str(tmp_path / "big.parquet"), frame)
    assert not handoff.enabled and handoff.used_bytes == 0
    assert handoff.get(uri) is None and handoff.get(small) is None
    pd.testing.assert_frame_equal(store.read_parquet(uri), frame)

    small = FrameHandoff(budget_bytes=1 << 20)
    store.handoff = small
    rows = (frame["x"] % 3 == 0).to_numpy()
    uri = store.write_parquet(str(tmp_path / "rows.parquet"), frame, rows=rows)
    kept = small.get(uri, ["s", "x", "missing"])
    pd.testing.assert_frame_equal(kept, LocalStore().read_parquet(uri, ["s", "x", "missing"]))
    kept.loc[0, "x"] = -1  # the reader's frame is its own
    assert small.get(uri)["x"].iloc[0] == 0 and frame["x"].iloc[0] == 0
