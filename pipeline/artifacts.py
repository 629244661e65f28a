"""Where a run's artifacts live, and the records that cross task boundaries.

Contract: every path is keyed by model and data-interval date, so a retry or a re-run of the
same date overwrites instead of appending::

    <artifact_root>/<model>/runs/<YYYY-MM-DD>/   snapshot.parquet snapshot.json validation.json
        quarantine.parquet clean.parquet data_docs/ train.parquet valid.parquet test.parquet
        profile.json evaluation.json decision.json
    <artifact_root>/<model>/monitor/<YYYY-MM-DD>/ snapshot.parquet validation.json drift.json
        decision.json report.html

Records are frozen dataclasses with ``to_dict``/``from_dict`` so only small JSON crosses XCom.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from typing import Any

from pipeline.storage import join


def day_key(day: date | datetime | str) -> str:
    """``YYYY-MM-DD`` for a date, datetime or ISO string."""
    if isinstance(day, str):
        return day[:10]
    return f"{day:%Y-%m-%d}"


def run_prefix(artifact_root: str, model: str, day: date | datetime | str) -> str:
    return join(artifact_root, model, "runs", day_key(day))


def monitor_prefix(artifact_root: str, model: str, day: date | datetime | str) -> str:
    return join(artifact_root, model, "monitor", day_key(day))


class Record:
    """Mixin: JSON round-trip for frozen dataclasses (unknown keys ignored on read)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):  # type: ignore[no-untyped-def]
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


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
