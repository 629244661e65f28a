"""Run identity and the date lease: every run its own immutable prefix, a latest pointer, one run
of a model and date at a time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from pipeline import lease
from pipeline.artifacts import (
    date_prefix, is_run_id, latest_decision_uri, list_runs, new_run_id, publish_latest, run_prefix,
)
from pipeline.storage import Store, join


def test_run_ids_sort_by_time_and_are_unique_or_derived():
    at = datetime(2026, 3, 4, 5, 6, 7, 890_123, tzinfo=timezone.utc)
    a, b = new_run_id(at), new_run_id(at)
    assert a.startswith("20260304T050607890Z-") and a != b and is_run_id(a)
    assert new_run_id(at, salt="dag/run/0") == new_run_id(at, salt="dag/run/0") != new_run_id(at, salt="dag/run/1")
    assert new_run_id(at) < new_run_id(at + timedelta(milliseconds=1))
    assert not is_run_id("latest.json") and not is_run_id("2026-03-04")


def test_latest_pointer_and_listing_never_lose_an_earlier_run(tmp_path):
    store = Store.for_uri(str(tmp_path))
    day = date_prefix(str(tmp_path), "m", "2026-03-04")
    first, second = new_run_id(), new_run_id(datetime.now(timezone.utc) + timedelta(seconds=1))
    for run_id, status in ((first, "promoted"), (second, "failed")):
        uri = store.write_json(join(run_prefix(str(tmp_path), "m", "2026-03-04", run_id), "decision.json"),
                               {"status": status})
        publish_latest(store, day, run_id=run_id, decision_uri=uri, status=status)
    incomplete = new_run_id(datetime.now(timezone.utc) + timedelta(seconds=2))
    store.write_json(join(day, incomplete, "steps", "ingest.json"), {"ok": True})
    assert latest_decision_uri(store, day).endswith(f"{second}/decision.json")
    runs = list_runs(store, day)
    assert [(r["run_id"], r["status"]) for r in runs] == [(first, "promoted"), (second, "failed"),
                                                          (incomplete, "incomplete")]
    assert json.loads((tmp_path / "m" / "runs" / "2026-03-04" / first / "decision.json").read_text()) == {
        "status": "promoted"}


def test_a_record_from_before_run_ids_is_still_found(tmp_path):
    store = Store.for_uri(str(tmp_path))
    day = date_prefix(str(tmp_path), "m", "2026-03-04")
    assert latest_decision_uri(store, day) is None
    store.write_json(join(day, "decision.json"), {"status": "promoted"})
    assert latest_decision_uri(store, day) == join(day, "decision.json")


def test_one_run_of_a_model_and_date_at_a_time(tmp_path):
    store = Store.for_uri(str(tmp_path))
    day = str(tmp_path / "m" / "runs" / "2026-03-04")
    now = datetime(2026, 3, 4, 12, tzinfo=timezone.utc)
    held = lease.acquire(store, day, "run-a", what="retrain of m", now=now)
    assert held["run_id"] == "run-a"
    assert lease.acquire(store, day, "run-a", what="retrain of m", now=now)["run_id"] == "run-a"  # a retry
    with pytest.raises(lease.LeaseHeld) as err:
        lease.acquire(store, day, "run-b", what="retrain of m", now=now + timedelta(minutes=5))
    assert "run run-a has held this date since 2026-03-04T12:00:00+00:00" in str(err.value)
    assert err.value.retryable
    # The holder died: its lease lapses and the next run takes over.
    taken = lease.acquire(store, day, "run-b", what="retrain of m", now=now + lease.TERM + timedelta(seconds=1))
    assert taken["run_id"] == "run-b" and taken["took_over_from"] == "run-a"
    lease.release(store, day, "run-a")  # not the holder: nothing happens
    assert lease.read(store, day)["run_id"] == "run-b"
    lease.release(store, day, "run-b")
    assert lease.read(store, day) is None
