"""Two retrain runs evaluated against the same champion race to promote: exactly one wins.

Both runs go through the real steps (ingest -> ... -> evaluate) against champion v1 and are
forced past the gates, so both decisions say "promote"; their promote steps then start together.
The registry's compare-and-set lets one move the alias; the other fails with ChampionChanged,
and its decision record says the run failed at promote with the champion untouched by it.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date

import pytest

from pipeline import registry, retrain
from pipeline.demo import DemoOptions, generate
from pipeline.registry import ChampionChanged
from pipeline.runenv import RunEnv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_two_promotions_racing_on_one_champion(settings, spec, mlflow_uri):
    settings = replace(settings, mlflow_tracking_uri=mlflow_uri)
    spec = spec.model_copy(update={"registered_model_name": "credit_default_race"})
    generate(settings.lake_root, date(2026, 1, 1), 50, DemoOptions(rows_per_day=500), model=spec.name)

    def env(day: str, run_id: str, **kw) -> RunEnv:
        return RunEnv.local(spec, day, settings=settings, trigger={"kind": "manual", "run_id": run_id}, **kw)

    assert retrain.run_all(env("2026-02-12", "first", force_promote=True, reason="seed"))["status"] == "promoted"
    client = env("2026-02-12", "first").mlflow_client()
    assert registry.get_champion(client, spec).version == "1"

    racers = [env(day, f"racer-{day}", force_promote=True, reason="race test") for day in ("2026-02-19", "2026-02-20")]
    evaluations = []
    for e in racers:
        split = retrain.split_step(e, retrain.validate_step(e, retrain.ingest_step(e)))
        evaluation = retrain.evaluate_step(e, split, retrain.train_step(e, split))
        assert evaluation.decision["promote"] and evaluation.champion_before == "1"
        evaluations.append(evaluation)

    barrier = threading.Barrier(2)
    outcomes: dict[int, object] = {}

    def promote(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = retrain.promote_step(racers[i], evaluations[i])
        except Exception as err:  # anything but ChampionChanged fails the assertions below, visibly
            outcomes[i] = err

    threads = [threading.Thread(target=promote, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    winners = [i for i, o in outcomes.items() if isinstance(o, retrain.PromotionOutcome) and o.promoted]
    losers = [i for i, o in outcomes.items() if isinstance(o, ChampionChanged)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    winner = outcomes[winners[0]]
    assert registry.get_champion(client, spec).version == winner.candidate_version
    assert [h["to_version"] for h in registry.history(client, spec)] == ["1", winner.candidate_version]

    loser_env = racers[losers[0]]
    with pytest.raises(retrain.RunFailed, match="promote"):
        retrain.report_step(loser_env)
    record = loser_env.store.read_json(f"{loser_env.run_prefix}/decision.json")
    assert record["status"] == "failed" and record["failed_step"] == "promote"
    assert "ChampionChanged" in record["summary"]
