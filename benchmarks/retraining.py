"""Retraining benchmark: the monitor-driven loop against nightly, periodic, never and an oracle.

    python -m benchmarks.retraining [--streams credit_default_concept,...] [--rows-per-day 2000]
        [--days-before 20] [--days-after 30] [--policies loop,nightly,periodic,never,oracle] [--k 7]
        [--alphas 0.1,0.5,2.5] [--quick] [--out benchmarks/results] [--workdir DIR] [--jobs 2]

Streams come from :mod:`pipeline.demo` (``STREAMS``; default: the six binary kinds plus
``claim_cost_covariate_harmless`` and ``claim_cost_concept``). Calendar, in days from 2026-01-01:
the first champion is trained by a scheduled retrain on day ``W = label_delay_days +
train_days + valid_days + test_days`` (49 for the demo specs: its windows are full), the stream
changes on ``C = W + days_before`` and ends on ``E = C + days_after``. Each stream is written
once as a hive lake holding every label: the pipeline itself only uses a label
``label_delay_days`` after its event (checked: a run on a lake masked as of its own day gives
the same windows, metrics and monitor observations).

Every policy starts from the same first champion (trained once per stream, then its artifact
root and MLflow store are copied, paths rewritten) and runs day by day from ``W + 1`` to ``E``
through the real step functions, each in its own artifact root and SQLite MLflow store:

* ``loop``: the monitor (:mod:`pipeline.monitor` steps) every day; when it requests a retrain,
  ``run_all`` with its trigger conf the same day (as the scheduler would);
* ``nightly``: ``run_all`` with a schedule trigger every day (the promotion gates decide);
* ``periodic``: the same every ``k`` days;
* ``never``: the first champion forever;
* ``oracle``: for every day ``t`` in ``[W, E]`` the model the pipeline would train that day
  (bare XGBoost with the spec's parameters on the pipeline's windows, labels ``label_delay``
  late), knowing the TRUE change day: after it, the windows :func:`pipeline.features.plan_windows`
  gives for that change point (anchored: the best pre-change weighting on the post-change
  validation window; covariate: importance weighting), kept over the standard model only if it
  scores better on a window neither was fitted to (the anchored test window; the importance-
  weighted standard test window). Each is scored on every later day -> ``M[t, e]``; a dynamic
  programme over "keep, or switch to today's model" minimises ``alpha * switches +
  sum_e (1 - M[current, e])`` for each alpha.

The daily metric of a policy on day ``e`` is the primary metric (ROC AUC; RMSE and R2 for
regression) of the champion in service after that day's runs on day ``e``'s rows with their
true labels (a run on day ``e`` reads rows before ``e``'s midnight, so its model serves ``e``).
Per stream and policy the JSON reports:

* ``detection_delay_days`` (loop): first monitor day ``e > C`` whose decision holds a change,
  a feature change or a retrain request, minus ``C`` (at least 1: day ``e`` sees rows up to ``e - 1``);
* ``days_to_adapted_champion``: first ``e >= C`` whose champion was importance-weighted towards
  the post-change feature mix (plan ``covariate``, change point ``>= C - 3``), minus ``C``;
  ``days_to_labelled_post_change_champion``: same for a champion whose training window holds
  labelled rows from ``C`` on; ``days_to_post_change_champion``: the earlier of the two;
* ``false_alarms_per_100_stable_days``: retrain runs started on stable days (harmful streams:
  days ``<= C``, whose data is all pre-change; stable and harmless streams: every day) per 100
  such days -- for the loop these are its retrain requests;
* ``retrains`` (runs; oracle: switches), ``promotions``, ``mean_metric_after`` over days
  ``C + label_delay + 3 .. E`` and ``gap_to_oracle`` there (AUC: oracle minus policy; RMSE:
  policy over oracle minus 1; positive = worse than the oracle at the middle alpha);
* ``cost``: ``alpha * retrains + sum over W+1..E of (1 - AUC)`` (regression ``1 - R2``) per alpha;
* wall seconds; the machine's cores and load average.

Outputs (``--out``): ``retraining.json``, ``retraining_<stream>.png`` (daily metric per policy
with retrain and promotion markers) and ``retraining.md`` (the table for the README, and the
targets met or missed). Resumable: each (stream, policy) result, the first champion and each
oracle row are cached under ``--workdir`` keyed by the data settings and a hash of the pipeline
code; an interrupted run continues where it stopped. Streams run in ``--jobs`` processes, each
with XGBoost on one thread.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import sqlite3
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

START = date(2026, 1, 1)
DEFAULT_STREAMS = ("credit_default_none", "credit_default_covariate", "credit_default_covariate_harmless",
                   "credit_default_concept", "credit_default_concept_gradual", "credit_default_recurring",
                   "claim_cost_covariate_harmless", "claim_cost_concept")
POLICIES = ("loop", "nightly", "periodic", "never", "oracle")
#: The policies the cost target compares (the oracle is the yardstick, not a contender).
CONTENDERS = ("loop", "nightly", "periodic", "never")
SPEC_FILES = {"binary": "config/credit_default.yaml", "regression": "config/examples/claim_cost.yaml"}
#: The metric whose shortfall from 1 is the daily cost.
COST_METRIC = {"binary": "roc_auc", "regression": "r2"}
#: A post-change champion counts when anchored/weighted at a change point at most this early.
CHANGE_POINT_SLACK_DAYS = 3
#: Targets: days after ``label_delay`` for a labelled post-change champion, days for an adapted
#: one, allowed gap to the oracle (AUC points; relative RMSE), loop retrains vs nightly's.
TARGET_EXTRA_DAYS = 3
TARGET_ADAPTED_DAYS = 3
TARGET_GAP = {"binary": 0.01, "regression": 0.02}
TARGET_RETRAIN_SHARE = 0.2
#: Imported up front by a stream's process (see :func:`quiet`).
PIPELINE_MODULES = ("pipeline.adaptation", "pipeline.cli", "pipeline.demo", "pipeline.drift", "pipeline.drift_report",
                    "pipeline.estimate", "pipeline.evaluate", "pipeline.features", "pipeline.ingest", "pipeline.metrics",
                    "pipeline.monitor", "pipeline.profile", "pipeline.promotion", "pipeline.registry",
                    "pipeline.retrain", "pipeline.retraining", "pipeline.runenv", "pipeline.train", "pipeline.validate")
POLICY_STYLE = {"loop": ("tab:red", "-"), "nightly": ("tab:blue", "-"), "periodic": ("tab:green", "-"),
                "never": ("tab:gray", "--"), "oracle": ("black", ":")}


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class Config:
    """One benchmark invocation's settings (what the cache keys are made of)."""

    streams: tuple[str, ...] = DEFAULT_STREAMS
    policies: tuple[str, ...] = POLICIES
    rows_per_day: int = 2000
    days_before: int = 20
    days_after: int = 30
    k: int = 7
    alphas: tuple[float, ...] = (0.1, 0.5, 2.5)
    seed: int = 42
    jobs: int = 2
    workdir: str = "/tmp/driftline-retraining"
    out: str = str(REPO / "benchmarks" / "results")

    @property
    def data_key(self) -> str:
        return f"rows{self.rows_per_day}_before{self.days_before}_after{self.days_after}_seed{self.seed}"

    @property
    def middle_alpha(self) -> float:
        return sorted(self.alphas)[len(self.alphas) // 2]


@dataclass(frozen=True)
class Calendar:
    """Day indices from :data:`START`: first champion ``w``, change ``c``, last day ``e``."""

    w: int
    c: int
    e: int

    @staticmethod
    def for_spec(spec: Any, config: Config) -> "Calendar":
        w = spec.label_delay_days + spec.windows.total_days
        return Calendar(w=w, c=w + config.days_before, e=w + config.days_before + config.days_after)

    @staticmethod
    def day(i: int) -> date:
        return START + timedelta(days=i)

    def iso(self, i: int) -> str:
        return self.day(i).isoformat()


def code_hash() -> str:
    """sha256 (12 hex) of the pipeline package, the specs and the expectation suites: a cached
    result is reused only with the code that produced it."""
    digest = hashlib.sha256()
    files = sorted([*(REPO / "pipeline").rglob("*.py"), *(REPO / SPEC_FILES["binary"]).parent.glob("*.yaml"),
                    REPO / SPEC_FILES["regression"], *(REPO / "expectations").glob("*.json")])
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def git_head() -> str | None:
    """``HEAD``, plus the files under the hashed folders that differ from it (read-only git)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "pipeline", "config", "expectations"], cwd=REPO,
                               capture_output=True, text=True, timeout=10, check=True).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    changed = sorted(line[3:] for line in dirty if line.strip())
    return head + (f" + uncommitted {', '.join(changed)}" if changed else "")


def quiet(preload: bool = False) -> None:
    """Silence library INFO logs, warnings and progress bars: the benchmark prints one line per
    day and policy. With ``preload``, import the pipeline's modules now, so a process that runs
    streams for an hour runs the code it hashed at start even while someone edits the tree."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    warnings.simplefilter("ignore")
    logging.captureWarnings(True)
    logging.basicConfig(level=logging.ERROR)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)
    import importlib

    for name in ("mlflow", *(PIPELINE_MODULES if preload else ())):
        importlib.import_module(name)
    for name in ("mlflow", "great_expectations", "alembic", "py.warnings", "pipeline"):
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "pipeline" else logging.ERROR)


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# one stream: lake, first champion, policies, oracle (runs in a worker process)


@dataclass(frozen=True)
class StreamRun:
    """Where one stream's runs live and what they share."""

    name: str
    task: str
    kind: str
    harmful: bool
    config: Config
    code: str

    @property
    def root(self) -> Path:
        return Path(self.config.workdir) / self.config.data_key / self.name

    @property
    def lake_root(self) -> Path:
        return self.root / "lake"

    def policy_dir(self, policy: str) -> Path:
        return self.root / (f"periodic_k{self.config.k}" if policy == "periodic" else policy)

    def settings(self, home: Path) -> Any:
        from pipeline.config import Settings

        return Settings.from_env({"DRIFTLINE_HOME": str(home), "DRIFTLINE_ARTIFACT_ROOT": str(home / "artifacts"),
                                  "DRIFTLINE_LAKE_ROOT": str(self.lake_root),
                                  "DRIFTLINE_CONFIG_DIR": str(REPO / "config"),
                                  "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"})

    def spec(self, settings: Any) -> Any:
        """The task's demo spec, its lake under this stream's lake root, XGBoost on one thread
        (two streams share two cores)."""
        from pipeline.config import load_spec

        spec = load_spec(REPO / SPEC_FILES[self.task], settings)
        return spec.model_copy(update={"params": spec.params.model_copy(update={"n_jobs": 1})})

    def options(self) -> Any:
        from pipeline.demo import DemoOptions

        drift = None if self.kind == "none" else Calendar.day(self.calendar.c)
        return DemoOptions(rows_per_day=self.config.rows_per_day, seed=self.config.seed, task=self.task,
                           drift_kind=self.kind, drift_day=drift)

    @functools.cached_property
    def calendar(self) -> Calendar:
        from pipeline.config import load_spec

        return Calendar.for_spec(load_spec(REPO / SPEC_FILES[self.task], self.settings(self.root)), self.config)

    def stamp(self, **extra: Any) -> dict[str, Any]:
        """What a cached file must match to be reused."""
        return {"code": self.code, "data": self.config.data_key, **extra}


def stream_run(name: str, config: Config, code: str) -> StreamRun:
    from pipeline.demo import STREAMS

    streams = {s.name: s for s in STREAMS}
    if name not in streams:
        raise SystemExit(f"unknown stream {name!r}; known: {', '.join(streams)}")
    s = streams[name]
    return StreamRun(name=name, task=s.task, kind=s.kind, harmful=s.harmful, config=config, code=code)


def _frames(run: StreamRun) -> list[Any]:
    """Every day's rows with true labels, day index ``i`` at position ``i`` (what the lake holds)."""
    from pipeline.demo import generate_day

    options, model = run.options(), run.spec(run.settings(run.root)).name
    return [generate_day(Calendar.day(i), options, model) for i in range(run.calendar.e + 1)]


def ensure_lake(run: StreamRun) -> None:
    from pipeline.demo import generate

    marker = run.lake_root / "complete.json"
    if _read_json(marker) == run.stamp(days=run.calendar.e + 1):
        return
    shutil.rmtree(run.lake_root, ignore_errors=True)
    spec = run.spec(run.settings(run.root))
    generate(str(run.lake_root), START, run.calendar.e + 1, run.options(), model=spec.name)
    _write_json(marker, run.stamp(days=run.calendar.e + 1))


def ensure_seed(run: StreamRun) -> dict[str, Any]:
    """The first champion: a scheduled retrain on day W in ``<stream>/seed`` (cached)."""
    from pipeline import registry, retrain
    from pipeline.runenv import RunEnv

    home = run.root / "seed"
    cached = _read_json(home / "seed.json")
    if cached and cached.get("stamp") == run.stamp():
        return cached
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings = run.settings(home)
    spec = run.spec(settings)
    cal = run.calendar
    started = time.perf_counter()
    env = RunEnv.local(spec, cal.iso(cal.w), settings=settings, trigger={"kind": "schedule", "run_id": "seed"})
    _monitor_experiment(env, home)
    report = retrain.run_all(env)
    if report["status"] != "promoted":
        raise RuntimeError(f"{run.name}: the first run on day W did not create a champion: {report['summary']}")
    champion = registry.get_champion(env.mlflow_client(), spec)
    seed = {"stamp": run.stamp(), "version": champion.version, "day": cal.iso(cal.w),
            "seconds": round(time.perf_counter() - started, 1), "summary": report["summary"]}
    _write_json(home / "seed.json", seed)
    print(f"{run.name:<34} seed      {cal.iso(cal.w)}  first champion v{champion.version} "
          f"({seed['seconds']:.1f}s)", flush=True)
    return seed


def clone_seed(run: StreamRun, dest: Path) -> float:
    """Copy the first champion's artifact root and MLflow store (artifacts included) into
    ``dest``, rewriting the absolute paths they hold; returns the seconds it took."""
    started = time.perf_counter()
    source = run.root / "seed"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in ("artifacts", "mlartifacts"):
        if (source / name).exists():
            shutil.copytree(source / name, dest / name)
    shutil.copy2(source / "mlflow.db", dest / "mlflow.db")
    old, new = str(source), str(dest)
    with sqlite3.connect(dest / "mlflow.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                declared = (column[2] or "").upper()
                if "CHAR" in declared or "TEXT" in declared:
                    db.execute(f'UPDATE "{table}" SET "{column[1]}" = replace("{column[1]}", ?, ?) '
                               f'WHERE instr("{column[1]}", ?) > 0', (old, new, old))
    for path in (dest / "artifacts").rglob("*.json"):
        text = path.read_text()
        if old in text:
            path.write_text(text.replace(old, new))
    return time.perf_counter() - started


def _monitor_experiment(env: Any, home: Path) -> None:
    """Create the monitor's MLflow experiment with its artifacts under ``home``.

    Works around ``pipeline.monitor._log_monitor_run`` creating the experiment without an
    artifact location: with a SQLite store MLflow then writes the monitor runs' artifacts into
    ``./mlruns`` of the current directory (the repository, when run from there).
    """
    client = env.mlflow_client()
    name = f"{env.spec.name}-monitoring"
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=(home / "mlartifacts" / name).resolve().as_uri())


class ChampionBook:
    """The champion in service and its scores: models loaded once per version, and what each
    version was trained on (from its tags and its run's decision record)."""

    def __init__(self, spec: Any, env: Any):
        self.spec, self.env = spec, env
        self.client = env.mlflow_client()
        self.models: dict[str, Any] = {}
        self.info: dict[str, dict[str, Any]] = {}

    def current(self) -> str:
        from pipeline import registry

        champion = registry.get_champion(self.client, self.spec)
        version = str(champion.version)
        if version not in self.info:
            self.info[version] = _champion_info(self.env, champion)
            self.models[version] = self.env.load_model(
                champion.uri, sha256=champion.tags.get("driftline.model_sha256") or None)
        return version

    def metrics(self, version: str, frame: Any) -> dict[str, float | None]:
        from pipeline.features import score

        return day_metrics(self.spec, frame, score(self.spec, self.models[version], frame))


def day_metrics(spec: Any, frame: Any, prediction: Any, weights: Any = None) -> dict[str, float | None]:
    """The reported metrics of one day: ROC AUC (binary) or RMSE and R2 (regression)."""
    from pipeline import metrics

    y = frame[spec.target_column].to_numpy(dtype=float)
    values = metrics.point(spec.task, y, prediction, spec.params.decision_threshold, weights=weights)
    keep = ("roc_auc",) if spec.task == "binary" else ("rmse", "r2")
    return {k: values[k] for k in keep}


def _champion_info(env: Any, champion: Any) -> dict[str, Any]:
    tags = champion.tags
    record: dict[str, Any] = {}
    if tags.get("driftline.decision_uri"):
        try:
            record = env.store.read_json(tags["driftline.decision_uri"])
        except Exception:  # an unreadable record leaves the windows unknown, not the run failed
            record = {}
    windows = record.get("windows") or {}
    return {
        "version": str(champion.version),
        "run_day": record.get("date"),
        "trigger": tags.get("driftline.trigger"),
        "role": tags.get("driftline.role"),
        "data_interval_end": tags.get("driftline.data_interval_end"),
        "labelled_end": tags.get("driftline.labelled_end"),
        "window_plan": tags.get("driftline.window_plan") or "standard",
        "change_point": tags.get("driftline.change_point") or None,
        "post_change_rows": int(tags.get("driftline.post_change_rows") or 0),
        "train_window": windows.get("train"),
        "strategy": (record.get("adaptation") or {}).get("strategy"),
    }


def _monitor_day(spec: Any, settings: Any, day: str) -> dict[str, Any]:
    from pipeline import monitor
    from pipeline.runenv import RunEnv
    from pipeline.validate import ValidationFailed

    env = RunEnv.local(spec, day, settings=settings, trigger={"kind": "schedule", "run_id": f"monitor-{day}"})
    champion = monitor.champion_step(env)
    try:
        validated = monitor.validate_step(env, monitor.ingest_step(env, champion))
    except ValidationFailed as err:
        return {"status": "bad_data", "retrain": False, "error": str(err)[:300]}
    out = monitor.measure_step(env, champion, validated)
    record = env.store.read_json(_field(out, "decision_uri"))
    change, shift, forecast = record.get("change"), record.get("feature_change"), record.get("forecast")
    return {
        "status": record["status"], "retrain": bool(record["retrain"]), "kind": record.get("kind"),
        "mode": record.get("mode"), "anchor": record.get("anchor"),
        "change": {k: change.get(k) for k in ("day", "alarm_day", "source")} if change else None,
        "feature_change": ({k: shift.get(k) for k in ("day", "days", "with_prediction_drift", "weighted")}
                           if shift else None),
        "expected_loss": forecast.get("expected_loss") if forecast else None,
        "loss_lower": forecast.get("lower") if forecast else None,
        "waiting": record.get("waiting"), "blocked_by": record.get("blocked_by"),
        "drifted_features": (record.get("feature_drift") or {}).get("features") or [],
        "weighted_drift": (record.get("feature_drift") or {}).get("weighted"),
        "observations": [{k: o.get(k) for k in ("source", "day", "value", "z")}
                         for o in record.get("observations", [])],
        "trigger_conf": _field(out, "trigger_conf"),
    }


def _field(result: Any, name: str) -> Any:
    """A step result's field, whether the step returns a dict or a typed record."""
    return result.get(name) if isinstance(result, dict) else getattr(result, name, None)


def _retrain_day(spec: Any, settings: Any, day: str, trigger: dict[str, Any]) -> dict[str, Any]:
    from pipeline import retrain
    from pipeline.runenv import RunEnv

    env = RunEnv.local(spec, day, settings=settings, trigger=trigger)
    started = time.perf_counter()
    error = None
    try:
        decision_uri = _field(retrain.run_all(env), "decision_uri")
    except retrain.RunFailed as err:  # the run's record is still written, in its own prefix
        error, decision_uri = str(err)[:300], f"{env.run_prefix}/decision.json"
    try:
        record = env.store.read_json(decision_uri)
    except Exception:  # no record at all: reported as a failed run with the error
        record = {}
    plan, adaptation = record.get("plan") or {}, record.get("adaptation") or {}
    return {
        "trigger": trigger.get("kind"), "status": record.get("status", "failed"),
        "promoted": bool(record.get("promote")),
        "chosen": record.get("chosen"), "plan": plan.get("kind"), "change_point": plan.get("change_point"),
        "strategy": adaptation.get("strategy"), "candidate_version": record.get("candidate_version"),
        "champion_after": record.get("champion_after"), "failed_step": record.get("failed_step"),
        "summary": (record.get("summary") or error or "")[:300], "seconds": round(time.perf_counter() - started, 1),
    }


def run_policy(run: StreamRun, policy: str, frames: list[Any]) -> dict[str, Any]:
    """Run one policy day by day from W+1 to E (cached in ``<policy dir>/result.json``)."""
    from pipeline.cli import trigger_from_conf
    from pipeline.runenv import RunEnv

    home = run.policy_dir(policy)
    stamp = run.stamp(policy=policy, k=run.config.k if policy == "periodic" else None)
    cached = _read_json(home / "result.json")
    if cached and cached.get("stamp") == stamp:
        return cached
    cal = run.calendar
    clone_seconds = clone_seed(run, home)
    os.chdir(home)  # anything MLflow still resolves against the working directory lands here
    settings = run.settings(home)
    spec = run.spec(settings)
    book = ChampionBook(spec, RunEnv.local(spec, cal.iso(cal.w), settings=settings))
    days = []
    started = time.perf_counter()
    for i in range(cal.w + 1, cal.e + 1):
        day, t0 = cal.iso(i), time.perf_counter()
        entry: dict[str, Any] = {"i": i, "day": day, "monitor": None, "run": None}
        if policy == "loop":
            entry["monitor"] = _monitor_day(spec, settings, day)
            conf = entry["monitor"].get("trigger_conf")
            if entry["monitor"]["retrain"] and conf:
                trigger = {"kind": "drift", "run_id": f"drift-{day}", **trigger_from_conf(conf)}
                entry["run"] = _retrain_day(spec, settings, day, trigger)
        elif policy == "nightly" or (policy == "periodic" and (i - cal.w) % run.config.k == 0):
            entry["run"] = _retrain_day(spec, settings, day, {"kind": "schedule", "run_id": f"schedule-{day}"})
        entry["champion"] = book.current()
        entry["metrics"] = book.metrics(entry["champion"], frames[i])
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        days.append(entry)
        print(_day_line(run, policy, cal, entry), flush=True)
    result = {"stamp": stamp, "policy": policy, "days": days, "champions": book.info,
              "wall_seconds": round(time.perf_counter() - started, 1), "clone_seconds": round(clone_seconds, 2),
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    _write_json(home / "result.json", result)
    return result


def _day_line(run: StreamRun, policy: str, cal: Calendar, entry: dict[str, Any]) -> str:
    parts = [f"{run.name:<34} {policy:<9} {entry['day']} (c{entry['i'] - cal.c:+d})"]
    m = entry.get("monitor")
    if m:
        what = m["status"]
        if m.get("retrain"):
            what += f"({m.get('kind')},{m.get('mode')})"
        if m.get("change"):
            what += f" change@{m['change']['day']}"
        if m.get("feature_change"):
            what += f" shift@{m['feature_change']['day']}"
        parts.append(f"monitor {what}")
    r = entry.get("run")
    if r:
        parts.append(f"run {r['status']} plan={r['plan']}" + (f"@{r['change_point']}" if r.get("change_point") else "")
                     + (f" {r['strategy']}" if r.get("strategy") else ""))
    metrics = " ".join(f"{k} {v:.4f}" for k, v in entry["metrics"].items() if v is not None)
    parts.append(f"champion v{entry['champion']} {metrics} {entry['seconds']:.1f}s")
    return "  ".join(parts)


# ---------------------------------------------------------------------------- the oracle's rows


def _fit_candidate(spec: Any, train: Any, valid: Any, w_train: Any = None, w_valid: Any = None) -> Any:
    """The pipeline's candidate, bare: the tree preprocessor fitted on train, XGBoost with the
    spec's parameters early-stopped on valid (weighted when weights are given)."""
    from sklearn.pipeline import Pipeline

    from pipeline.features import build_preprocessor
    from pipeline.train import candidate_estimator

    columns = list(spec.model_columns)
    preprocess = build_preprocessor(spec, "tree")
    m_train = preprocess.fit_transform(train[columns])
    m_valid = preprocess.transform(valid[columns])
    model = candidate_estimator(spec)
    model.fit(m_train, _y(spec, train), sample_weight=w_train, eval_set=[(m_valid, _y(spec, valid))],
              sample_weight_eval_set=None if w_valid is None else [w_valid], verbose=False)
    return Pipeline([("preprocess", preprocess), ("model", model)])


def _y(spec: Any, frame: Any) -> Any:
    import numpy as np

    return frame[spec.target_column].to_numpy(dtype=np.int64 if spec.task == "binary" else float)


def _primary(spec: Any, model: Any, frame: Any, weights: Any = None) -> float:
    """The primary metric of ``model`` on ``frame``, oriented so that higher is better."""
    from pipeline import metrics
    from pipeline.features import score

    value = metrics.point(spec.task, frame[spec.target_column].to_numpy(dtype=float), score(spec, model, frame),
                          spec.params.decision_threshold, weights=weights)[spec.primary_metric]
    return value if metrics.higher_is_better(spec.primary_metric) else -value


def oracle_model(spec: Any, frames: list[Any], t: int, change: int | None) -> tuple[Any, dict[str, Any]]:
    """The model the pipeline would train on day ``t`` knowing the true change day ``change``."""
    import pandas as pd

    from pipeline.adaptation import STRATEGIES, density_ratio, pre_change_weights
    from pipeline.features import plan_windows, split_frame, window_bounds
    from pipeline.runenv import to_as_of

    as_of = to_as_of(Calendar.day(t))
    first = max(0, t - spec.windows.total_days - spec.label_delay_days)
    rows = pd.concat(frames[first:t], ignore_index=True)
    ts = pd.to_datetime(rows[spec.timestamp_column], utc=True)
    labelled_end = pd.Timestamp(as_of - timedelta(days=spec.label_delay_days))
    labelled, recent = rows[ts < labelled_end], rows[ts >= labelled_end]
    standard_bounds = window_bounds(spec, as_of)
    train, valid, test = split_frame(spec, labelled, as_of, bounds=standard_bounds)
    standard = _fit_candidate(spec, train, valid)
    info: dict[str, Any] = {"t": t, "choice": "standard", "plan": "standard", "change_point": None,
                            "train_window": [b.isoformat() for b in standard_bounds["train"]], "strategy": None}
    if change is None or t <= change:
        return standard, info
    cp = Calendar.day(change).isoformat()
    c = pd.Timestamp(cp, tz="UTC")
    bounds, plan = plan_windows(spec, rows, as_of, change_point=cp)
    info["plan_considered"] = plan.kind

    def part(frame: Any, after: bool) -> Any:
        stamps = pd.to_datetime(frame[spec.timestamp_column], utc=True)
        return frame[(stamps >= c) if after else (stamps < c)]

    if plan.kind == "anchored":
        a_train, a_valid, a_test = split_frame(spec, labelled, as_of, bounds=bounds)
        after = pd.concat([part(f, True) for f in (a_train, a_valid, a_test, recent)], ignore_index=True)
        fitted = {}
        for strategy in STRATEGIES:
            weights, _ = pre_change_weights(spec, a_train, cp, strategy, after=after)
            model = _fit_candidate(spec, a_train, a_valid, weights)
            fitted[strategy] = (_primary(spec, model, a_valid), model)
        strategy = max(fitted, key=lambda s: fitted[s][0])
        anchored = fitted[strategy][1]
        # The anchored test window lies inside the standard test window: neither model saw it.
        if _primary(spec, anchored, a_test) > _primary(spec, standard, a_test):
            info.update(choice="anchored", plan="anchored", change_point=cp, strategy=strategy,
                        train_window=[b.isoformat() for b in bounds["train"]])
            return anchored, info
        info["rejected"] = {"plan": "anchored", "strategy": strategy}
        return standard, info
    if plan.kind == "covariate":
        before = pd.concat([part(f, False) for f in (train, valid, test)], ignore_index=True)
        after = pd.concat([part(f, True) for f in (train, valid, test, recent)], ignore_index=True)
        (w_train, w_valid, w_test), ratio = density_ratio(spec, before, after, [train, valid, test])
        if ratio.get("method") == "none":
            return standard, info
        weighted = _fit_candidate(spec, train, valid, w_train, w_valid)
        if _primary(spec, weighted, test, w_test) > _primary(spec, standard, test, w_test):
            info.update(choice="covariate", plan="covariate", change_point=cp, strategy="importance")
            return weighted, info
        info["rejected"] = {"plan": "covariate"}
    return standard, info


def run_oracle(run: StreamRun, frames: list[Any]) -> dict[str, Any]:
    """Every day's oracle model scored on every later day (rows cached one per train day)."""
    import pandas as pd

    from pipeline.features import score

    home = run.policy_dir("oracle")
    stamp = run.stamp(policy="oracle")
    cached = _read_json(home / "result.json")
    if cached and cached.get("stamp") == stamp:
        return cached
    if _read_json(home / "stamp.json") != stamp:
        shutil.rmtree(home, ignore_errors=True)
        _write_json(home / "stamp.json", stamp)
    cal = run.calendar
    spec = run.spec(run.settings(home))
    change = None if run.kind == "none" else cal.c
    rows = []
    started = time.perf_counter()
    for t in range(cal.w, cal.e + 1):
        path = home / "rows" / f"{t}.json"
        row = _read_json(path)
        if row is None:
            t0 = time.perf_counter()
            model, info = oracle_model(spec, frames, t, change)
            later = pd.concat(frames[t:cal.e + 1], ignore_index=True)
            prediction = score(spec, model, later)
            scores, offset = {}, 0
            for e in range(t, cal.e + 1):
                n = len(frames[e])
                scores[str(e)] = day_metrics(spec, frames[e], prediction[offset:offset + n])
                offset += n
            row = {**info, "scores": scores, "seconds": round(time.perf_counter() - t0, 1)}
            _write_json(path, row)
            print(f"{run.name:<34} oracle    {cal.iso(t)} (c{t - cal.c:+d})  model {row['choice']}"
                  + (f" {row['strategy']}" if row.get("strategy") else "")
                  + f"  {' '.join(f'{k} {v:.4f}' for k, v in scores[str(t)].items() if v is not None)}"
                  f" {row['seconds']:.1f}s", flush=True)
        rows.append(row)
    result = {"stamp": stamp, "policy": "oracle", "rows": rows, "wall_seconds": round(time.perf_counter() - started, 1),
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    _write_json(home / "result.json", result)
    return result


def run_stream(name: str, config: Config, code: str) -> str:
    """Everything one stream needs, in this process; results land in the workdir."""
    quiet(preload=True)
    run = stream_run(name, config, code)
    run.root.mkdir(parents=True, exist_ok=True)
    os.chdir(run.root)
    ensure_lake(run)
    frames = _frames(run)
    if set(config.policies) - {"oracle"}:
        ensure_seed(run)
    for policy in config.policies:
        if policy == "oracle":
            run_oracle(run, frames)
        else:
            run_policy(run, policy, frames)
    return name


# --------------------------------------------------------------------------------------------
# summary (main process)


def oracle_schedule(rows: list[dict[str, Any]], cal: Calendar, metric: str, alpha: float) -> dict[str, Any]:
    """Dynamic programme over "keep the current model or switch to the one trained today":
    minimises ``alpha * switches + sum_{e=W+1..E} (1 - M[current, e][metric])``."""
    by_t = {r["t"]: r for r in rows}

    def loss(t: int, e: int) -> float:
        value = by_t[t]["scores"][str(e)][metric]
        return 1.0 - (value if value is not None else 0.5)

    best = {cal.w: 0.0}
    parents: list[dict[int, int]] = []
    for e in range(cal.w + 1, cal.e + 1):
        keep = {t: cost + loss(t, e) for t, cost in best.items()}
        origin = min(best, key=best.get)
        parent = {t: t for t in keep}
        if e in by_t:
            keep[e] = best[origin] + alpha + loss(e, e)
            parent[e] = origin
        best = keep
        parents.append(parent)
    current = min(best, key=best.get)
    path = []
    for parent in reversed(parents):
        path.append(current)
        current = parent[current]
    path.reverse()
    switches = [cal.w + 1 + j for j, t in enumerate(path) if t != (path[j - 1] if j else cal.w)]
    return {"alpha": alpha, "cost": round(min(best.values()), 4), "switches": switches,
            "models": path}


def _train_end(info: dict[str, Any]) -> str | None:
    window = info.get("train_window") or []
    return window[1] if len(window) == 2 else None


def _post_change(info: dict[str, Any], change_iso: str, slack_iso: str) -> tuple[bool, bool]:
    """(adapted, labelled): importance-weighted towards the post-change mix at a change point no
    earlier than ``slack_iso``; its training window holds labelled rows from the change on."""
    adapted = info.get("window_plan", info.get("plan")) == "covariate" and (info.get("change_point") or "") >= slack_iso
    end = _train_end(info)
    labelled = bool(end and end[:19] > change_iso)
    return adapted, labelled


def _drifted_features(run: StreamRun, spec: Any, entry: dict[str, Any]) -> list[str]:
    """Features the monitor reported drifted that day (its decision record, if the trace lacks them)."""
    monitor = entry.get("monitor") or {}
    if "drifted_features" in monitor:
        return list(monitor["drifted_features"])
    record = _read_json(run.policy_dir("loop") / "artifacts" / spec.name / "monitor" / entry["day"] / "decision.json")
    return list(((record or {}).get("feature_drift") or {}).get("features") or [])


def _first(days: list[int], cond: list[bool], origin: int) -> int | None:
    return next((d - origin for d, ok in zip(days, cond) if ok), None)


def _mean(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return round(sum(vs) / len(vs), 5) if vs else None


def summarise_stream(run: StreamRun, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-policy summaries, the oracle's schedules and the daily traces of one stream."""
    config, cal = run.config, run.calendar
    spec = run.spec(run.settings(run.root))
    primary, cost_metric = spec.primary_metric, COST_METRIC[run.task]
    days = list(range(cal.w + 1, cal.e + 1))
    after_start = cal.c + spec.label_delay_days + TARGET_EXTRA_DAYS
    after = [i for i in days if i >= after_start]
    stable = [i for i in days if i <= cal.c] if run.harmful else days
    change_iso = datetime.combine(cal.day(cal.c), datetime.min.time(), timezone.utc).isoformat()[:19]
    slack_iso = cal.iso(cal.c - CHANGE_POINT_SLACK_DAYS)
    traces: dict[str, dict[str, Any]] = {}

    for policy, result in results.items():
        if policy == "oracle":
            continue
        entries = {d["i"]: d for d in result["days"]}
        info = result["champions"]
        runs = [i for i in days if entries[i]["run"]]
        traces[policy] = {
            "metrics": {i: entries[i]["metrics"] for i in days},
            "retrain_days": runs,
            "promotion_days": [i for i in runs if entries[i]["run"].get("promoted")],
            "failed_runs": [i for i in runs if entries[i]["run"].get("status") == "failed"],
            "champion": {i: info[entries[i]["champion"]] for i in days},
            "entries": entries, "wall_seconds": result["wall_seconds"],
        }
    schedules = {}
    if "oracle" in results:
        rows = results["oracle"]["rows"]
        by_t = {r["t"]: r for r in rows}
        for alpha in config.alphas:
            schedules[alpha] = oracle_schedule(rows, cal, cost_metric, alpha)
        middle = schedules[config.middle_alpha]
        traces["oracle"] = {
            "metrics": {i: by_t[t]["scores"][str(i)] for i, t in zip(days, middle["models"])},
            "retrain_days": middle["switches"], "promotion_days": middle["switches"], "failed_runs": [],
            "champion": {i: by_t[t] for i, t in zip(days, middle["models"])},
            "entries": {}, "wall_seconds": results["oracle"]["wall_seconds"],
        }

    summaries = {}
    for policy, tr in traces.items():
        champions = [tr["champion"][i] for i in days]
        flags = [_post_change(c, change_iso, slack_iso) for c in champions]
        from_change = [i >= cal.c for i in days]
        adapted = [a and ok for (a, _), ok in zip(flags, from_change)]
        labelled = [lab and ok for (_, lab), ok in zip(flags, from_change)]
        drift = run.kind != "none"
        summary: dict[str, Any] = {
            "detection_delay_days": None,
            "days_to_post_change_champion": _first(days, [a or b for a, b in zip(adapted, labelled)], cal.c)
            if drift else None,
            "days_to_adapted_champion": _first(days, adapted, cal.c) if drift else None,
            "days_to_labelled_post_change_champion": _first(days, labelled, cal.c) if drift else None,
            "retrains": len(tr["retrain_days"]),
            "promotions": len(tr["promotion_days"]),
            "failed_runs": len(tr["failed_runs"]),
            "retrains_on_stable_days": len([i for i in tr["retrain_days"] if i in stable]),
            "false_alarms_per_100_stable_days": round(
                100.0 * len([i for i in tr["retrain_days"] if i in stable]) / len(stable), 2) if stable else None,
            "stable_days": len(stable),
            f"mean_{primary}_after": _mean([tr["metrics"][i].get(primary) for i in after]),
            f"mean_{primary}_before": _mean([tr["metrics"][i].get(primary) for i in days if i < cal.c]),
            "wall_seconds": tr["wall_seconds"],
        }
        summary["mean_metric_after"] = summary[f"mean_{primary}_after"]
        if cost_metric != primary:
            summary[f"mean_{cost_metric}_after"] = _mean([tr["metrics"][i].get(cost_metric) for i in after])
        daily_loss = sum(1.0 - (tr["metrics"][i].get(cost_metric) or 0.0) for i in days)
        if policy == "oracle":
            summary["cost"] = {str(a): schedules[a]["cost"] for a in config.alphas}
            summary["retrains_by_alpha"] = {str(a): len(schedules[a]["switches"]) for a in config.alphas}
        else:
            summary["cost"] = {str(a): round(a * summary["retrains"] + daily_loss, 4) for a in config.alphas}
        if policy == "loop":
            entries = tr["entries"]
            seen = [bool(entries[i]["monitor"] and (entries[i]["monitor"].get("change")
                                                    or entries[i]["monitor"].get("feature_change")
                                                    or entries[i]["monitor"].get("retrain"))) for i in days]
            summary["detection_delay_days"] = _first(days, [s and i > cal.c for s, i in zip(seen, days)], cal.c) \
                if drift else None
            summary["detections_before_change"] = len([i for s, i in zip(seen, days) if s and i <= cal.c])
            drifted = {i: _drifted_features(run, spec, entries[i]) for i in days}
            reported = [i for i in days if i > cal.c and drifted[i]]
            summary["feature_drift_reported"] = {
                "days_after_change": len(reported), "days_before_change": len([i for i in days
                                                                               if i <= cal.c and drifted[i]]),
                "first_delay_days": reported[0] - cal.c if reported else None,
                "features": sorted({f for i in reported for f in drifted[i]})}
            summary["retrain_requests"] = len([i for i in days if entries[i]["monitor"]
                                               and entries[i]["monitor"].get("retrain")])
            summary["requests"] = [{"day": cal.iso(i), "c": i - cal.c, "kind": entries[i]["monitor"].get("kind"),
                                    "mode": entries[i]["monitor"].get("mode"),
                                    "anchor": entries[i]["monitor"].get("anchor"),
                                    "outcome": (entries[i]["run"] or {}).get("status"),
                                    "plan": (entries[i]["run"] or {}).get("plan"),
                                    "strategy": (entries[i]["run"] or {}).get("strategy"),
                                    "summary": (entries[i]["run"] or {}).get("summary")}
                                   for i in days if entries[i]["monitor"] and entries[i]["monitor"].get("retrain")]
        summaries[policy] = summary

    if "oracle" in summaries:
        ref = summaries["oracle"]["mean_metric_after"]
        for policy, summary in summaries.items():
            value = summary["mean_metric_after"]
            if ref is None or value is None:
                summary["gap_to_oracle"] = None
            elif run.task == "binary":
                summary["gap_to_oracle"] = round(ref - value, 5)
            else:
                summary["gap_to_oracle"] = round(value / ref - 1.0, 5)
    daily = {policy: [{"day": cal.iso(i), "c": i - cal.c, **{k: (round(v, 5) if v is not None else None)
                                                              for k, v in tr["metrics"][i].items()},
                       "champion": str(tr["champion"][i].get("version", tr["champion"][i].get("t"))),
                       "retrain": i in tr["retrain_days"], "promoted": i in tr["promotion_days"],
                       **({"monitor": tr["entries"][i]["monitor"], "run": tr["entries"][i]["run"]}
                          if tr["entries"] else {})}
                      for i in days] for policy, tr in traces.items()}
    for rows in daily.values():
        for row in rows:
            if row.get("monitor"):
                row["monitor"] = {k: v for k, v in row["monitor"].items() if k != "trigger_conf"}
    out = {
        "task": run.task, "kind": run.kind, "harmful": run.harmful, "model": spec.name,
        "primary_metric": primary, "cost_metric": f"1 - {cost_metric}",
        "gap_unit": "AUC (oracle - policy)" if run.task == "binary" else "relative RMSE (policy / oracle - 1)",
        "calendar": {"first_champion": cal.iso(cal.w), "change": cal.iso(cal.c), "end": cal.iso(cal.e),
                     "metric_after_from": cal.iso(after_start), "label_delay_days": spec.label_delay_days,
                     "days": len(days)},
        "summary": summaries,
        "oracle": {"schedules": {str(a): s for a, s in schedules.items()},
                   "models": [{k: v for k, v in r.items() if k != "scores"} for r in results["oracle"]["rows"]]
                   if "oracle" in results else [],
                   "matrix": {str(r["t"]): {e: s.get(cost_metric) for e, s in r["scores"].items()}
                              for r in results["oracle"]["rows"]} if "oracle" in results else {}},
        "daily": daily,
    }
    if "oracle" in results and "never" in traces:
        seed_model = {r["t"]: r for r in results["oracle"]["rows"]}[cal.w]
        out["oracle"]["check_day_w_model_vs_first_champion"] = {
            "oracle_mean": _mean([seed_model["scores"][str(i)].get(primary) for i in days]),
            "pipeline_mean": _mean([traces["never"]["metrics"][i].get(primary) for i in days]),
            "meaning": f"mean daily {primary} over W+1..E of the oracle's bare day-W model and of the pipeline's "
                       "first champion (same windows): how faithful the oracle's re-implementation is"}
    return out


def targets(run: StreamRun, stream: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for one stream, each with its value, threshold and verdict."""
    s = stream["summary"]
    loop = s.get("loop")
    if loop is None:
        return []
    delay = stream["calendar"]["label_delay_days"]
    out = []

    def add(name: str, value: Any, threshold: Any, met: bool | None, note: str = "") -> None:
        out.append({"stream": run.name, "target": name, "value": value, "threshold": threshold, "met": met,
                    "note": note})

    if run.harmful:
        v = loop["days_to_labelled_post_change_champion"]
        judged = run.config.days_after > delay + TARGET_EXTRA_DAYS
        add("labelled post-change champion within label_delay + 3 days", v, delay + TARGET_EXTRA_DAYS,
            (v is not None and v <= delay + TARGET_EXTRA_DAYS) if judged else None,
            "" if judged else "not judged: the stream ends before the deadline")
        if run.kind == "covariate":
            v = loop["days_to_adapted_champion"]
            add("importance-weighted champion within 3 days of a harmful covariate shift", v, TARGET_ADAPTED_DAYS,
                v is not None and v <= TARGET_ADAPTED_DAYS)
    else:
        requests = loop.get("retrain_requests", 0)
        drift = loop.get("feature_drift_reported") or {}
        add("no retrain request on a stable or harmless stream", requests, 0, requests == 0,
            f"feature drift reported on {drift.get('days_after_change', 0)} day(s) after the change"
            + (f" ({', '.join(drift['features'])})" if drift.get("features") else ""))
    gap = loop.get("gap_to_oracle")
    if gap is not None:
        limit = TARGET_GAP[run.task]
        add("mean metric from change + label_delay + 3 within the oracle's tolerance", gap, limit, gap <= limit,
            "AUC points" if run.task == "binary" else "relative RMSE")
    if "nightly" in s:
        limit = TARGET_RETRAIN_SHARE * s["nightly"]["retrains"]
        add("at most 1/5 of nightly's retrains", loop["retrains"], limit, loop["retrains"] <= limit)
    contenders = {p: s[p]["cost"][str(run.config.middle_alpha)] for p in CONTENDERS if p in s}
    if len(contenders) > 1:
        best = min(contenders, key=contenders.get)
        add(f"lowest cost among {', '.join(contenders)} at alpha {run.config.middle_alpha:g}",
            contenders["loop"], contenders[best], contenders["loop"] <= contenders[best] + 1e-9,
            f"cheapest: {best}")
    return out


# --------------------------------------------------------------------------------------------
# outputs


def plot_stream(run: StreamRun, stream: dict[str, Any], path: Path) -> None:
    """Daily metric of each policy, retrain (open) and promotion (filled) markers, the change."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    primary = stream["primary_metric"]
    fig = Figure(figsize=(11, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for policy, rows in stream["daily"].items():
        color, style = POLICY_STYLE.get(policy, ("tab:purple", "-"))
        x = [r["c"] for r in rows]
        y = [r.get(primary) for r in rows]
        s = stream["summary"][policy]
        label = f"{policy} ({s['retrains']} retrains, {s['promotions']} promotions)"
        if policy == "oracle":
            label = f"oracle at alpha {run.config.middle_alpha:g} ({s['retrains']} switches)"
        ax.plot(x, y, color=color, ls=style, lw=1.4, label=label)
        retrains = [(r["c"], r.get(primary)) for r in rows if r["retrain"] and not r["promoted"]]
        promotions = [(r["c"], r.get(primary)) for r in rows if r["promoted"]]
        if retrains:
            ax.scatter(*zip(*retrains), marker="^", facecolors="none", edgecolors=color, s=36, zorder=3)
        if promotions:
            ax.scatter(*zip(*promotions), marker="o", color=color, s=30, zorder=4)
    delay = stream["calendar"]["label_delay_days"]
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.axvline(delay + TARGET_EXTRA_DAYS, color="k", lw=0.6, ls=":")
    ax.text(0.3, 0.02, "change", transform=ax.get_xaxis_transform(), fontsize=8)
    ax.text(delay + TARGET_EXTRA_DAYS + 0.3, 0.02, f"change + {delay} + {TARGET_EXTRA_DAYS}",
            transform=ax.get_xaxis_transform(), fontsize=8)
    ax.set(xlabel="days since the change (day 0 = first drifted day)",
           ylabel=f"daily {primary} of the champion in service",
           title=f"{run.name}: {run.kind}{' (harmful)' if run.harmful else ''}, "
                 f"{run.config.rows_per_day} rows/day; triangle = retrain, dot = promotion")
    if primary == "rmse":
        ax.invert_yaxis()
        ax.set_ylabel("daily RMSE of the champion in service (axis inverted: up is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    config = report["config"]
    alphas = config["alphas"]
    first = next(iter(report["streams"].values()), None)
    w = (date.fromisoformat(first["calendar"]["first_champion"]) - START).days if first else "W"
    intro = (
        f"Retraining benchmark (`python -m benchmarks.retraining`): {config['rows_per_day']} rows/day; the first "
        f"champion is trained on day W = label_delay + train + valid + test days = {w}, the stream changes on "
        f"W + {config['days_before']} and runs {config['days_after']} days after the change; periodic every "
        f"{config['k']} days; oracle at alpha {config['middle_alpha']:g}. Delays in days after the change "
        "(adapted = importance-weighted champion; labelled = champion trained on post-change labelled rows); mean "
        "metric and gap to the oracle over change + label_delay + 3 .. end (AUC points for binary, % RMSE for "
        "regression; positive = worse than the oracle); cost = alpha x retrains + sum of (1 - AUC) or (1 - R2) over "
        f"the days after W. Machine: {report['machine']['cores']} cores, wall {(report['wall_seconds'] or 0) / 60:.0f} min."
    )
    lines = [
        intro,
        "",
        ("| stream | policy | detection delay | post-change champion (adapted / labelled) "
         "| false alarms /100 stable days | retrains | promotions | mean metric after | gap to oracle | "
         + " | ".join(f"cost α={a:g}" for a in alphas) + " |"),
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(alphas),
    ]
    for name, stream in report["streams"].items():
        binary = stream["task"] == "binary"
        for policy, s in stream["summary"].items():
            gap = s.get("gap_to_oracle")
            gap_text = "–" if gap is None else (f"{100 * gap:+.2f} pt" if binary else f"{100 * gap:+.1f} %")
            metric = s["mean_metric_after"]
            metric_text = _fmt(metric, 4 if binary else 1) + ("" if binary else " RMSE")
            lines.append(
                f"| {name} | {policy} | {_fmt(s['detection_delay_days'])} | {_fmt(s['days_to_adapted_champion'])} / "
                f"{_fmt(s['days_to_labelled_post_change_champion'])} | "
                f"{_fmt(s['false_alarms_per_100_stable_days'], 1)} | "
                f"{s['retrains']} | {s['promotions']} | {metric_text} | {gap_text} | "
                + " | ".join(_fmt(s["cost"][str(a)], 2) for a in alphas) + " |")
    lines += ["", "Targets (the loop):", ""]
    for t in report["targets"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"- {mark}: {t['stream']}: {t['target']}: {_fmt(t['value'])} vs {_fmt(t['threshold'])}"
                     + (f" ({t['note']})" if t.get("note") else ""))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# command line


def _parse(argv: list[str] | None) -> tuple[Config, bool]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retraining", description=__doc__.splitlines()[0])
    parser.add_argument("--streams", help=f"comma-separated stream names (default: {','.join(DEFAULT_STREAMS)})")
    parser.add_argument("--rows-per-day", type=int)
    parser.add_argument("--days-before", type=int, help="stable days between the first champion and the change "
                                                        "(default 20)")
    parser.add_argument("--days-after", type=int, help="days from the change to the end (default 30)")
    parser.add_argument("--policies", help=f"comma-separated, from {','.join(POLICIES)} (default: all)")
    parser.add_argument("--k", type=int, help="periodic: retrain every k days (default 7)")
    parser.add_argument("--alphas", help="comma-separated retrain costs (default 0.1,0.5,2.5)")
    parser.add_argument("--quick", action="store_true",
                        help="one stream, 600 rows/day, 2 days before and 3 after the change, k 2 (a smoke test)")
    parser.add_argument("--out", help="directory for retraining.json, .md and the PNGs (default benchmarks/results; "
                                      "with --quick: <workdir>/results)")
    parser.add_argument("--workdir", help="cache and run directories (default /tmp/driftline-retraining)")
    parser.add_argument("--jobs", type=int, help="streams run in parallel processes (default 2)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild the JSON, table and plots from the results cached in --workdir "
                             "for these data settings (whatever pipeline code produced them; the report names it)")
    args = parser.parse_args(argv)
    config = Config()
    if args.quick:
        config = replace(config, streams=("credit_default_concept",), rows_per_day=600, days_before=2, days_after=3,
                         k=2, jobs=1, workdir="/tmp/driftline-retraining-quick")
    updates: dict[str, Any] = {}
    if args.streams:
        updates["streams"] = tuple(s.strip() for s in args.streams.split(",") if s.strip())
    if args.policies:
        updates["policies"] = tuple(p.strip() for p in args.policies.split(",") if p.strip())
        unknown = set(updates["policies"]) - set(POLICIES)
        if unknown:
            parser.error(f"unknown policies {sorted(unknown)}; known: {', '.join(POLICIES)}")
    if args.alphas:
        updates["alphas"] = tuple(float(a) for a in args.alphas.split(","))
    for field in ("rows_per_day", "days_before", "days_after", "k", "jobs", "workdir"):
        if getattr(args, field) is not None:
            updates[field] = getattr(args, field)
    config = replace(config, **updates)
    out = args.out or (str(Path(config.workdir) / "results") if args.quick else config.out)
    config = replace(config, out=str(Path(out).resolve()), workdir=str(Path(config.workdir).resolve()))
    if config.days_before < 1 or config.days_after < 1 or config.k < 1:
        parser.error("--days-before, --days-after and --k must be >= 1")
    return config, args.report_only


def main(argv: list[str] | None = None) -> int:
    config, report_only = _parse(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads starve the other stream
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in config.streams:
        stream_run(name, config, "")
    manifest_path = Path(config.workdir) / config.data_key / "manifest.json"
    errors: dict[str, str] = {}
    if report_only:
        manifest = _read_json(manifest_path) or {}
    else:
        manifest = {"code": code_hash(), "git_head_at_start": git_head(),
                    "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "jobs": config.jobs}
        _write_json(manifest_path, manifest)
        print(f"retraining benchmark: {len(config.streams)} stream(s) x {', '.join(config.policies)}; "
              f"{config.rows_per_day} rows/day; workdir {config.workdir}; code {manifest['code']}; "
              f"jobs {config.jobs}", flush=True)
        started = time.perf_counter()
        errors = run_streams(config, manifest["code"])
        manifest["wall_seconds"] = round(time.perf_counter() - started, 1)
        manifest["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        _write_json(manifest_path, manifest)
    for name, error in errors.items():
        print(f"{name}: FAILED: {error}", file=sys.stderr, flush=True)
    report = build_report(config, manifest, errors)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "retraining.json", report)
    (out / "retraining.md").write_text(markdown(report))
    print((out / "retraining.md").read_text())
    print(f"wrote {out / 'retraining.json'}, {out / 'retraining.md'} and {len(report['streams'])} PNG(s)", flush=True)
    return 1 if errors else 0


def run_streams(config: Config, code: str) -> dict[str, str]:
    """Run every stream (``config.jobs`` processes); returns stream -> error for those that failed."""
    errors: dict[str, str] = {}
    cwd = os.getcwd()
    if config.jobs <= 1 or len(config.streams) == 1:
        for name in config.streams:
            try:
                run_stream(name, config, code)
            except Exception as err:  # reported; the other streams still run
                errors[name] = f"{type(err).__name__}: {err}"
            finally:
                os.chdir(cwd)
        return errors
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=config.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(run_stream, name, config, code) for name in config.streams}
        for name, future in futures.items():
            try:
                future.result()
            except Exception as err:  # reported; the other streams still run
                errors[name] = f"{type(err).__name__}: {err}"
    return errors


def build_report(config: Config, manifest: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """Read the cached results of ``config`` back (those of its data settings, whatever code made
    them: the report names it), summarise, plot; the JSON report."""
    quiet()
    streams, all_targets, seeds, codes, finished = {}, [], {}, set(), []
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in config.streams:
        if name in errors:
            continue
        run = stream_run(name, config, manifest.get("code", ""))
        results = {}
        for policy in config.policies:
            path = run.policy_dir(policy) / "result.json"
            result = _read_json(path)
            if result is not None and result["stamp"].get("data") == config.data_key:
                results[policy] = result
                codes.add(result["stamp"].get("code"))
                finished.append(path.stat().st_mtime)
        if not results:
            continue
        run = replace(run, code=next(iter(codes)))
        stream = summarise_stream(run, results)
        seed = _read_json(run.root / "seed" / "seed.json") or {}
        clone = [r.get("clone_seconds") for p, r in results.items() if p != "oracle"]
        seeds[name] = {"first_champion_seconds": seed.get("seconds"), "clone_seconds": _mean(clone)}
        stream["first_champion"] = seeds[name]
        streams[name] = stream
        all_targets += targets(run, stream)
        plot_stream(run, stream, out / f"retraining_{name}.png")
    wall = manifest.get("wall_seconds")
    if wall is None and finished:
        lakes = [(run_dir / "lake" / "complete.json") for run_dir in
                 (Path(config.workdir) / config.data_key / n for n in streams)]
        first = min((p.stat().st_mtime for p in lakes if p.exists()), default=min(finished))
        wall = round(max(finished) - first, 1)
    return {
        "benchmark": "retraining",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {**asdict(config), "middle_alpha": config.middle_alpha},
        "code": {"pipeline_sha256_12": sorted(c for c in codes if c), "git_head_at_start":
                 manifest.get("git_head_at_start"), "started_at": manifest.get("started_at")},
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_start": manifest.get("load_average_at_start"),
                    "load_average_at_end": manifest.get("load_average_at_end")
                    or [round(x, 2) for x in os.getloadavg()],
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
        "wall_seconds": wall,
        "wall_note": None if manifest.get("wall_seconds") is not None else
        "estimated from file times (first lake written to last result written)",
        "errors": errors,
        "definitions": {
            "daily metric": "primary metric of the champion in service after the day's runs on that day's rows "
                            "with true labels",
            "detection_delay_days": "loop: first monitor day after the change whose decision holds a change, a "
                                    "feature change or a retrain request, minus the change day (>= 1)",
            "days_to_adapted_champion": "first day >= change whose champion is importance-weighted (plan covariate) "
                                        f"at a change point >= change - {CHANGE_POINT_SLACK_DAYS} days, minus the "
                                        "change day",
            "days_to_labelled_post_change_champion": "first day >= change whose champion's training window holds "
                                                     "labelled rows from the change day on, minus the change day",
            "false_alarms_per_100_stable_days": "retrain runs started on stable days (harmful streams: days up to "
                                                "the change day, whose data is all pre-change; others: every day) "
                                                "per 100 such days; for the loop, its retrain requests",
            "mean_metric_after": "mean daily primary metric over change + label_delay + 3 .. end",
            "gap_to_oracle": "binary: oracle - policy in AUC; regression: policy RMSE / oracle RMSE - 1 (same days)",
            "cost": "alpha x retrains + sum over W+1..end of (1 - AUC) or (1 - R2); the oracle's per alpha is its "
                    "own dynamic-programme optimum",
        },
        "first_champion_vs_copy": seeds,
        "streams": streams,
        "targets": all_targets,
    }


if __name__ == "__main__":
    sys.exit(main())
