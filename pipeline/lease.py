"""Runs of one model and date are serialised by a lease, in Airflow and in the CLI alike.

Contract: :func:`acquire` writes ``<date prefix>/lease.json`` = ``{"run_id", "since", "until"}``
with an atomic create-if-absent (``O_EXCL`` locally, ``If-None-Match: *`` on S3). The holder
renews it at every step (:func:`renew`) and releases it when its record is complete
(:func:`release`). A second run of the same model and date finds the lease and raises
:class:`LeaseHeld` -- a retryable error naming the holder and since when, so an orchestrator
retries it later (it waits) and a person sees who holds the date. A holder that died stops
renewing; once ``until`` has passed the next run takes the lease over, and says so.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from pipeline.errors import RetryableError
from pipeline.storage import ObjectNotFound, Store, join

log = logging.getLogger(__name__)

LEASE = "lease.json"
#: How long a run holds its date without renewing (every step renews it), unless the spec says.
TERM = timedelta(minutes=45)


class LeaseHeld(RetryableError):
    """Another run of the same model and date is in progress."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _body(run_id: str, since: str | None = None, now: datetime | None = None, term: timedelta = TERM) -> bytes:
    now = now or _now()
    return json.dumps({"run_id": run_id, "since": since or now.isoformat(timespec="seconds"),
                       "until": (now + term).isoformat(timespec="seconds")}).encode()


def read(store: Store, prefix_of_date: str) -> dict[str, Any] | None:
    try:
        return store.read_json(join(prefix_of_date, LEASE))
    except ObjectNotFound:
        return None


def acquire(store: Store, prefix_of_date: str, run_id: str, *, what: str, now: datetime | None = None,
            term: timedelta = TERM) -> dict:
    """Take the date for ``run_id`` (idempotent for the holder itself).

    Raises:
        LeaseHeld: another live run holds it (the message names the run, since when and until).
    """
    uri = join(prefix_of_date, LEASE)
    now = now or _now()
    if store.create_exclusive(uri, _body(run_id, now=now, term=term)):
        return json.loads(_body(run_id, now=now, term=term))
    holder = read(store, prefix_of_date) or {}
    if holder.get("run_id") == run_id:
        return renew(store, prefix_of_date, run_id, now=now, term=term)
    until = _parse(holder.get("until"))
    if until is not None and until > now:
        raise LeaseHeld(f"{what}: run {holder.get('run_id')} has held this date since {holder.get('since')} (lease "
                        f"until {holder.get('until')}); runs of one model and date go one at a time, so this one "
                        f"waits for it to finish (retry later), or, if that run died, for the lease to lapse")
    log.warning("%s: taking over the lease of run %s, which lapsed at %s (that run died)", what,
                holder.get("run_id"), holder.get("until"))
    store.write_bytes(uri, _body(run_id, now=now, term=term))
    taken = read(store, prefix_of_date) or {}
    if taken.get("run_id") != run_id:  # another run took it over in the same instant
        raise LeaseHeld(f"{what}: run {taken.get('run_id')} took over this date's lapsed lease first; retry later")
    return {**taken, "took_over_from": holder.get("run_id")}


def renew(store: Store, prefix_of_date: str, run_id: str, *, now: datetime | None = None,
          term: timedelta = TERM) -> dict:
    """Extend the holder's lease (a step of the run is alive)."""
    holder = read(store, prefix_of_date) or {}
    if holder.get("run_id") not in (None, run_id):
        raise LeaseHeld(f"{prefix_of_date}: the lease passed to run {holder.get('run_id')} (since "
                        f"{holder.get('since')}) while run {run_id} was between steps; this run stops")
    store.write_bytes(join(prefix_of_date, LEASE), _body(run_id, since=holder.get("since"), now=now, term=term))
    return read(store, prefix_of_date) or {}


def release(store: Store, prefix_of_date: str, run_id: str) -> None:
    """Give the date back (only the holder's own lease is removed)."""
    holder = read(store, prefix_of_date)
    if holder and holder.get("run_id") == run_id:
        store.delete(join(prefix_of_date, LEASE))


def lapsed(holder: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether a lease record's term has passed (its holder stopped renewing it)."""
    until = _parse(holder.get("until"))
    return until is None or until <= (now or _now())


def _parse(value: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
