"""The prewarm thread: imports training's modules and opens the tracking store, with the cyclic
collector off only while it runs."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from pipeline.config import REPO_ROOT


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_prewarm_imports_opens_the_store_and_restores_the_collector(tmp_path):
    db = tmp_path / "mlflow.db"
    printed = _run(f"""
        import gc, sys, time
        from pipeline import prewarm
        seen = []
        thread = prewarm.start("sqlite:///{db}")
        deadline = time.monotonic() + 10
        while gc.isenabled() and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        seen.append(gc.isenabled())  # off while the imports run (they take seconds)
        prewarm.wait()
        print(sorted(m for m in ("xgboost", "mlflow", "skops.io", "mlflow.sklearn") if m in sys.modules),
              seen[0], gc.isenabled(), not thread.is_alive())
    """)
    assert printed == "['mlflow', 'mlflow.sklearn', 'skops.io', 'xgboost'] False True True"
    assert db.exists()  # the store was opened (and created)


def test_prewarm_leaves_a_disabled_collector_disabled(tmp_path):
    printed = _run(f"""
        import gc
        from pipeline import prewarm
        gc.disable()
        prewarm.start("sqlite:///{tmp_path / 'mlflow.db'}")
        prewarm.wait()
        print(gc.isenabled())
    """)
    assert printed == "False"


def test_wait_without_start_returns_at_once():
    printed = _run("""
        import gc, sys, time
        from pipeline import prewarm
        clock = time.monotonic()
        prewarm.wait()
        print(prewarm._thread is None, time.monotonic() - clock < 1.0, gc.isenabled(), "xgboost" in sys.modules)
    """)
    assert printed == "True True True False"
