"""What a run tells the outside world: the champion Asset event (only for a champion move), the
registered version's description, and the trigger word in the MLflow run name. Pure functions on
the records the steps return."""

from __future__ import annotations

import pytest

from pipeline.retrain import (
    ChampionUnchanged,
    PromotionOutcome,
    build_record,
    champion_event_step,
    run_trigger_label,
    version_description,
)
from pipeline.runenv import RunEnv, to_as_of

MOVED = PromotionOutcome(promoted=True, champion_before="3", champion_after="5", message="champion is now v5",
                         candidate_version="5", model_version_url="http://m/v5", kind="forced_promotion",
                         primary_metric="roc_auc", test_metric=0.81, champion_test_metric=0.78,
                         data_interval_end="2026-02-19T00:00:00+00:00")


@pytest.fixture
def env(spec, settings):
    return RunEnv(spec=spec, settings=settings, as_of=to_as_of("2026-02-19"),
                  trigger={"kind": "manual", "run_id": "manual__2026-02-19"}, run_id="20260219T000000000Z-abc123")


def test_a_champion_move_is_announced_with_what_moved(env, spec):
    event = champion_event_step(env, MOVED.to_dict()).to_dict()
    assert event == {
        "model": spec.name, "registered_model": spec.registry_name, "version": "5", "previous_version": "3",
        "kind": "forced_promotion", "model_uri": f"models:/{spec.registry_name}/5", "primary_metric": "roc_auc",
        "metric_value": 0.81, "previous_metric_value": 0.78, "data_interval_end": "2026-02-19T00:00:00+00:00",
        "date": "2026-02-19", "run_id": "20260219T000000000Z-abc123", "airflow_run_id": "manual__2026-02-19",
        "model_version_url": "http://m/v5"}


@pytest.mark.parametrize("outcome", [
    PromotionOutcome(promoted=False, champion_before="3", champion_after="3", candidate_version="5",
                     message="dry run: candidate registered and evaluated, champion not moved"),
    PromotionOutcome(promoted=False, champion_before="3", champion_after="3", candidate_version="5",
                     message="gates failed: champion not moved"),
    PromotionOutcome(promoted=False, champion_before="5", champion_after="5", candidate_version="5",
                     message="v5 is champion already; nothing to do"),
], ids=["dry_run", "rejected", "no_op"])
def test_no_move_no_event(env, outcome):
    with pytest.raises(ChampionUnchanged, match="the champion did not move"):
        champion_event_step(env, outcome)


def _record(env, *, status_steps):
    decision = {"promote": status_steps == "promoted", "reasons": ["REJECT: failed gain", "gain failed: +0.001 "
                "gain x 30 days < promotion cost 0.05"] if status_steps != "promoted" else ["all passed"],
                "summary": ("PROMOTE candidate over champion v3: 6 gate(s) passed, 0 skipped; report s/evaluation.json"
                            if status_steps == "promoted" else "REJECT candidate: failed gain; report s/e.json"),
                "forced": False}
    promoted = status_steps == "promoted"
    steps = {
        "ingest": {"ok": True, "result": {"uri": "s/snapshot.parquet"}},
        "validate": {"ok": True, "result": {}},
        "split": {"ok": True, "result": {"windows": {"train": ["2026-01-01T00:00:00+00:00", "2026-01-29T00:00:00+00:00"],
                                                     "valid": ["2026-01-29T00:00:00+00:00", "2026-02-05T00:00:00+00:00"],
                                                     "test": ["2026-02-05T00:00:00+00:00", "2026-02-12T00:00:00+00:00"]}}},
        "train": {"ok": True, "result": {"run_id": "r1"}},
        "evaluate": {"ok": True, "result": {"decision": decision, "champion_before": "3", "test_metric": 0.8123,
                                            "champion_test_metric": 0.7891}},
        "promote": {"ok": True, "result": {**MOVED.to_dict(), "promoted": promoted, "kind": "promotion" if promoted
                                           else None, "champion_after": "5" if promoted else "3"}},
    }
    return build_record(env, steps)


def test_description_of_a_promoted_version(env):
    text = version_description(_record(env, status_steps="promoted"), "s/decision.json")
    assert text.split("\n\n") == [
        "**Promoted**: champion since this run (promotion; was v3).",
        "Why: PROMOTE candidate over champion v3: 6 gate(s) passed, 0 skipped",
        "roc_auc: 0.8123 on the test window 2026-02-05 to 2026-02-12; champion v3 0.7891 on the same rows.",
        "Data: train 2026-01-01 to 2026-01-29, valid 2026-01-29 to 2026-02-05, test 2026-02-05 to 2026-02-12 "
        "(half-open); data before 2026-02-19.",
        "Run: manual run for 2026-02-19 (driftline run 20260219T000000000Z-abc123, orchestrator run "
        "manual__2026-02-19); decision record s/decision.json.",
    ]


def test_description_of_a_rejected_backfill_names_the_failed_gate(env):
    text = version_description(_record(env, status_steps="rejected"), "s/decision.json", backfill=True)
    lines = text.split("\n\n")
    assert lines[0] == "**Not promoted**; champion stays v3."
    assert lines[1] == ("Why: REJECT candidate: failed gain -- gain failed: +0.001 gain x 30 days < promotion "
                        "cost 0.05")
    assert "Backfill: its data ends before that of a version already registered, so it is never the challenger." in lines


@pytest.mark.parametrize("trigger, label", [
    ({"kind": "schedule", "run_type": "scheduled"}, "scheduled"),
    ({"kind": "manual", "run_type": "manual"}, "manual"),
    ({"kind": "backfill", "run_type": "backfill"}, "backfill"),
    ({"kind": "drift", "run_type": "manual"}, "drift"),
    ({"kind": "manual", "run_type": "cli"}, "cli"),
    ({"kind": "drift", "run_type": "cli"}, "drift"),
])
def test_the_run_name_says_what_started_the_run(trigger, label):
    assert run_trigger_label(trigger) == label
