"""retrain__<model> end to end with dag.test(): real lake, GX, MLflow (SQLite) and registry.

One demo lake and one MLflow store for the module; the runs build on each other in order, as a
user's nights would: a first champion (on a one-day window, so a later one can beat it), dry run,
a better candidate, the same data again (no churn), a worse candidate, a backfill of an older
date, a forced promotion, bad-data days.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from tests.dags.homes import driftline_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "credit_default"
BAD_DAYS = (date(2026, 2, 19), date(2026, 2, 20), date(2026, 2, 21))


@pytest.fixture(scope="module")
def home(tmp_path_factory, airflow_db):
    """A 60-day demo lake (null-riddled rows on BAD_DAYS) and an empty MLflow store."""
    from pipeline.demo import DemoOptions, generate_day, partition_uri
    from pipeline.storage import Store

    with driftline_home(tmp_path_factory.mktemp("driftline"), 60, rows_per_day=1000) as settings:
        store = Store.for_uri(settings.lake_root)
        for day in BAD_DAYS:
            bad = generate_day(day, DemoOptions(rows_per_day=1000, bad_day=day, bad_kind="nulls"))
            store.write_parquet(partition_uri(settings.lake_root, MODEL, day), bad)
        yield settings


@pytest.fixture(scope="module")
def retrain_dag(home, dagbag):
    return dagbag.dags[f"retrain__{MODEL}"]


DEFAULT_CONF = {"dry_run": False, "force_promote": False, "reason": "", "as_of_date": None,
                "train_days": None, "valid_days": None, "test_days": None}


def run(dag, day: str, **conf):
    """One dag.test() run; every param is passed (dag.test() keeps a previous run's conf in params)."""
    dr = dag.test(logical_date=datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc),
                  run_conf={**DEFAULT_CONF, **conf})
    return str(getattr(dr.state, "value", dr.state))


def run_and_note(dag, day: str, **conf) -> tuple[str, str | None]:
    """One dag.test() run; its state and the note the Airflow UI shows for it (from the DB)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    dr = dag.test(logical_date=datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc),
                  run_conf={**DEFAULT_CONF, **conf})
    with create_session() as session:
        stored = session.query(DagRun).filter(DagRun.dag_id == dr.dag_id, DagRun.run_id == dr.run_id).one()
        return str(getattr(stored.state, "value", stored.state)), stored.note


def record(settings, day: str) -> dict:
    from tests.conftest import latest_record

    return latest_record(settings.artifact_root, MODEL, day)


def champion(settings) -> str | None:
    from mlflow import MlflowClient

    from pipeline import registry
    from pipeline.config import find_spec

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    info = registry.get_champion(client, find_spec(MODEL, settings))
    return info.version if info else None


def test_first_run_creates_the_champion(home, retrain_dag, caplog):
    with caplog.at_level("INFO", logger="pipeline.retrain"):
        state, note = run_and_note(retrain_dag, "2026-02-12", train_days=1)
    assert state == "success"
    assert note.startswith("promoted: PROMOTE ") and "(first champion)" in note, note
    # The evaluate task logs one line per gate, not a dict dump.
    gates = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gate candidate ")]
    assert any(g.startswith("gate candidate floor: PASS -- observed ") and " vs threshold " in g for g in gates), gates
    assert any(g.startswith("gate candidate vs_champion: skip") for g in gates), gates
    rec = record(home, "2026-02-12")
    assert rec["status"] == "promoted" and rec["promote"] is True
    assert rec["champion_before"] is None and rec["champion_after"] == rec["candidate_version"] == "1"
    skipped = {g["name"] for g in rec["gates"] if g["passed"] is None}
    assert skipped == {"vs_champion", "gain", "slices", "freshness"}
    # Labels arrive 7 days late: the test window ends a week before the run's date.
    assert rec["windows"]["test"][1].startswith("2026-02-05") and rec["plan"]["kind"] == "standard"
    assert rec["trigger"]["kind"] == "manual" and rec["links"]["mlflow_run"].startswith("http")
    assert champion(home) == "1"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=home.mlflow_tracking_uri, registry_uri=home.mlflow_tracking_uri)
    version_tags = client.get_model_version(MODEL, "1").tags
    assert version_tags["driftline.decision"] == "promoted"
    assert version_tags["driftline.decision_uri"] == rec["decision_uri"]
    assert "/runs/2026-02-12/" in rec["decision_uri"] and rec["run_id"] in rec["decision_uri"]
    mlflow_run = client.get_run(rec["candidate_run_id"])
    assert mlflow_run.data.tags["driftline.decision_uri"] == version_tags["driftline.decision_uri"]
    assert "decision.json" in {a.path for a in client.list_artifacts(rec["candidate_run_id"])}


def test_dry_run_registers_but_never_promotes(home, retrain_dag):
    state, note = run_and_note(retrain_dag, "2026-02-19", dry_run=True)
    assert state == "success" and note.startswith("dry run: "), note
    rec = record(home, "2026-02-19")
    assert rec["status"] == "dry_run" and rec["promote"] is False
    assert rec["candidate_version"] == "2" and champion(home) == "1"


def test_better_candidate_on_newer_data_is_promoted(home, retrain_dag):
    assert run(retrain_dag, "2026-02-19") == "success"
    rec = record(home, "2026-02-19")
    assert rec["status"] == "promoted", rec["reasons"]
    assert rec["champion_before"] == "1" and champion(home) == rec["candidate_version"]
    gain = next(g for g in rec["gates"] if g["name"] == "gain")
    assert gain["passed"] is True, gain["detail"]


def test_the_same_data_again_is_not_worth_a_promotion(home, retrain_dag):
    """A stable stream: a nightly candidate is as good as the champion, so no churn."""
    before = champion(home)
    assert run(retrain_dag, "2026-02-19") == "success"
    rec = record(home, "2026-02-19")
    assert rec["status"] == "not_promoted" and champion(home) == before
    gain = next(g for g in rec["challengers"]["candidate"]["gates"] if g["name"] == "gain")
    assert gain["passed"] is False and "not worth it" in gain["detail"]


def test_worse_candidate_is_not_promoted_and_the_run_succeeds(home, retrain_dag):
    before = champion(home)
    state, note = run_and_note(retrain_dag, "2026-02-19", train_days=1)
    assert state == "success" and note.startswith("not promoted: REJECT candidate: failed "), note
    rec = record(home, "2026-02-19")
    assert rec["status"] == "not_promoted", rec["reasons"]
    failed = {g["name"] for g in rec["challengers"]["candidate"]["gates"] if g["passed"] is False}
    assert "vs_champion" in failed, rec["challengers"]["candidate"]["gates"]
    assert champion(home) == before


def test_backfill_of_an_older_date_never_moves_the_champion_back(home, retrain_dag):
    before = champion(home)
    assert run(retrain_dag, "2026-02-13") == "success"
    rec = record(home, "2026-02-13")
    assert rec["status"] == "not_promoted"
    fresh = next(g for g in rec["challengers"]["candidate"]["gates"] if g["name"] == "freshness")
    assert fresh["passed"] is False and "2026-02-19" in fresh["detail"]
    assert champion(home) == before


def test_force_promote_needs_and_records_a_reason(home, retrain_dag):
    assert run(retrain_dag, "2026-02-14", force_promote=True, reason="incident 42: pin the 14th") == "success"
    rec = record(home, "2026-02-14")
    assert rec["status"] == "promoted" and rec["forced"] is True
    assert champion(home) == rec["candidate_version"]
    assert any("incident 42" in str(g["detail"]) for g in rec["gates"] if g["passed"] is None)


def test_bad_data_fails_validation_and_leaves_the_champion(home, retrain_dag):
    """A short window holding the bad days: 30 % null scores on three days of ten is beyond the
    5 % quarantine limit, so validation fails the run."""
    before = champion(home)
    state, note = run_and_note(retrain_dag, "2026-02-22", train_days=1, valid_days=1, test_days=1)
    assert state == "failed" and note.startswith("failed at validate: ValidationFailed: "), note
    rec = record(home, "2026-02-22")
    assert rec["status"] == "failed" and rec["failed_step"] == "validate"
    assert "ValidationFailed" in rec["summary"] and "quarantine" in rec["summary"].lower()
    run_dir = Path(rec["decision_uri"]).parent
    assert (run_dir / "quarantine.parquet").exists() and (run_dir / "validation.json").exists()
    assert champion(home) == before
