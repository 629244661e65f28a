"""The monitor's drift measurement against Evidently's data-drift preset, same windows.

    python -m benchmarks.monitor [--shapes 1000000x20,100000x500] [--out FILE]
        [--evidently-python .venv-evidently/bin/python] [--workdir DIR] [--repeat 1]

Evidently (``evidently==0.7.23``, the current release) needs pandas < 3 while driftline pins
pandas 3, so it runs from its own virtualenv: ``make bench-monitor`` creates
``.venv-evidently`` and runs this. Each side runs in its own process on the same two parquet
files per shape (reference and current window, ``rows`` rows each, ``columns`` features: three
quarters numeric, one quarter categorical with 6 levels); the timed part starts with both
frames in memory and ends with per-column verdicts:

* driftline: :func:`pipeline.profile.build_profile` on the reference window (what training
  stores with the champion) plus :func:`pipeline.drift.measure_drift` on the current window
  (PSI and KS for numerics, Jensen-Shannon and chi-squared for categoricals, Benjamini-Hochberg
  corrected; a feature drifts when its effect reaches the threshold *and* its test agrees);
* Evidently: ``Report([DataDriftPreset()]).run(current, reference)`` with the column types given
  (its defaults above 1,000 rows: normed Wasserstein distance >= 0.1 for numerics,
  Jensen-Shannon distance >= 0.1 for categoricals).

Which columns move (by column index ``i``): ``i % 5 == 0`` strongly (numerics: mean + 0.6 sd;
categoricals: a skewed mix), ``i % 5 == 1`` slightly (mean + 0.05 sd; a 2-point mix change),
the rest not at all. The JSON reports, per shape: both sides' wall and CPU seconds and peak RSS,
the speed-up, the columns each side flags, where they disagree, and both against the truth
(strong shifts should be flagged, the rest not); plus the machine's cores and load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import emit, machine

REPO = Path(__file__).resolve().parents[1]
EVIDENTLY_VERSION = "0.7.23"
LEVELS = ("a", "b", "c", "d", "e", "f")
STRONG = 0.6
SLIGHT = 0.05


def _columns(n: int) -> tuple[list[str], list[str]]:
    numeric = [f"x{i:03d}" for i in range(n) if i % 4 != 3]
    categorical = [f"x{i:03d}" for i in range(n) if i % 4 == 3]
    return numeric, categorical


def _kind(column: str) -> str:
    i = int(column[1:])
    return "strong" if i % 5 == 0 else "slight" if i % 5 == 1 else "none"


def generate(rows: int, columns: int, workdir: Path) -> dict[str, str]:
    """Write ``reference.parquet`` and ``current.parquet`` (once per shape)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = workdir / f"{rows}x{columns}"
    paths = {"reference": str(folder / "reference.parquet"), "current": str(folder / "current.parquet")}
    if all(Path(p).exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    numeric, categorical = _columns(columns)
    base_mix = np.full(len(LEVELS), 1 / len(LEVELS))
    mixes = {"strong": np.array([0.40, 0.20, 0.15, 0.10, 0.10, 0.05]),
             "slight": base_mix + np.array([0.02, -0.02, 0, 0, 0, 0]), "none": base_mix}
    for side, seed in (("reference", 1), ("current", 2)):
        rng = np.random.default_rng(seed)
        arrays = {}
        for i in range(columns):
            name = f"x{i:03d}"
            kind = _kind(name) if side == "current" else "none"
            if name in numeric:
                shift = {"strong": STRONG, "slight": SLIGHT, "none": 0.0}[kind]
                arrays[name] = pa.array((rng.standard_normal(rows) + shift).astype("float32"))
            else:
                codes = rng.choice(len(LEVELS), size=rows, p=mixes[kind]).astype("int8")
                arrays[name] = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(LEVELS))
        pq.write_table(pa.table(arrays), paths[side])
    return paths


def _load(paths: dict[str, str]) -> tuple[Any, Any]:
    import pandas as pd

    frames = []
    for side in ("reference", "current"):
        df = pd.read_parquet(paths[side])
        for col in df.columns:  # plain strings for categoricals: what a monitor window holds
            if isinstance(df[col].dtype, pd.CategoricalDtype):
                df[col] = df[col].astype(object)
        frames.append(df)
    return frames[0], frames[1]


def side_driftline(paths: dict[str, str], columns: int) -> dict[str, Any]:
    from pipeline.config import REPO_ROOT, Settings, load_spec
    from pipeline.drift import measure_drift
    from pipeline.profile import build_profile

    reference, current = _load(paths)
    numeric, categorical = _columns(columns)
    spec = load_spec(REPO_ROOT / "config" / "credit_default.yaml", Settings.from_env())
    spec = spec.model_copy(update={"numeric_features": tuple(numeric), "categorical_features": tuple(categorical),
                                   "derived_features": ()})
    wall, cpu = time.perf_counter(), time.process_time()
    profile = build_profile(reference, spec)
    profiled = time.perf_counter() - wall
    report = measure_drift(spec, profile, current)
    out = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu,
           "profile_seconds": profiled, "drifted": sorted(report.drifted_features),
           "values": {c: report.features[c]["value"] for c in spec.features}}
    return out


def side_evidently(paths: dict[str, str], columns: int) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current = _load(paths)
    numeric, categorical = _columns(columns)
    wall, cpu = time.perf_counter(), time.process_time()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                                Dataset.from_pandas(reference, data_definition=definition))
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    drifted, values = [], {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            column, value = config["column"], float(metric["value"])
            values[column] = value
            # distance methods (every default above 1,000 rows) drift at or above the threshold
            if value >= float(config["threshold"]):
                drifted.append(column)
    import evidently

    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "drifted": sorted(drifted), "values": values,
            "version": evidently.__version__}


def _child(python: str, side: str, paths: dict[str, str], columns: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    started = time.perf_counter()
    proc = subprocess.run([python, "-m", "benchmarks.monitor", "--side", side, "--columns", str(columns),
                           "--paths", json.dumps(paths)], cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} side failed ({python}): {proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = round(time.perf_counter() - started, 2)
    return out


def _truth(columns: int) -> set[str]:
    return {f"x{i:03d}" for i in range(columns) if _kind(f"x{i:03d}") == "strong"}


def measure(rows: int, columns: int, workdir: Path, evidently_python: str, repeat: int) -> dict[str, Any]:
    paths = generate(rows, columns, workdir)
    runs: dict[str, list[dict[str, Any]]] = {"driftline": [], "evidently": []}
    for _ in range(repeat):
        runs["driftline"].append(_child(sys.executable, "driftline", paths, columns))
        runs["evidently"].append(_child(evidently_python, "evidently", paths, columns))
    best = {side: min(r, key=lambda x: x["seconds"]) for side, r in runs.items()}
    truth = _truth(columns)
    flagged = {side: set(b["drifted"]) for side, b in best.items()}
    all_columns = {f"x{i:03d}" for i in range(columns)}
    out: dict[str, Any] = {"rows": rows, "columns": columns}
    for side, b in best.items():
        out[side] = {"seconds": round(b["seconds"], 3), "cpu_seconds": round(b["cpu_seconds"], 3),
                     "peak_rss_mb": b["peak_rss_mb"], "process_seconds": b["process_seconds"],
                     "drifted_columns": len(flagged[side]),
                     "missed_strong_shifts": sorted(truth - flagged[side]),
                     "flagged_without_strong_shift": sorted(flagged[side] - truth)}
        if "profile_seconds" in b:
            out[side]["profile_seconds"] = round(b["profile_seconds"], 3)
        if "version" in b:
            out[side]["version"] = b["version"]
    disagree = sorted(flagged["driftline"] ^ flagged["evidently"])
    out["verdicts"] = {"agree_on_columns": len(all_columns) - len(disagree), "of": len(all_columns),
                       "disagreements": [{"column": c, "driftline": c in flagged["driftline"],
                                          "evidently": c in flagged["evidently"], "shift": _kind(c)}
                                         for c in disagree]}
    out["speedup"] = {"wall": round(best["evidently"]["seconds"] / best["driftline"]["seconds"], 2),
                      "cpu": round(best["evidently"]["cpu_seconds"] / best["driftline"]["cpu_seconds"], 2)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="1000000x20,100000x500", help="rowsxcolumns, comma-separated")
    parser.add_argument("--evidently-python", default=str(REPO / ".venv-evidently" / "bin" / "python"))
    parser.add_argument("--workdir", default="/tmp/driftline-bench-monitor")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the fastest is reported")
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--side", choices=("driftline", "evidently"), help=argparse.SUPPRESS)
    parser.add_argument("--columns", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.side:
        fn = side_driftline if args.side == "driftline" else side_evidently
        result = fn(json.loads(args.paths), args.columns)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return None

    if not Path(args.evidently_python).exists():
        parser.error(f"no Evidently interpreter at {args.evidently_python}: run `make bench-monitor` (creates "
                     f".venv-evidently with evidently=={EVIDENTLY_VERSION} and pandas<3) or pass --evidently-python")
    load_before = list(os.getloadavg())
    shapes = []
    for shape in args.shapes.split(","):
        rows, columns = (int(v) for v in shape.lower().split("x"))
        shapes.append(measure(rows, columns, Path(args.workdir), args.evidently_python, args.repeat))
    report = {"benchmark": "monitor", "shapes": shapes,
              "machine": machine(load_before),
              "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
