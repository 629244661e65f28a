"""pipeline.promotion: the gates and the choice between challengers, on hand-built evidence."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipeline.config import CostPolicy, PromotionPolicy
from pipeline.promotion import GATE_NAMES, ChallengerEvidence, Decision, DecisionError, Evidence, decide

END = "2026-03-01T00:00:00+00:00"
EARLIER = "2026-02-20T00:00:00+00:00"
COSTS = CostPolicy(horizon_days=30, retrain=0.5, promotion=0.1)


def _diff(estimate, lower, upper=None, se=0.004):
    return {"estimate": estimate, "lower": lower, "upper": upper if upper is not None else 2 * estimate - lower,
            "se": se}


def _challenger(auc=0.80, vs=(0.01, 0.005), **overrides) -> ChallengerEvidence:
    base = ChallengerEvidence(
        metrics={"roc_auc": auc, "pr_auc": 0.5, "log_loss": 0.35, "brier": 0.11, "f1": 0.4},
        vs_champion={"roc_auc": _diff(*vs), "log_loss": _diff(0.0, -0.002)},
        slices=[{"column": "region", "slice": "north", "rows": 800, "positives": 120, "gated": True, "note": None,
                 "challenger": {"roc_auc": auc - 0.01}, "champion": {"roc_auc": 0.78}},
                {"column": "region", "slice": "tiny", "rows": 50, "positives": 8, "gated": False,
                 "note": "50 rows < slice_min_rows 200", "challenger": {"roc_auc": 0.5}, "champion": {"roc_auc": 0.9}}],
        model_size_mb=2.0, latency_ms_per_1k=10.0)
    return replace(base, **overrides)


def _evidence(candidate=None, baseline=None, lift=(0.05, 0.04), **overrides) -> Evidence:
    base = Evidence(
        task="binary", confidence=0.95, rows=5000,
        challengers={"candidate": candidate or _challenger(),
                     "baseline": baseline or _challenger(auc=0.75, vs=(-0.04, -0.05))},
        candidate_vs_baseline={"roc_auc": _diff(*lift)},
        champion={"roc_auc": 0.79, "log_loss": 0.36},
        champion_test_metric=0.83,
        candidate_data_end=END, champion_data_end=EARLIER,
        candidate_version="7", champion_version="6", trigger="schedule",
        report_uri="/runs/2026-03-01/evaluation.json",
    )
    return replace(base, **overrides)


def _decide(evidence=None, costs=COSTS, **policy):
    return decide(evidence or _evidence(), PromotionPolicy(**policy), costs, primary_metric="roc_auc")


def test_all_gates_pass_and_the_candidate_is_chosen():
    decision = _decide(metric_floors={"roc_auc": 0.7})
    assert decision.promote is True and decision.chosen == "candidate"
    assert [g.name for g in decision.gates] == list(GATE_NAMES)
    assert all(g.passed is True for g in decision.gates)
    assert "region=north" in decision.gate("slices").detail  # 'tiny' is reported, not gated
    assert decision.summary == ("PROMOTE candidate v7 over champion v6: 6 gate(s) passed, 0 skipped; "
                                "report /runs/2026-03-01/evaluation.json")
    assert decision.challengers["baseline"]["eligible"] is False  # it is worse than the champion


@pytest.mark.parametrize("case, candidate, baseline, lift, chosen", [
    ("candidate better than baseline by the margin", _challenger(), _challenger(auc=0.79, vs=(0.0, -0.002)),
     (0.01, 0.005), "candidate"),
    ("both pass, lift below the margin: the simpler model", _challenger(),
     _challenger(auc=0.799, vs=(0.009, 0.004)), (0.001, -0.002), "baseline"),
    ("candidate fails, baseline passes", _challenger(vs=(-0.02, -0.03)), _challenger(auc=0.8, vs=(0.01, 0.004)),
     (-0.02, -0.03), "baseline"),
    ("neither passes", _challenger(vs=(-0.02, -0.03)), _challenger(auc=0.7, vs=(-0.05, -0.06)), (0.05, 0.04), None),
])
def test_the_best_challenger_that_passes_is_chosen(case, candidate, baseline, lift, chosen):
    decision = _decide(_evidence(candidate, baseline, lift), min_lift_over_baseline=0.003)
    assert decision.chosen == chosen, (case, decision.choice)
    assert decision.promote is (chosen is not None)
    assert decision.choice.startswith(f"{chosen} chosen" if chosen else "no challenger passed")
    if chosen == "baseline" and "margin" in case:
        assert "the simpler model is preferred" in decision.choice and "+0.001" in decision.choice


def test_a_simple_new_concept_promotes_the_baseline_over_a_collapsed_champion():
    """The finding behind this rule: an XGBoost candidate at AUC 0.986 was rejected every day
    against a linear baseline at 0.988 while a chance-level champion stayed in service."""
    champion = {"roc_auc": 0.49}
    candidate = _challenger(auc=0.986, vs=(0.496, 0.48))
    baseline = _challenger(auc=0.988, vs=(0.498, 0.482))
    decision = _decide(_evidence(candidate, baseline, (-0.002, -0.004), champion=champion, trigger="drift"),
                       min_lift_over_baseline=0.003)
    assert decision.promote and decision.chosen == "baseline"
    assert "realised roc_auc here is 0.49 (its own test window said 0.83)" in decision.gate("vs_champion").detail


def test_a_prior_baseline_is_a_yardstick_never_a_challenger():
    evidence = _evidence(candidate=_challenger(vs=(-0.02, -0.03)))
    evidence = replace(evidence, challengers={"candidate": evidence.challengers["candidate"]})
    decision = _decide(evidence)
    assert decision.chosen is None and set(decision.challengers) == {"candidate"}


@pytest.mark.parametrize("tolerance, champion_auc, lower, passed", [
    ("-0.5%", 0.80, -0.0039, True),   # -0.5 % of 0.80 = -0.004
    ("-0.5%", 0.80, -0.0041, False),
    (-0.005, 0.80, -0.0049, True),    # a plain number: AUC points
    ("1se", 0.80, 0.0041, True),      # superiority by one standard error (0.004)
    ("1se", 0.80, 0.0039, False),
])
def test_vs_champion_margin_units(tolerance, champion_auc, lower, passed):
    candidate = _challenger(vs=(lower + 0.004, lower))
    evidence = _evidence(candidate, champion={"roc_auc": champion_auc})
    gate = _decide(evidence, champion_margin=tolerance).gate("vs_champion", "candidate")
    assert gate.passed is passed, gate.detail
    assert gate.observed == lower


def test_margins_are_scale_free_for_regression():
    """The same relative margin judges an RMSE of 1,000 and one of 1 alike."""
    for scale in (1.0, 1000.0):
        rmse = 1.0 * scale
        candidate = ChallengerEvidence(metrics={"rmse": 0.99 * scale, "mae": 0.8 * scale, "r2": 0.5},
                                       vs_champion={"rmse": _diff(0.01 * scale, -0.003 * scale, se=0.004 * scale)},
                                       slices=[], model_size_mb=1.0, latency_ms_per_1k=5.0)
        evidence = Evidence(task="regression", confidence=0.95, rows=4000, challengers={"candidate": candidate},
                            candidate_vs_baseline={"rmse": _diff(0.05 * scale, 0.04 * scale)},
                            champion={"rmse": rmse}, candidate_data_end=END, champion_data_end=EARLIER,
                            trigger="drift")
        decision = decide(evidence, PromotionPolicy(primary_metric="rmse"), COSTS, primary_metric="rmse")
        gate = decision.gate("vs_champion", "candidate")
        assert gate.passed is True and gate.threshold == pytest.approx(-0.005 * scale)
        assert decision.promote


@pytest.mark.parametrize("trigger, lower, passed", [
    ("schedule", 0.0040, True),     # 0.004 x 30 days = 0.12 >= 0.1
    ("schedule", 0.0030, False),    # 0.09 < 0.1: no churn for an unproven gain
    ("manual", -0.001, False),
    ("drift", -0.001, None),        # the monitor already priced the loss: non-inferiority suffices
])
def test_gain_gate_needs_a_confident_gain_worth_a_promotion(trigger, lower, passed):
    decision = _decide(_evidence(_challenger(vs=(lower + 0.003, lower)), trigger=trigger))
    gate = decision.gate("gain", "candidate")
    assert gate.passed is passed, gate.detail
    if passed is False:
        assert "not worth it" in gate.detail and decision.chosen != "candidate"


def test_first_run_skips_the_champion_gates_and_says_so():
    candidate = _challenger(vs_champion=None)
    decision = _decide(_evidence(candidate, _challenger(auc=0.7, vs_champion=None), champion=None,
                                 champion_data_end=None, champion_version=None))
    assert decision.promote and decision.chosen == "candidate"
    for name in ("vs_champion", "gain", "slices", "freshness"):
        gate = decision.gate(name)
        assert gate.passed is None and gate.detail == "no champion yet (first run)"
    assert "first champion" in decision.summary


@pytest.mark.parametrize("floors, passed, needle", [
    ({}, None, "no metric floors configured"),
    ({"roc_auc": 0.75}, True, "candidate roc_auc 0.8 meets the floor 0.75 with 0.05"),
    ({"roc_auc": 0.85}, False, "candidate roc_auc 0.8 misses the floor 0.85 by 0.05 short"),
    ({"log_loss": 0.30}, False, "candidate log_loss 0.35 misses the ceiling 0.3 by 0.05 short"),
])
def test_floor_gate(floors, passed, needle):
    gate = _decide(metric_floors=floors).gate("floor", "candidate")
    assert gate.passed is passed and needle in gate.detail


def test_slice_regression_blocks_relative_to_the_slice():
    candidate = _challenger()
    bad = dict(candidate.slices[0], challenger={"roc_auc": 0.74})  # 0.74 vs 0.78: -5 % > 3 %
    decision = _decide(_evidence(replace(candidate, slices=[bad])), slice_tolerance="3%")
    gate = decision.gate("slices", "candidate")
    assert gate.passed is False and gate.threshold == pytest.approx(-0.0234)
    assert "region=north" in gate.detail and decision.chosen != "candidate"


@pytest.mark.parametrize("size, latency, passed", [(2.0, 10.0, True), (80.0, 10.0, False), (2.0, 400.0, False)])
def test_budget_gate(size, latency, passed):
    decision = _decide(_evidence(_challenger(model_size_mb=size, latency_ms_per_1k=latency)))
    assert decision.gate("budget", "candidate").passed is passed


@pytest.mark.parametrize("candidate_end, allow_stale, passed", [
    (END, False, True), (EARLIER, False, True),
    ("2026-02-10T00:00:00+00:00", False, False), ("2026-02-10T00:00:00+00:00", True, True),
])
def test_freshness_gate_never_lets_a_backfill_roll_back(candidate_end, allow_stale, passed):
    decision = _decide(_evidence(candidate_data_end=candidate_end), allow_stale=allow_stale)
    gate = decision.gate("freshness", "candidate")
    assert gate.passed is passed
    if not passed:
        assert "10 day(s) before the champion's" in gate.detail and not decision.promote


def test_force_skips_gates_two_to_six_but_not_the_floor():
    bad = _evidence(_challenger(vs=(-0.2, -0.3), model_size_mb=500.0), candidate_data_end="2026-01-01")
    assert _decide(bad).promote is False
    forced = decide(bad, PromotionPolicy(), COSTS, primary_metric="roc_auc", force=True, reason="INC-42")
    assert forced.promote and forced.chosen == "candidate" and forced.force_reason == "INC-42"
    assert all(g.passed is None and "forced (INC-42)" in g.detail for g in forced.gates[1:])
    floored = decide(bad, PromotionPolicy(metric_floors={"roc_auc": 0.9}), COSTS, primary_metric="roc_auc",
                     force=True, reason="urgent")
    assert floored.promote is False and floored.gate("floor").passed is False
    with pytest.raises(DecisionError, match="needs a reason"):
        decide(bad, PromotionPolicy(), COSTS, primary_metric="roc_auc", force=True, reason="  ")


def test_decide_rejects_unknown_primary_metric_and_bad_dates():
    with pytest.raises(DecisionError, match="'rmse' is not in the evidence"):
        decide(_evidence(), PromotionPolicy(), COSTS, primary_metric="rmse")
    with pytest.raises(DecisionError, match="champion_data_end 'last week' is not an ISO date"):
        _decide(_evidence(champion_data_end="last week"))


def test_decision_record_round_trips_and_names_metric_threshold_and_observed():
    evidence = _evidence(_challenger(vs=(-0.012, -0.02)))
    decision = _decide(evidence, champion_margin=-0.005)
    assert decision.promote is False
    back = Decision.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert back == decision
    detail = back.gate("vs_champion").detail
    assert detail.startswith("roc_auc candidate - champion -0.012 (95% CI [-0.02, -0.004], paired, positive = "
                             "candidate better): lower bound -0.02 < non-inferiority margin -0.005 (short by 0.015)")
    assert back.policy["champion_margin"] == "-0.005" and back.policy["costs"]["promotion"] == 0.1
    assert Evidence.from_dict(json.loads(json.dumps(evidence.to_dict()))) == evidence
