"""Benchmark: the evaluation bootstrap vs a plain scikit-learn loop, same data, same run.

``python -m benchmarks.evaluate [--rows 20000] [--replicates 500] [--out FILE]`` prints JSON:
seconds and CPU seconds for driftline's vectorised paired bootstrap (all binary metrics, three
models) and for the bare anchor -- one ``sklearn.metrics.roc_auc_score`` call per model per
replicate on the same resampled rows (ROC AUC only, so the anchor does less work) -- and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from benchmarks.report import emit


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--replicates", type=int, default=500)
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from pipeline.metrics import bootstrap

    rng = np.random.default_rng(0)
    y = (rng.random(args.rows) < 0.2).astype(int)
    signal = rng.normal(size=args.rows) + 1.2 * y
    preds = {role: signal + rng.normal(scale=k, size=args.rows)
             for role, k in (("candidate", 0.3), ("baseline", 1.0), ("champion", 0.4))}

    _, boot_wall, boot_cpu = _timed(lambda: bootstrap("binary", y, preds, args.replicates,
                                                      np.random.default_rng(1), threshold=0.5))

    def anchor():
        idx_rng = np.random.default_rng(1)
        out = {role: np.empty(args.replicates) for role in preds}
        for r in range(args.replicates):
            idx = idx_rng.integers(0, args.rows, size=args.rows)
            for role, p in preds.items():
                out[role][r] = roc_auc_score(y[idx], p[idx])
        return out

    _, anchor_wall, anchor_cpu = _timed(anchor)
    result = {
        "rows": args.rows, "replicates": args.replicates, "models": len(preds),
        "driftline_bootstrap_all_metrics": {"seconds": round(boot_wall, 3), "cpu_seconds": round(boot_cpu, 3)},
        "sklearn_loop_roc_auc_only": {"seconds": round(anchor_wall, 3), "cpu_seconds": round(anchor_cpu, 3)},
        "speedup_vs_anchor": round(anchor_wall / boot_wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
