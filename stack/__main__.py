"""``python -m stack up|down|status|env`` -- the native stack (see :mod:`stack.native`)."""

from __future__ import annotations

import argparse
import sys

from stack.native import Stack, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    stack = Stack.from_env()
    try:
        if args.command == "up":
            timings = stack.up()
            v = stack.values
            print(f"native stack up in {timings['total']:.0f} s ({stack.root}):")
            print(f"  Airflow   {stack.api_url}   user {v['AIRFLOW_ADMIN_USER']}, password in {stack.root / 'stack.env'}")
            print(f"  MLflow    {stack.mlflow_url}")
            print(f"  S3 API    {stack.s3_endpoint}   buckets lake, artifacts, mlflow")
            print(f"  Postgres  127.0.0.1:{v['POSTGRES_PORT']}   databases airflow, mlflow, source")
            print(f"  logs      {stack.logs}/   stop with: make stack-down")
        elif args.command == "down":
            stopped = stack.down()
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        elif args.command == "status":
            running = stack.running()
            print("\n".join(f"{name:24} pid {pid}" for name, pid in running.items()) or "not running")
        else:
            print("\n".join(f"export {k}='{v}'" for k, v in sorted(stack.airflow_env().items()) if k != "PATH"))
    except StackError as err:
        print(f"stack {args.command}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
