"""Ingest: read one time window of a model's source into one snapshot.

Contract:
* ``ingest(spec, data_interval_end, store, out_prefix)`` reads the rows whose timestamp lies in
  ``[data_interval_end - days, data_interval_end)`` -- never a row at or after the end -- and
  writes ``<out_prefix>/snapshot.parquet`` plus ``<out_prefix>/snapshot.json`` (the
  :class:`~pipeline.artifacts.Snapshot` record). Re-running the same window overwrites both and
  yields the same ``content_hash``.
* Sources (``spec.source``): a hive lake ``<uri>/ds=YYYY-MM-DD/*.<format>`` on a local path or
  ``s3://`` (only partitions whose day overlaps the window are listed and opened, object by
  object; names starting with ``.`` or ``_`` and other suffixes are ignored; a row filed under
  a partition outside the window is not seen), or a Postgres table/query read through ADBC
  with the window bound as parameters of a server-side cursor.
* Memory is bounded by ``spec.source.chunk_rows`` (rows are buffered into chunks of that size,
  at most two chunks are in flight) plus a few lake files or one Postgres ``FETCH`` of
  ``chunk_rows`` rows -- not by the window: chunks stream into a local parquet file (one row
  group each) that is copied to the store at the end.
* ``Snapshot.schema`` holds the pandas dtypes of the snapshot's columns as pandas reads them
  when there are no nulls (an integer column with nulls reads as float64).
* The snapshot's schema is the same whatever the files looked like: the timestamp is
  ``timestamp[us, UTC]``, numeric features ``float64``, a binary target ``int64``, a regression
  target ``float64``, categorical features ``string``; other columns keep the type of the first
  file that has them (later files are cast to it safely, else :class:`SchemaMismatch`; a column
  first seen in a later file is dropped with a warning). Columns are ordered as
  ``spec.required_columns``, then the others sorted.
* Nothing is dropped silently. Rows whose timestamp is null or unparseable (kept with a null
  timestamp) or in the future of the window's end are kept in the snapshot, so validation
  quarantines them with a reason; rows stamped before the window start (found in a window
  partition) are left out. Each kind is counted in ``Snapshot.timestamp_issues`` (with a sample
  of the unparseable values), and files of another format in a window partition are listed in
  ``Snapshot.ignored_files``.
* ``content_hash`` is the sum modulo 2**64 of ``pandas.util.hash_pandas_object(frame,
  index=False)`` over all rows (hex; integer columns hashed as pandas ``Int64``, which for a
  column without nulls equals plain ``int64``), so it does not depend on file order, batch
  sizes or row order.
* Days of the window without rows are reported in ``missing_days`` and logged, not raised.
  A window whose last day has no rows while the source has nothing on or after that day is
  :class:`NoDataYet` (the run's date has not landed: runs skip); a window with no row at all
  otherwise is :class:`EmptyWindow` (a gap: runs fail).

Raises (all :class:`IngestError`): :class:`SourceUnreachable`, :class:`EmptyWindow`,
:class:`NoDataYet`, :class:`MissingColumns`, :class:`UnreadableFile`, :class:`SchemaMismatch`.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.artifacts import Snapshot
from pipeline.config import ModelSpec
from pipeline.errors import DriftlineError
from pipeline.faults import kill_point
from pipeline.redact import redact
from pipeline.storage import Store, is_s3, join, split_s3

log = logging.getLogger(__name__)

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
_HIDDEN_PREFIXES = (".", "_")
_S3_PARALLEL_GETS = 4


class IngestError(DriftlineError):
    """The window could not be turned into a snapshot."""


class SourceUnreachable(IngestError):
    """The lake root, bucket, endpoint, database or table cannot be reached (retryable: a
    restarting database or a network blip passes)."""

    retryable = True


class EmptyWindow(IngestError):
    """The source has no rows in the window."""


class NoDataYet(EmptyWindow):
    """The window lies after the source's newest data: its days have not landed yet (a scheduled
    run or an unpaused DAG ahead of the data). Not a failure: the orchestrator skips the run."""

    skips_run = True


class MissingColumns(IngestError):
    """A file or table lacks columns the spec requires."""


class UnreadableFile(IngestError):
    """A lake file is not valid parquet/CSV."""


class SchemaMismatch(IngestError):
    """A column's values cannot be converted to the snapshot's type for that column."""


def ingest(spec: ModelSpec, data_interval_end: datetime, store: Store, out_prefix: str, *,
           days: int | None = None, s3_client: Any = None, pg_uri: str | None = None) -> Snapshot:
    """Read ``[data_interval_end - days, data_interval_end)`` from ``spec.source`` into a snapshot.

    Args:
        spec: the model spec (source, timestamp column, required columns, chunk size).
        data_interval_end: exclusive end of the window; naive datetimes are taken as UTC.
        store: where ``out_prefix`` lives (local or S3).
        out_prefix: the run prefix; ``snapshot.parquet`` and ``snapshot.json`` are written there.
        days: window length in days (default ``spec.windows.total_days``).
        s3_client: boto3 S3 client for an ``s3://`` lake (built by the caller from its connection).
        pg_uri: PostgreSQL URI for a ``postgres`` source.

    Returns:
        The :class:`Snapshot` record (also written as ``<out_prefix>/snapshot.json``).

    Raises:
        SourceUnreachable: the lake root/bucket/endpoint or database/table cannot be reached, or
            no client/URI was given for the source.
        NoDataYet: the window's last day has no rows and the source's newest day is before it.
        EmptyWindow: no row of the source falls in the window, though the source has data there
            or later (a gap), or the source is empty.
        MissingColumns: a file or the table lacks some of ``spec.required_columns``.
        UnreadableFile: a lake file is corrupt or not of the spec's format.
        SchemaMismatch: a column cannot be converted to the snapshot's type.
    """
    end = _as_utc(data_interval_end)
    n_days = spec.windows.total_days if days is None else days
    if n_days <= 0:
        raise ValueError(f"days must be positive, got {n_days}")
    start = end - timedelta(days=n_days)
    source = _describe_source(spec, pg_uri)
    window = f"[{start.isoformat()}, {end.isoformat()})"

    ignored: list[str] = []
    if spec.source.kind == "lake":
        parts = _lake_parts(spec, start, end, s3_client, ignored)
    else:
        if not pg_uri:
            raise SourceUnreachable(f"{source}: no PostgreSQL URI given (pass pg_uri or configure "
                                    f"connection {spec.source.conn_id or 'postgres_default'!r})")
        parts = _postgres_parts(spec, start, end, pg_uri)

    writer = _SnapshotWriter(spec, start, end, handoff=store.handoff)
    try:
        with closing(_prefetched(parts)) as tables:
            for where, table in tables:
                writer.add(where, table)
        writer.close()
        last_day = (end - timedelta(microseconds=1)).date()
        if last_day not in writer.days_seen:
            _raise_if_no_data_yet(spec, source, window, last_day, s3_client, pg_uri)
        if writer.rows == 0:
            raise EmptyWindow(f"{source}: no rows with {spec.timestamp_column} in {window} "
                              f"({writer.units_read} file(s)/batch(es) read); check the data interval "
                              f"and that the source has been loaded for these days")
        snapshot_uri = join(out_prefix, "snapshot.parquet")
        store.write_file(snapshot_uri, writer.path)
        if writer.kept_tables and store.handoff is not None:
            store.handoff.keep(snapshot_uri, pa.concat_tables(writer.kept_tables))
    finally:
        writer.discard()

    missing = [d.isoformat() for d in _window_days(start, end) if d not in writer.days_seen]
    if missing:
        log.warning("%s: %d day(s) of %s have no rows: %s", source, len(missing), window, ", ".join(missing))
    if ignored:
        log.warning("%s: %d file(s) in the window's partitions are not %s and were not read: %s", source,
                    len(ignored), spec.source.format, ", ".join(ignored[:5]))
    issues = writer.timestamp_issues()
    if any(v for k, v in issues.items() if k != "unparseable_sample"):
        log.warning("%s: timestamp issues in %s: %s", source, window, issues)
    snapshot = Snapshot(
        uri=snapshot_uri,
        metadata_uri=join(out_prefix, "snapshot.json"),
        rows=writer.rows,
        schema=writer.dtypes,
        content_hash=f"{writer.hash_sum:016x}",
        source=source,
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        missing_days=missing,
        timestamp_issues=issues,
        ignored_files=ignored,
    )
    kill_point("snapshot_publish")
    store.write_json(snapshot.metadata_uri, snapshot.to_dict())
    log.info("%s: %d rows in %s -> %s", source, snapshot.rows, window, snapshot_uri)
    return snapshot


def _raise_if_no_data_yet(spec: ModelSpec, source: str, window: str, last_day: date, s3_client: Any,
                          pg_uri: str | None) -> None:
    """Raise :class:`NoDataYet` when the window's last day has no rows and the source has
    nothing on or after it (the day has not landed; a quiet day inside the history is only a
    missing day)."""
    newest = newest_day(spec, s3_client=s3_client, pg_uri=pg_uri)
    if newest is None or newest >= last_day:
        return
    newest_what = "partition" if spec.source.kind == "lake" else "row"
    raise NoDataYet(f"no data for {last_day} yet; the newest {newest_what} of {source} is {newest} (the run "
                    f"reads {window}). Nothing to do until that day's data lands; to run on the data there "
                    f"is, trigger with as_of_date {newest + timedelta(days=1)}")


def newest_day(spec: ModelSpec, *, s3_client: Any = None, pg_uri: str | None = None) -> date | None:
    """The newest day (UTC) the source holds data for: the latest ``ds=`` partition with a data
    file of the lake, or the day of the newest timestamp of the Postgres table/query; ``None``
    when the source is empty.

    Raises:
        SourceUnreachable: as :func:`ingest` does for the same source.
    """
    if spec.source.kind != "lake":
        return _postgres_newest_day(spec, pg_uri or "")
    uri = spec.source.uri or ""
    if is_s3(uri):
        bucket, root_key = split_s3(uri)
        prefix = f"{root_key.rstrip('/')}/" if root_key else ""
        try:
            pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
            names = [p["Prefix"][len(prefix):].rstrip("/") for page in pages for p in page.get("CommonPrefixes", [])]
        except Exception as err:
            raise SourceUnreachable(f"{spec.source.describe()}: cannot list s3://{bucket}/{prefix} ({err})") from None
    else:
        root = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
        names = [p.name for p in root.iterdir() if p.is_dir()
                 and any(_is_data_file(f.name, spec.source.format) for f in p.iterdir())] if root.is_dir() else []
    days = []
    for name in names:
        try:
            days.append(date.fromisoformat(name.removeprefix("ds=")))
        except ValueError:
            continue
    return max(days, default=None)


def _postgres_newest_day(spec: ModelSpec, pg_uri: str) -> date | None:
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as pgdbapi

    ts = _quote_ident(spec.timestamp_column)
    relation = (_quote_relation(spec.source.table) if spec.source.table
                else f"({spec.source.query.strip().rstrip(';')}) AS driftline_source")
    try:
        with pgdbapi.connect(pg_uri) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT max({ts}) FROM {relation}")
            (newest,) = cur.fetchone()
    except adbc_driver_manager.Error as err:
        raise SourceUnreachable(f"{_describe_source(spec, pg_uri)}: cannot read the newest {spec.timestamp_column} "
                                f"({_first_line(err)})") from None
    if newest is None:
        return None
    if isinstance(newest, datetime):
        return _as_utc(newest).date()
    return newest if isinstance(newest, date) else datetime.fromisoformat(str(newest)).date()


def _prefetched(parts: Iterator[tuple[str, pa.Table]], depth: int = 2) -> Iterator[tuple[str, pa.Table]]:
    """``parts`` read ahead in a thread, so reading the next file or batch (Arrow and ADBC release
    the GIL) overlaps with conforming, hashing and writing the current one. Memory grows by at
    most ``depth`` tables; exceptions are re-raised in the caller's thread."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in parts:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("done", None))
        except BaseException as err:  # handed to the consumer, which re-raises it
            q.put(("error", err))
        finally:
            close = getattr(parts, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="driftline-ingest-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = q.get()
            if kind == "item":
                yield payload
            elif kind == "error":
                raise payload
            else:
                return
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _next_midnight(value: datetime) -> datetime:
    """``value`` if it is midnight UTC, else the next midnight."""
    midnight = value.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == value else midnight + timedelta(days=1)


def _window_days(start: datetime, end: datetime) -> list[date]:
    """Calendar days (UTC) that overlap ``[start, end)``."""
    last = (end - timedelta(microseconds=1)).date()
    first = start.date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _describe_source(spec: ModelSpec, pg_uri: str | None) -> str:
    if spec.source.kind == "lake":
        return spec.source.describe()
    where = f" at {redact(pg_uri)}" if pg_uri else ""
    return f"{spec.source.describe()}{where}"


@dataclass
class _SnapshotWriter:
    """Normalises each incoming table to one schema, streams it to a local parquet file and
    keeps the running row count, content hash and days seen."""

    spec: ModelSpec
    start: datetime
    end: datetime
    path: str = ""
    rows: int = 0
    #: With a handoff, the written chunks are also kept (while they fit its budget) so the next
    #: step of the same process gets the snapshot without reading the file back.
    handoff: Any = None
    kept_tables: list[pa.Table] = field(default_factory=list)
    _kept_bytes: int = 0
    units_read: int = 0
    hash_sum: int = 0
    dtypes: dict[str, str] = field(default_factory=dict)
    days_seen: set[date] = field(default_factory=set)
    null_timestamps: int = 0
    unparseable: int = 0
    unparseable_sample: list[str] = field(default_factory=list)
    future: int = 0
    before_window: int = 0
    after_window: int = 0
    _schema: pa.Schema | None = None
    _writer: pq.ParquetWriter | None = None
    _pending: list[tuple[str, pa.Table]] = field(default_factory=list)
    _pending_rows: int = 0
    _write_pool: ThreadPoolExecutor | None = None
    _write_future: Future[None] | None = None

    def add(self, where: str, table: pa.Table) -> None:
        """Check one table's columns and buffer it; flush when a chunk is full."""
        self.units_read += 1
        present = set(table.column_names)
        missing = [c for c in self.spec.required_columns if c not in present]
        if missing:
            raise MissingColumns(
                f"{where}: missing required column(s) {missing} (the spec needs "
                f"{list(self.spec.required_columns)}; found {table.column_names})")
        if table.num_rows == 0:
            return
        self._pending.append((where, table))
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.spec.source.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Window, conform, hash and write the buffered tables as one row group.

        Small files are buffered up to ``chunk_rows`` because per-call costs of Arrow compute,
        pandas conversion and parquet row groups dominate at a few thousand rows per file; runs
        of files with the same schema are windowed and conformed as one table.
        """
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        parts = [self._window_and_conform(run) for run in _same_schema_runs(pending)]
        parts = [p for p in parts if p.num_rows]
        del pending  # the raw tables can go before the chunk is copied into one
        if not parts:
            return
        assert self._schema is not None
        table = pa.concat_tables(parts).combine_chunks()
        del parts
        if self._writer is None:
            fd, self.path = tempfile.mkstemp(prefix="driftline-snapshot-", suffix=".parquet")
            os.close(fd)
            # Dictionary-encode only strings: trying it on high-cardinality floats triples write time.
            strings = [f.name for f in self._schema if pa.types.is_string(f.type)]
            self._writer = pq.ParquetWriter(self.path, self._schema, use_dictionary=strings)
            self._write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-snapshot-write")
            self.dtypes = {c: str(t) for c, t in self._schema.empty_table().to_pandas().dtypes.items()}
        # Parquet encoding releases the GIL: the chunk is written while this thread hashes it.
        # Waiting for the previous write first keeps row groups in order and memory at two chunks.
        self._wait_for_write()
        assert self._write_pool is not None
        self._write_future = self._write_pool.submit(self._writer.write_table, table,
                                                     row_group_size=max(table.num_rows, 1))
        # Integers as nullable Int64: pandas would turn a chunk with a null into float64, whose
        # hashes differ from int64's, and the hash must not depend on how rows were chunked.
        if self.handoff is not None:
            self._keep(table)
        frame = table.to_pandas(types_mapper=_nullable_ints)
        self.hash_sum = (self.hash_sum + _hash_sum(frame, unique=(self.spec.id_column,))) % (1 << 64)
        day_values = pc.unique(pc.cast(table.column(self.spec.timestamp_column), pa.date32()))
        self.days_seen.update(d for d in day_values.to_pylist() if d is not None)
        self.rows += table.num_rows

    def _keep(self, table: pa.Table) -> None:
        if self.handoff.fits(self._kept_bytes + table.nbytes):
            self.kept_tables.append(table)
            self._kept_bytes += table.nbytes
            return
        # Over the budget: this run is too large to hand over; every step reads its files.
        self.kept_tables, self._kept_bytes = [], 0
        self.handoff.disable()
        self.handoff = None

    def timestamp_issues(self) -> dict[str, Any]:
        """Counts of rows with a null, unparseable, future or too-early timestamp (see the contract)."""
        return {"null": self.null_timestamps, "unparseable": self.unparseable,
                "unparseable_sample": self.unparseable_sample, "future": self.future,
                "before_window": self.before_window, "after_window": self.after_window}

    def _wait_for_write(self) -> None:
        if self._write_future is not None:
            future, self._write_future = self._write_future, None
            future.result()

    def _target_schema(self, table: pa.Table) -> pa.Schema:
        spec = self.spec
        fixed: dict[str, pa.DataType] = {spec.timestamp_column: TIMESTAMP_TYPE}
        fixed.update({c: pa.float64() for c in spec.numeric_features})
        fixed.update({c: pa.string() for c in spec.categorical_features})
        fixed[spec.target_column] = pa.int64() if spec.task == "binary" else pa.float64()
        order = list(spec.required_columns) + sorted(c for c in table.column_names if c not in spec.required_columns)
        fields = []
        for name in order:
            if name in fixed:
                fields.append(pa.field(name, fixed[name]))
            else:
                fields.append(pa.field(name, _canonical_type(table.schema.field(name).type)))
        return pa.schema(fields)

    def _window_and_conform(self, run: list[tuple[str, pa.Table]]) -> pa.Table:
        """Rows of a run of same-schema tables for the window, in the snapshot schema."""
        if len(run) == 1:
            return self._window_and_conform_one(*run[0])
        label = f"{run[0][0]} (and {len(run) - 1} more file(s) with the same columns)"
        try:
            return self._window_and_conform_one(label, pa.concat_tables([t for _, t in run]))
        except SchemaMismatch:
            for where, table in run:  # re-run file by file so the error names the file at fault
                self._window_and_conform_one(where, table)
            raise

    def _window_and_conform_one(self, where: str, table: pa.Table) -> pa.Table:
        name = self.spec.timestamp_column
        raw = table.column(name)
        ts = _to_timestamp(raw, where, name)
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            bad = pc.and_(pc.is_valid(raw), pc.is_null(ts))
            n_bad = pc.sum(bad).as_py() or 0
            if n_bad:
                self.unparseable += n_bad
                sample = pc.unique(raw.filter(bad)).to_pylist()[: 5 - len(self.unparseable_sample)]
                self.unparseable_sample.extend(repr(v) for v in sample)
        self.null_timestamps += raw.null_count
        before = pc.fill_null(pc.less(ts, pa.scalar(self.start, TIMESTAMP_TYPE)), False)
        # A window may end inside a day: the rest of that day's partition is simply outside it.
        # From the next midnight on, a row in a window partition claims to come from the future.
        horizon = _next_midnight(self.end)
        late = pc.fill_null(pc.and_(pc.greater_equal(ts, pa.scalar(self.end, TIMESTAMP_TYPE)),
                                    pc.less(ts, pa.scalar(horizon, TIMESTAMP_TYPE))), False)
        n_before = pc.sum(before).as_py() or 0
        n_late = pc.sum(late).as_py() or 0
        self.before_window += n_before
        self.after_window += n_late
        self.future += pc.sum(pc.fill_null(pc.greater_equal(ts, pa.scalar(horizon, TIMESTAMP_TYPE)), False)).as_py() or 0
        table = table.set_column(table.schema.get_field_index(name), name, ts)
        # Null (or unparseable) and future timestamps stay, for validation to quarantine and count.
        if n_before or n_late:  # else every row stays: no copy
            table = table.filter(pc.invert(pc.or_(before, late)))
        if table.num_rows == 0:
            return table
        if self._schema is None:
            self._schema = self._target_schema(table)
        return self._conform(table, where)

    def _conform(self, table: pa.Table, where: str) -> pa.Table:
        assert self._schema is not None
        extra = [c for c in table.column_names if c not in self._schema.names]
        if extra:
            log.warning("%s: column(s) %s are not in the snapshot schema (first seen later); dropped", where, extra)
        columns = []
        for fld in self._schema:
            if fld.name not in table.column_names:
                columns.append(pa.nulls(table.num_rows, fld.type))
                continue
            col = table.column(fld.name)
            if col.type == fld.type:
                columns.append(col)
                continue
            try:
                columns.append(_cast(col, fld.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise SchemaMismatch(f"{where}: column {fld.name!r} of type {col.type} cannot be converted "
                                     f"to the snapshot's {fld.type} ({err})") from None
        return pa.Table.from_arrays(columns, schema=self._schema)

    def close(self) -> None:
        """Flush the last chunk and finish the parquet file."""
        self.flush()
        self._wait_for_write()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._write_pool is not None:
            self._write_pool.shutdown()
            self._write_pool = None

    def discard(self) -> None:
        """Release everything and delete the local file (after a failure or once copied)."""
        self._pending = []
        self.kept_tables, self._kept_bytes = [], 0
        if self._write_future is not None:
            self._write_future.exception()
            self._write_future = None
        if self._write_pool is not None:
            self._write_pool.shutdown()
            self._write_pool = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.path:
            Path(self.path).unlink(missing_ok=True)


def _same_schema_runs(tables: list[tuple[str, pa.Table]]) -> Iterator[list[tuple[str, pa.Table]]]:
    """Consecutive tables grouped while their schemas match (metadata ignored)."""
    run: list[tuple[str, pa.Table]] = []
    for item in tables:
        if run and not item[1].schema.equals(run[-1][1].schema, check_metadata=False):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


#: Rows hashed per call when a chunk's content hash is summed (see :func:`_hash_sum`).
_HASH_ROWS = 1 << 16


def _hash_sum(frame: pd.DataFrame, unique: tuple[str | None, ...] = ()) -> int:
    """The sum modulo 2**64 of ``pandas.util.hash_pandas_object(frame, index=False)``.

    A row's hash depends on that row alone, so the frame is hashed a slice of
    :data:`_HASH_ROWS` rows at a time: the same sum, but each slice's arrays stay in the CPU
    cache. The columns in ``unique`` (an id column: one distinct value a row) are hashed value
    by value when they hold no missing value: ``hash_array(..., categorize=False)``, which
    gives each value the hash that the default (factorise, hash the distinct values, map back)
    gives it, without building a hash table of every id. Columns are combined as pandas
    combines them (``tests/unit/test_ingest_hash.py`` checks the result against
    ``hash_pandas_object`` itself)."""
    plain = [c for c in frame.columns if c in unique and not frame[c].hasnans
             and not isinstance(frame[c].dtype, pd.CategoricalDtype)]
    total = 0
    for start in range(0, len(frame), _HASH_ROWS):
        part = frame.iloc[start:start + _HASH_ROWS]
        if not plain:
            hashes = pd.util.hash_pandas_object(part, index=False).to_numpy()
        else:
            hashes = _combine_hashes([pd.util.hash_array(_hashable(part[c]), categorize=c not in plain)
                                      for c in part.columns], len(part))
        total += int(hashes.sum(dtype=np.uint64))
    return total % (1 << 64)


def _hashable(series: pd.Series) -> Any:
    """What ``hash_pandas_object`` hashes of a column: its extension array, or its ndarray."""
    values = series.array
    return values.to_numpy() if isinstance(values, pd.arrays.NumpyExtensionArray) else values


def _combine_hashes(arrays: list[np.ndarray], rows: int) -> np.ndarray:
    """Column hashes combined into row hashes as ``hash_pandas_object`` combines them (after
    CPython's tuple hash)."""
    out = np.full(rows, 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    for i, values in enumerate(arrays):
        inverse_i = len(arrays) - i
        out ^= values
        out *= mult
        mult += np.uint64(82520 + inverse_i + inverse_i)
    out += np.uint64(97531)
    return out


def _nullable_ints(t: pa.DataType) -> Any:
    return pd.Int64Dtype() if pa.types.is_integer(t) else None


def _canonical_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if isinstance(t, pa.OpaqueType) and t.type_name == "numeric":
        return pa.float64()  # ADBC hands Postgres numeric over as text
    if isinstance(t, pa.ExtensionType):
        return _canonical_type(t.storage_type)
    return t


def _cast(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Safe cast; Postgres ``numeric`` (an opaque extension over strings in ADBC) is parsed."""
    if isinstance(col.type, pa.ExtensionType):
        col = pa.chunked_array([c.storage for c in col.chunks], type=col.type.storage_type)
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(col.type):
        return col.cast(target, safe=False)
    return col.cast(target, safe=True)


def _to_timestamp(col: pa.ChunkedArray, where: str, name: str) -> pa.ChunkedArray:
    """The timestamp column as ``timestamp[us, UTC]``; naive values are taken as UTC."""
    t = col.type
    try:
        if pa.types.is_timestamp(t):
            # Sub-microsecond precision is dropped: the snapshot keeps microseconds.
            return col.cast(pa.timestamp(t.unit), safe=False).cast(TIMESTAMP_TYPE) if t.tz is None \
                else col.cast(TIMESTAMP_TYPE, safe=False)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            try:
                return col.cast(TIMESTAMP_TYPE)
            except pa.ArrowInvalid:
                pass
            try:
                return col.cast(pa.timestamp("us")).cast(TIMESTAMP_TYPE)
            except pa.ArrowInvalid:
                # Some values do not parse: parse value by value (vectorised), unparseable -> null,
                # so those rows are quarantined and counted instead of the whole file failing.
                parsed = pd.to_datetime(col.to_pandas(), errors="coerce", utc=True, format="ISO8601")
                return pa.chunked_array([pa.array(parsed, type=TIMESTAMP_TYPE)])
        if pa.types.is_date(t):
            return col.cast(pa.timestamp("us")).cast(TIMESTAMP_TYPE)
        if pa.types.is_null(t):
            return col.cast(TIMESTAMP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise SchemaMismatch(f"{where}: timestamp column {name!r} ({t}) is not parseable as UTC timestamps ({err})") from None
    raise SchemaMismatch(f"{where}: timestamp column {name!r} has type {t}; expected a timestamp, date or ISO string")


def _csv_read_options(spec: ModelSpec) -> tuple[pacsv.ReadOptions, pacsv.ConvertOptions]:
    # Spec columns get explicit types so every block of every file parses the same way; the
    # timestamp stays a string here because files may carry naive or offset timestamps.
    types: dict[str, pa.DataType] = {spec.timestamp_column: pa.string()}
    types.update({c: pa.float64() for c in spec.numeric_features})
    types.update({c: pa.string() for c in spec.categorical_features})
    types[spec.target_column] = pa.float64()
    if spec.id_column:
        types[spec.id_column] = pa.string()
    return (pacsv.ReadOptions(block_size=16 << 20),
            pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))


def _read_lake_file(spec: ModelSpec, where: str, source: Any) -> Iterator[pa.Table]:
    """Tables of one lake file, chunked by ``spec.source.chunk_rows`` for parquet."""
    try:
        if spec.source.format == "parquet":
            pf = pq.ParquetFile(source)
            for batch in pf.iter_batches(batch_size=spec.source.chunk_rows):
                yield pa.Table.from_batches([batch])
        else:
            read_opts, convert_opts = _csv_read_options(spec)
            reader = pacsv.open_csv(source, read_options=read_opts, convert_options=convert_opts)
            for batch in reader:
                yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as err:
        raise UnreadableFile(f"{where}: not a readable {spec.source.format} file ({err}); "
                             f"replace or remove it and re-run") from None


def _is_data_file(name: str, fmt: str) -> bool:
    return not name.startswith(_HIDDEN_PREFIXES) and name.endswith(f".{fmt}")


def _lake_parts(spec: ModelSpec, start: datetime, end: datetime, s3_client: Any,
                ignored: list[str]) -> Iterator[tuple[str, pa.Table]]:
    uri = spec.source.uri or ""
    days = _window_days(start, end)
    if is_s3(uri):
        if s3_client is None:
            raise SourceUnreachable(f"{spec.source.describe()}: an s3:// lake needs an S3 client "
                                    f"(connection {spec.source.conn_id or 'aws_default'!r})")
        return _s3_lake_parts(spec, uri, days, s3_client, ignored)
    root = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    if not root.is_dir():
        raise SourceUnreachable(f"{spec.source.describe()}: lake root {root} does not exist or is not a directory")
    return _local_lake_parts(spec, root, days, ignored)


def _local_lake_parts(spec: ModelSpec, root: Path, days: list[date], ignored: list[str]
                      ) -> Iterator[tuple[str, pa.Table]]:
    for day in days:
        part = root / f"ds={day:%Y-%m-%d}"
        if not part.is_dir():
            continue
        for path in sorted(part.iterdir()):
            if not path.is_file() or path.name.startswith(_HIDDEN_PREFIXES):
                continue
            if not _is_data_file(path.name, spec.source.format):
                ignored.append(str(path))
                continue
            for table in _read_lake_file(spec, str(path), str(path)):
                yield str(path), table


def _s3_lake_parts(spec: ModelSpec, uri: str, days: list[date], client: Any,
                   ignored: list[str]) -> Iterator[tuple[str, pa.Table]]:
    bucket, root_key = split_s3(uri)
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", "?")
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as err:
        raise SourceUnreachable(f"{spec.source.describe()}: bucket {bucket!r} at {endpoint} is not reachable "
                                f"({err}); check the endpoint, credentials and bucket name") from None

    def download(key: str) -> bytes:
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as err:
            raise SourceUnreachable(f"s3://{bucket}/{key}: cannot read at {endpoint} ({err})") from None

    # Objects are fetched a few at a time (S3 latency, not bandwidth, bounds one GET) but parsed
    # in key order, so memory stays bounded by _S3_PARALLEL_GETS objects.
    keys = _s3_window_keys(spec, client, bucket, root_key.rstrip("/"), days, endpoint, ignored)
    with ThreadPoolExecutor(max_workers=_S3_PARALLEL_GETS, thread_name_prefix="driftline-s3-get") as pool:
        pending: deque[tuple[str, Future[bytes]]] = deque()
        for key in keys:
            pending.append((key, pool.submit(download, key)))
            if len(pending) >= _S3_PARALLEL_GETS:
                yield from _parse_s3_object(spec, bucket, *pending.popleft())
        while pending:
            yield from _parse_s3_object(spec, bucket, *pending.popleft())


def _parse_s3_object(spec: ModelSpec, bucket: str, key: str, body: Future[bytes]) -> Iterator[tuple[str, pa.Table]]:
    where = f"s3://{bucket}/{key}"
    for table in _read_lake_file(spec, where, pa.BufferReader(body.result())):
        yield where, table


def _s3_window_keys(spec: ModelSpec, client: Any, bucket: str, root_key: str, days: list[date],
                    endpoint: str, ignored: list[str]) -> Iterator[str]:
    """Data object keys directly under each window day's partition prefix, in order."""
    for day in days:
        prefix = f"{root_key}/ds={day:%Y-%m-%d}/" if root_key else f"ds={day:%Y-%m-%d}/"
        try:
            keys = [obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                    for obj in page.get("Contents", [])]
        except Exception as err:
            raise SourceUnreachable(f"{spec.source.describe()}: cannot list s3://{bucket}/{prefix} at {endpoint} "
                                    f"({err})") from None
        for key in sorted(keys):
            name = key[len(prefix):]
            if "/" in name or name.startswith(_HIDDEN_PREFIXES):
                continue
            if _is_data_file(name, spec.source.format):
                yield key
            else:
                ignored.append(f"s3://{bucket}/{key}")


def _quote_ident(name: str) -> str:
    """One SQL identifier, quoted with embedded quotes doubled (so no name can inject SQL)."""
    return '"' + name.replace('"', '""') + '"'


def _quote_relation(name: str) -> str:
    """``schema.table`` -> ``"schema"."table"``."""
    parts = name.split(".")
    if not all(parts) or len(parts) > 3:
        raise SourceUnreachable(f"postgres table {name!r} is not a valid [database.][schema.]table name")
    return ".".join(_quote_ident(p) for p in parts)


def _postgres_parts(spec: ModelSpec, start: datetime, end: datetime, pg_uri: str) -> Iterator[tuple[str, pa.Table]]:
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as pgdbapi

    source = _describe_source(spec, pg_uri)
    ts = _quote_ident(spec.timestamp_column)
    if spec.source.table:
        relation, where = _quote_relation(spec.source.table), f"postgres table {spec.source.table}"
    else:
        query = spec.source.query.strip().rstrip(";")
        relation, where = f"({query}) AS driftline_source", "postgres query"
    sql = f"SELECT * FROM {relation} WHERE {ts} >= $1 AND {ts} < $2"
    try:
        conn = pgdbapi.connect(pg_uri)
    except adbc_driver_manager.Error as err:
        raise SourceUnreachable(f"{source}: cannot connect ({_first_line(err)}); check the host, port, "
                                f"database and credentials") from None
    try:
        with conn.cursor() as cur:
            # ADBC materialises the whole result of a query with bound parameters in libpq, so
            # the window goes into a server-side cursor (parameters bound there) and rows come
            # back chunk_rows at a time: memory stays bounded by one chunk.
            try:
                cur.execute(f"DECLARE driftline_window NO SCROLL CURSOR FOR {sql}", parameters=(start, end))
            except adbc_driver_manager.Error as err:
                raise SourceUnreachable(f"{source}: query failed ({_first_line(err)}); check that "
                                        f"{where} exists and has column {spec.timestamp_column!r}") from None
            # COPY cannot wrap FETCH; the driver would otherwise try it first.
            cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            chunk = spec.source.chunk_rows
            checked = False
            while True:
                cur.execute(f"FETCH FORWARD {chunk} FROM driftline_window")
                reader = cur.fetch_record_batch()
                if not checked:
                    missing = [c for c in spec.required_columns if c not in reader.schema.names]
                    if missing:
                        raise MissingColumns(f"{where}: missing required column(s) {missing} "
                                             f"(found {reader.schema.names})")
                    checked = True
                fetched = 0
                for batch in reader:
                    fetched += batch.num_rows
                    yield where, pa.Table.from_batches([batch])
                if fetched < chunk:
                    break
    finally:
        conn.close()


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
