"""The promotion rule: which challenger, if any, replaces the champion. Pure: no I/O, no clock.

Contract:
* The challengers are the XGBoost ``candidate`` and the simpler ``baseline`` (a linear model;
  a ``prior`` baseline is a yardstick, never promoted). Each is judged by the same gates on the
  same out-of-time test window (:data:`GATE_NAMES`):

  1. ``floor``: its metrics meet the spec's absolute floors (ceilings for lower-is-better);
  2. ``vs_champion``: the lower confidence bound of the paired bootstrap difference
     (challenger - champion, oriented: positive = challenger better) reaches
     ``promotion.champion_margin``. The champion is scored on the same rows, so after a change
     this is the champion's *realised* post-change performance, not its stale test metric;
  3. ``gain``: on scheduled and manual runs, the gain we are confident of (that lower bound,
     normalised) times ``costs.horizon_days`` must exceed ``costs.promotion``: no churn for no
     gain. A retrain the monitor requested has already shown that keeping the champion costs
     more than a retrain, so there non-inferiority (gate 2) suffices;
  4. ``slices``: no gated slice regresses beyond ``promotion.slice_tolerance``;
  5. ``budget``: model size and scoring latency;
  6. ``freshness``: a challenger trained on older data than the champion never replaces it
     (backfills recompute history without rolling the registry back), unless allowed.

  Without a champion, gates 2, 3, 4 and 6 are skipped and the record says so.
* Of the challengers that pass every gate, the candidate is chosen when it beats the baseline
  by ``promotion.min_lift_over_baseline``; otherwise the baseline is (a simpler model that is as
  good wins), and the record says which and why.
* Tolerances are :data:`pipeline.config.Tolerance` values, turned into metric units here against
  the reference they are relative to (the champion's metric for margins, the baseline's for the
  lift), so ``"-0.5%"`` means the same for an AUC of 0.8 and an RMSE of 1,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipeline import metrics
from pipeline.artifacts import Record
from pipeline.config import MAX_REASON_CHARS, CostPolicy, PromotionPolicy, tolerance_unit, tolerance_value
from pipeline.errors import DriftlineError

GATE_NAMES: tuple[str, ...] = ("floor", "vs_champion", "gain", "slices", "budget", "freshness")
CHALLENGERS: tuple[str, ...] = ("candidate", "baseline")
NO_CHAMPION = "no champion yet (first run)"


class DecisionError(DriftlineError):
    """``decide`` was called with arguments it cannot judge (e.g. ``force`` without a reason, or a
    primary metric the evidence does not carry)."""


@dataclass(frozen=True)
class ChallengerEvidence(Record):
    """What was measured for one challenger on the test window.

    Attributes:
        metrics: point estimates, metric -> value (``None`` if undefined).
        vs_champion: metric -> ``{"estimate", "lower", "upper", "se"}`` of challenger - champion,
            oriented (positive = challenger better); ``None`` without a champion.
        slices: per slice: ``column``, ``slice``, ``rows``, ``positives`` (binary), ``gated`` and
            ``note`` (why not gated), ``challenger`` and ``champion`` metrics.
        model_size_mb, latency_ms_per_1k: the operational budget.
    """

    metrics: dict[str, float | None]
    vs_champion: dict[str, dict[str, float | None]] | None
    slices: list[dict[str, Any]]
    model_size_mb: float
    latency_ms_per_1k: float


@dataclass(frozen=True)
class Evidence(Record):
    """What :func:`decide` judges; built by :meth:`pipeline.evaluate.Evaluation.evidence`.

    Attributes:
        task: ``binary`` or ``regression``.
        confidence: level of every interval.
        rows: rows in the test window.
        challengers: role -> :class:`ChallengerEvidence` (``candidate``, and ``baseline`` when it
            is a promotable model).
        candidate_vs_baseline: metric -> oriented paired interval of candidate - baseline.
        champion: the champion's metrics on this test window (realised), or ``None``.
        champion_test_metric: the champion's primary metric on its own test window when it was
            trained (for the record: how stale its reputation is), or ``None``.
        candidate_data_end, champion_data_end: ISO ends of the training data.
        candidate_version, champion_version: registry versions when known.
        trigger: what started the run (``schedule``, ``manual``, ``backfill``, ``drift``, ...).
        report_uri: where the full evaluation report is.
        test_window: ``[start, end)`` of the test window and how it was chosen.
    """

    task: str
    confidence: float
    rows: int
    challengers: dict[str, ChallengerEvidence]
    candidate_vs_baseline: dict[str, dict[str, float | None]]
    champion: dict[str, float | None] | None
    candidate_data_end: str
    champion_test_metric: float | None = None
    champion_data_end: str | None = None
    candidate_version: str | None = None
    champion_version: str | None = None
    trigger: str = "manual"
    report_uri: str | None = None
    test_window: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Evidence":
        data = dict(data)
        data["challengers"] = {r: ChallengerEvidence.from_dict(c) for r, c in data["challengers"].items()}
        return super().from_dict(data)


@dataclass(frozen=True)
class Gate(Record):
    """One promotion rule's verdict for one challenger.

    Attributes:
        name: one of :data:`GATE_NAMES`.
        passed: ``True``/``False``; ``None`` = skipped (``detail`` says why).
        threshold: what was required, in metric units (a number, an ISO date, or metric -> number).
        observed: what was measured, in the same shape as ``threshold``.
        interval: the confidence interval behind ``observed`` when there is one.
        detail: one sentence for a reviewer: metric, observed vs threshold, by how much.
    """

    name: str
    passed: bool | None
    threshold: float | str | dict[str, float] | None
    observed: float | str | dict[str, float | None] | None
    interval: tuple[float | None, float | None] | None
    detail: str


@dataclass(frozen=True)
class Decision(Record):
    """Which challenger replaces the champion, if any, and why.

    Attributes:
        promote: a challenger passed every gate (or the candidate was forced past gates 2-6).
        chosen: ``candidate``, ``baseline`` or ``None``.
        gates: the chosen challenger's gates (the candidate's when none is chosen).
        challengers: role -> ``{"eligible": bool, "gates": [Gate, ...]}``.
        choice: one sentence saying why ``chosen`` (or why none).
        reasons: sentences for the record (failures first).
        summary: one line for logs and UIs, ending with the report URI when known.
        forced: ``force=True`` was used.
        primary_metric: the metric the gates judged.
        force_reason: the reason given with ``force``.
        candidate_version, champion_version, report_uri: copied from the evidence.
        policy: the promotion and cost policies applied (for audit).
    """

    promote: bool
    chosen: str | None
    gates: list[Gate]
    challengers: dict[str, dict[str, Any]]
    choice: str
    reasons: list[str]
    summary: str
    forced: bool
    primary_metric: str
    force_reason: str | None = None
    candidate_version: str | None = None
    champion_version: str | None = None
    report_uri: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)

    def gate(self, name: str, challenger: str | None = None) -> Gate:
        """Gate ``name`` of ``challenger`` (default: the chosen one, else the candidate)."""
        gates = self.gates if challenger is None else self.challengers[challenger]["gates"]
        for g in gates:
            if g.name == name:
                return g
        raise KeyError(name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Decision":
        data = dict(data)
        data["gates"] = [_gate(g) for g in data.get("gates", [])]
        data["challengers"] = {r: {**c, "gates": [_gate(g) for g in c.get("gates", [])]}
                               for r, c in data.get("challengers", {}).items()}
        return super().from_dict(data)


def _gate(g: dict[str, Any] | Gate) -> Gate:
    if isinstance(g, Gate):
        return g
    g = dict(g)
    if g.get("interval") is not None:
        g["interval"] = tuple(g["interval"])
    return Gate.from_dict(g)


def decide(evidence: Evidence, policy: PromotionPolicy, costs: CostPolicy, *, primary_metric: str,
           force: bool = False, reason: str | None = None) -> Decision:
    """Apply the gates to every challenger and choose (see the module docstring).

    Args:
        evidence: from :meth:`pipeline.evaluate.Evaluation.evidence`.
        policy: the spec's promotion policy.
        costs: the spec's cost policy (horizon and promotion cost of the gain gate).
        primary_metric: the metric gates 2-4 and the choice judge (``spec.primary_metric``).
        force: promote the candidate regardless of gates 2-6 (a human decision; needs ``reason``).
        reason: why it is forced (recorded in every skipped gate).

    Returns:
        The :class:`Decision`.

    Raises:
        DecisionError: ``force`` without a reason, a primary metric absent from the evidence, or a
            data end that is not ISO.
    """
    if force and not (reason and reason.strip()):
        raise DecisionError("force=True needs a reason (who decided and why); it is recorded in the decision")
    if reason and len(reason) > MAX_REASON_CHARS:
        raise DecisionError(f"the reason is {len(reason)} characters; keep it under {MAX_REASON_CHARS} (link a ticket)")
    if "candidate" not in evidence.challengers:
        raise DecisionError("the evidence has no candidate")
    for role, ch in evidence.challengers.items():
        if primary_metric not in ch.metrics or (ch.vs_champion is not None and primary_metric not in ch.vs_champion):
            raise DecisionError(f"primary metric {primary_metric!r} is not in the evidence of the {role}; it "
                                f"carries {sorted(ch.metrics)}")
    for label, value in (("candidate", evidence.candidate_data_end), ("champion", evidence.champion_data_end)):
        if value is not None:
            try:
                _parse_time(value)
            except ValueError:
                raise DecisionError(f"{label}_data_end {value!r} is not an ISO date or datetime") from None

    judged: dict[str, list[Gate]] = {}
    for role, ch in evidence.challengers.items():
        if force and role != "candidate":
            continue
        judged[role] = _gates(role, ch, evidence, policy, costs, primary_metric, force, reason)
    eligible = [r for r in CHALLENGERS if r in judged and all(g.passed is not False for g in judged[r])]
    chosen, choice = _choose(eligible, judged, evidence, policy, primary_metric, force)
    gates = judged[chosen] if chosen else judged["candidate"]
    reasons, summary = _explain(chosen, choice, gates, judged, evidence, force)
    return Decision(
        promote=chosen is not None, chosen=chosen, gates=gates,
        challengers={r: {"eligible": r in eligible, "gates": g} for r, g in judged.items()},
        choice=choice, reasons=reasons, summary=summary, forced=force, primary_metric=primary_metric,
        force_reason=reason.strip() if force and reason else None,
        candidate_version=evidence.candidate_version, champion_version=evidence.champion_version,
        report_uri=evidence.report_uri, policy={**policy.model_dump(), "costs": costs.model_dump()},
    )


def _gates(role: str, ch: ChallengerEvidence, ev: Evidence, policy: PromotionPolicy, costs: CostPolicy,
           metric: str, force: bool, reason: str | None) -> list[Gate]:
    gates = [_floor_gate(role, ch, policy)]
    if force:
        skipped = f"skipped: promotion forced ({(reason or '').strip()})"
        return gates + [Gate(name, None, None, None, None, skipped) for name in GATE_NAMES[1:]]
    has_champion = ch.vs_champion is not None and ev.champion is not None
    if not has_champion:
        return gates + [
            Gate("vs_champion", None, None, None, None, NO_CHAMPION),
            Gate("gain", None, costs.promotion, None, None, NO_CHAMPION),
            Gate("slices", None, None, None, None, NO_CHAMPION),
            _budget_gate(ch, policy),
            Gate("freshness", None, None, ev.candidate_data_end, None, NO_CHAMPION),
        ]
    return gates + [_champion_gate(role, ch, ev, policy, metric), _gain_gate(role, ch, ev, costs, metric),
                     _slices_gate(role, ch, policy, metric), _budget_gate(ch, policy), _freshness_gate(ev, policy)]


def _floor_gate(role: str, ch: ChallengerEvidence, policy: PromotionPolicy) -> Gate:
    if not policy.metric_floors:
        return Gate("floor", None, None, None, None, "no metric floors configured (promotion.metric_floors)")
    parts, failures, observed = [], [], {}
    for metric, bound in policy.metric_floors.items():
        value = ch.metrics.get(metric)
        observed[metric] = value
        higher = metrics.higher_is_better(metric)
        word = "floor" if higher else "ceiling"
        if value is None:
            failures.append(metric)
            parts.append(f"{role} {metric} is undefined on the test window ({word} {bound:.4g})")
            continue
        margin = value - bound if higher else bound - value
        ok = margin >= 0
        if not ok:
            failures.append(metric)
        parts.append(f"{role} {metric} {value:.4g} {'meets' if ok else 'misses'} the {word} {bound:.4g} "
                     f"{'with' if ok else 'by'} {abs(margin):.4g}{'' if ok else ' short'}")
    return Gate("floor", not failures, dict(policy.metric_floors), observed, None, "; ".join(parts))


def _champion_gate(role: str, ch: ChallengerEvidence, ev: Evidence, policy: PromotionPolicy, metric: str) -> Gate:
    diff = ch.vs_champion[metric]  # type: ignore[index]
    est, lo, hi = diff["estimate"], diff["lower"], diff["upper"]
    champion_value = (ev.champion or {}).get(metric)
    margin = tolerance_value(policy.champion_margin, reference=champion_value, se=diff.get("se"))
    kind = "superiority" if margin > 0 else "non-inferiority"
    if lo is None:
        return Gate("vs_champion", False, margin, None, (lo, hi),
                    f"{metric} {role} - champion has no confidence interval on this test window; cannot show "
                    f"{kind} at margin {_fmt_tol(policy.champion_margin, margin)}")
    ok = lo >= margin
    point = "undefined" if est is None else f"{est:+.4g}"
    stale = ""
    if champion_value is not None and ev.champion_test_metric is not None:
        stale = (f"; the champion's realised {metric} here is {champion_value:.4g} (its own test window said "
                 f"{ev.champion_test_metric:.4g})")
    detail = (f"{metric} {role} - champion {point} ({_ci_text(ev.confidence, lo, hi)}, paired, positive = "
              f"{role} better): lower bound {lo:+.4g} {'>=' if ok else '<'} {kind} margin "
              f"{_fmt_tol(policy.champion_margin, margin)} ({'by' if ok else 'short by'} {abs(lo - margin):.4g})"
              f"{stale}")
    return Gate("vs_champion", ok, margin, lo, (lo, hi), detail)


def normalise(metric: str, value: float, reference: float | None) -> float:
    """A difference in metric units -> normalised units (see :class:`pipeline.config.CostPolicy`):
    unchanged for bounded metrics, a fraction of ``|reference|`` for unbounded ones."""
    if metrics.get(metric).bounded:
        return value
    if not reference:
        raise DecisionError(f"{metric} is unbounded, so its costs are relative, but there is no reference value")
    return value / abs(reference)


def _gain_gate(role: str, ch: ChallengerEvidence, ev: Evidence, costs: CostPolicy, metric: str) -> Gate:
    diff = ch.vs_champion[metric]  # type: ignore[index]
    lo = diff["lower"]
    champion_value = (ev.champion or {}).get(metric)
    unit = "" if metrics.get(metric).bounded else f" (relative to the champion's {metric} {champion_value:.4g})"
    if ev.trigger == "drift":
        return Gate("gain", None, costs.promotion, None, None,
                    "skipped: the monitor requested this retrain because keeping the champion was forecast to cost "
                    "more than a retrain; non-inferiority (vs_champion) suffices")
    if lo is None:
        return Gate("gain", False, costs.promotion, None, None,
                    f"the {metric} gain of the {role} over the champion has no confidence bound on this window")
    gain = normalise(metric, lo, champion_value) * costs.horizon_days
    ok = gain >= costs.promotion
    detail = (f"confident gain: lower bound {lo:+.4g} {metric}{unit} x horizon {costs.horizon_days} days = "
              f"{gain:+.4g} {'>=' if ok else '<'} promotion cost {costs.promotion:g} (normalised metric x days)"
              + ("" if ok else "; replacing the champion is not worth it"))
    return Gate("gain", ok, costs.promotion, gain, None, detail)


def _slices_gate(role: str, ch: ChallengerEvidence, policy: PromotionPolicy, metric: str) -> Gate:
    if not ch.slices:
        return Gate("slices", None, None, None, None, "no slices to judge (spec.slice_columns is empty)")
    judged = []
    for entry in ch.slices:
        if not entry.get("gated"):
            continue
        mine = (entry.get("challenger") or {}).get(metric)
        champ = (entry.get("champion") or {}).get(metric)
        if mine is None or champ is None:
            continue
        tolerance = tolerance_value(policy.slice_tolerance, reference=champ, se=None) \
            if tolerance_unit(policy.slice_tolerance) != "se" else None
        if tolerance is None:
            raise DecisionError("promotion.slice_tolerance cannot be in standard errors (slices carry no "
                                "interval); write it as a number or a percentage")
        judged.append((metrics.orient(metric, mine - champ), -tolerance, entry))
    if not judged:
        return Gate("slices", None, None, None, None,
                    f"none of {len(ch.slices)} slices is gated (each has < {policy.slice_min_rows} rows or one "
                    "class); all are reported in the evaluation")
    worst_diff, worst_tol, entry = min(judged, key=lambda t: t[0] - t[1])
    name = f"{entry['column']}={entry['slice']}"
    ok = worst_diff >= worst_tol
    failing = sum(1 for d, t, _ in judged if d < t)
    detail = (f"worst of {len(judged)} gated slices is {name} ({entry['rows']} rows): {metric} {role} - champion "
              f"{worst_diff:+.4g} {'>=' if ok else '<'} tolerance {_fmt_tol(policy.slice_tolerance, worst_tol)} "
              f"({'by' if ok else 'short by'} {abs(worst_diff - worst_tol):.4g})")
    if failing > 1:
        detail += f"; {failing} slices regress beyond the tolerance"
    return Gate("slices", ok, worst_tol, worst_diff, None, detail)


def _budget_gate(ch: ChallengerEvidence, policy: PromotionPolicy) -> Gate:
    size, latency = ch.model_size_mb, ch.latency_ms_per_1k
    size_ok = size <= policy.max_model_mb
    latency_ok = latency <= policy.max_latency_ms_per_1k
    detail = (f"model size {size:.2f} MB {'<=' if size_ok else '>'} max {policy.max_model_mb:.2f} MB "
              f"({'headroom' if size_ok else 'over by'} {abs(policy.max_model_mb - size):.2f} MB); "
              f"latency {latency:.1f} ms/1k rows {'<=' if latency_ok else '>'} max "
              f"{policy.max_latency_ms_per_1k:.1f} ({'headroom' if latency_ok else 'over by'} "
              f"{abs(policy.max_latency_ms_per_1k - latency):.1f} ms)")
    return Gate("budget", size_ok and latency_ok,
                {"max_model_mb": policy.max_model_mb, "max_latency_ms_per_1k": policy.max_latency_ms_per_1k},
                {"model_size_mb": size, "latency_ms_per_1k": latency}, None, detail)


def _freshness_gate(ev: Evidence, policy: PromotionPolicy) -> Gate:
    cand, champ = ev.candidate_data_end, ev.champion_data_end
    if champ is None:
        # Unknown is not "older": failing closed keeps a backfill from replacing an untagged champion.
        if policy.allow_stale:
            return Gate("freshness", True, None, cand, None, f"the champion's data_interval_end is unknown; "
                        f"challenger data ends {cand}; allowed by promotion.allow_stale")
        return Gate("freshness", False, None, cand, None,
                    f"the champion's data_interval_end is unknown, so a challenger with data ending {cand} cannot "
                    "be shown not to be older; record the champion's data end, set promotion.allow_stale, or "
                    "force with a reason")
    lag = _parse_time(champ) - _parse_time(cand)
    if lag.total_seconds() <= 0:
        return Gate("freshness", True, champ, cand, None,
                    f"challenger data ends {cand}, not before the champion's {champ}")
    stale = f"challenger data ends {cand}, {_duration(lag)} before the champion's {champ}"
    if policy.allow_stale:
        return Gate("freshness", True, champ, cand, None, f"{stale}; allowed by promotion.allow_stale")
    return Gate("freshness", False, champ, cand, None,
                f"{stale}; a stale challenger never replaces a fresher champion (set promotion.allow_stale or "
                "force with a reason)")


def _choose(eligible: list[str], judged: dict[str, list[Gate]], ev: Evidence, policy: PromotionPolicy,
            metric: str, force: bool) -> tuple[str | None, str]:
    if force:
        if "candidate" in eligible:
            return "candidate", "the candidate is promoted by force (gates 2-6 skipped; the floor held)"
        return None, "forced, but the candidate misses the floor, which force never skips"
    lift = ev.candidate_vs_baseline.get(metric, {})
    baseline_value = (ev.challengers["baseline"].metrics.get(metric) if "baseline" in ev.challengers
                      else ev.challengers["candidate"].metrics.get(metric))
    need = tolerance_value(policy.min_lift_over_baseline, reference=baseline_value, se=lift.get("se") or 0.0)
    est = lift.get("estimate")
    lift_text = (f"the candidate's {metric} lift over the baseline is {est:+.4g} "
                 f"({'>=' if est is not None and est >= need else '<'} required "
                 f"{_fmt_tol(policy.min_lift_over_baseline, need)})" if est is not None
                 else f"the candidate's {metric} lift over the baseline is undefined")
    failed = {r: [g.name for g in judged[r] if g.passed is False] for r in judged}
    if "candidate" in eligible:
        if "baseline" not in eligible or (est is not None and est >= need):
            why = lift_text if "baseline" in eligible else (
                "the baseline is not promotable (a prior model is a yardstick)" if "baseline" not in judged
                else f"the baseline failed {', '.join(failed['baseline'])}")
            return "candidate", f"candidate chosen: it passed every gate and {why}"
        return "baseline", (f"baseline chosen: both passed every gate, but {lift_text}, so the simpler model is "
                            "preferred")
    if "baseline" in eligible:
        return "baseline", (f"baseline chosen: it passed every gate while the candidate failed "
                            f"{', '.join(failed['candidate'])}")
    parts = [f"the {r} failed {', '.join(failed[r])}" for r in CHALLENGERS if r in judged]
    return None, "no challenger passed every gate: " + "; ".join(parts)


def _explain(chosen: str | None, choice: str, gates: list[Gate], judged: dict[str, list[Gate]], ev: Evidence,
             force: bool) -> tuple[list[str], str]:
    failed = [g for g in gates if g.passed is False]
    skipped = [g for g in gates if g.passed is None]
    passed = [g for g in gates if g.passed is True]
    reasons = [choice] + [f"{g.name} failed: {g.detail}" for g in failed]
    if chosen:
        reasons.append(f"{chosen} passed {len(passed)} gate(s): {', '.join(g.name for g in passed) or 'none'}")
    reasons += [f"{g.name} skipped: {g.detail}" for g in skipped]
    for role, other in judged.items():
        if role == (chosen or "candidate"):
            continue
        reasons += [f"({role}) {g.name} failed: {g.detail}" for g in other if g.passed is False]
    who = f"candidate{' v' + ev.candidate_version if ev.candidate_version else ''}"
    over = (f" over champion v{ev.champion_version}" if ev.champion_version
            else " over the champion" if ev.champion is not None else " (first champion)")
    if chosen:
        model = who if chosen == "candidate" else "baseline"
        summary = (f"PROMOTE {model}{over}{' (forced)' if force else ''}: {len(passed)} gate(s) passed, "
                   f"{len(skipped)} skipped")
    else:
        summary = f"REJECT {who}: failed {', '.join(g.name for g in failed) or 'the choice'}"
    if ev.report_uri:
        summary += f"; report {ev.report_uri}"
    return reasons, summary


def _fmt_tol(tolerance: str, value: float) -> str:
    unit = tolerance_unit(tolerance)
    return f"{value:+.4g}" if unit == "absolute" else f"{value:+.4g} (= {tolerance})"


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _duration(delta: Any) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} day(s)" if days >= 1 else f"{delta.total_seconds() / 3600:.1f} hour(s)"


def _ci_text(confidence: float, lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return f"{confidence:.0%} CI undefined"
    return f"{confidence:.0%} CI [{lo:+.4g}, {hi:+.4g}]"
