"""``python -m pipeline <command>``: driftline from a shell, without Airflow.

Each command is one small function ``cmd_<name>(args, settings) -> int`` registered in
:func:`build_parser` with ``set_defaults(func=cmd_<name>)`` (and optionally ``check=`` a
function that rejects bad argument combinations with ``parser.error``), so adding a command is
one parser block and one function. Results are
printed to stdout as JSON; a :class:`~pipeline.errors.DriftlineError` prints its message to
stderr and exits with status 2 (no traceback), since it already says what is wrong and where.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from datetime import date, datetime, timezone
from typing import Any, Callable, Sequence

from pipeline.config import Settings
from pipeline.errors import DriftlineError

EXIT_OK = 0
EXIT_FAILED = 2


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _print_json(obj: Any) -> None:
    from pipeline.storage import dumps

    print(dumps(obj))


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Write deterministic demo data to a hive lake and/or a Postgres table; print a summary."""
    from pipeline.demo import DemoOptions, generate

    options = DemoOptions(rows_per_day=args.rows_per_day, seed=args.seed, task=args.task,
                          drift_day=args.drift_day, drift_kind=args.drift_kind,
                          transition_days=args.transition_days, period_days=args.period_days,
                          bad_day=args.bad_day, bad_kind=args.bad_kind, label_delay_days=args.label_delay_days)
    summary = generate(args.out, args.start, args.days, options, model=args.model, fmt=args.format,
                       pg_uri=args.to_postgres, pg_table=args.table, progress=True, as_of=args.as_of)
    _print_json(summary)
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest one window for a model into a new run prefix of its date; print the Snapshot record."""
    from pipeline.artifacts import new_run_id, run_prefix
    from pipeline.config import find_spec
    from pipeline.ingest import ingest
    from pipeline.storage import Store, default_s3_client, is_s3

    spec = find_spec(args.model, settings)
    needs_s3 = is_s3(settings.artifact_root) or (spec.source.kind == "lake" and is_s3(spec.source.uri or ""))
    s3_client = default_s3_client() if needs_s3 else None
    end = datetime(args.date.year, args.date.month, args.date.day, tzinfo=timezone.utc)
    store = Store.for_uri(settings.artifact_root, s3_client)
    snapshot = ingest(spec, end, store, run_prefix(settings.artifact_root, spec.name, args.date, new_run_id()),
                      days=args.days, s3_client=s3_client, pg_uri=args.pg_uri)
    _print_json(snapshot.to_dict())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m pipeline`` parser; each sub-command sets ``func`` to its ``cmd_*``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="driftline: retraining pipeline commands (no Airflow needed).")
    _log_flags(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from pipeline.dashboard import DEFAULT_DAYS
    from pipeline.demo import BAD_KINDS, DRIFT_KINDS, TASKS

    gen = sub.add_parser("generate", help="write deterministic synthetic demo data",
                         description="Write demo rows as hive partitions <out>/<model>/ds=YYYY-MM-DD/ "
                                     "and/or append them to a Postgres table. Drift kinds: "
                                     + "; ".join(f"{k}: {v.description}" for k, v in DRIFT_KINDS.items()) + ".")
    gen.add_argument("--model", help="lake sub-folder (default: the task's demo model, "
                                     + " or ".join(f"{t.model} ({name})" for name, t in TASKS.items()) + ")")
    gen.add_argument("--task", choices=tuple(TASKS), default="binary", help="target kind (default: binary)")
    gen.add_argument("--out", help="lake root (local dir or s3://bucket/prefix); optional with --to-postgres")
    gen.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    gen.add_argument("--days", type=_positive, required=True)
    gen.add_argument("--rows-per-day", type=_positive, default=2000)
    gen.add_argument("--drift-day", type=_day, help="inject drift from this day on")
    gen.add_argument("--drift-kind", choices=tuple(DRIFT_KINDS), default="covariate")
    gen.add_argument("--transition-days", type=_positive, default=14, help="concept_gradual: days of the ramp")
    gen.add_argument("--period-days", type=_positive, default=14, help="recurring: days of each concept phase")
    gen.add_argument("--as-of", type=_day, help="write the lake as it looks on this day (recent labels missing)")
    gen.add_argument("--label-delay-days", type=int, default=0,
                     help="with --as-of: rows on or after as-of minus this many days have a null target")
    gen.add_argument("--bad-day", type=_day, help="inject bad data on this day")
    gen.add_argument("--bad-kind", choices=BAD_KINDS, default="nulls")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    gen.add_argument("--to-postgres", metavar="URL", help="also append the rows to this PostgreSQL database")
    gen.add_argument("--table", help="Postgres table ([schema.]name) for --to-postgres")
    gen.set_defaults(func=cmd_generate, check=_check_generate)

    ing = sub.add_parser("ingest", help="read one window of a model's source into a snapshot",
                         description="Read [date - days, date) from the model's source into "
                                     "<artifact_root>/<model>/runs/<date>/snapshot.parquet.")
    ing.add_argument("--model", required=True, help="model name (a spec in the config directory)")
    ing.add_argument("--date", type=_day, required=True, help="data interval end (exclusive), YYYY-MM-DD")
    ing.add_argument("--days", type=_positive, help="window length (default: the spec's total window)")
    ing.add_argument("--pg-uri", help="PostgreSQL URI for a postgres source")
    ing.set_defaults(func=cmd_ingest)

    run = sub.add_parser("run", help="run the whole retrain for one date in this process (no Airflow)",
                         description="ingest -> validate -> split -> train -> evaluate -> promote -> report, "
                                     "exactly as the retrain DAG does, for data before --date.")
    run.add_argument("model")
    run.add_argument("--date", type=_day, required=True, help="as-of day: data before it is used")
    run.add_argument("--dry-run", action="store_true", help="evaluate and register, never move the champion")
    run.add_argument("--force-promote", action="store_true", help="skip gates 2-6 (needs --reason)")
    run.add_argument("--reason", help="why (recorded); required with --force-promote")
    run.add_argument("--pg-uri", help="PostgreSQL URI for a postgres source")
    run.add_argument("--data-docs", action="store_true",
                     help="render the validation's Data Docs after the decision (default: leave them for "
                          "`data-docs`, as the DAG leaves them to its data_docs task; a failed validation "
                          "renders them at once)")
    run.add_argument("--dask-scheduler", metavar="ADDRESS",
                     help="Dask scheduler (tcp://host:8786) for a spec with training.engine: dask "
                          "(default: DRIFTLINE_DASK_SCHEDULER)")
    run.add_argument("--conf", type=_json_object,
                     help="a run conf as JSON, e.g. the monitor's request: "
                          "$(python -m pipeline show MODEL --monitor --date D --trigger-conf)")
    run.set_defaults(func=cmd_run, check=_check_run)

    docs = sub.add_parser("data-docs", help="render the Data Docs retrain runs left pending",
                          description="Runs leave their validation's Data Docs to the DAG's data_docs task (or "
                                      "this command); this renders the pending ones from each run's stored "
                                      "GX results.")
    docs.add_argument("model")
    docs.add_argument("--date", type=_day, help="only the runs of this as-of day (default: every day)")
    docs.add_argument("--all", action="store_true", help="re-render rendered ones too")
    docs.set_defaults(func=cmd_data_docs)

    mon = sub.add_parser("monitor", help="run the drift monitor for one date in this process (no Airflow)")
    mon.add_argument("model")
    mon.add_argument("--date", type=_day, required=True, help="as-of day: the window before it is judged")
    mon.add_argument("--pg-uri", help="PostgreSQL URI for a postgres source")
    mon.set_defaults(func=cmd_monitor)

    status = sub.add_parser("status", help="champion, challenger, versions and alias history of a model")
    status.add_argument("model")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(func=cmd_status)

    rollback = sub.add_parser("rollback", help="move the champion back (default: to the previous champion)")
    rollback.add_argument("model")
    rollback.add_argument("--to-version", help="the version to make champion")
    rollback.add_argument("--reason", required=True, help="why (recorded in the alias history)")
    rollback.set_defaults(func=cmd_rollback)

    show = sub.add_parser("show", help="print the decision record of a retrain (or monitor) run")
    show.add_argument("model")
    show.add_argument("--date", type=_day, required=True)
    show.add_argument("--monitor", action="store_true", help="the monitor's decision for that date")
    show.add_argument("--trigger-conf", action="store_true",
                      help="with --monitor: print only the retrain conf JSON if a retrain was requested")
    show.add_argument("--brief", action="store_true", help="the verdict and its deciding reason only")
    show.add_argument("--run", help="a run id of that date (default: the latest completed run)")
    show.add_argument("--list", action="store_true", help="list every run of that date")
    show.set_defaults(func=cmd_show)

    board = sub.add_parser("dashboard", help="write the model-health dashboard (one self-contained HTML page)",
                           description="Draw a model's monitored days -- realised and estimated performance, drift "
                                       "per feature, prediction drift, retrain requests, promotions and rollbacks, "
                                       "with the rule's thresholds -- into one HTML page that opens offline.")
    board.add_argument("model")
    board.add_argument("--out", help="where to write it: a file path or s3:// URI (default: ./<model>-dashboard.html)")
    board.add_argument("--days", type=_positive, default=DEFAULT_DAYS,
                       help=f"days shown, ending on --end (default: {DEFAULT_DAYS})")
    board.add_argument("--end", type=_day, help="last day shown (default: the latest monitored day)")
    board.set_defaults(func=cmd_dashboard)

    prune = sub.add_parser("prune", help="delete failed and abandoned runs older than the retention")
    prune.add_argument("model")
    prune.add_argument("--older-than-days", type=_positive, help="default: the spec's runtime.failed_run_retention_days")
    prune.set_defaults(func=cmd_prune)

    reference = sub.add_parser("spec-reference", help="print the model spec's field reference (markdown)",
                               description="Every field of a model spec with its type, default, allowed values "
                                           "and description, generated from pipeline/config.py.")
    reference.add_argument("--out", help="write it to this file (docs/spec-reference.md is the committed copy)")
    reference.set_defaults(func=cmd_spec_reference)

    suggest = sub.add_parser("suggest-suite", help="draft a Great Expectations suite from a reference window",
                             description="Profile [date - days, date) of the model's source and print "
                                         "(or write) a GX suite JSON to start from.")
    suggest.add_argument("model", nargs="?", help="the model's name (as every other command takes it)")
    suggest.add_argument("--model", dest="model_flag", help=argparse.SUPPRESS)  # the earlier spelling
    suggest.add_argument("--data", help="lake URI to profile instead of the spec's source (local or s3://)")
    suggest.add_argument("--pg-uri", help="PostgreSQL URI for a postgres source")
    suggest.add_argument("--date", type=_day, help="end of the reference window (default: today, UTC)")
    suggest.add_argument("--days", type=_positive, default=14)
    suggest.add_argument("--margin", type=float, default=0.1, help="relative widening of numeric ranges")
    suggest.add_argument("--out", help="write the suite here instead of printing it")
    suggest.set_defaults(func=cmd_suggest_suite, check=_check_suggest)
    for command in sub.choices.values():  # accepted after the command too: `run ... --verbose`
        _log_flags(command, argparse.SUPPRESS)
    return parser


def _log_flags(parser: argparse.ArgumentParser, default: object) -> None:
    logs = parser.add_mutually_exclusive_group()
    logs.add_argument("-v", "--verbose", action="store_true", default=default,
                      help="also show the INFO logs of Great Expectations, MLflow and the other libraries")
    logs.add_argument("-q", "--quiet", action="store_true", default=default, help="warnings and errors only")


def _check_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from pipeline.config import MAX_REASON_CHARS

    if args.force_promote and not args.reason:
        parser.error("run: --force-promote needs --reason")
    if args.reason and len(args.reason) > MAX_REASON_CHARS:
        parser.error(f"run: --reason is {len(args.reason)} characters; keep it under {MAX_REASON_CHARS} (link a "
                     "ticket or document for the rest)")


def _env(args: argparse.Namespace, settings: Settings, **kwargs: Any) -> Any:
    from pipeline.config import find_spec
    from pipeline.runenv import RunEnv

    from pipeline.artifacts import new_run_id

    artifact_run = new_run_id()
    run_id = f"cli__{artifact_run}"
    trigger = {"kind": "manual", "run_type": "cli", "run_id": run_id, "by": getpass.getuser(),
               "reason": getattr(args, "reason", None)}
    conf = getattr(args, "conf", None)
    if conf:
        trigger.update(trigger_from_conf(conf))
    return RunEnv.local(find_spec(args.model, settings), args.date, settings=settings,
                        pg_uri=getattr(args, "pg_uri", None), trigger=trigger,
                        dask_scheduler=getattr(args, "dask_scheduler", None),
                        lineage={"driftline.cli_run_id": run_id}, run_id=artifact_run, **kwargs)


def trigger_from_conf(conf: dict[str, Any]) -> dict[str, Any]:
    """The trigger fields a run's conf carries (a monitor's ``trigger_conf``: kind drift, the
    change point and mode its windows anchor at, the reason and report)."""
    out: dict[str, Any] = {}
    if conf.get("trigger") == "drift":
        out["kind"] = "drift"
    for key in ("reason", "report_uri", "monitor_run_id", "change_point", "mode", "expected_loss"):
        if conf.get(key) is not None:
            out[key] = conf[key]
    if conf.get("kind"):
        out["retrain_kind"] = conf["kind"]
    return out


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import retrain
    from pipeline.storage import join

    env = _env(args, settings, dry_run=args.dry_run, force_promote=args.force_promote, reason=args.reason)
    report = retrain.run_all(env, data_docs=args.data_docs)
    _print_json(report)
    validation = join(env.run_prefix, "validation.json")
    if not args.data_docs and env.store.exists(validation) and env.store.read_json(validation).get("data_docs_pending"):
        print(f"Data Docs are pending: python -m pipeline data-docs {env.spec.name} --date {env.day} renders them",
              file=sys.stderr)
    return EXIT_OK


def cmd_data_docs(args: argparse.Namespace, settings: Settings) -> int:
    """Render the Data Docs that retrain runs left pending (of one date, or of every date)."""
    from pipeline.artifacts import date_prefix
    from pipeline.config import find_spec
    from pipeline.storage import Store, default_s3_client, is_s3, join
    from pipeline.validate import render_data_docs

    spec = find_spec(args.model, settings)
    prefix = (date_prefix(settings.artifact_root, spec.name, args.date, "runs") if args.date
              else join(settings.artifact_root, spec.name, "runs"))
    store = Store.for_uri(prefix, default_s3_client() if is_s3(prefix) else None)
    rendered = []
    for uri in sorted(u for u in store.list(prefix) if u.endswith("/validation.json")):
        if args.all or store.read_json(uri).get("data_docs_pending"):
            rendered.append(render_data_docs(store, uri.rsplit("/", 1)[0]))
    _print_json({"rendered": rendered, "model_site": join(settings.artifact_root, spec.name, "data_docs", "index.html")})
    return EXIT_OK


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import monitor

    env = _env(args, settings)
    champion = monitor.champion_step(env)
    validated = monitor.validate_step(env, monitor.ingest_step(env, champion))
    _print_json(monitor.measure_step(env, champion, validated).to_dict())
    return EXIT_OK


def _registry(args: argparse.Namespace, settings: Settings) -> tuple[Any, Any]:
    from mlflow import MlflowClient

    from pipeline.config import find_spec

    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri), find_spec(args.model, settings)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import registry

    client, spec = _registry(args, settings)
    state = registry.status(client, spec)
    if args.json:
        _print_json(state)
    else:
        print(registry.format_status(state))
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import registry

    client, spec = _registry(args, settings)
    result = registry.rollback(client, spec, to_version=args.to_version, reason=args.reason,
                               actor=f"cli:{getpass.getuser()}")
    print(result.message)
    _print_json(result.to_dict())
    return EXIT_OK


def _stamp(iso: str) -> str:
    """An ISO instant as a day when it is midnight, else to the minute."""
    return iso[:10] if iso[11:19] in ("", "00:00:00") else iso[:16].replace("T", " ")


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.artifacts import date_prefix, latest_decision_uri, list_runs
    from pipeline.storage import Store, default_s3_client, is_s3, join

    prefix = date_prefix(settings.artifact_root, args.model, args.date, "monitor" if args.monitor else "runs")
    store = Store.for_uri(prefix, default_s3_client() if is_s3(prefix) else None)
    if args.list:
        runs = list_runs(store, prefix)
        latest = latest_decision_uri(store, prefix)
        print(f"{'monitor' if args.monitor else 'retrain'} runs of {args.model} for {args.date} ({len(runs)}):")
        for run in runs:
            mark = " <- latest" if run["decision_uri"] and run["decision_uri"] == latest else ""
            print(f"  {run['run_id']}  {run['status']:<13} {run['prefix']}{mark}")
        return EXIT_OK
    uri = join(prefix, args.run, "decision.json") if args.run else latest_decision_uri(store, prefix)
    if uri is None:
        from pipeline.storage import ObjectNotFound

        raise ObjectNotFound(f"no completed {'monitor' if args.monitor else 'retrain'} run of {args.model} for "
                             f"{args.date} under {prefix} (python -m pipeline show {args.model} --date {args.date} "
                             f"{'--monitor ' if args.monitor else ''}--list lists its runs)")
    record = store.read_json(uri)
    if args.trigger_conf:
        if record.get("trigger_conf"):
            print(json.dumps(record["trigger_conf"]))
        return EXIT_OK
    if args.monitor:
        print(f"monitor {args.model} {args.date}: {record['status'].upper()} (retrain={record['retrain']}"
              + (f", {record.get('retrain_kind')}, {record.get('mode')}" if record.get("retrain") else "") + ")")
        if record.get("waiting"):
            print(f"  {record['waiting']}")
        if args.brief:
            for reason in record.get("reasons", [])[-1:]:
                print(f"  - {reason}")
            return EXIT_OK
    else:
        print(f"retrain {args.model} {args.date}: {record['status'].upper()} -- {record['summary']}")
        print(f"  champion: {record['champion_before']} -> {record['champion_after']}"
              f"   registered: v{record['candidate_version']} ({record.get('chosen') or 'candidate'})"
              f"   trigger: {record['trigger'].get('kind')}")
        if record.get("windows"):
            plan, adaptation = record.get("plan") or {}, record.get("adaptation") or {}
            how = plan.get("kind", "standard")
            if plan.get("change_point"):
                how += f" at the change on {plan['change_point']}"
            if plan.get("post_change_rows"):
                how += f", {plan['post_change_rows']} labelled rows after it"
            if adaptation.get("strategy"):
                how += f"; pre-change rows: {adaptation['strategy']}"
            print(f"  windows ({how}): " + ", ".join(
                f"{name} {_stamp(w[0])}..{_stamp(w[1])}" for name, w in record["windows"].items()))
        evidence = record.get("evidence") or {}
        if evidence.get("quarantined_rows"):
            print(f"  quarantined {evidence['quarantined_rows']} of {evidence.get('rows')} rows: "
                  + ", ".join(f"{k} {v}" for k, v in (evidence.get("quarantine_reasons") or {}).items()))
        for warning in evidence.get("validation_warnings") or []:
            print(f"  validation warning: {warning}")
        if evidence.get("ignored_files"):
            print(f"  files not read (not the source's format): {', '.join(evidence['ignored_files'][:5])}")
        if args.brief:
            print(f"  - {record.get('choice') or (record.get('reasons') or [''])[0]}")
            return EXIT_OK
        for gate in record.get("gates", []):
            mark = {True: "pass", False: "FAIL", None: "skip"}[gate["passed"]]
            print(f"  [{mark}] {gate['name']}: {gate['detail']}")
    for reason in record.get("reasons", []):
        print(f"  - {reason}")
    print(f"  record: {uri}")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    """Render the model-health dashboard from the monitor's and retrain's records and the alias
    history; write it to ``--out``."""
    from pathlib import Path

    from pipeline import registry
    from pipeline.dashboard import load_dashboard, render_dashboard
    from pipeline.storage import Store, default_s3_client, is_s3

    client, spec = _registry(args, settings)
    root = settings.artifact_root
    store = Store.for_uri(root, default_s3_client() if is_s3(root) else None)
    data = load_dashboard(store, root, spec.name, alias_history=registry.history(client, spec), end_day=args.end,
                          days=args.days)
    out = args.out or f"{spec.name}-dashboard.html"
    Store.for_uri(out, default_s3_client() if is_s3(out) else None).write_text(out, render_dashboard(data))
    where = out if is_s3(out) else Path(out).resolve().as_uri()
    print(f"wrote {out}: {spec.name}, {len(data.monitored)} monitored day(s) from {data.first_day} to "
          f"{data.last_day}, {len(data.events)} event(s); open {where} in a browser (works offline)")
    return EXIT_OK


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete failed and abandoned runs older than the retention (never one a version points at)."""
    from pipeline.artifacts import prune_runs
    from pipeline.storage import Store, default_s3_client, is_s3

    client, spec = _registry(args, settings)
    days = args.older_than_days or spec.runtime.failed_run_retention_days
    if not days:
        print(f"{spec.name}: no retention set (runtime.failed_run_retention_days, or --older-than-days): nothing pruned")
        return EXIT_OK
    keep = set()
    for mv in client.search_model_versions(f"name = '{spec.registry_name}'"):
        if (mv.tags or {}).get("driftline.artifacts"):
            keep.add(mv.tags["driftline.artifacts"].rstrip("/"))
    root = settings.artifact_root
    store = Store.for_uri(root, default_s3_client() if is_s3(root) else None)
    deleted = prune_runs(store, root, spec.name, older_than_days=days, keep=keep)
    print(f"{spec.name}: pruned {len(deleted)} failed or abandoned run(s) older than {days} day(s)")
    for prefix in deleted:
        print(f"  {prefix}")
    return EXIT_OK


def cmd_spec_reference(args: argparse.Namespace, settings: Settings) -> int:
    """Print (or write with ``--out``) the spec field reference generated from the schema."""
    from pathlib import Path

    from pipeline.spec_reference import render

    text = render()
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_suggest_suite(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    from pipeline.config import find_spec
    from pipeline.ingest import EmptyWindow, ingest
    from pipeline.runenv import to_as_of
    from pipeline.storage import Store, default_s3_client, is_s3
    from pipeline.validate import suggest_suite

    spec = find_spec(args.model, settings)
    if args.data:
        spec = spec.model_copy(update={"source": spec.source.model_copy(update={"kind": "lake", "uri": args.data})})
    end = to_as_of(args.date or datetime.now(timezone.utc))
    s3 = default_s3_client() if is_s3(spec.source.uri or "") else None
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.for_uri(tmp)
        try:
            snapshot = ingest(spec, end, store, tmp, days=args.days, s3_client=s3, pg_uri=args.pg_uri)
        except EmptyWindow as err:
            if args.date:
                raise
            raise EmptyWindow(f"{err}. Without --date the reference window is the {args.days} days before today: "
                              "give --date YYYY-MM-DD, the day after the last day of a clean stretch of your "
                              "data") from None
        suite = suggest_suite(spec, store.read_parquet(snapshot.uri), margin=args.margin)
    text = json.dumps(suite, indent=2)
    if args.out:
        Store.for_uri(args.out).write_text(args.out, text + "\n")
        print(f"wrote {args.out} ({len(suite.get('expectations', []))} expectations from {snapshot.rows} rows)")
    else:
        print(text)
    note = _monitor_window_note(spec, snapshot.rows, args.days - len(snapshot.missing_days))
    if note:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK


def _monitor_window_note(spec: Any, rows: int, days_with_rows: int) -> str | None:
    """A warning when one monitor window of this data would hold fewer rows than validation and
    the monitor require: every monitor run would then end as bad data."""
    import math

    per_day = rows / max(days_with_rows, 1)
    per_window = per_day * spec.windows.monitor_days
    needed = max(spec.validation.min_rows, spec.drift.min_window_rows)
    if per_window >= needed:
        return None
    return (f"a monitor window of {spec.windows.monitor_days} day(s) holds about {per_window:.0f} rows of this "
            f"data, fewer than the {needed} that validation.min_rows ({spec.validation.min_rows}) and "
            f"drift.min_window_rows ({spec.drift.min_window_rows}) require, so every monitor run would fail "
            f"validation: set windows.monitor_days to {math.ceil(needed / per_day)} in the spec (or lower both "
            f"minimums and draft the suite again)")


def _check_suggest(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.model and args.model_flag and args.model != args.model_flag:
        parser.error(f"suggest-suite: two models given ({args.model!r} and --model {args.model_flag!r})")
    args.model = args.model or args.model_flag
    if not args.model:
        parser.error("suggest-suite: name the model, e.g. `suggest-suite credit_default --date 2026-02-01`")


def _check_generate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.out is None and args.to_postgres is None:
        parser.error("generate: give --out, --to-postgres URL, or both")
    if args.to_postgres and not args.table:
        parser.error("generate: --to-postgres needs --table")
    if args.label_delay_days < 0:
        parser.error(f"generate: --label-delay-days must be >= 0, got {args.label_delay_days}")
    if args.label_delay_days and args.as_of is None:
        parser.error("generate: --label-delay-days needs --as-of (the day the lake is looked at)")


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Parse ``argv``, run the command, and return the exit status (2 on a DriftlineError)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from pipeline.logs import configure, level_from_env
    from pipeline.redact import install_log_redaction, redact

    level, verbose = level_from_env()
    if args.verbose:
        verbose, level = True, min(level, logging.INFO)
    if args.quiet:
        level = logging.WARNING
    configure(level, verbose, handler=True)

    install_log_redaction()
    check: Callable[[argparse.ArgumentParser, argparse.Namespace], None] | None = getattr(args, "check", None)
    if check is not None:
        check(parser, args)
    try:
        status = args.func(args, settings or Settings.from_env())
        sys.stdout.flush()
        return status
    except DriftlineError as err:
        print(redact(f"driftline {args.command} failed ({type(err).__name__}): {err}"), file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`status | head`): not an error of this command. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
