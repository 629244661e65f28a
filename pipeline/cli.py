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
import logging
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

    options = DemoOptions(rows_per_day=args.rows_per_day, seed=args.seed,
                          drift_day=args.drift_day, drift_kind=args.drift_kind,
                          bad_day=args.bad_day, bad_kind=args.bad_kind)
    summary = generate(args.out, args.start, args.days, options, model=args.model, fmt=args.format,
                       pg_uri=args.to_postgres, pg_table=args.table, progress=True)
    _print_json(summary)
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest one window for a model into its run prefix; print the Snapshot record."""
    from pipeline.artifacts import run_prefix
    from pipeline.config import find_spec
    from pipeline.ingest import ingest
    from pipeline.storage import Store, default_s3_client, is_s3

    spec = find_spec(args.model, settings)
    needs_s3 = is_s3(settings.artifact_root) or (spec.source.kind == "lake" and is_s3(spec.source.uri or ""))
    s3_client = default_s3_client() if needs_s3 else None
    end = datetime(args.date.year, args.date.month, args.date.day, tzinfo=timezone.utc)
    store = Store.for_uri(settings.artifact_root, s3_client)
    snapshot = ingest(spec, end, store, run_prefix(settings.artifact_root, spec.name, args.date),
                      days=args.days, s3_client=s3_client, pg_uri=args.pg_uri)
    _print_json(snapshot.to_dict())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m pipeline`` parser; each sub-command sets ``func`` to its ``cmd_*``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="driftline: retraining pipeline commands (no Airflow needed).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write deterministic synthetic demo data",
                         description="Write demo rows as hive partitions <out>/<model>/ds=YYYY-MM-DD/ "
                                     "and/or append them to a Postgres table.")
    gen.add_argument("--model", default="credit_default", help="lake sub-folder (default: credit_default)")
    gen.add_argument("--out", help="lake root (local dir or s3://bucket/prefix); optional with --to-postgres")
    gen.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    gen.add_argument("--days", type=_positive, required=True)
    gen.add_argument("--rows-per-day", type=_positive, default=2000)
    gen.add_argument("--drift-day", type=_day, help="inject drift from this day on")
    gen.add_argument("--drift-kind", choices=("covariate", "concept"), default="covariate")
    gen.add_argument("--bad-day", type=_day, help="inject bad data on this day")
    gen.add_argument("--bad-kind", choices=("nulls", "schema", "range", "duplicates"), default="nulls")
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
    return parser


def _check_generate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.out is None and args.to_postgres is None:
        parser.error("generate: give --out, --to-postgres URL, or both")
    if args.to_postgres and not args.table:
        parser.error("generate: --to-postgres needs --table")


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Parse ``argv``, run the command, and return the exit status (2 on a DriftlineError)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    check: Callable[[argparse.ArgumentParser, argparse.Namespace], None] | None = getattr(args, "check", None)
    if check is not None:
        check(parser, args)
    try:
        return args.func(args, settings or Settings.from_env())
    except DriftlineError as err:
        print(f"driftline {args.command} failed ({type(err).__name__}): {err}", file=sys.stderr)
        return EXIT_FAILED
