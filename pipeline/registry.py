"""The MLflow model registry layer: candidates, the champion alias, its history and rollback.

Contract:
* A model's registered name is ``spec.registry_name``. Two aliases carry meaning: ``champion``
  (what serves) and ``challenger``: the candidate trained on the newest data (ties: the higher
  version) that was not registered by a dry run and has never been champion, and only while it
  outranks the champion the same way -- so a backfill (older data) or a dry run never takes it,
  and after a promotion it names nothing until a newer candidate is registered. Such versions
  carry ``driftline.dry_run`` / ``driftline.backfill`` tags saying why. Stages are never used
  (deprecated in MLflow 3).
* Every champion move (promotion, forced promotion, rollback) is a compare-and-set: it names the
  champion it expects to replace and fails with :class:`ChampionChanged` when the registry
  says otherwise. MLflow's alias write is a last-writer-wins upsert, so moves are serialised by
  claiming a per-generation lock: creating the registered model ``<name>.lock.g<NNNN>`` (a
  unique name in the registry's database; the loser of a race gets RESOURCE_ALREADY_EXISTS).
  ``generation`` is a counter tag on the registered model, bumped by each completed move before
  its lock is released, and re-read after the claim, so a claimer that read a stale generation
  aborts. Only the MLflow client API is used: this works against a SQLite store and an MLflow
  server on Postgres alike.
* Each move appends a JSON history entry as the registered-model tag
  ``driftline.champion.g<NNNN>`` and stamps the new champion version with
  ``driftline.promoted_at`` / ``driftline.promoted_by`` / ``driftline.promotion_reason``.
* A move is an intent log: the lock *is* the pending history entry (its tags hold the entry,
  an ``owner`` and a ``lease_until``); then the alias moves; then the entry is completed
  (history tag, version tags, generation bump) and the lock released. A process killed anywhere
  in between leaves the lock behind. The next mover (a promotion, a rollback, or
  :func:`recover`) that finds a lock whose lease has expired repairs it: if the alias already
  points at the lock's target it **rolls forward** (completes the history), otherwise it
  **rolls back** (nothing had moved: the lock is released); either way it records what it did
  (``recovered`` in the entry, or a ``driftline.champion.recovery.g<NNNN>`` tag). A live lease
  makes the next mover fail with :class:`ChampionChanged` naming the holder and since when.
  Invariants (tested under kills): the champion alias equals the last completed history entry's
  ``to_version``, and rollback always finds its chain.

Public API: :func:`get_champion`, :func:`get_challenger`, :func:`register_candidate`,
:func:`promote`, :func:`rollback`, :func:`history`, :func:`status`, :func:`format_status`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException

from pipeline.artifacts import Record
from pipeline.config import ModelSpec
from pipeline.errors import DriftlineError
from pipeline.faults import kill_point

CHAMPION = "champion"
CHALLENGER = "challenger"

TAG_DATA_END = "driftline.data_interval_end"
TAG_REGISTERED_AT = "driftline.registered_at"
TAG_PROMOTED_AT = "driftline.promoted_at"
TAG_PROMOTED_BY = "driftline.promoted_by"
TAG_PROMOTION_REASON = "driftline.promotion_reason"
TAG_DRY_RUN = "driftline.dry_run"
TAG_BACKFILL = "driftline.backfill"
TAG_GENERATION = "driftline.champion.generation"
_HISTORY_PREFIX = "driftline.champion.g"
_HISTORY_KEY = re.compile(r"^driftline\.champion\.g(\d+)$")
_RECOVERY_PREFIX = "driftline.champion.recovery.g"
_LOCK_TAG_PREFIX = "driftline.lock."


#: Version tags shown by :func:`status` (in this order) when present.
_KEY_TAGS = (
    TAG_DATA_END,
    "driftline.snapshot_hash",
    "driftline.trigger",
    TAG_DRY_RUN,
    TAG_BACKFILL,
    "driftline.decision",
    TAG_REGISTERED_AT,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_PROMOTION_REASON,
)

_ALREADY_EXISTS = {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


class RegistryError(DriftlineError):
    """The registry is not in the state a registration, promotion or rollback needs."""


class ChampionChanged(RegistryError):
    """The champion is not the one the caller evaluated against (or another move is running)."""


class StaleCandidate(RegistryError):
    """The candidate's data ends before the champion's and staleness is not allowed."""


class NoSuchVersion(RegistryError):
    """A named model version (or the registered model) does not exist or is not READY."""


class NothingToRollBackTo(RegistryError):
    """Rollback has no earlier champion to return to."""


@dataclass(frozen=True)
class ModelVersionInfo(Record):
    """One registered model version, as driftline reads it.

    Attributes:
        name: registered model name.
        version: version number as a string (MLflow's own representation).
        run_id: the MLflow run that produced the model ("" when none was recorded).
        source: where the registry says the model's files are.
        uri: the concrete ``models:/<name>/<version>``; loads this exact version forever.
        alias_uri: ``models:/<name>@<alias>`` when this version was looked up by alias, else None.
        aliases: every alias pointing at this version.
        tags: the version's tags (``driftline.data_interval_end`` among them).
        created_at: creation time, UTC ISO 8601.
        status: MLflow's status string (``READY`` for usable versions).
    """

    name: str
    version: str
    run_id: str
    source: str
    uri: str
    alias_uri: str | None
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    status: str = ""

    @property
    def data_interval_end(self) -> str | None:
        return self.tags.get(TAG_DATA_END)


@dataclass(frozen=True)
class PromotionResult(Record):
    """What a promotion or rollback did.

    Attributes:
        promoted: True when ``champion`` now points at ``version`` because of this call (or
            because an identical earlier call already completed: an idempotent retry).
        champion_before: champion version before the call (None = no champion).
        champion_after: champion version after the call.
        version: the version the call was about.
        message: one sentence a person can act on.
        history_entry: the alias-history entry written (None when nothing moved).
    """

    promoted: bool
    champion_before: str | None
    champion_after: str | None
    version: str
    message: str
    history_entry: dict[str, Any] | None = None


def get_champion(client: MlflowClient, spec: ModelSpec) -> ModelVersionInfo | None:
    """The version the ``champion`` alias points at.

    Args:
        client: MLflow client bound to the registry.
        spec: the model spec (``spec.registry_name`` is looked up).

    Returns:
        The champion's :class:`ModelVersionInfo` (``alias_uri`` = ``models:/<name>@champion``),
        or None when the model is not registered or has no champion yet.
    """
    return _by_alias(client, spec.registry_name, CHAMPION)


def get_challenger(client: MlflowClient, spec: ModelSpec) -> ModelVersionInfo | None:
    """The version the ``challenger`` alias points at, or None (see :func:`get_champion`)."""
    return _by_alias(client, spec.registry_name, CHALLENGER)


def register_candidate(
    client: MlflowClient, spec: ModelSpec, *, model_uri: str, run_id: str, tags: dict[str, str],
    dry_run: bool = False, description: str | None = None,
) -> ModelVersionInfo:
    """Register a trained candidate as a new version and settle ``challenger`` (module docstring).

    Creates the registered model first when absent (description from ``spec.description``).

    Args:
        client: MLflow client bound to the tracking store and registry.
        spec: the model spec.
        model_uri: the logged model: ``models:/<model_id>`` (``ModelInfo.model_uri`` from
            ``log_model``), ``runs:/<run_id>/<name>``, or a concrete artifact URI.
        run_id: the training run.
        tags: version tags to record, e.g. ``driftline.data_interval_end`` (ISO), snapshot
            hash, run ids, trigger, decision summary; values are stringified.
            ``driftline.registered_at``, ``driftline.dry_run`` and ``driftline.backfill`` are
            added (``true``/``false``; a backfill's data ends before that of a version already
            registered by a run that was not a dry run: it recomputes history).
        dry_run: the version comes from a dry run: it is recorded, never challenger.
        description: the version's description in the registry (what the run decided, or that
            the decision is pending).

    Returns:
        The new version, READY; ``challenger`` points at it when it has the newest data (unless
        another run registered a newer one concurrently).

    Raises:
        RegistryError: the registry did not bring the version to READY.
    """
    name = spec.registry_name
    try:
        client.create_registered_model(name, description=spec.description or None)
    except MlflowException as err:
        if err.error_code not in _ALREADY_EXISTS:
            raise
    source, model_id = _resolve_source(client, model_uri)
    all_tags = {str(k): str(v) for k, v in tags.items()}
    all_tags[TAG_REGISTERED_AT] = _now()
    all_tags[TAG_DRY_RUN] = "true" if dry_run else "false"
    newest, data_end = _newest_data_end(client, name), _parse_time(all_tags.get(TAG_DATA_END))
    all_tags[TAG_BACKFILL] = "true" if newest is not None and data_end is not None and data_end < newest else "false"
    created = client.create_model_version(
        name, source, run_id=run_id, tags=all_tags, model_id=model_id, description=description
    )
    if created.status != "READY":
        raise RegistryError(
            f"model version {name} v{created.version} ended in status {created.status} "
            f"({created.status_message or 'no message'}); source {source}"
        )
    _settle_challenger(client, name)
    return _info(client.get_model_version(name, created.version))


def describe_version(client: MlflowClient, spec: ModelSpec, version: str, description: str) -> None:
    """Set a version's description (shown on its page in the MLflow UI)."""
    client.update_model_version(spec.registry_name, str(version), description=description)


def _settle_challenger(client: MlflowClient, name: str, attempts: int = 8) -> None:
    """Point ``challenger`` at the version the module docstring's rule names (or remove it).

    Runs that register or promote at the same moment race on the alias: MLflow's upsert is
    select-then-insert (one writer can fail on the alias table's unique constraint), and a plain
    set lets a writer that read an older registry overwrite a newer one. So every writer sets
    the alias to the rule's answer on the registry as it reads it, then re-reads; whoever writes
    last re-checks after writing, so the alias converges without a lock (versions are only ever
    added, and the rule is a function of the registry's state).
    """
    for attempt in range(attempts):
        wanted = _challenger_by_rule(client, name)
        holder = _alias_version(client, name, CHALLENGER)
        if (None if holder is None else str(holder.version)) == wanted:
            return
        try:
            if wanted is None:
                client.delete_registered_model_alias(name, CHALLENGER)
            else:
                client.set_registered_model_alias(name, CHALLENGER, wanted)
        except MlflowException:
            if attempt == attempts - 1:
                raise
        time.sleep(0.02 * (attempt + 1))
    raise RegistryError(f"{name}: the challenger alias did not settle after {attempts} tries; "
                        f"another writer keeps changing it (models:/{name}@{CHALLENGER})")


def _challenger_by_rule(client: MlflowClient, name: str) -> str | None:
    """The version ``challenger`` should name: the best-ranked (data end, version) version that is
    no dry run and was never champion, if it outranks the champion; else None."""
    model = _registered_model(client, name)
    if model is None:
        return None
    champion = (model.aliases or {}).get(CHAMPION)
    champions = {str(e["to_version"]) for e in _history_from_tags(model.tags)}
    if champion is not None:
        champions.add(str(champion))
    versions = list(_all_versions(client, name))
    ranked = {str(mv.version): _rank(mv) for mv in versions}
    dry_runs = {str(mv.version) for mv in versions if (mv.tags or {}).get(TAG_DRY_RUN) == "true"}
    eligible = [v for v in ranked if v not in champions and v not in dry_runs]
    if not eligible:
        return None
    best = max(eligible, key=lambda v: ranked[v])
    if champion is not None and str(champion) in ranked and ranked[best] < ranked[str(champion)]:
        return None
    return best


def _rank(mv: ModelVersion) -> tuple[datetime, int]:
    """(data end, version number): how challengers are ordered (no data end ranks lowest)."""
    end = _parse_time((mv.tags or {}).get(TAG_DATA_END)) or datetime.min.replace(tzinfo=timezone.utc)
    return end, int(mv.version)


def _newest_data_end(client: MlflowClient, name: str) -> datetime | None:
    """The newest data end among versions registered by runs that were not dry runs, or None."""
    ends = [_parse_time((mv.tags or {}).get(TAG_DATA_END)) for mv in _all_versions(client, name)
            if (mv.tags or {}).get(TAG_DRY_RUN) != "true"]
    return max((e for e in ends if e is not None), default=None)


def promote(
    client: MlflowClient,
    spec: ModelSpec,
    *,
    version: str,
    expected_champion: str | None,
    decision: dict[str, Any],
    actor: str,
    reason: str,
    force: bool = False,
) -> PromotionResult:
    """Move ``champion`` to ``version`` if the decision says so, with compare-and-set.

    A retry of a promotion that already completed (same version, same expected champion) returns
    the recorded result instead of failing, so an orchestrator's task retry is safe.

    Args:
        client: MLflow client bound to the registry.
        spec: the model spec; ``spec.promotion.allow_stale`` lets older-data candidates through.
        version: the candidate version.
        expected_champion: the champion version the candidate was evaluated against (None = the
            evaluation assumed there is no champion).
        decision: the evaluation's decision record; only ``decision["promote"]`` truthy moves
            the champion; ``summary``/``reasons`` are quoted when it does not.
        actor: who or what moves it (a user, ``airflow:<dag_id>/<run_id>``).
        reason: why, recorded in history and on the version.
        force: promote even when the candidate's data is older than the champion's (kind
            ``forced_promotion``); needs a non-empty ``reason``.

    Returns:
        :class:`PromotionResult`; ``promoted`` is False when the decision said no.

    Raises:
        NoSuchVersion: ``version`` is not a READY version of the model.
        ChampionChanged: the champion is not ``expected_champion`` (or another move holds the
            lock); the champion is left as found.
        StaleCandidate: the candidate's ``driftline.data_interval_end`` is before the
            champion's, and neither ``force`` nor ``allow_stale``.
        RegistryError: ``force`` without a reason, or the alias was overwritten outside driftline.
    """
    name = spec.registry_name
    version = str(version)
    expected = None if expected_champion is None else str(expected_champion)
    candidate = _version(client, name, version)
    champion = get_champion(client, spec)
    current = champion.version if champion else None

    if not decision.get("promote"):
        why = decision.get("summary") or "; ".join(map(str, decision.get("reasons") or [])) or "no reason given"
        return PromotionResult(
            promoted=False,
            champion_before=current,
            champion_after=current,
            version=version,
            message=f"{name} v{version} not promoted: the decision says no ({why}); champion stays {_v(current)}",
        )
    if force and not reason.strip():
        raise RegistryError(f"forced promotion of {name} v{version} needs a reason (who decided, and why)")

    if current == version:
        return _already_champion(client, spec, version, expected)
    if current != expected:
        raise ChampionChanged(_changed_message(name, expected, current))

    stale = _stale_detail(candidate, champion)
    kind = "promotion"
    if stale:
        if force:
            kind = "forced_promotion"
        elif not spec.promotion.allow_stale:
            raise StaleCandidate(
                f"{name} v{version} is stale: {stale}; a backfill must not roll the registry back. "
                f"Promote with force and a reason, or set promotion.allow_stale in the spec"
            )
    elif force or decision.get("forced"):
        kind = "forced_promotion"

    entry = _move_champion(
        client, name, expected=expected, target=candidate, kind=kind, actor=actor, reason=reason,
        lease_seconds=spec.promotion.lock_lease_seconds,
    )
    _settle_challenger(client, name)
    return PromotionResult(
        promoted=True,
        champion_before=expected,
        champion_after=version,
        version=version,
        message=f"{name}: champion is now v{version} (was {_v(expected)}; {kind}, generation {entry['generation']})",
        history_entry=entry,
    )


def rollback(
    client: MlflowClient, spec: ModelSpec, *, to_version: str | None = None, reason: str, actor: str
) -> PromotionResult:
    """Move ``champion`` back, recorded as a ``rollback`` history entry, with compare-and-set.

    The default target is the champion that preceded the current one. History is read as a
    stack: promotions push, rollbacks pop, so repeated rollbacks walk further back instead of
    bouncing between the last two versions.

    Args:
        client: MLflow client bound to the registry.
        spec: the model spec.
        to_version: an explicit target version (any READY version but the current champion).
        reason: why, recorded in history and on the version.
        actor: who rolls back.

    Returns:
        :class:`PromotionResult` with ``promoted`` True and the rollback's history entry.

    Raises:
        NothingToRollBackTo: no champion, or no earlier champion in history and no ``to_version``,
            or ``to_version`` is already the champion.
        NoSuchVersion: ``to_version`` is not a READY version of the model.
        ChampionChanged: the champion moved while the rollback ran, or another move holds the lock.
    """
    name = spec.registry_name
    champion = get_champion(client, spec)
    if champion is None:
        raise NothingToRollBackTo(f"{name} has no champion, so there is nothing to roll back")
    current = champion.version
    if to_version is None:
        lineage = _lineage(history(client, spec))
        if len(lineage) < 2 or lineage[-1] != current:
            raise NothingToRollBackTo(
                f"{name}: champion v{current} has no earlier champion in the alias history "
                f"({len(lineage)} champion(s) on record); name a version explicitly to roll back to"
            )
        target_version = lineage[-2]
    else:
        target_version = str(to_version)
        if target_version == current:
            raise NothingToRollBackTo(f"{name}: v{target_version} is already the champion")
    target = _version(client, name, target_version)
    entry = _move_champion(
        client, name, expected=current, target=target, kind="rollback", actor=actor, reason=reason,
        lease_seconds=spec.promotion.lock_lease_seconds,
    )
    _settle_challenger(client, name)
    return PromotionResult(
        promoted=True,
        champion_before=current,
        champion_after=target_version,
        version=target_version,
        message=f"{name}: champion rolled back from v{current} to v{target_version} (generation {entry['generation']})",
        history_entry=entry,
    )


def history(client: MlflowClient, spec: ModelSpec) -> list[dict[str, Any]]:
    """Every recorded champion move of the model, oldest first ([] when none or unregistered)."""
    model = _registered_model(client, spec.registry_name)
    return [] if model is None else _history_from_tags(model.tags)


def status(client: MlflowClient, spec: ModelSpec) -> dict[str, Any]:
    """A JSON-ready picture of the model in the registry.

    Returns:
        ``{"model", "registered", "description", "champion", "challenger", "generation",
        "pending_lock", "versions", "history"}``: champion/challenger are
        :class:`ModelVersionInfo` dicts or None; ``versions`` newest first, each with
        ``version``, ``aliases``, ``status``, ``created_at``, ``run_id`` and the driftline tags
        it carries; ``pending_lock`` describes a move in flight (or a stale lock) or is None.
    """
    name = spec.registry_name
    model = _registered_model(client, name)
    if model is None:
        return {
            "model": name, "registered": False, "description": spec.description, "champion": None,
            "challenger": None, "generation": 0, "pending_lock": None, "versions": [], "history": [],
        }
    champion = get_champion(client, spec)
    challenger = get_challenger(client, spec)
    generation = _generation(model.tags)
    lock = _registered_model(client, _lock_name(name, generation + 1))
    versions = sorted(_all_versions(client, name), key=lambda mv: int(mv.version), reverse=True)
    aliases_of: dict[str, list[str]] = {}
    for alias, v in sorted((model.aliases or {}).items()):
        aliases_of.setdefault(str(v), []).append(alias)
    return {
        "model": name,
        "registered": True,
        "description": model.description or "",
        "champion": champion.to_dict() if champion else None,
        "challenger": challenger.to_dict() if challenger else None,
        "generation": generation,
        "pending_lock": None if lock is None else {"name": lock.name, **_lock_tags(lock.tags)},
        "versions": [
            {
                "version": str(mv.version),
                "aliases": aliases_of.get(str(mv.version), []),
                "status": mv.status,
                "created_at": _iso_ms(mv.creation_timestamp),
                "run_id": mv.run_id or "",
                "tags": {k: mv.tags[k] for k in _KEY_TAGS if k in (mv.tags or {})},
            }
            for mv in versions
        ],
        "history": _history_from_tags(model.tags),
    }


def format_status(status: dict[str, Any]) -> str:
    """A readable text block of :func:`status` output (for ``python -m pipeline status``)."""
    name = status["model"]
    if not status["registered"]:
        return f"{name}: not registered yet (no candidate has been registered; run a retrain first)"
    lines = [f"model {name}" + (f" -- {status['description']}" if status["description"] else "")]
    for label in (CHAMPION, CHALLENGER):
        mv = status[label]
        if mv is None:
            lines.append(f"  {label:<10}  none")
            continue
        tags = mv["tags"]
        lines.append(
            f"  {label:<10}  v{mv['version']}  data to {tags.get(TAG_DATA_END, '?')}  "
            f"run {mv['run_id'] or '?'}  {mv['uri']}"
        )
        if label == CHAMPION and TAG_PROMOTED_AT in tags:
            lines.append(
                f"              promoted {tags[TAG_PROMOTED_AT]} by {tags.get(TAG_PROMOTED_BY, '?')}: "
                f"{tags.get(TAG_PROMOTION_REASON, '')}"
            )
    if status["pending_lock"]:
        lock = status["pending_lock"]
        lines.append(
            f"  LOCK HELD   {lock['name']}: {lock.get('kind', '?')} to v{lock.get('to_version', '?')} by "
            f"{lock.get('actor', '?')} since {lock.get('at', '?')} (delete that registered model if "
            f"no promotion is running)"
        )
    lines.append(f"  versions ({len(status['versions'])}):")
    for mv in status["versions"]:
        aliases = ",".join(mv["aliases"]) or "-"
        lines.append(
            f"    v{mv['version']:<4} {aliases:<20} {mv['status']:<8} created {mv['created_at']}  "
            f"data to {mv['tags'].get(TAG_DATA_END, '?')}"
        )
    lines.append(f"  champion history ({len(status['history'])} move(s)):")
    for e in status["history"]:
        lines.append(
            f"    g{e['generation']:04d} {e['at']}  {e['kind']:<16} {_v(e['from_version'])} -> "
            f"v{e['to_version']}  by {e['actor']}: {e['reason']}"
        )
    return "\n".join(lines)


def _move_champion(
    client: MlflowClient,
    name: str,
    *,
    expected: str | None,
    target: ModelVersionInfo,
    kind: str,
    actor: str,
    reason: str,
    lease_seconds: float,
) -> dict[str, Any]:
    """Compare-and-set ``champion`` from ``expected`` to ``target`` under the generation lock.

    Returns the history entry written. Raises ChampionChanged when the claim is lost or the
    state moved since it was read; RegistryError when the alias does not read back.
    """
    recover(client, name, actor=actor)
    model = _registered_model(client, name)
    if model is None:
        raise NoSuchVersion(f"registered model {name!r} does not exist")
    generation = _generation(model.tags) + 1
    at = _now()
    entry: dict[str, Any] = {
        "generation": generation,
        "from_version": expected,
        "to_version": target.version,
        "kind": kind,
        "actor": actor,
        "reason": reason,
        "at": at,
        "run_id": target.run_id,
    }
    lock = _lock_name(name, generation)
    lease = {"owner": uuid.uuid4().hex, "lease_until": _later(lease_seconds)}
    try:
        client.create_registered_model(
            lock,
            tags={_LOCK_TAG_PREFIX + k: "" if v is None else str(v) for k, v in {**entry, **lease}.items()},
            description=f"driftline lock: champion move g{generation:04d} of {name}; delete only if no move is running",
        )
    except MlflowException as err:
        # The store's IntegrityError handler re-reads the clashing model, so a holder that
        # released its lock meanwhile surfaces as "does not exist": the claim was lost either way.
        if err.error_code not in _ALREADY_EXISTS | _NOT_FOUND:
            raise
        holder = _registered_model(client, lock)
        if holder is None:
            raise ChampionChanged(_changed_message(name, expected, _champion_version(client, name))) from None
        h = _lock_tags(holder.tags)
        moving_from = _v(h["from_version"] or None) if "from_version" in h else "?"
        raise ChampionChanged(
            f"{name}: champion changed during evaluation: another move ({h.get('kind', '?')} "
            f"{moving_from} -> v{h.get('to_version', '?')} by {h.get('actor', '?')} "
            f"since {h.get('at', '?')}, lease until {h.get('lease_until', '?')}) holds lock {lock!r}, so expected "
            f"{_v(expected)} is being replaced; re-run the evaluation once it completes (a holder that died is "
            f"repaired automatically by the next move after its lease)"
        ) from None
    try:
        fresh = _registered_model(client, name)
        found = _champion_version(client, name)
        if fresh is None or _generation(fresh.tags) != generation - 1 or found != expected:
            raise ChampionChanged(_changed_message(name, expected, found))
        kill_point("alias_move")
        client.set_registered_model_alias(name, CHAMPION, target.version)
        after = _champion_version(client, name)
        if after != target.version:
            raise RegistryError(
                f"{name}: champion alias reads {_v(after)} right after being set to v{target.version}; "
                f"something outside driftline writes aliases (models:/{name}@{CHAMPION})"
            )
        kill_point("history_write")
        _complete(client, name, entry)
    except BaseException:
        # Nothing moved, or the move is now complete: either way the lock is ours to release. A
        # failure after the alias moved but before completion is left for recovery to finish.
        if _champion_version(client, name) == expected or _generation_of(client, name) >= generation:
            client.delete_registered_model(lock)
        raise
    client.delete_registered_model(lock)
    return entry


def _complete(client: MlflowClient, name: str, entry: dict[str, Any]) -> None:
    """Complete a move whose alias is set: history entry, version stamps, generation bump
    (idempotent: a roll-forward repeats it safely)."""
    generation = int(entry["generation"])
    client.set_registered_model_tag(name, f"{_HISTORY_PREFIX}{generation:04d}", json.dumps(entry, sort_keys=True))
    client.set_model_version_tag(name, entry["to_version"], TAG_PROMOTED_AT, entry["at"])
    client.set_model_version_tag(name, entry["to_version"], TAG_PROMOTED_BY, entry["actor"])
    client.set_model_version_tag(name, entry["to_version"], TAG_PROMOTION_REASON, f"{entry['kind']}: {entry['reason']}")
    # Bumped last and before the release: a claimer of this generation's lock after the release
    # sees the new counter on its re-read and aborts.
    client.set_registered_model_tag(name, TAG_GENERATION, str(generation))


def recover(client: MlflowClient, name: str, *, actor: str, now: datetime | None = None) -> dict[str, Any] | None:
    """Repair a champion move whose mover died (see the module docstring).

    Args:
        client: MLflow client bound to the registry.
        name: the registered model name.
        actor: who repairs (recorded).
        now: the current time (tests pass a later one to expire a lease).

    Returns:
        ``{"action": "rolled_forward" | "rolled_back" | "released_stale", "lock", "entry"}`` when
        something was repaired, else ``None``.

    Raises:
        ChampionChanged: the pending move's lease has not expired (it may still be running).
        RegistryError: the alias points neither at the move's source nor at its target.
    """
    model = _registered_model(client, name)
    if model is None:
        return None
    generation = _generation(model.tags)
    done = None
    for stale in range(max(1, generation - 2), generation + 1):
        # A mover killed after completing but before releasing leaves an old lock: just release.
        if _registered_model(client, _lock_name(name, stale)) is not None:
            client.delete_registered_model(_lock_name(name, stale))
            done = {"action": "released_stale", "lock": _lock_name(name, stale), "entry": None}
    lock_name = _lock_name(name, generation + 1)
    lock = _registered_model(client, lock_name)
    if lock is None:
        return done
    pending = _lock_tags(lock.tags)
    now = now or datetime.now(timezone.utc)
    lease_until = _parse_time(pending.get("lease_until"))
    if lease_until is not None and now < lease_until:
        raise ChampionChanged(
            f"{name}: a champion move is in progress ({pending.get('kind', '?')} "
            f"{_v(pending.get('from_version') or None)} -> v{pending.get('to_version', '?')} by "
            f"{pending.get('actor', '?')} since {pending.get('at', '?')}, lease until {pending.get('lease_until')}); "
            "retry once it completes")
    entry = {k: (pending.get(k) or None) for k in ("from_version", "to_version", "kind", "actor", "reason", "at",
                                                   "run_id")}
    entry["generation"] = generation + 1
    current = _champion_version(client, name)
    stamp = {"by": actor, "at": _now(), "lock": lock_name}
    if current == entry["to_version"]:
        entry["recovered"] = {**stamp, "action": "rolled forward: the alias had moved, the history is completed"}
        _complete(client, name, entry)
        action = "rolled_forward"
    elif current == entry["from_version"]:
        note = {**stamp, "action": "rolled back: the mover died before moving the alias; nothing changed",
                "pending": entry}
        client.set_registered_model_tag(name, f"{_RECOVERY_PREFIX}{generation + 1:04d}", json.dumps(note, sort_keys=True))
        action = "rolled_back"
    else:
        raise RegistryError(
            f"{name}: a dead move's lock {lock_name!r} ({_v(entry['from_version'])} -> v{entry['to_version']}) "
            f"found the champion at {_v(current)}, neither end of the move: something outside driftline moved "
            f"the alias; inspect the history and delete the lock by hand")
    client.delete_registered_model(lock_name)
    return {"action": action, "lock": lock_name, "entry": entry}


def _generation_of(client: MlflowClient, name: str) -> int:
    model = _registered_model(client, name)
    return 0 if model is None else _generation(model.tags)





def _champion_version(client: MlflowClient, name: str) -> str | None:
    mv = _alias_version(client, name, CHAMPION)
    return None if mv is None else str(mv.version)


def _already_champion(client: MlflowClient, spec: ModelSpec, version: str, expected: str | None) -> PromotionResult:
    """``version`` is champion already: a completed retry, a no-op, or someone else's move."""
    name = spec.registry_name
    entries = history(client, spec)
    last = entries[-1] if entries else None
    if last is not None and last["to_version"] == version and last["from_version"] == expected:
        return PromotionResult(
            promoted=True,
            champion_before=expected,
            champion_after=version,
            version=version,
            message=f"{name} v{version} is champion already (generation {last['generation']} recorded this move); nothing to do",
            history_entry=last,
        )
    if expected == version:
        return PromotionResult(
            promoted=False,
            champion_before=version,
            champion_after=version,
            version=version,
            message=f"{name} v{version} is champion already; nothing to do",
        )
    raise ChampionChanged(_changed_message(name, expected, version))


def _stale_detail(candidate: ModelVersionInfo, champion: ModelVersionInfo | None) -> str:
    """Why the candidate is older than the champion, or "" when it is not (or cannot be told)."""
    if champion is None:
        return ""
    cand_end, champ_end = _parse_time(candidate.data_interval_end), _parse_time(champion.data_interval_end)
    if cand_end is None or champ_end is None or cand_end >= champ_end:
        return ""
    return (
        f"its data ends {candidate.data_interval_end}, before champion v{champion.version}'s "
        f"{champion.data_interval_end} (by {champ_end - cand_end})"
    )


def _lineage(entries: list[dict[str, Any]]) -> list[str]:
    """Champion versions as a stack replayed from history (promotions push, rollbacks pop)."""
    stack: list[str] = []
    for e in entries:
        to = str(e["to_version"])
        if e["kind"] == "rollback" and to in stack:
            del stack[stack.index(to) + 1:]
            continue
        if not stack and e.get("from_version") is not None:
            stack.append(str(e["from_version"]))
        stack.append(to)
    return stack


def _changed_message(name: str, expected: str | None, found: str | None) -> str:
    return (
        f"{name}: champion changed during evaluation: expected {_v(expected)}, found {_v(found)}; "
        f"re-run the evaluation against the current champion"
    )


def _v(version: str | None) -> str:
    return "no champion" if version is None else f"v{version}"


def _by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersionInfo | None:
    mv = _alias_version(client, name, alias)
    return None if mv is None else _info(mv, alias)


def _alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    # Read through the registered model: a missing alias is INVALID_PARAMETER_VALUE in the
    # SQL store, which cannot be told apart from a genuinely bad request.
    model = _registered_model(client, name)
    version = None if model is None else (model.aliases or {}).get(alias)
    if version is None:
        return None
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return None
        raise


def _version(client: MlflowClient, name: str, version: str) -> ModelVersionInfo:
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as err:
        if err.error_code in _NOT_FOUND or err.error_code == "INVALID_PARAMETER_VALUE":
            raise NoSuchVersion(f"{name} has no version {version!r} ({err.message})") from None
        raise
    if mv.status != "READY":
        raise NoSuchVersion(f"{name} v{version} is {mv.status}, not READY; it cannot be champion")
    return _info(mv)


def _registered_model(client: MlflowClient, name: str) -> RegisteredModel | None:
    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return None
        raise


def _all_versions(client: MlflowClient, name: str) -> Iterator[ModelVersion]:
    token = None
    while True:
        page = client.search_model_versions(f"name = '{name}'", page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _info(mv: ModelVersion, alias: str | None = None) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id or "",
        source=mv.source or "",
        uri=f"models:/{mv.name}/{mv.version}",
        alias_uri=f"models:/{mv.name}@{alias}" if alias else None,
        aliases=sorted(mv.aliases or []),
        tags=dict(mv.tags or {}),
        created_at=_iso_ms(mv.creation_timestamp),
        status=str(mv.status),
    )


def _resolve_source(client: MlflowClient, model_uri: str) -> tuple[str, str | None]:
    """(source, model_id) for ``create_model_version``, the way ``mlflow.register_model`` does."""
    m = re.match(r"^models:/(m-[0-9a-f]+)/?$", model_uri)
    if m:
        return model_uri, m.group(1)
    m = re.match(r"^runs:/([^/]+)/(.+?)/?$", model_uri)
    if not m:
        return model_uri, None
    run_id, path = m.groups()
    run = client.get_run(run_id)
    found = [
        lm
        for lm in client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"name = '{path}'"
        )
        if lm.source_run_id == run_id
    ]
    if found:
        chosen = max(found, key=lambda lm: lm.creation_timestamp)
        return f"models:/{chosen.model_id}", chosen.model_id
    # MLflow 2 style: the model's files are run artifacts.
    return f"{run.info.artifact_uri.rstrip('/')}/{path}", None


def _generation(tags: dict[str, str]) -> int:
    return int(tags.get(TAG_GENERATION, "0") or 0)


def _lock_name(name: str, generation: int) -> str:
    return f"{name}.lock.g{generation:04d}"


def _lock_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k[len(_LOCK_TAG_PREFIX):]: v for k, v in tags.items() if k.startswith(_LOCK_TAG_PREFIX)}


def _history_from_tags(tags: dict[str, str]) -> list[dict[str, Any]]:
    keyed = [(int(m.group(1)), v) for k, v in tags.items() if (m := _HISTORY_KEY.match(k))]
    return [json.loads(v) for _, v in sorted(keyed)]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _iso_ms(millis: int | None) -> str:
    if millis is None:
        return ""
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _later(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat(timespec="seconds")
