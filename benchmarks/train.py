"""Benchmark the training stage against bare ``xgboost.train`` in one process.

    python -m benchmarks.train --rows 1000000 [--rows-per-day 2000] [--out FILE]

Generates ``rows`` demo rows (``rows / rows_per_day`` days), writes them as one clean snapshot,
then measures, in this order and in the same process:

1. ``split_and_profile`` (read snapshot, split, write windows, profile the train window);
2. ``train()``: candidate (preprocess + early-stopped XGBoost) and baseline fits, then all MLflow
   logging to a temporary SQLite store (warmed first: a nightly run finds its store migrated);
3. the anchor: the same train matrix (the fitted tree preprocessor's output) as a ``DMatrix``,
   ``xgboost.train`` with the candidate's parameters, rounds and early stopping on the valid
   window.

Wall times on a shared machine swing with other load (XGBoost's OpenMP threads spin while
waiting unless ``OMP_WAIT_POLICY=PASSIVE``), so the JSON also carries process CPU seconds, the
load average and the wait policy.

Windows: the last 10 % of days test, the 10 % before valid, the rest train. Prints JSON (and
writes it to ``--out``): seconds per part, stage/anchor ratios, best iterations and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.report import emit

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _spec(days: int, n_jobs: int | None) -> Any:
    from pipeline.config import REPO_ROOT, Settings, WindowSpec, load_spec

    spec = load_spec(REPO_ROOT / "config" / "credit_default.yaml", Settings.from_env())
    held_out = max(1, days // 10)
    windows = WindowSpec(train_days=days - 2 * held_out, valid_days=held_out, test_days=held_out)
    params = spec.params.model_copy(update={"n_jobs": n_jobs}) if n_jobs else spec.params
    return spec.model_copy(update={"windows": windows, "params": params})


def _snapshot(path: Path, days: int, rows_per_day: int) -> int:
    import pandas as pd

    from pipeline.demo import DemoOptions, generate_day

    options = DemoOptions(rows_per_day=rows_per_day)
    frame = pd.concat([generate_day((START + timedelta(days=i)).date(), options) for i in range(days)],
                      ignore_index=True)
    frame.to_parquet(path, index=False)
    return len(frame)


def _anchor(spec: Any, split: Any, store: Any) -> dict[str, Any]:
    """Bare xgboost.train on the same transformed matrices with the candidate's parameters."""
    import numpy as np
    import xgboost as xgb

    from pipeline.features import build_preprocessor
    from pipeline.train import candidate_estimator

    columns = list(spec.model_columns)
    train = store.read_parquet(split.train_uri)
    valid = store.read_parquet(split.valid_uri)
    started = time.perf_counter()
    preprocess = build_preprocessor(spec, "tree")
    M_train = preprocess.fit_transform(train[columns])
    M_valid = preprocess.transform(valid[columns])
    transform_seconds = time.perf_counter() - started
    y_train = train[spec.target_column].to_numpy(dtype=np.float32)
    y_valid = valid[spec.target_column].to_numpy(dtype=np.float32)
    del train, valid

    started = time.perf_counter()
    dtrain = xgb.DMatrix(M_train, label=y_train, nthread=spec.params.n_jobs, enable_categorical=True)
    dvalid = xgb.DMatrix(M_valid, label=y_valid, nthread=spec.params.n_jobs, enable_categorical=True)
    dmatrix_seconds = time.perf_counter() - started

    estimator = candidate_estimator(spec)
    params = {k: v for k, v in estimator.get_xgb_params().items() if v is not None}
    started, cpu_started = time.perf_counter(), time.process_time()
    booster = xgb.train(params, dtrain, num_boost_round=spec.params.n_estimators, evals=[(dvalid, "valid")],
                        early_stopping_rounds=spec.params.early_stopping_rounds, verbose_eval=False)
    train_seconds = time.perf_counter() - started
    train_cpu = time.process_time() - cpu_started
    return {"xgb_train_cpu_seconds": round(train_cpu, 3),"transform_seconds": round(transform_seconds, 3), "dmatrix_seconds": round(dmatrix_seconds, 3),
            "xgb_train_seconds": round(train_seconds, 3), "best_iteration": int(booster.best_iteration),
            "matrix_shape": list(M_train.shape), "params": params}


def run(rows: int, rows_per_day: int, n_jobs: int | None, workdir: Path) -> dict[str, Any]:
    from mlflow import MlflowClient

    from pipeline.features import split_and_profile
    from pipeline.storage import Store
    from pipeline.train import train

    days = max(3, rows // rows_per_day)
    spec = _spec(days, n_jobs)
    store = Store.for_uri(str(workdir))
    clean = workdir / "clean.parquet"

    started = time.perf_counter()
    total_rows = _snapshot(clean, days, rows_per_day)
    generate_seconds = time.perf_counter() - started

    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    started = time.perf_counter()
    MlflowClient(tracking_uri).search_experiments()
    store_init_seconds = time.perf_counter() - started
    rss_before = _rss_mb()

    end = START + timedelta(days=days)
    started = time.perf_counter()
    split = split_and_profile(spec, str(clean), store, str(workdir / "run"), end)
    split_seconds = time.perf_counter() - started

    started, cpu_started = time.perf_counter(), time.process_time()
    result = train(spec, split, store, tracking_uri=tracking_uri, lineage={"driftline.trigger": "benchmark"})
    stage_seconds = time.perf_counter() - started
    stage_cpu = time.process_time() - cpu_started
    peak_after_stage = _peak_rss_mb()

    anchor = _anchor(spec, split, store)
    t = result.timings
    anchor_fit = anchor["transform_seconds"] + anchor["dmatrix_seconds"] + anchor["xgb_train_seconds"]
    return {
        "benchmark": "train",
        "rows": total_rows, "days": days, "rows_per_day": rows_per_day, "split_rows": split.rows,
        "windows_days": spec.windows.model_dump(exclude={"monitor_days"}),
        "params": {"n_estimators": spec.params.n_estimators, "early_stopping_rounds": spec.params.early_stopping_rounds,
                   "n_jobs": spec.params.n_jobs, "baseline": spec.params.baseline},
        "cpu_count": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "cpu_seconds": {"train_stage_total": round(stage_cpu, 3), "anchor_xgb_train": anchor["xgb_train_cpu_seconds"]},
        "seconds": {
            "generate_demo": round(generate_seconds, 3),
            "mlflow_store_init": round(store_init_seconds, 3),
            "split_and_profile": round(split_seconds, 3),
            "train_stage_total": round(stage_seconds, 3),
            "train_read_split": round(stage_seconds - t["fit"] - t["log_total"], 3),
            "train_fit_candidate": t["fit_candidate"],
            "train_fit_baseline": t["fit_baseline"],
            "train_mlflow_setup": t["mlflow_setup"],
            "train_log_models": t["log_models"],
            "train_log_total": t["log_total"],
            "anchor_transform": anchor["transform_seconds"],
            "anchor_dmatrix": anchor["dmatrix_seconds"],
            "anchor_xgb_train": anchor["xgb_train_seconds"],
        },
        "ratios": {
            "candidate_fit_vs_anchor_transform_dmatrix_train": round(t["fit_candidate"] / anchor_fit, 3),
            "candidate_fit_vs_anchor_xgb_train": round(t["fit_candidate"] / anchor["xgb_train_seconds"], 3),
            "train_stage_vs_anchor_xgb_train": round(stage_seconds / anchor["xgb_train_seconds"], 3),
            "logging_share_of_stage": round(t["log_total"] / stage_seconds, 3),
        },
        "best_iteration": {"stage": result.best_iteration, "anchor": anchor["best_iteration"]},
        "anchor_matrix_shape": anchor["matrix_shape"],
        "valid_metrics": {k: round(v, 4) for k, v in result.metrics.items()},
        "memory_mb": {"rss_before_split": round(rss_before, 1), "peak_after_stage": round(peak_after_stage, 1),
                      "peak_after_anchor": round(_peak_rss_mb(), 1)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="demo rows in the snapshot")
    parser.add_argument("--rows-per-day", type=int, default=2000)
    parser.add_argument("--n-jobs", type=int, default=None, help="XGBoost threads (default: the spec's)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-train-") as tmp:
        report = run(args.rows, args.rows_per_day, args.n_jobs, Path(tmp))
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
