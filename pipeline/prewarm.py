"""Training's imports and tracking-store connection, started early on a background thread.

A one-process run (the CLI's ``run``, :func:`pipeline.retrain.run_all`) calls :func:`start`
before ingest: importing XGBoost, scikit-learn, MLflow and the logging code
(:func:`pipeline.train._warm_imports`) and opening the tracking store take about 2.5 CPU-seconds
that training would otherwise spend beside its fit, when both cores are XGBoost's; during ingest
the reads and writes leave a core idle. :func:`wait` is called by training before it opens its
run, so a fresh SQLite store is never created by two threads at once. This module imports
nothing heavy itself: starting costs the main thread nothing.
"""

from __future__ import annotations

import gc
import logging
import threading

log = logging.getLogger(__name__)
_thread: threading.Thread | None = None


def start(tracking_uri: str) -> threading.Thread:
    """Start prewarming for ``tracking_uri``; failures are left for training to meet and report."""
    global _thread

    def work() -> None:
        # The imports create some 600k objects, and the cyclic collector would walk them again
        # and again as they pile up: measured 3.1-4.0 CPU-s for this prewarm with it, 2.4-2.5
        # without. Collection is off while it runs (a few seconds, during which ingest frees
        # its chunks by reference counting) and back on as soon as it is done.
        collecting = gc.isenabled()
        gc.disable()
        try:
            _work()
        finally:
            if collecting:
                gc.enable()

    def _work() -> None:
        try:
            import xgboost  # noqa: F401
            from mlflow import MlflowClient

            from pipeline.train import _warm_imports

            _warm_imports()
            MlflowClient(tracking_uri).search_experiments(max_results=1)
        except Exception as err:  # training opens the store itself and reports its errors
            log.debug("prewarm: %s", err)

    _thread = threading.Thread(target=work, name="driftline-prewarm", daemon=True)
    _thread.start()
    return _thread


def wait() -> None:
    """Return once a started prewarm has finished (at once when none was started)."""
    if _thread is not None:
        _thread.join()
