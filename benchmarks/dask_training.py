"""The train step on each engine, same split: single-process XGBoost against ``xgboost.dask`` on a
local cluster of the same cores.

    python -m benchmarks.dask_training --rows 1000000 [--out benchmarks/results/dask_training_1M.json]

* **Data**: ``rows`` demo rows over the demo spec's 28 + 7 + 7 labelled days (labels known at
  once), cut by ``split_and_profile`` into the three window files, once, in ``--workdir``.
* **Local**: ``pipeline.train.train`` in a child process, ``params.n_jobs: 2``.
* **Dask**: the same call with ``training.engine: dask`` in a child process, against a
  ``LocalCluster`` of two worker processes with one thread each (started before, its start-up
  time reported apart), on loopback.
* Each child's wall time, CPU seconds and peak RSS come from ``wait4`` (the parent, whose RSS a
  child's peak includes, stays small: ``parent_peak_rss_mb``); the workers' CPU seconds
  over the dask child's run and their RSS after it come from psutil. Both report the valid-window
  AUC, the test-window AUC of the logged model (loaded and verified) and the early-stopping round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.pipeline import _measure
from benchmarks.report import emit, machine

REPO = Path(__file__).resolve().parent.parent
AS_OF = datetime(2026, 2, 12)
DAYS = 42


def _spec(engine: str) -> Any:
    from pipeline.config import Settings, TrainingSpec, load_spec

    spec = load_spec(REPO / "config" / "credit_default.yaml", Settings.from_env())
    return spec.model_copy(update={"label_delay_days": 0, "training": TrainingSpec(engine=engine),
                                   "params": spec.params.model_copy(update={"n_jobs": 2})})


def _prepare(rows: int, workdir: Path) -> Path:
    import pandas as pd

    from pipeline.demo import DemoOptions, generate_day
    from pipeline.features import split_and_profile
    from pipeline.storage import Store

    split_file = workdir / f"split_{rows}.json"
    if split_file.is_file():
        return split_file
    start = (AS_OF - timedelta(days=DAYS)).date()
    options = DemoOptions(rows_per_day=max(1, rows // DAYS))
    frame = pd.concat([generate_day(start + timedelta(days=i), options) for i in range(DAYS)], ignore_index=True)
    store = Store.for_uri(str(workdir))
    clean = store.write_parquet(str(workdir / f"clean_{rows}.parquet"), frame)
    split = split_and_profile(_spec("local"), clean, store, str(workdir / f"run_{rows}"), AS_OF)
    split_file.write_text(json.dumps(split.to_dict()))
    return split_file


def _child(engine: str, split_file: Path, scheduler: str | None, tracking_uri: str) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from pipeline.features import Split, score
    from pipeline.models import load_model
    from pipeline.storage import Store
    from pipeline.train import train

    split = Split.from_dict(json.loads(split_file.read_text()))
    spec = _spec(engine)
    store = Store.for_uri(str(split_file.parent))
    result = train(spec, split, store, tracking_uri=tracking_uri, dask_scheduler=scheduler)
    test = store.read_parquet(split.test_uri)
    model = load_model(result.model_uri, expected_sha256=result.model_sha256)
    auc = roc_auc_score(test[spec.target_column].to_numpy(np.int64), score(spec, model, test))
    print(json.dumps({"valid_roc_auc": round(result.metrics["valid_roc_auc"], 5), "test_roc_auc": round(auc, 5),
                      "best_iteration": result.best_iteration, "timings": result.timings}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_training")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", default="/tmp/driftline-bench-dask")
    parser.add_argument("--out")
    parser.add_argument("--child", choices=("prepare", "local", "dask"), help=argparse.SUPPRESS)
    parser.add_argument("--split", help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "prepare":
        _prepare(args.rows, Path(args.workdir))
        return 0
    if args.child:
        _child(args.child, Path(args.split), args.scheduler, args.tracking_uri)
        return 0

    import psutil
    from distributed import LocalCluster

    load_before = os.getloadavg()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    # The data is made in a child too: a child's peak RSS from wait4 includes its parent's at the
    # fork, so this process stays small (its own peak is reported).
    subprocess.run([sys.executable, "-m", "benchmarks.dask_training", "--child", "prepare", "--rows", str(args.rows),
                    "--workdir", str(workdir)], env=env, cwd=REPO, check=True)
    split_file = workdir / f"split_{args.rows}.json"
    split = json.loads(split_file.read_text())
    tracking = f"sqlite:///{workdir / f'mlflow_{time.time_ns()}.db'}"

    def child(engine: str, scheduler: str | None = None) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "benchmarks.dask_training", "--child", engine, "--split", str(split_file),
               "--tracking-uri", tracking] + (["--scheduler", scheduler] if scheduler else [])
        measured = _measure(cmd, env, REPO)
        return {**{k: v for k, v in measured.items() if k != "stdout"},
                **json.loads(measured["stdout"].strip().splitlines()[-1])}

    report: dict[str, Any] = {"rows": split["rows"], "local": child("local")}
    clock = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        started = time.perf_counter() - clock
        workers = psutil.Process().children(recursive=True)
        cpu_before = sum(sum(p.cpu_times()[:2]) for p in workers)
        dask = child("dask", cluster.scheduler_address)
        dask["cluster_start_seconds"] = round(started, 2)
        dask["workers_cpu_seconds"] = round(sum(sum(p.cpu_times()[:2]) for p in workers) - cpu_before, 2)
        dask["workers_rss_mb_after"] = [round(p.memory_info().rss / 2**20, 1) for p in workers]
    report["dask"] = dask
    report["auc_difference_test"] = round(dask["test_roc_auc"] - report["local"]["test_roc_auc"], 5)
    import resource

    report["parent_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["machine"] = machine(load_before)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
