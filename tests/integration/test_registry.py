"""pipeline.registry against a real MLflow SQLite tracking store and registry.

Every test uses its own registered model name; models are tiny real sklearn models logged to the
store, and races run real threads and processes against the same SQLite database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from pipeline import registry
from pipeline.registry import (
    ChampionChanged,
    NoSuchVersion,
    NothingToRollBackTo,
    RegistryError,
    StaleCandidate,
)

pytestmark = pytest.mark.integration

YES = {"promote": True, "summary": "all gates passed"}
NO = {"promote": False, "summary": "vs_champion: lower bound -0.02 < margin -0.005"}


@pytest.fixture
def client(mlflow_uri) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


@pytest.fixture
def model_spec(spec):
    """The demo spec under a registered model name no other test uses."""
    return spec.model_copy(update={"registered_model_name": f"reg_{uuid.uuid4().hex[:10]}"})


def _log_model(seed: int = 0) -> tuple[str, str]:
    """Log a tiny fitted model in its own run; returns (model_uri, run_id)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20, 3))
    y = (X[:, 0] + rng.normal(scale=0.5, size=20) > 0).astype(int)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", pip_requirements=[])
    return info.model_uri, run.info.run_id


def _candidate(client, spec, data_end: str, **tags: str) -> registry.ModelVersionInfo:
    model_uri, run_id = _log_model()
    return registry.register_candidate(
        client, spec, model_uri=model_uri, run_id=run_id,
        tags={registry.TAG_DATA_END: data_end, **tags},
    )


def _champion(client, spec) -> str | None:
    champ = registry.get_champion(client, spec)
    return champ.version if champ else None


def _promote(client, spec, version, expected, **kw):
    kw.setdefault("decision", YES)
    kw.setdefault("actor", "pytest")
    kw.setdefault("reason", "test")
    return registry.promote(client, spec, version=version, expected_champion=expected, **kw)


def test_first_registration_and_promotion_creates_champion(client, model_spec):
    assert registry.get_champion(client, model_spec) is None
    assert registry.history(client, model_spec) == []

    v1 = _candidate(client, model_spec, "2026-02-01T00:00:00+00:00", **{"driftline.trigger": "schedule"})

    model = client.get_registered_model(model_spec.registry_name)
    assert model.description == model_spec.description
    assert v1.version == "1" and v1.status == "READY"
    assert v1.aliases == ["challenger"]
    assert v1.tags["driftline.trigger"] == "schedule"
    assert registry.TAG_REGISTERED_AT in v1.tags
    assert v1.uri == f"models:/{model_spec.registry_name}/1"

    result = _promote(client, model_spec, "1", None, actor="alice", reason="first model")

    assert result.promoted and result.champion_before is None and result.champion_after == "1"
    champ = registry.get_champion(client, model_spec)
    assert champ.version == "1"
    assert champ.alias_uri == f"models:/{model_spec.registry_name}@champion"
    assert champ.data_interval_end == "2026-02-01T00:00:00+00:00"
    assert champ.run_id == v1.run_id
    assert champ.tags[registry.TAG_PROMOTED_BY] == "alice"
    assert champ.tags[registry.TAG_PROMOTION_REASON] == "promotion: first model"
    assert registry.get_challenger(client, model_spec) is None, "a promoted candidate is no longer challenger"
    [entry] = registry.history(client, model_spec)
    assert entry == result.history_entry
    assert {k: entry[k] for k in ("generation", "from_version", "to_version", "kind", "actor", "reason", "run_id")} == {
        "generation": 1, "from_version": None, "to_version": "1", "kind": "promotion",
        "actor": "alice", "reason": "first model", "run_id": v1.run_id,
    }
    assert json.loads(json.dumps(result.to_dict()))["history_entry"]["to_version"] == "1"
    # The lock of the completed move is released: only the model itself is registered.
    names = {m.name for m in client.search_registered_models(f"name LIKE '{model_spec.registry_name}%'")}
    assert names == {model_spec.registry_name}


def test_challenger_follows_latest_candidate(client, model_spec):
    v1 = _candidate(client, model_spec, "2026-02-01")
    assert registry.get_challenger(client, model_spec).version == v1.version
    v2 = _candidate(client, model_spec, "2026-02-02")
    challenger = registry.get_challenger(client, model_spec)
    assert challenger.version == v2.version == "2"
    assert challenger.alias_uri == f"models:/{model_spec.registry_name}@challenger"
    assert "challenger" not in client.get_model_version(model_spec.registry_name, "1").aliases
    _promote(client, model_spec, "1", None)
    assert registry.get_challenger(client, model_spec).version == "2", "promoting v1 leaves challenger v2"


def test_concurrent_registrations_all_succeed_and_challenger_is_the_newest(client, model_spec, mlflow_uri):
    """Overlapping runs (backfills, a drift trigger beside a nightly run) register at once: the
    alias upsert must not fail one of them, and challenger ends on the newest version."""
    uris = [_log_model(seed) for seed in range(4)]
    _candidate(client, model_spec, "2026-02-01")  # the registered model and a first challenger exist
    barrier = threading.Barrier(len(uris))
    outcomes: list[object] = []

    def register(model_uri: str, run_id: str) -> None:
        barrier.wait()
        try:
            outcomes.append(registry.register_candidate(
                MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri), model_spec,
                model_uri=model_uri, run_id=run_id, tags={registry.TAG_DATA_END: "2026-02-02"}))
        except Exception as err:
            outcomes.append(err)

    threads = [threading.Thread(target=register, args=u) for u in uris]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(o, registry.ModelVersionInfo) for o in outcomes) and len(outcomes) == 4, outcomes
    newest = max(int(o.version) for o in outcomes)
    assert registry.get_challenger(client, model_spec).version == str(newest)


def test_challenger_is_the_newest_data_never_a_backfill_or_a_dry_run(client, model_spec):
    """Backfills and dry runs register versions too: the alias names the candidate on the newest
    data (then the higher version), never one of those, and nothing older than the champion."""
    def register(day: str, dry_run: bool = False) -> registry.ModelVersionInfo:
        model_uri, run_id = _log_model()
        return registry.register_candidate(client, model_spec, model_uri=model_uri, run_id=run_id,
                                           tags={registry.TAG_DATA_END: f"{day}T00:00:00+00:00"}, dry_run=dry_run)

    def challenger() -> str | None:
        found = registry.get_challenger(client, model_spec)
        return found.version if found else None

    assert register("2026-02-10").version == "1" and challenger() == "1"
    _promote(client, model_spec, "1", None)
    assert challenger() is None

    dry = register("2026-02-12", dry_run=True)
    assert challenger() is None and dry.tags[registry.TAG_DRY_RUN] == "true"
    older = register("2026-02-05")
    assert challenger() is None, "a version on data older than the champion's is no challenger"
    assert older.tags[registry.TAG_BACKFILL] == "true"

    fresh = register("2026-02-12")
    assert challenger() == fresh.version == "4"
    assert (fresh.tags[registry.TAG_BACKFILL], fresh.tags[registry.TAG_DRY_RUN]) == ("false", "false")
    backfill = register("2026-02-08")
    assert challenger() == "4" and backfill.tags[registry.TAG_BACKFILL] == "true"
    rerun = register("2026-02-12")
    assert challenger() == rerun.version == "6", "same data end: the later version"

    _promote(client, model_spec, "6", "1")
    assert challenger() is None, "v4 has the champion's data end and an earlier version: it ranks below it"
    registry.rollback(client, model_spec, reason="v6 misbehaves", actor="oncall")
    assert challenger() == "4", "rolled back from, v6 is never challenger again; v4 outranks champion v1"
    st = registry.status(client, model_spec)
    assert {v["version"]: v["tags"][registry.TAG_BACKFILL] for v in st["versions"]}["5"] == "true"


def test_concurrent_backfills_and_nightly_runs_leave_the_newest_data_as_challenger(client, model_spec, mlflow_uri):
    """Registrations on mixed dates at once: whatever the order they land in, challenger ends on
    the newest data, not on the highest version number."""
    _candidate(client, model_spec, "2026-02-01T00:00:00+00:00")
    days = ["2026-02-03", "2026-02-09", "2026-02-05", "2026-02-07"]
    uris = [_log_model(seed) for seed in range(len(days))]
    barrier = threading.Barrier(len(days))
    outcomes: dict[str, object] = {}

    def register(day: str, model_uri: str, run_id: str) -> None:
        barrier.wait()
        try:
            outcomes[day] = registry.register_candidate(
                MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri), model_spec,
                model_uri=model_uri, run_id=run_id, tags={registry.TAG_DATA_END: f"{day}T00:00:00+00:00"})
        except Exception as err:  # noqa: BLE001 -- the assertion below names it
            outcomes[day] = err

    threads = [threading.Thread(target=register, args=(d, *u)) for d, u in zip(days, uris)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(o, registry.ModelVersionInfo) for o in outcomes.values()), outcomes
    assert registry.get_challenger(client, model_spec).version == outcomes["2026-02-09"].version


@pytest.mark.parametrize(
    "decision, force",
    [(NO, False), (NO, True), ({"promote": False, "reasons": ["floor roc_auc 0.61 < 0.65"]}, False), ({}, False)],
)
def test_decision_no_never_moves_champion(client, model_spec, decision, force):
    _candidate(client, model_spec, "2026-02-01")
    _promote(client, model_spec, "1", None)
    _candidate(client, model_spec, "2026-02-02")

    result = _promote(client, model_spec, "2", "1", decision=decision, force=force, reason="try")

    assert not result.promoted and result.history_entry is None
    assert result.champion_before == result.champion_after == "1"
    assert "not promoted" in result.message
    assert _champion(client, model_spec) == "1"
    assert len(registry.history(client, model_spec)) == 1


@pytest.mark.parametrize("expected", [None, "2", "7"])
def test_expected_champion_mismatch_raises_and_keeps_champion(client, model_spec, expected):
    for day in ("2026-02-01", "2026-02-02", "2026-02-03"):
        _candidate(client, model_spec, day)
    _promote(client, model_spec, "1", None)

    with pytest.raises(ChampionChanged) as err:
        _promote(client, model_spec, "3", expected)

    wanted = "no champion" if expected is None else f"v{expected}"
    assert f"expected {wanted}, found v1" in str(err.value)
    assert "re-run the evaluation" in str(err.value)
    assert _champion(client, model_spec) == "1"
    assert len(registry.history(client, model_spec)) == 1


def test_two_promotions_racing_threads_exactly_one_wins(client, model_spec, mlflow_uri):
    _candidate(client, model_spec, "2026-02-01")
    _promote(client, model_spec, "1", None)
    expected = "1"
    rounds = 3
    for round_no in range(rounds):
        contenders = [_candidate(client, model_spec, f"2026-03-0{round_no + 1}").version for _ in range(2)]
        barrier = threading.Barrier(len(contenders))
        outcomes: dict[str, object] = {}

        def race(version: str) -> None:
            own = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
            barrier.wait()
            try:
                outcomes[version] = _promote(own, model_spec, version, expected, actor=f"thread-{version}")
            except Exception as exc:  # noqa: BLE001 -- the assertion below names it
                outcomes[version] = exc

        threads = [threading.Thread(target=race, args=(v,)) for v in contenders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

        winners = [v for v, o in outcomes.items() if isinstance(o, registry.PromotionResult) and o.promoted]
        losers = [v for v, o in outcomes.items() if isinstance(o, ChampionChanged)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert _champion(client, model_spec) == winners[0]
        last = registry.history(client, model_spec)[-1]
        assert (last["from_version"], last["to_version"]) == (expected, winners[0])
        expected = winners[0]
    entries = registry.history(client, model_spec)
    assert [e["generation"] for e in entries] == list(range(1, rounds + 2))


_RACER = """
import json, sys, time
from pathlib import Path
from mlflow import MlflowClient
from pipeline import registry
from pipeline.config import ModelSpec

uri, spec_json, version, expected, gate = sys.argv[1:6]
spec = ModelSpec.model_validate_json(spec_json)
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
registry.get_champion(client, spec)
Path(gate, version).touch()
deadline = time.monotonic() + 120
while len(list(Path(gate).iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.005)
try:
    result = registry.promote(client, spec, version=version, expected_champion=expected,
                              decision={"promote": True}, actor="proc-" + version, reason="race")
    outcome = "won" if result.promoted else "not promoted"
except registry.ChampionChanged:
    outcome = "ChampionChanged"
except Exception as exc:
    outcome = type(exc).__name__ + ": " + str(exc)
print(json.dumps(outcome))
"""


def test_two_promotions_racing_processes_exactly_one_wins(client, model_spec, mlflow_uri, repo_root, tmp_path):
    _candidate(client, model_spec, "2026-02-01")
    _promote(client, model_spec, "1", None)
    _candidate(client, model_spec, "2026-02-02")
    _candidate(client, model_spec, "2026-02-03")
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    # Separate interpreters (not forks) so nothing of this process's SQLite connections is shared;
    # the gate directory lines them up after their slow imports.
    procs = {
        v: subprocess.Popen(
            [sys.executable, "-c", _RACER, mlflow_uri, model_spec.model_dump_json(), v, "1", str(gate)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for v in ("2", "3")
    }
    outcomes = {}
    for v, p in procs.items():
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
        outcomes[v] = json.loads(out.strip().splitlines()[-1])

    assert sorted(outcomes.values()) == ["ChampionChanged", "won"], outcomes
    winner = next(v for v, o in outcomes.items() if o == "won")
    assert _champion(client, model_spec) == winner
    assert [(e["from_version"], e["to_version"]) for e in registry.history(client, model_spec)] == [
        (None, "1"), ("1", winner),
    ]


class _InterleavingClient(MlflowClient):
    """A real client that runs another actor's complete promotion right before claiming a lock,
    reproducing "read generation N; someone else finishes N+1 and releases; claim N+1"."""

    def __init__(self, *args, before_claim, **kwargs):
        super().__init__(*args, **kwargs)
        self._before_claim = before_claim

    def create_registered_model(self, name, *args, **kwargs):
        if ".lock." in name and self._before_claim is not None:
            hook, self._before_claim = self._before_claim, None
            hook()
        return super().create_registered_model(name, *args, **kwargs)


def test_claim_after_a_completed_concurrent_move_aborts(client, model_spec, mlflow_uri):
    for day in ("2026-02-01", "2026-02-02", "2026-02-03"):
        _candidate(client, model_spec, day)
    _promote(client, model_spec, "1", None)
    slow = _InterleavingClient(
        tracking_uri=mlflow_uri, registry_uri=mlflow_uri,
        before_claim=lambda: _promote(client, model_spec, "2", "1", actor="fast"),
    )

    with pytest.raises(ChampionChanged, match="expected v1, found v2"):
        _promote(slow, model_spec, "3", "1", actor="slow")

    assert _champion(client, model_spec) == "2"
    assert [e["actor"] for e in registry.history(client, model_spec)] == ["pytest", "fast"]
    assert registry.status(client, model_spec)["pending_lock"] is None, "the aborted claim was released"


def test_a_live_lease_blocks_the_next_move_and_names_the_holder(client, model_spec):
    _candidate(client, model_spec, "2026-02-01")
    _promote(client, model_spec, "1", None)
    _candidate(client, model_spec, "2026-02-02")
    lock = f"{model_spec.registry_name}.lock.g0002"
    client.create_registered_model(lock, tags={
        "driftline.lock.actor": "busy-worker", "driftline.lock.from_version": "1",
        "driftline.lock.to_version": "9", "driftline.lock.kind": "promotion",
        "driftline.lock.lease_until": "2999-01-01T00:00:00+00:00"})

    with pytest.raises(ChampionChanged) as err:
        _promote(client, model_spec, "2", "1")
    assert "busy-worker" in str(err.value) and "lease until 2999-01-01" in str(err.value)
    assert _champion(client, model_spec) == "1"
    st = registry.status(client, model_spec)
    assert st["pending_lock"]["name"] == lock and st["pending_lock"]["actor"] == "busy-worker"
    assert "LOCK HELD" in registry.format_status(st)


_KILLED_MOVER = """
import sys
from mlflow import MlflowClient
from pipeline import registry
from pipeline.config import ModelSpec

uri, spec_json, version, expected = sys.argv[1:5]
spec = ModelSpec.model_validate_json(spec_json)
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
registry.promote(client, spec, version=version, expected_champion=expected, decision={"promote": True},
                 actor="doomed", reason="killed mid-move")
"""


@pytest.mark.parametrize("point, champion_after_repair, action", [
    ("alias_move", "1", "rolled_back"),       # killed before the alias moved: nothing changed
    ("history_write", "2", "rolled_forward"),  # killed after it moved: the history is completed
])
def test_a_mover_killed_mid_move_is_repaired_by_the_next_move(client, model_spec, mlflow_uri, repo_root, point,
                                                              champion_after_repair, action):
    """kill -9 inside the move; the next promotion, after the lease, repairs it by itself and then
    moves the champion, and the invariants hold: the alias equals the last completed history
    entry, and rollback walks back through every champion."""
    spec = model_spec.model_copy(update={"promotion": model_spec.promotion.model_copy(
        update={"lock_lease_seconds": 1.0})})
    _candidate(client, spec, "2026-02-01")
    _promote(client, spec, "1", None)
    _candidate(client, spec, "2026-02-02")
    _candidate(client, spec, "2026-02-03")
    env = {**os.environ, "PYTHONPATH": str(repo_root), "DRIFTLINE_FAULT": point}
    killed = subprocess.run([sys.executable, "-c", _KILLED_MOVER, mlflow_uri, spec.model_dump_json(), "2", "1"],
                            env=env, capture_output=True, text=True, timeout=180)
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert registry.status(client, spec)["pending_lock"] is not None
    import time

    time.sleep(1.5)  # the dead mover's lease runs out

    repaired = registry.recover(client, spec.registry_name, actor="next-run")
    assert repaired["action"] == action
    assert _champion(client, spec) == champion_after_repair
    history = registry.history(client, spec)
    assert history[-1]["to_version"] == champion_after_repair, "alias == last completed history entry"
    if action == "rolled_forward":
        assert history[-1]["recovered"]["by"] == "next-run"
    else:
        tags = client.get_registered_model(spec.registry_name).tags
        assert any(k.startswith("driftline.champion.recovery.") for k in tags)
    assert registry.status(client, spec)["pending_lock"] is None

    result = _promote(client, spec, "3", champion_after_repair)
    assert result.promoted and _champion(client, spec) == "3"
    back = registry.rollback(client, spec, reason="walk back", actor="pytest")
    assert back.champion_after == champion_after_repair
    if champion_after_repair == "2":
        assert registry.rollback(client, spec, reason="again", actor="pytest").champion_after == "1"


@pytest.mark.parametrize(
    "force, allow_stale, outcome",
    [(False, False, "stale"), (True, False, "forced_promotion"), (False, True, "promotion")],
)
def test_stale_candidate_refused_unless_forced_or_allowed(client, model_spec, force, allow_stale, outcome):
    spec = model_spec.model_copy(
        update={"promotion": model_spec.promotion.model_copy(update={"allow_stale": allow_stale})}
    )
    _candidate(client, spec, "2026-03-10T00:00:00+00:00")
    _promote(client, spec, "1", None)
    _candidate(client, spec, "2026-03-03T00:00:00+00:00")

    if outcome == "stale":
        with pytest.raises(StaleCandidate) as err:
            _promote(client, spec, "2", "1", force=force)
        msg = str(err.value)
        assert "2026-03-03" in msg and "2026-03-10" in msg and "7 days" in msg and "force" in msg
        assert _champion(client, spec) == "1"
        return
    result = _promote(client, spec, "2", "1", force=force, reason="backfill fixes a label bug")
    assert result.promoted and _champion(client, spec) == "2"
    assert result.history_entry["kind"] == outcome


def test_fresher_or_equal_candidate_is_not_stale(client, model_spec):
    _candidate(client, model_spec, "2026-03-10")
    _promote(client, model_spec, "1", None)
    _candidate(client, model_spec, "2026-03-10T00:00:00+00:00")
    assert _promote(client, model_spec, "2", "1").history_entry["kind"] == "promotion"


def test_force_needs_a_reason(client, model_spec):
    _candidate(client, model_spec, "2026-03-10")
    with pytest.raises(RegistryError, match="needs a reason"):
        _promote(client, model_spec, "1", None, force=True, reason="  ")
    assert _champion(client, model_spec) is None


def test_unknown_version_is_named(client, model_spec):
    _candidate(client, model_spec, "2026-03-10")
    with pytest.raises(NoSuchVersion, match="no version '42'"):
        _promote(client, model_spec, "42", None)
    _promote(client, model_spec, "1", None)
    with pytest.raises(NoSuchVersion, match="no version '42'"):
        registry.rollback(client, model_spec, to_version="42", reason="x", actor="y")


def test_retried_promotion_is_idempotent(client, model_spec):
    _candidate(client, model_spec, "2026-03-10")
    first = _promote(client, model_spec, "1", None)
    again = _promote(client, model_spec, "1", None)
    assert again.promoted and again.history_entry == first.history_entry
    assert len(registry.history(client, model_spec)) == 1


def test_rollback_restores_previous_champion_and_is_recorded(client, model_spec):
    for day in ("2026-02-01", "2026-02-02", "2026-02-03"):
        _candidate(client, model_spec, day)
    _promote(client, model_spec, "1", None)
    _promote(client, model_spec, "2", "1")
    _promote(client, model_spec, "3", "2")

    first = registry.rollback(client, model_spec, reason="v3 scores drifted", actor="oncall")
    assert (first.champion_before, first.champion_after) == ("3", "2")
    assert _champion(client, model_spec) == "2"
    champ = registry.get_champion(client, model_spec)
    assert champ.tags[registry.TAG_PROMOTION_REASON] == "rollback: v3 scores drifted"

    second = registry.rollback(client, model_spec, reason="v2 too", actor="oncall")
    assert (second.champion_before, second.champion_after) == ("2", "1"), "repeated rollbacks walk back"

    with pytest.raises(NothingToRollBackTo, match="no earlier champion"):
        registry.rollback(client, model_spec, reason="again", actor="oncall")

    explicit = registry.rollback(client, model_spec, to_version="3", reason="v3 was fine", actor="oncall")
    assert explicit.champion_after == "3" and _champion(client, model_spec) == "3"

    entries = registry.history(client, model_spec)
    assert [(e["kind"], e["from_version"], e["to_version"]) for e in entries] == [
        ("promotion", None, "1"), ("promotion", "1", "2"), ("promotion", "2", "3"),
        ("rollback", "3", "2"), ("rollback", "2", "1"), ("rollback", "1", "3"),
    ]
    assert entries[3]["actor"] == "oncall" and entries[3]["reason"] == "v3 scores drifted"


@pytest.mark.parametrize("setup", ["unregistered", "registered_no_champion", "single_promotion", "to_current"])
def test_rollback_with_nothing_to_roll_back_to(client, model_spec, setup):
    if setup != "unregistered":
        _candidate(client, model_spec, "2026-02-01")
    if setup in ("single_promotion", "to_current"):
        _promote(client, model_spec, "1", None)
    with pytest.raises(NothingToRollBackTo) as err:
        registry.rollback(
            client, model_spec, to_version="1" if setup == "to_current" else None, reason="r", actor="a"
        )
    expected = {
        "unregistered": "has no champion",
        "registered_no_champion": "has no champion",
        "single_promotion": "v1 has no earlier champion",
        "to_current": "v1 is already the champion",
    }[setup]
    assert expected in str(err.value)
    assert model_spec.registry_name in str(err.value)


def test_status_and_format_status(client, model_spec):
    empty = registry.status(client, model_spec)
    assert empty["registered"] is False and empty["versions"] == []
    assert "not registered yet" in registry.format_status(empty)

    _candidate(client, model_spec, "2026-02-01", **{"driftline.snapshot_hash": "abc123"})
    _promote(client, model_spec, "1", None, actor="alice", reason="first")
    _candidate(client, model_spec, "2026-02-02")

    st = registry.status(client, model_spec)
    assert json.loads(json.dumps(st)) == st
    assert st["champion"]["version"] == "1" and st["challenger"]["version"] == "2"
    assert st["generation"] == 1 and st["pending_lock"] is None
    assert [(v["version"], v["aliases"]) for v in st["versions"]] == [("2", ["challenger"]), ("1", ["champion"])]
    assert st["versions"][1]["tags"]["driftline.snapshot_hash"] == "abc123"
    assert st["history"][0]["actor"] == "alice"

    text = registry.format_status(st)
    assert text.startswith(f"model {model_spec.registry_name}")
    for fragment in (
        "champion    v1  data to 2026-02-01",
        "challenger  v2  data to 2026-02-02",
        "by alice: promotion: first",
        "versions (2):",
        "champion history (1 move(s)):",
        "promotion        no champion -> v1  by alice: first",
    ):
        assert fragment in text, (fragment, text)


def test_runs_uri_registers_the_logged_model(client, model_spec):
    model_uri, run_id = _log_model(seed=1)
    mv = registry.register_candidate(
        client, model_spec, model_uri=f"runs:/{run_id}/model", run_id=run_id, tags={registry.TAG_DATA_END: "2026-02-01"}
    )
    assert mv.source == model_uri


def test_realistic_demo_run_champion_serves_by_alias(client, model_spec, demo_frame):
    """Two daily candidates on demo data: the fresher one is promoted and scores via the alias."""
    features = ["age", "income", "credit_score", "debt_to_income", "num_late_payments_12m"]
    days = sorted(demo_frame["event_time"].dt.strftime("%Y-%m-%d").unique())
    versions = []
    for end in (days[6], days[13]):
        train = demo_frame[demo_frame["event_time"] < end]
        model = LogisticRegression(max_iter=500).fit(train[features].to_numpy(), train["defaulted"].to_numpy())
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=[])
        versions.append(
            registry.register_candidate(
                client, model_spec, model_uri=info.model_uri, run_id=run.info.run_id,
                tags={registry.TAG_DATA_END: end, "driftline.trigger": "schedule", "driftline.rows": str(len(train))},
            )
        )
    _promote(client, model_spec, versions[0].version, None)
    result = _promote(client, model_spec, versions[1].version, versions[0].version)
    assert result.promoted

    served = mlflow.sklearn.load_model(registry.get_champion(client, model_spec).alias_uri)
    scores = served.predict_proba(demo_frame[features].tail(50).to_numpy())[:, 1]
    assert scores.shape == (50,) and np.all((scores >= 0) & (scores <= 1))
    pinned = mlflow.sklearn.load_model(registry.get_champion(client, model_spec).uri)
    np.testing.assert_allclose(pinned.predict_proba(demo_frame[features].tail(50).to_numpy())[:, 1], scores)

    with pytest.raises(StaleCandidate):
        _promote(client, model_spec, versions[0].version, versions[1].version)
