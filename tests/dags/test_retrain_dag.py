"""retrain__<model> end to end with dag.test(): real lake, GX, MLflow (SQLite) and registry.

One demo lake and one MLflow store for the module; the runs build on each other in order, as a
user's nights would: a first champion (on a one-day window, so a later one can beat it), dry run,
a better candidate, the same data again (no churn), a worse candidate, a backfill of an older
date, a forced promotion, bad-data days. Each run also checks what a user sees of it: the
champion Asset events it emitted (only a champion move emits one), the challenger alias, the
registered version's description and the MLflow run's name.
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


def latest_note(dag_id: str) -> str | None:
    """The note the Airflow UI shows for the DAG's newest run (from the metadata DB)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first().note


def record(settings, day: str) -> dict:
    from tests.conftest import latest_record

    return latest_record(settings.artifact_root, MODEL, day)


def champion_events() -> list[dict]:
    """Every ``driftline_<model>_champion`` Asset event in the metadata DB, oldest first, as
    ``{"source_run_id", "extra"}``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.name == f"driftline_{MODEL}_champion").order_by(AssetEvent.id).all())
        return [{"source_run_id": e.source_run_id, "extra": dict(e.extra or {})} for e in rows]


def run_counting_events(dag, day: str, **conf) -> tuple[str, list[dict]]:
    """``run`` that also returns the champion events the run emitted."""
    before = len(champion_events())
    state = run(dag, day, **conf)
    return state, champion_events()[before:]


def mlflow_client(settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def challenger(settings) -> str | None:
    from pipeline import registry
    from pipeline.config import find_spec

    info = registry.get_challenger(mlflow_client(settings), find_spec(MODEL, settings))
    return info.version if info else None


def champion(settings) -> str | None:
    from mlflow import MlflowClient

    from pipeline import registry
    from pipeline.config import find_spec

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    info = registry.get_champion(client, find_spec(MODEL, settings))
    return info.version if info else None


def test_first_run_creates_the_champion(home, retrain_dag, caplog):
    with caplog.at_level("INFO", logger="pipeline.retrain"):
        state, events = run_counting_events(retrain_dag, "2026-02-12", train_days=1)
    assert state == "success"
    note = latest_note(retrain_dag.dag_id)
    assert note.startswith("promoted: PROMOTE ") and "(first champion)" in note, note
    # The evaluate task logs one line per gate, not a dict dump.
    gates = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gate candidate ")]
    assert any(g.startswith("gate candidate floor: PASS -- observed ") and " vs threshold " in g for g in gates), gates
    assert any(g.startswith("gate candidate vs_champion: skip") for g in gates), gates
    rec = record(home, "2026-02-12")
    [event] = events
    assert event["extra"] == {
        "model": MODEL, "registered_model": MODEL, "version": "1", "previous_version": None, "kind": "promotion",
        "model_uri": f"models:/{MODEL}/1", "primary_metric": "roc_auc", "metric_value": rec["metric"]["value"],
        "previous_metric_value": None, "data_interval_end": "2026-02-12T00:00:00+00:00", "date": "2026-02-12",
        "run_id": rec["run_id"], "airflow_run_id": rec["trigger"]["run_id"],
        "model_version_url": rec["links"]["model_version"]}
    assert 0.5 < event["extra"]["metric_value"] < 1
    assert challenger(home) is None, "the champion is nobody's challenger"
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
    assert mlflow_run.info.run_name == f"{MODEL} 2026-02-12 manual"
    description = client.get_model_version(MODEL, "1").description
    assert description.startswith("**Promoted**: champion since this run (promotion; was no champion).")
    assert f"roc_auc: {rec['metric']['value']:.4f} on the test window 2026-" in description
    assert "no champion to compare with" in description and rec["decision_uri"] in description
    assert "decision.json" in {a.path for a in client.list_artifacts(rec["candidate_run_id"])}


def test_dry_run_registers_but_never_promotes(home, retrain_dag):
    state, events = run_counting_events(retrain_dag, "2026-02-19", dry_run=True)
    assert state == "success" and events == [], "a dry run announces no champion"
    assert latest_note(retrain_dag.dag_id).startswith("dry run: ")
    rec = record(home, "2026-02-19")
    assert rec["status"] == "dry_run" and rec["promote"] is False
    assert rec["candidate_version"] == "2" and champion(home) == "1"
    version = mlflow_client(home).get_model_version(MODEL, "2")
    assert version.tags["driftline.dry_run"] == "true" and challenger(home) is None, "a dry run is never challenger"
    assert version.description.startswith("**Dry run**: evaluated only; never champion nor challenger; "
                                          "champion stays v1.")


def test_better_candidate_on_newer_data_is_promoted(home, retrain_dag):
    state, events = run_counting_events(retrain_dag, "2026-02-19")
    assert state == "success"
    rec = record(home, "2026-02-19")
    assert rec["status"] == "promoted", rec["reasons"]
    assert rec["champion_before"] == "1" and champion(home) == rec["candidate_version"]
    [event] = events
    assert {k: event["extra"][k] for k in ("version", "previous_version", "kind", "date", "run_id")} == {
        "version": rec["candidate_version"], "previous_version": "1", "kind": "promotion", "date": "2026-02-19",
        "run_id": rec["run_id"]}
    assert event["extra"]["metric_value"] == rec["metric"]["value"]
    assert event["extra"]["previous_metric_value"] == rec["metric"]["champion_value"] is not None
    description = mlflow_client(home).get_model_version(MODEL, rec["candidate_version"]).description
    assert "(promotion; was v1)" in description and "; champion v1 " in description
    gain = next(g for g in rec["gates"] if g["name"] == "gain")
    assert gain["passed"] is True, gain["detail"]


def test_the_same_data_again_is_not_worth_a_promotion(home, retrain_dag):
    """A stable stream: a nightly candidate is as good as the champion, so no churn."""
    before = champion(home)
    state, events = run_counting_events(retrain_dag, "2026-02-19")
    assert state == "success" and events == [], "a rejection announces no champion"
    rec = record(home, "2026-02-19")
    assert rec["status"] == "not_promoted" and champion(home) == before
    assert challenger(home) == rec["candidate_version"], "the newest data's latest candidate is the challenger"
    description = mlflow_client(home).get_model_version(MODEL, rec["candidate_version"]).description
    assert description.startswith(f"**Not promoted**; champion stays v{before}.\n\nWhy: REJECT candidate")
    assert "gain failed: " in description
    gain = next(g for g in rec["challengers"]["candidate"]["gates"] if g["name"] == "gain")
    assert gain["passed"] is False and "not worth it" in gain["detail"]


def test_worse_candidate_is_not_promoted_and_the_run_succeeds(home, retrain_dag):
    before = champion(home)
    state, events = run_counting_events(retrain_dag, "2026-02-19", train_days=1)
    assert state == "success" and events == []
    note = latest_note(retrain_dag.dag_id)
    assert note.startswith("not promoted: REJECT candidate: failed "), note
    rec = record(home, "2026-02-19")
    assert rec["status"] == "not_promoted", rec["reasons"]
    names = [r.info.run_name for r in mlflow_client(home).search_runs(
        [mlflow_client(home).get_experiment_by_name(MODEL).experiment_id],
        filter_string=f"attributes.run_name LIKE '{MODEL} 2026-02-19 %'", order_by=["attributes.start_time ASC"])]
    assert names == [f"{MODEL} 2026-02-19 manual", *(f"{MODEL} 2026-02-19 manual #{n}" for n in (2, 3, 4))], (
        "four runs of one date: four names")
    failed = {g["name"] for g in rec["challengers"]["candidate"]["gates"] if g["passed"] is False}
    assert "vs_champion" in failed, rec["challengers"]["candidate"]["gates"]
    assert champion(home) == before


def test_backfill_of_an_older_date_never_moves_the_champion_back(home, retrain_dag):
    before, challenger_before = champion(home), challenger(home)
    state, events = run_counting_events(retrain_dag, "2026-02-13")
    assert state == "success" and events == [], "a backfill announces no champion"
    rec = record(home, "2026-02-13")
    assert rec["status"] == "not_promoted"
    version = mlflow_client(home).get_model_version(MODEL, rec["candidate_version"])
    assert version.tags["driftline.backfill"] == "true" and "Backfill: " in version.description
    assert challenger(home) == challenger_before, "a version on older data never takes the challenger alias"
    fresh = next(g for g in rec["challengers"]["candidate"]["gates"] if g["name"] == "freshness")
    assert fresh["passed"] is False and "2026-02-19" in fresh["detail"]
    assert champion(home) == before


def test_force_promote_needs_and_records_a_reason(home, retrain_dag):
    before = champion(home)
    state, events = run_counting_events(retrain_dag, "2026-02-14", force_promote=True,
                                        reason="incident 42: pin the 14th")
    assert state == "success"
    rec = record(home, "2026-02-14")
    assert rec["status"] == "promoted" and rec["forced"] is True
    [event] = events
    assert (event["extra"]["kind"], event["extra"]["previous_version"], event["extra"]["version"]) == (
        "forced_promotion", before, rec["candidate_version"])
    assert champion(home) == rec["candidate_version"]
    assert any("incident 42" in str(g["detail"]) for g in rec["gates"] if g["passed"] is None)


def test_bad_data_fails_validation_and_leaves_the_champion(home, retrain_dag):
    """A short window holding the bad days: 30 % null scores on three days of ten is beyond the
    5 % quarantine limit, so validation fails the run."""
    before = champion(home)
    state, events = run_counting_events(retrain_dag, "2026-02-22", train_days=1, valid_days=1, test_days=1)
    assert state == "failed" and events == []
    note = latest_note(retrain_dag.dag_id)
    assert note.startswith("failed at validate: ValidationFailed: "), note
    rec = record(home, "2026-02-22")
    assert rec["status"] == "failed" and rec["failed_step"] == "validate"
    assert "ValidationFailed" in rec["summary"] and "quarantine" in rec["summary"].lower()
    run_dir = Path(rec["decision_uri"]).parent
    assert (run_dir / "quarantine.parquet").exists() and (run_dir / "validation.json").exists()
    assert champion(home) == before
