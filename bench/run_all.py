"""Run every benchmark of bench/ with short settings (`make bench`), one after the other.

Before each one prints the machine (cores, memory), the UTC date, the load average and the
exact command, so that its figures can go into bench/README.md as they are; each benchmark
prints its own figures and the ratio to its baseline measured in the same run.

    python bench/run_all.py [--only envelope,opening] [--skip surge,surge-tokens,watchers]
                            [--database-url postgresql://postgres@127.0.0.1:5432/fairbid_bench]

The surge (bidder sessions) and watcher benchmarks need PostgreSQL and Redis: they use the
database given (create it once: `createdb -h 127.0.0.1 -U postgres fairbid_bench`) and Redis
db 14 (flushed by the surge benchmark); surge-tokens (API-token uploads all at once) needs
the database only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def benchmarks(database_url: str) -> list[tuple[str, list[str]]]:
    """(name, arguments): short runs; each script's docstring gives the full-size command."""
    return [
        ("envelope", ["bench_envelope.py", "--size-mib", "64", "--repeat", "5"]),
        ("opening", ["bench_opening.py", "--envelopes", "500", "--size-mb", "2", "--repeat", "3"]),
        ("portal", ["bench_portal.py", "--requests", "1000", "--redis-db", "14"]),
        ("scoring", ["bench_scoring.py", "--repeat", "3"]),
        ("record", ["bench_record.py", "--repeat", "2"]),
        ("lots", ["bench_lots.py", "--repeat", "2"]),
        (
            "surge",
            [
                "bench_surge.py",
                "--sessions",
                "60",
                "--size",
                "2",
                "--window",
                "20",
                "--portal-before",
                "5",
                "--database-url",
                database_url,
                "--redis-url",
                "redis://127.0.0.1:6379/14",
            ],
        ),
        (
            "surge-tokens",
            ["bench_surge.py", "--uploads", "100", "--database-url", database_url],
        ),
        (
            "watchers",
            [
                "bench_watchers.py",
                "--watchers",
                "200",
                "--events",
                "5",
                "--requests",
                "500",
                "--database-url",
                database_url,
                "--redis-url",
                "redis://127.0.0.1:6379/14",
            ],
        ),
    ]


def machine() -> str:
    cores = os.cpu_count()
    with open("/proc/meminfo") as handle:
        total_kib = int(handle.readline().split()[1])
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{cores} cores, {total_kib / 2**20:.0f} GiB RAM; {when}; load average {load}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names")
    parser.add_argument("--skip", default="", help="comma-separated names")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/fairbid_bench"
    )
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    skip = {name for name in args.skip.split(",") if name}
    failed = []
    for name, argv in benchmarks(args.database_url):
        if (only and name not in only) or name in skip:
            continue
        command = [sys.executable, str(HERE / argv[0]), *argv[1:]]
        shown = " ".join(shlex.quote(part) for part in [".venv/bin/python", f"bench/{argv[0]}"])
        shown += " " + " ".join(shlex.quote(part) for part in argv[1:])
        print(f"=== {name}: {shown}\n    {machine()}", flush=True)
        start = time.perf_counter()
        status = subprocess.run(command, cwd=REPO, check=False).returncode
        took = time.perf_counter() - start
        print(f"=== {name}: exit {status} in {took:.0f} s; load after: {machine()}\n", flush=True)
        if status:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
