"""The whole retrain against the bare work it orchestrates, each in its own process, same rows.

    python -m benchmarks.pipeline --rows 1000000 [--out benchmarks/results/pipeline_1M.json]

* **Data**: the demo model's lake, local, with ``rows / (train+valid+test days)`` rows a day over
  the run's whole read window (the labelled windows plus the ``label_delay_days`` before the
  as-of), generated once per size into ``--workdir``.
* **Model**: the demo spec without its derived features (``--derived`` keeps them), so both
  sides fit the same model on the same columns and their quality (AUC, early-stopping round) is
  comparable.
* **Pipeline**: ``python -m pipeline run credit_default --date <as-of>`` (ingest, validate,
  split, train with MLflow logging, evaluate with the bootstrap, register, report) in a child
  process on a fresh SQLite MLflow store and artifact root. Its Data Docs, which the retrain DAG
  renders in a task beside training, are rendered afterwards by ``python -m pipeline data-docs``
  in a process of its own, measured apart (``data_docs_rendered_apart``, and
  ``ratio_including_data_docs``). Per stage: seconds, CPU seconds and
  the process's peak RSS so far, from each step's record.
* **Bare anchor**: what a user would hand-write, in a child process: a ``pyarrow.dataset`` read
  of the same lake window; the numeric features as float32 and the categoricals as pandas
  categories; ``xgboost.train`` with the spec's parameters (hist, early stopping on the valid
  window); predict and ROC AUC on the test window.
* Wall time, CPU seconds (user + system) and peak RSS of each child come from ``wait4``, so each
  process is measured alone. The JSON records the machine's cores and load average before and
  after; it compares model quality (AUC, best iteration) as well as cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.report import emit, machine

REPO = Path(__file__).resolve().parent.parent
AS_OF = date(2026, 3, 1)
MODEL = "credit_default"


def write_spec(workdir: Path, derived: bool) -> Path:
    """The benchmark's config directory: the demo spec, without derived features unless asked."""
    import yaml

    from pipeline.config import REPO_ROOT

    raw = yaml.safe_load((REPO_ROOT / "config" / f"{MODEL}.yaml").read_text())
    if not derived:
        raw.pop("derived_features", None)
    config = workdir / ("config_derived" if derived else "config")
    config.mkdir(parents=True, exist_ok=True)
    (config / f"{MODEL}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def _load_spec(config: Path | None = None):
    from pipeline.config import REPO_ROOT, Settings, load_spec

    return load_spec((config or REPO_ROOT / "config") / f"{MODEL}.yaml", Settings.from_env({}))


def _spec_days() -> tuple[int, int, dict[str, int]]:
    spec = _load_spec()
    w = spec.windows
    return w.total_days, spec.label_delay_days, {"train": w.train_days, "valid": w.valid_days, "test": w.test_days}


def ensure_lake(workdir: Path, rows: int) -> dict[str, Any]:
    """A demo lake with ``rows`` labelled rows in the run's windows (cached per size)."""
    from pipeline.demo import DemoOptions, generate

    total, delay, _ = _spec_days()
    per_day = max(1, rows // total)
    lake = workdir / f"lake_{rows}"
    marker = lake / "complete.json"
    start = AS_OF - timedelta(days=total + delay)
    if not marker.exists():
        shutil.rmtree(lake, ignore_errors=True)
        generate(str(lake), start, total + delay, DemoOptions(rows_per_day=per_day), model=MODEL)
        marker.write_text(json.dumps({"rows_per_day": per_day, "days": total + delay}))
    return {"lake": str(lake), "rows_per_day": per_day, "labelled_rows": per_day * total,
            "rows_read": per_day * (total + delay), "start": start.isoformat()}


def _measure(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run ``cmd`` alone and return wall seconds, CPU seconds and peak RSS from ``wait4``."""
    import tempfile

    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:  # files: no pipe can fill up
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out_f, stderr=err_f)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{cmd[:4]} exited {code}: {err.decode(errors='replace')[-3000:]}")
    return {"seconds": round(wall, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "stdout": out.decode(errors="replace")}


def _env(home: Path, lake: str, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "MLFLOW_TRACKING"))}
    env.update(PYTHONPATH=str(REPO), DRIFTLINE_HOME=str(home), DRIFTLINE_LAKE_ROOT=lake,
               DRIFTLINE_CONFIG_DIR=str(config), MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
               OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), GX_ANALYTICS_ENABLED="false",
               MLFLOW_ENABLE_ASYNC_LOGGING="false")
    return env


def run_pipeline(workdir: Path, lake: dict[str, Any], config: Path) -> dict[str, Any]:
    """The whole retrain in a child process, plus its per-stage split from the step records."""
    from pipeline.artifacts import date_prefix, latest_decision_uri
    from pipeline.storage import Store

    home = workdir / "home_pipeline"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = _env(home, lake["lake"], config)
    # Migrate the MLflow store first, as a nightly run finds it: the first touch costs seconds.
    subprocess.run([sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"],
                   env=env, check=True, capture_output=True)
    measured = _measure([sys.executable, "-m", "pipeline", "run", MODEL, "--date", AS_OF.isoformat(),
                         "--force-promote", "--reason", "benchmark"], env, workdir)
    store = Store.for_uri(str(home / "artifacts"))
    uri = latest_decision_uri(store, date_prefix(str(home / "artifacts"), MODEL, AS_OF.isoformat()))
    record = store.read_json(uri)
    prefix = uri.rsplit("/", 1)[0]
    stages = {}
    for step in ("ingest", "validate", "split", "train", "evaluate", "promote"):
        s = store.read_json(f"{prefix}/steps/{step}.json")
        stages[step] = {k: s.get(k) for k in ("seconds", "cpu_seconds", "peak_rss_mb")}
    evaluation = store.read_json(record["evidence"]["evaluation"])
    train = store.read_json(f"{prefix}/steps/train.json")["result"]
    measured.pop("stdout")
    # The run leaves its Data Docs to the DAG's data_docs task; here, the command that renders them.
    docs = _measure([sys.executable, "-m", "pipeline", "data-docs", MODEL, "--date", AS_OF.isoformat()], env, workdir)
    docs.pop("stdout")
    return {**measured, "stages": stages,
            "stages_total_seconds": round(sum(v["seconds"] or 0 for v in stages.values()), 2),
            "roc_auc": evaluation["metrics"]["candidate"]["roc_auc"]["estimate"],
            "best_iteration": train.get("best_iteration"), "status": record["status"],
            "train_timings": train.get("timings"), "data_docs_rendered_apart": docs}


def run_bare(workdir: Path, lake: dict[str, Any], config: Path) -> dict[str, Any]:
    measured = _measure([sys.executable, "-m", "benchmarks.pipeline", "--bare", "--lake", lake["lake"],
                         "--config", str(config)], _env(workdir / "home_bare", lake["lake"], config), REPO)
    result = json.loads(measured.pop("stdout").strip().splitlines()[-1])
    return {**measured, **result}


def bare(lake: str, config: Path) -> dict[str, Any]:
    """The hand-written version of the run's work (see the module docstring)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.dataset as ds
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    spec = _load_spec(config)
    end = datetime.combine(AS_OF, datetime.min.time(), timezone.utc) - timedelta(days=spec.label_delay_days)
    w = spec.windows
    test0 = end - timedelta(days=w.test_days)
    valid0 = test0 - timedelta(days=w.valid_days)
    train0 = valid0 - timedelta(days=w.train_days)
    timings = {}
    clock = time.perf_counter()
    columns = [spec.timestamp_column, spec.target_column, *spec.numeric_features, *spec.categorical_features]
    table = ds.dataset(f"{lake}/{MODEL}", format="parquet", partitioning="hive").to_table(
        columns=columns, filter=(ds.field(spec.timestamp_column) >= pa.scalar(train0))
        & (ds.field(spec.timestamp_column) < pa.scalar(end)))
    frame = table.to_pandas()
    timings["read"] = time.perf_counter() - clock
    clock = time.perf_counter()
    for c in spec.numeric_features:
        frame[c] = frame[c].astype("float32")
    for c in spec.categorical_features:
        frame[c] = frame[c].astype("category")
    ts = frame[spec.timestamp_column]
    parts = {"train": frame[ts < valid0], "valid": frame[(ts >= valid0) & (ts < test0)], "test": frame[ts >= test0]}
    features = list(spec.numeric_features) + list(spec.categorical_features)
    dm = {k: xgb.DMatrix(v[features], label=v[spec.target_column], enable_categorical=True) for k, v in parts.items()}
    timings["prepare"] = time.perf_counter() - clock
    p = spec.params
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
              "max_depth": p.max_depth, "eta": p.learning_rate, "subsample": p.subsample,
              "colsample_bytree": p.colsample_bytree, "min_child_weight": p.min_child_weight,
              "lambda": p.reg_lambda, "nthread": p.n_jobs, "seed": p.seed}
    clock = time.perf_counter()
    booster = xgb.train(params, dm["train"], num_boost_round=p.n_estimators, evals=[(dm["valid"], "valid")],
                        early_stopping_rounds=p.early_stopping_rounds, verbose_eval=False)
    timings["train"] = time.perf_counter() - clock
    clock = time.perf_counter()
    scores = booster.predict(dm["test"], iteration_range=(0, booster.best_iteration + 1))
    auc = roc_auc_score(parts["test"][spec.target_column].to_numpy(), scores)
    timings["predict_and_score"] = time.perf_counter() - clock
    return {"roc_auc": float(auc), "best_iteration": int(booster.best_iteration),
            "rows": {k: int(len(v)) for k, v in parts.items()}, "timings": {k: round(v, 2) for k, v in timings.items()},
            "dtypes": {c: str(frame[c].dtype) for c in features[:1] + features[-1:]}, "n": int(len(np.asarray(scores)))}


def _ratio(bare_result: dict[str, Any], pipeline_result: dict[str, Any]) -> dict[str, float]:
    return {"wall": round(pipeline_result["seconds"] / bare_result["seconds"], 2),
            "cpu": round(pipeline_result["cpu_seconds"] / bare_result["cpu_seconds"], 2),
            "peak_rss": round(pipeline_result["peak_rss_mb"] / bare_result["peak_rss_mb"], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="labelled rows in the run's windows")
    parser.add_argument("--workdir", default="/tmp/driftline-bench-pipeline")
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--repeat", type=int, default=1,
                        help="alternate the bare work and the run this many times; the pair with the median "
                             "wall ratio is reported (every pair's ratios are kept)")
    parser.add_argument("--derived", action="store_true",
                        help="keep the demo spec's derived features (the bare anchor has none)")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        print(json.dumps(bare(args.lake, Path(args.config))))
        return 0
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lake = ensure_lake(workdir, args.rows)
    config = write_spec(workdir, args.derived)
    load_before = os.getloadavg()
    pairs = []
    for _ in range(args.repeat):  # alternated, so a slow spell of a shared machine hits both sides
        bare_result = run_bare(workdir, lake, config)
        pipeline_result = run_pipeline(workdir, lake, config)
        pairs.append((bare_result, pipeline_result, _ratio(bare_result, pipeline_result)))
    # The pair with the median wall ratio is reported in full; every pair's ratios are kept.
    bare_result, pipeline_result, ratio = sorted(pairs, key=lambda p: p[2]["wall"])[len(pairs) // 2]
    docs = pipeline_result["data_docs_rendered_apart"]
    result = {
        "benchmark": "pipeline", "rows": args.rows, "data": lake, "derived_features": args.derived,
        "machine": machine(load_before),
        "bare": bare_result, "pipeline": pipeline_result,
        "ratio": ratio,
        "ratio_including_data_docs": {
            "wall": round((pipeline_result["seconds"] + docs["seconds"]) / bare_result["seconds"], 2),
            "cpu": round((pipeline_result["cpu_seconds"] + docs["cpu_seconds"]) / bare_result["cpu_seconds"], 2)},
        "pairs": [{"bare": {k: b[k] for k in ("seconds", "cpu_seconds")},
                   "pipeline": {k: p[k] for k in ("seconds", "cpu_seconds")}, "ratio": r} for b, p, r in pairs],
        "quality": {"roc_auc_difference": round(pipeline_result["roc_auc"] - bare_result["roc_auc"], 4),
                    "best_iteration": [pipeline_result["best_iteration"], bare_result["best_iteration"]]},
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
