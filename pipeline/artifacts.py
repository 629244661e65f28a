"""Where a run's artifacts live, and the records that cross task boundaries.

Contract: every run writes under its own immutable prefix, keyed by model, data-interval date and
run id; a re-run of a date adds a run and never overwrites or deletes an earlier one::

    <artifact_root>/<model>/runs/<YYYY-MM-DD>/<run id>/   snapshot.parquet snapshot.json
        validation.json quarantine.parquet clean.parquet data_docs/ train.parquet valid.parquet
        test.parquet recent.parquet reference.parquet profile.json evaluation.json steps/
        decision.json
    <artifact_root>/<model>/runs/<YYYY-MM-DD>/latest.json     -> the last completed run of the date
    <artifact_root>/<model>/runs/<YYYY-MM-DD>/lease.json      -> the run holding the date, until when
    <artifact_root>/<model>/monitor/<YYYY-MM-DD>/<run id>/   current/ labelled/ drift.json
        decision.json report.html dashboard.html   (and latest.json, lease.json beside them)

Run ids sort by time: ``<UTC time to the millisecond>Z-<6 hex>`` (:func:`new_run_id`; Airflow
runs derive theirs from the DAG run, so every task and retry of one run shares it). The
``latest`` pointer is replaced atomically, and only once the run's decision record is complete
(:func:`publish_latest`). Records written before run ids existed (``<date>/decision.json``) are
still read.

Records are frozen dataclasses with ``to_dict``/``from_dict`` so only small JSON crosses XCom.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timezone
from typing import Any

from pipeline.storage import ObjectNotFound, Store, join

LATEST = "latest.json"
KINDS = ("runs", "monitor")
_RUN_ID = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{6}$")


def day_key(day: date | datetime | str) -> str:
    """``YYYY-MM-DD`` for a date, datetime or ISO string."""
    if isinstance(day, str):
        return day[:10]
    return f"{day:%Y-%m-%d}"


def new_run_id(at: datetime | None = None, *, salt: str | None = None) -> str:
    """``<UTC time to the millisecond>Z-<6 hex>``: sortable, and unique -- the suffix is random,
    or a hash of ``salt`` (an orchestrator's run identity) so every task of a run derives the same."""
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    suffix = hashlib.sha256(salt.encode()).hexdigest()[:6] if salt is not None else secrets.token_hex(3)
    return f"{at:%Y%m%dT%H%M%S}{at.microsecond // 1000:03d}Z-{suffix}"


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.match(text))


def date_prefix(artifact_root: str, model: str, day: date | datetime | str, kind: str = "runs") -> str:
    """``<root>/<model>/<runs|monitor>/<date>``: every run of that date lives below it."""
    return join(artifact_root, model, kind, day_key(day))


def run_prefix(artifact_root: str, model: str, day: date | datetime | str, run_id: str) -> str:
    return join(date_prefix(artifact_root, model, day, "runs"), run_id)


def monitor_prefix(artifact_root: str, model: str, day: date | datetime | str, run_id: str) -> str:
    return join(date_prefix(artifact_root, model, day, "monitor"), run_id)


def publish_latest(store: Store, prefix_of_date: str, *, run_id: str, decision_uri: str, status: str,
                   at: str | None = None) -> str:
    """Point ``<date>/latest.json`` at a run whose decision record is complete (one atomic write)."""
    return store.write_json(join(prefix_of_date, LATEST), {
        "run_id": run_id, "decision_uri": decision_uri, "status": status,
        "at": at or datetime.now(timezone.utc).isoformat(timespec="seconds")})


def latest_decision_uri(store: Store, prefix_of_date: str) -> str | None:
    """The decision record of a date's latest completed run (or the pre-run-id record), or None."""
    try:
        return str(store.read_json(join(prefix_of_date, LATEST))["decision_uri"])
    except ObjectNotFound:
        legacy = join(prefix_of_date, "decision.json")
        return legacy if store.exists(legacy) else None


def list_runs(store: Store, prefix_of_date: str) -> list[dict[str, Any]]:
    """Every run of a date, oldest first: ``{"run_id", "prefix", "decision_uri" (or None), "status"}``."""
    runs: dict[str, dict[str, Any]] = {}
    for uri in store.list(prefix_of_date):
        rest = uri[len(prefix_of_date):].strip("/").split("/")
        if len(rest) >= 2 and is_run_id(rest[0]):
            entry = runs.setdefault(rest[0], {"run_id": rest[0], "prefix": join(prefix_of_date, rest[0]),
                                              "decision_uri": None, "status": "incomplete"})
            if rest[1:] == ["decision.json"]:
                entry["decision_uri"] = uri
    for entry in runs.values():
        if entry["decision_uri"]:
            try:
                entry["status"] = store.read_json(entry["decision_uri"]).get("status", "?")
            except ObjectNotFound:
                pass
    return [runs[k] for k in sorted(runs)]


class Record:
    """Mixin: JSON round-trip for frozen dataclasses (unknown keys ignored on read)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):  # type: ignore[no-untyped-def]
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def coerce(cls, value: Any):  # type: ignore[no-untyped-def]
        """``value`` as this record: itself, or rebuilt from the dict it crossed XCom as."""
        return value if isinstance(value, cls) else cls.from_dict(value)


@dataclass(frozen=True)
class Snapshot(Record):
    """One ingested window, written once per (model, date).

    Attributes:
        uri: the snapshot parquet.
        metadata_uri: ``snapshot.json`` beside it (this record).
        rows: row count.
        schema: column name -> dtype string.
        content_hash: 16 hex digits, the sum mod 2**64 of per-row hashes of the content:
            independent of row order, chunking and source format, computed while streaming.
        source: human description of where the rows came from.
        window_start, window_end: ISO datetimes, ``[start, end)``.
        missing_days: ``YYYY-MM-DD`` days inside the window with no rows.
        timestamp_issues: counts of rows with a null, unparseable (with a sample), future or
            before-the-window timestamp (the first three are in the snapshot, for validation to
            quarantine; the last are left out).
        ignored_files: files in the window's partitions that are not of the source's format.
    """

    uri: str
    metadata_uri: str
    rows: int
    schema: dict[str, str]
    content_hash: str
    source: str
    window_start: str
    window_end: str
    missing_days: list[str] = field(default_factory=list)
    timestamp_issues: dict[str, Any] = field(default_factory=dict)
    ignored_files: list[str] = field(default_factory=list)


def prune_runs(store: Store, artifact_root: str, model: str, *, older_than_days: int, keep: set[str],
               today: date | None = None) -> list[str]:
    """Delete failed and abandoned runs older than ``older_than_days``; returns their prefixes.

    Never deleted: a run whose prefix is in ``keep`` (the runs registered versions point at, so
    never a champion's), a date's latest run, a run without a complete record, or a monitor run.
    """
    today = today or datetime.now(timezone.utc).date()
    deleted = []
    runs_root = join(artifact_root, model, "runs")
    days = sorted({uri[len(runs_root):].strip("/").split("/")[0] for uri in store.list(runs_root)})
    for day in days:
        try:
            age = (today - date.fromisoformat(day)).days
        except ValueError:
            continue
        if age <= older_than_days:
            continue
        prefix_of_date = join(runs_root, day)
        latest = latest_decision_uri(store, prefix_of_date)
        for run in list_runs(store, prefix_of_date):
            if (run["status"] in ("failed", "abandoned") and run["prefix"] not in keep
                    and run["decision_uri"] != latest):
                store.delete(run["prefix"])
                deleted.append(run["prefix"])
    return deleted
