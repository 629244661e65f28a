"""One storage interface over a local directory and ``s3://`` (boto3).

Contract:
* ``Store.for_uri(uri, s3_client=None)`` picks the backend from the URI scheme; every method
  takes full URIs (``/abs/path`` or ``s3://bucket/key``), so URIs can cross XCom unchanged.
* Writes are atomic: locally a temp file in the target directory renamed over the target; on S3
  a single PUT. A reader never sees a half-written object, and re-writing a key overwrites it.
* ``list`` is recursive and sorted; missing prefixes list as empty. Reading a missing object
  raises :class:`ObjectNotFound`; an I/O failure that may pass (a network blip, a throttled or
  restarting S3 endpoint) raises :class:`StorageError`, which is retryable; a read-only or full
  artifact root raises :class:`StorageUnwritable`, naming the root and the fix. ``exists`` is
  False only for an object that is not there -- any other failure raises.

The S3 client is passed in (built from an Airflow connection or the environment), so the
endpoint is configurable and tests run against an S3 API server on loopback.

When the steps of a run share one process (the CLI's ``run``), a :class:`FrameHandoff` given to
the store hands each parquet file's frame from the step that wrote it to the step that reads it,
within a memory budget: the file is still written (it is the run's evidence and what a retry
or an Airflow task reads), only reading it back and decoding it again is skipped.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator

from pipeline.errors import RetryableError


class StorageError(RetryableError):
    """An object could not be read, written or listed (I/O: may pass on a retry)."""


class ObjectNotFound(StorageError):
    """The object does not exist (a retry will not make it appear)."""

    retryable = False


class CorruptObject(StorageError):
    """The object exists but is not what it should be (not parquet, not JSON)."""

    retryable = False


class StorageUnwritable(StorageError):
    """The artifact root is read-only or full: a person has to act."""

    retryable = False


def _s3_code(err: BaseException) -> str:
    """The error code of a botocore ClientError ("" for anything else)."""
    return str((getattr(err, "response", None) or {}).get("Error", {}).get("Code", ""))


def _write_error(uri: str, err: OSError) -> StorageError:
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageUnwritable(f"{uri}: the artifact root is not writable ({err.strerror}); point "
                                 "DRIFTLINE_ARTIFACT_ROOT at a writable directory or fix its permissions")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageUnwritable(f"{uri}: no space left on the artifact root's disk ({err.strerror}); free space "
                                 "or move DRIFTLINE_ARTIFACT_ROOT")
    return StorageError(f"{uri}: cannot write ({err.strerror})")


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def join(base: str, *parts: str) -> str:
    """Join URI parts with ``/`` (works for local paths and ``s3://`` URIs)."""
    out = str(base).rstrip("/")
    for p in parts:
        p = str(p).strip("/")
        if p:
            out = f"{out}/{p}"
    return out


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


def default_s3_client() -> Any:
    """A boto3 S3 client from the environment (``AWS_ENDPOINT_URL`` etc. are honoured by boto3)."""
    import boto3

    return boto3.client("s3")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    """Stable, readable JSON (numpy scalars and datetimes converted)."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=True)


class FrameHandoff:
    """Frames written as parquet by one step, kept for a later step of the same process.

    Frames are kept while all of them fit ``budget_bytes``; the first one that does not turns
    the handoff off for the rest of the run (kept frames are released and every step reads its
    files), so a large run never holds a window in memory beside the next step's work.
    What a reader gets is what reading the file would give: the same columns in the requested
    order, the same dtypes (frames are kept as written; Arrow tables are converted as
    ``pyarrow.parquet.read_table(...).to_pandas()`` would), a fresh ``RangeIndex``, and a frame
    of its own (pandas copy-on-write: changing it changes neither the kept frame nor the writer's).
    Steps may write several files at once from threads: keeping and dropping are locked.
    """

    def __init__(self, budget_bytes: int):
        self.budget_bytes = int(budget_bytes)
        self.used_bytes = 0
        self.enabled = self.budget_bytes > 0
        self._kept: dict[str, tuple[Any, Any, int]] = {}
        self._lock = threading.RLock()

    @staticmethod
    def key(uri: str) -> str:
        if is_s3(uri):
            return uri
        return os.path.abspath(uri[len("file://"):] if uri.startswith("file://") else uri)

    def fits(self, nbytes: int) -> bool:
        return self.enabled and self.used_bytes + nbytes <= self.budget_bytes

    def disable(self) -> None:
        """Off for the rest of the run (a frame did not fit): release everything kept."""
        with self._lock:
            self.enabled = False
            self.clear()

    def keep(self, uri: str, frame: Any, rows: Any = None) -> bool:
        """Keep a pandas frame (the rows where ``rows`` is true, if given) or a ``pyarrow.Table``
        written to ``uri``; False (and nothing kept) when it does not fit the budget."""
        import numpy as np
        import pandas as pd

        self.drop(uri)
        if not self.enabled:
            return False
        if isinstance(frame, pd.DataFrame):
            total = int(frame.memory_usage(index=False, deep=True).sum())
            if rows is not None:
                rows = np.asarray(rows, dtype=bool)
                total = int(total * (rows.sum() / max(len(rows), 1)))
            frame = frame.copy(deep=False)
        else:
            total = int(frame.nbytes)
        with self._lock:
            if not self.fits(total):
                self.disable()
                return False
            self._kept[self.key(uri)] = (frame, rows, total)
            self.used_bytes += total
            return True

    def get(self, uri: str, columns: list[str] | None = None) -> Any:
        """The kept frame of ``uri`` (only the ``columns`` it has, in that order), or None."""
        import pandas as pd

        kept = self._kept.get(self.key(uri)) if self.enabled else None
        if kept is None:
            return None
        frame, rows, _ = kept
        if not isinstance(frame, pd.DataFrame):
            names = frame.column_names if columns is None else [c for c in dict.fromkeys(columns)
                                                                  if c in frame.column_names]
            return frame.select(names).to_pandas()
        if columns is not None:
            frame = frame[[c for c in dict.fromkeys(columns) if c in frame.columns]]
        frame = frame.loc[rows] if rows is not None else frame
        if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1:
            return frame.copy(deep=False)
        return frame.reset_index(drop=True)

    def drop(self, uri: str) -> None:
        """Forget ``uri``'s frame (its last reader has read it)."""
        with self._lock:
            kept = self._kept.pop(self.key(uri), None)
            if kept is not None:
                self.used_bytes -= kept[2]

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self.used_bytes = 0


class Store(ABC):
    """Base interface; use :meth:`for_uri`."""

    #: Frames handed between the steps of one process (see :class:`FrameHandoff`); None = off.
    handoff: FrameHandoff | None = None

    @staticmethod
    def for_uri(uri: str, s3_client: Any = None, handoff: FrameHandoff | None = None) -> "Store":
        """The store for ``uri``'s scheme. ``s3_client`` defaults to :func:`default_s3_client`."""
        store: Store = S3Store(s3_client or default_s3_client()) if is_s3(uri) else LocalStore()
        store.handoff = handoff
        return store

    @abstractmethod
    def write_bytes(self, uri: str, data: bytes) -> str:
        ...

    @abstractmethod
    def read_bytes(self, uri: str) -> bytes:
        ...

    @abstractmethod
    def create_exclusive(self, uri: str, data: bytes) -> bool:
        """Write ``uri`` only if it does not exist (atomically); False if it already did."""

    @abstractmethod
    def exists(self, uri: str) -> bool:
        ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        ...

    @abstractmethod
    def delete(self, uri: str) -> None:
        ...

    def open_read(self, uri: str) -> Any:
        """A binary file object (or local path) pyarrow can read."""
        return io.BytesIO(self.read_bytes(uri))

    def write_file(self, uri: str, local_path: str | Path) -> str:
        """Copy a local file to ``uri`` atomically."""
        return self.write_bytes(uri, Path(local_path).read_bytes())

    def upload_dir(self, local_dir: str | Path, uri: str) -> str:
        """Copy every file below ``local_dir`` to ``uri`` (keeps relative paths)."""
        local_dir = Path(local_dir)
        for p in sorted(local_dir.rglob("*")):
            if p.is_file():
                self.write_file(join(uri, p.relative_to(local_dir).as_posix()), p)
        return uri

    def write_text(self, uri: str, text: str) -> str:
        return self.write_bytes(uri, text.encode())

    def read_text(self, uri: str) -> str:
        return self.read_bytes(uri).decode()

    def write_json(self, uri: str, obj: Any) -> str:
        return self.write_text(uri, dumps(obj))

    def read_json(self, uri: str) -> Any:
        try:
            return json.loads(self.read_bytes(uri))
        except json.JSONDecodeError as err:
            raise CorruptObject(f"{uri}: not valid JSON ({err})") from None

    def write_parquet(self, uri: str, df: Any, rows: Any = None) -> str:
        """Write ``df`` (only the rows where the boolean array ``rows`` is true, if given).

        With ``rows``, the file is written a slice of :data:`PARQUET_CHUNK_ROWS` rows at a time,
        so selecting rows never copies the whole frame."""
        if rows is None:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            written = self.write_bytes(uri, buf.getvalue())
        else:
            with tempfile.TemporaryDirectory(prefix="driftline-parquet-") as tmp:
                local = Path(tmp) / "part.parquet"
                _write_parquet_rows(local, df, rows)
                written = self.write_file(uri, local)
        self._hand_off(uri, df, rows)
        return written

    def _hand_off(self, uri: str, df: Any, rows: Any) -> None:
        if self.handoff is not None:
            self.handoff.keep(uri, df, rows)

    def read_parquet(self, uri: str, columns: list[str] | None = None) -> Any:
        """The parquet file as a frame; with ``columns``, only those of them the file has."""
        import pyarrow.parquet as pq

        if self.handoff is not None:
            kept = self.handoff.get(uri, columns)
            if kept is not None:
                return kept
        try:
            source = self.open_read(uri)
            if columns is not None:
                present = set(pq.read_schema(source).names)
                columns = [c for c in dict.fromkeys(columns) if c in present]
                if hasattr(source, "seek"):
                    source.seek(0)
            table = pq.read_table(source, columns=columns)
        except StorageError:
            raise
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise CorruptObject(f"{uri}: unreadable parquet ({err})") from None
        return table.to_pandas()


#: Rows per slice when a selection of a frame is written (bounds the copy to one slice).
PARQUET_CHUNK_ROWS = 1_000_000


def _write_parquet_rows(path: str | Path, df: Any, rows: Any) -> None:
    """Write the rows of ``df`` where ``rows`` is true, one slice at a time, in the schema (and
    pandas metadata) that ``df.to_parquet`` would write."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    keep = np.asarray(rows, dtype=bool)
    schema = pa.Schema.from_pandas(df, preserve_index=False)
    with pq.ParquetWriter(str(path), schema) as writer:
        wrote = False
        for start in range(0, len(df), PARQUET_CHUNK_ROWS):
            part = keep[start:start + PARQUET_CHUNK_ROWS]
            if not part.any():
                continue
            first = int(part.argmax())
            last = part.size - int(part[::-1].argmax())
            if part.all():
                table = pa.Table.from_pandas(df.iloc[start:start + PARQUET_CHUNK_ROWS], schema=schema,
                                             preserve_index=False)
            elif part[first:last].all():
                # One run of rows (a time window of time-ordered rows): a slice instead of a row
                # copy of every column. Its Arrow-backed columns are made one chunk each, as
                # selecting rows makes them: where a column's chunks end decides where the
                # parquet writer gives up on a dictionary, so the file would differ otherwise.
                table = pa.Table.from_pandas(df.iloc[start + first:start + last], schema=schema,
                                             preserve_index=False).combine_chunks()
            else:
                table = pa.Table.from_pandas(df.iloc[start:start + PARQUET_CHUNK_ROWS].loc[part], schema=schema,
                                             preserve_index=False)
            writer.write_table(table)
            wrote = True
        if not wrote:
            writer.write_table(pa.Table.from_pandas(df.iloc[:0], schema=schema, preserve_index=False))


class LocalStore(Store):
    """Local filesystem; URIs are absolute or relative paths (``file://`` accepted)."""

    @staticmethod
    def _path(uri: str) -> Path:
        return Path(uri[len("file://"):] if uri.startswith("file://") else uri)

    def _publish(self, uri: str, fill: Any) -> str:
        """Write through ``fill(tmp_path)`` into a temp file beside the target, then rename it
        over the target: readers see the old file or the new one, never half of one.

        ``mkstemp`` creates files readable by their owner only; artifacts are meant to be read
        by others (UIs, other users), so the file gets the usual 0644 before it is published.
        """
        path = self._path(uri)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            fill(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as err:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise _write_error(uri, err) from None
        except BaseException:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def write_bytes(self, uri: str, data: bytes) -> str:
        return self._publish(uri, lambda tmp: Path(tmp).write_bytes(data))

    def write_file(self, uri: str, local_path: str | Path) -> str:
        return self._publish(uri, lambda tmp: shutil.copyfile(local_path, tmp))

    def write_parquet(self, uri: str, df: Any, rows: Any = None) -> str:
        if rows is None:
            written = self._publish(uri, lambda tmp: df.to_parquet(tmp, index=False))
        else:
            written = self._publish(uri, lambda tmp: _write_parquet_rows(tmp, df, rows))
        self._hand_off(uri, df, rows)
        return written

    def create_exclusive(self, uri: str, data: bytes) -> bool:
        path = self._path(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as err:
            raise _write_error(uri, err) from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def read_bytes(self, uri: str) -> bytes:
        try:
            return self._path(uri).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"{uri}: no such file") from None
        except OSError as err:
            raise StorageError(f"{uri}: cannot read ({err.strerror})") from None

    def open_read(self, uri: str) -> Any:
        path = self._path(uri)
        if not path.is_file():
            raise ObjectNotFound(f"{uri}: no such file")
        return str(path)

    def exists(self, uri: str) -> bool:
        return self._path(uri).exists()

    def list(self, prefix: str) -> list[str]:
        root = self._path(prefix)
        if not root.is_dir():
            return []
        return sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


class S3Store(Store):
    """S3 (or any S3 API) through a boto3 client."""

    def __init__(self, client: Any):
        self.client = client

    def write_bytes(self, uri: str, data: bytes) -> str:
        bucket, key = split_s3(uri)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
        except Exception as err:
            if _s3_code(err) in ("AccessDenied", "NoSuchBucket"):
                raise StorageUnwritable(f"{uri}: cannot write ({err}); check the bucket exists and the "
                                        "connection's credentials may write to it") from None
            raise StorageError(f"{uri}: cannot write ({err})") from None
        return uri

    def create_exclusive(self, uri: str, data: bytes) -> bool:
        bucket, key = split_s3(uri)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except Exception as err:
            if _s3_code(err) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise StorageError(f"{uri}: cannot write ({err})") from None
        return True

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise ObjectNotFound(f"{uri}: no such object") from None
        except Exception as err:
            if _s3_code(err) in ("NoSuchKey", "404", "NoSuchBucket"):
                raise ObjectNotFound(f"{uri}: no such object") from None
            raise StorageError(f"{uri}: cannot read ({err})") from None

    def exists(self, uri: str) -> bool:
        """True if ``uri`` is an object or a prefix with objects; False only when S3 says it is not
        there (404 / no such bucket) -- any other failure raises :class:`StorageError`."""
        bucket, key = split_s3(uri)
        try:
            if self.list_page(bucket, key.rstrip("/") + "/", limit=1):
                return True
        except self.client.exceptions.NoSuchBucket:
            return False
        except Exception as err:
            raise StorageError(f"{uri}: cannot list ({err})") from None
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except Exception as err:
            if _s3_code(err) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return False
            raise StorageError(f"{uri}: cannot check ({err})") from None

    def list_page(self, bucket: str, prefix: str, limit: int) -> list[str]:
        resp = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=limit)
        return [o["Key"] for o in resp.get("Contents", [])]

    def _iter_keys(self, uri: str) -> Iterator[str]:
        bucket, key = split_s3(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"]
        except self.client.exceptions.NoSuchBucket:
            raise StorageError(f"{uri}: no such bucket {bucket!r}") from None
        except Exception as err:
            raise StorageError(f"{uri}: cannot list ({err})") from None

    def list(self, prefix: str) -> list[str]:
        bucket, _ = split_s3(prefix)
        return sorted(f"s3://{bucket}/{k}" for k in self._iter_keys(prefix))

    def delete(self, uri: str) -> None:
        bucket, key = split_s3(uri)
        keys = list(self._iter_keys(uri)) or [key]
        for k in keys:
            self.client.delete_object(Bucket=bucket, Key=k)
