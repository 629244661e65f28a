"""Benchmark: ``pipeline.ingest.ingest`` against bare readers of the same data, in one run.

    python -m benchmarks.ingest --rows 1000000 [--rows-per-day 2000] [--out benchmarks/results/ingest.json]

Generates ``rows`` demo rows (20 columns) as daily partitions into a local hive lake, the same
partitions into an S3 lake (moto's server on loopback) and into a throwaway PostgreSQL table,
then times, each in its own child process so peak RSS belongs to one measurement:

* ``postgres``: ``ingest()`` vs ADBC ``cursor.execute(same query); fetch_arrow_table()``;
* ``lake_local`` / ``lake_s3``: ``ingest()`` vs ``pyarrow.dataset.dataset(lake,
  partitioning="hive").to_table(filter=window)``;

over the whole window and over its most recent half (memory should not grow with rows).
Prints JSON (wall seconds, CPU seconds of the measuring process -- steadier than wall time on a
shared machine, though the Postgres server's own CPU is in neither -- ratios ingest/anchor, peak
RSS MiB) and optionally writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.report import emit

REPO = Path(__file__).resolve().parent.parent
START = date(2024, 1, 1)
MODEL = "credit_default"
TABLE = "public.loan_applications"
KINDS = ("postgres", "lake_local", "lake_s3")


def _spec(kind: str, lake: str):
    from pipeline.config import Settings, load_spec

    base = load_spec(REPO / "config" / "credit_default.yaml", Settings.from_env({"DRIFTLINE_LAKE_ROOT": lake}))
    if kind == "postgres":
        source = base.source.model_copy(update={"kind": "postgres", "uri": None, "table": TABLE})
    elif kind == "lake_s3":
        source = base.source.model_copy(update={"uri": f"{lake}/{MODEL}"})
    else:
        source = base.source
    return base.model_copy(update={"source": source})


def _s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def _measure(job: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this (child) process; returns seconds, CPU seconds, rows and peak RSS.

    A one-day warm-up runs first so lazy imports and first-call set-up are not timed (for the
    anchors as for ``ingest``).
    """
    kind, which, days = job["kind"], job["which"], job["days"]
    end = datetime.fromisoformat(job["end"])
    _run_once(job, kind, which, end, 1)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    rows = _run_once(job, kind, which, end, days)
    seconds = time.perf_counter() - t0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {"kind": kind, "which": which, "days": days, "rows": rows, "seconds": round(seconds, 3),
            "cpu_s": round(cpu, 3), "peak_rss_mib": round(usage1.ru_maxrss / 1024, 1),
            "rss_before_mib": round(usage0.ru_maxrss / 1024, 1)}


def _run_once(job: dict[str, Any], kind: str, which: str, end: datetime, days: int) -> int:
    import adbc_driver_postgresql.dbapi as pgdbapi
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from pipeline.ingest import ingest
    from pipeline.storage import Store

    start = end - timedelta(days=days)
    spec = _spec(kind, job["lake"])
    if which == "ingest":
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as out:
            snap = ingest(spec, end, Store.for_uri(out), out, days=days,
                          s3_client=_s3_client(job["s3"]) if kind == "lake_s3" else None,
                          pg_uri=job["pg"] if kind == "postgres" else None)
            return snap.rows
    if kind == "postgres":
        with pgdbapi.connect(job["pg"]) as conn, conn.cursor() as cur:
            cur.execute('SELECT * FROM "public"."loan_applications" WHERE "event_time" >= $1 AND "event_time" < $2',
                        parameters=(start, end))
            return cur.fetch_arrow_table().num_rows
    lake = spec.source.uri
    fs = None
    if kind == "lake_s3":
        fs = pafs.S3FileSystem(endpoint_override=job["s3"], scheme="http", access_key="testing",
                               secret_key="testing", region="us-east-1")
        lake = lake[len("s3://"):]
    dataset = ds.dataset(lake, format="parquet", partitioning="hive", filesystem=fs)
    ts, utc = ds.field("event_time"), pa.timestamp("us", "UTC")
    window = ((ds.field("ds") >= f"{start:%Y-%m-%d}") & (ds.field("ds") < f"{end:%Y-%m-%d}")
              & (ts >= pa.scalar(start, utc)) & (ts < pa.scalar(end, utc)))
    return dataset.to_table(filter=window).num_rows


def _child(job: dict[str, Any]) -> dict[str, Any]:
    # A fresh interpreter per measurement: ru_maxrss is then this measurement's peak alone.
    out = subprocess.run([sys.executable, "-m", "benchmarks.ingest", "--measure", json.dumps(job)],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if out.returncode != 0:
        raise RuntimeError(f"measurement {job['kind']}/{job['which']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _prepare(lake: str, days: int, rows_per_day: int, pg_uri: str, s3: Any) -> float:
    """Write the demo lake locally, copy it to S3 and load the same rows into Postgres."""
    from pipeline.demo import DemoOptions, generate

    t0 = time.perf_counter()
    generate(lake, START, days, DemoOptions(rows_per_day=rows_per_day), model=MODEL, pg_uri=pg_uri, pg_table=TABLE)
    client = s3.client()
    client.create_bucket(Bucket="bench-lake")
    root = Path(lake)
    for path in sorted(root.rglob("*.parquet")):
        client.put_object(Bucket="bench-lake", Key=path.relative_to(root).as_posix(), Body=path.read_bytes())
    return time.perf_counter() - t0


def run(rows: int, rows_per_day: int, repeat: int) -> dict[str, Any]:
    """Generate the data, run every measurement in a child process, and summarise."""
    from tests.servers import PostgresCluster, S3Server

    days = max(2, rows // rows_per_day)
    end = datetime(START.year, START.month, START.day, tzinfo=timezone.utc) + timedelta(days=days)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as lake, PostgresCluster() as pg, S3Server() as s3:
        prepare_s = _prepare(lake, days, rows_per_day, pg.uri, s3)
        for kind in KINDS:
            for window_days in (days, days // 2):
                for which in ("anchor", "ingest"):
                    job = {"kind": kind, "which": which, "days": window_days, "end": end.isoformat(),
                           "lake": "s3://bench-lake" if kind == "lake_s3" else lake, "pg": pg.uri,
                           "s3": s3.endpoint_url}
                    runs = [_child(job) for _ in range(repeat)]
                    best = min(runs, key=lambda r: r["seconds"])
                    best["all_seconds"] = [r["seconds"] for r in runs]
                    results.append(best)
                    print(f"{kind:11s} {which:6s} days={window_days:4d} rows={best['rows']:8d} "
                          f"{best['seconds']:7.2f}s cpu {best['cpu_s']:6.2f}s peak RSS {best['peak_rss_mib']:7.1f} MiB", file=sys.stderr)
    summary = []
    for kind in KINDS:
        for window_days in (days, days // 2):
            pair = {r["which"]: r for r in results if r["kind"] == kind and r["days"] == window_days}
            a, i = pair["anchor"], pair["ingest"]
            if a["rows"] != i["rows"]:
                raise RuntimeError(f"{kind}: ingest read {i['rows']} rows, anchor {a['rows']}")
            summary.append({"source": kind, "rows": i["rows"], "ingest_s": i["seconds"], "anchor_s": a["seconds"],
                            "ratio": round(i["seconds"] / a["seconds"], 2),
                            "ingest_cpu_s": i["cpu_s"], "anchor_cpu_s": a["cpu_s"],
                            "cpu_ratio": round(i["cpu_s"] / max(a["cpu_s"], 1e-3), 2),
                            "ingest_peak_rss_mib": i["peak_rss_mib"], "anchor_peak_rss_mib": a["peak_rss_mib"]})
    return {"benchmark": "ingest", "rows": days * rows_per_day, "columns": 20, "days": days,
            "rows_per_day": rows_per_day, "repeat": repeat, "prepare_s": round(prepare_s, 1),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "anchors": {"postgres": "ADBC cursor.execute + fetch_arrow_table (same SQL, bound window)",
                        "lake_local": "pyarrow.dataset(hive).to_table(filter=ds and event_time window)",
                        "lake_s3": "same over pyarrow S3FileSystem on the moto server"},
            "summary": summary, "measurements": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-day", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest is reported")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(_measure(json.loads(args.measure))))
        return 0
    report = run(args.rows, args.rows_per_day, args.repeat)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
