"""Profile (not a test): where the time of one envelope upload goes, in-process.

Seeds the same tender, bidders and envelopes as bench_surge.py (PostgreSQL schema of its
own at ``--database-url``, dropped at the end), then posts ``--uploads`` envelopes one after
the other straight into the WSGI application (no server, no client) and prints the wall
and CPU time per upload and, with ``--profile``, cProfile's top entries. Sequential: this
shows the cost of one upload, not the waits under concurrency (bench_surge.py measures
those).

    python bench/profile_surge.py --database-url postgresql://... [--uploads 30] [--profile]
        [--input server|bytesio]

``--input server`` (the default) gives the body as gunicorn's body reader does: an object
with ``read`` only, each call returning new bytes (werkzeug then takes its copying path);
``bytesio`` gives an ``io.BytesIO``, whose ``readinto`` werkzeug uses.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _servers import schema_of_its_own  # noqa: E402
from bench_surge import seed  # noqa: E402

REPO = HERE.parent


class ServerInput:
    """A request body as gunicorn's reader gives it: ``read`` only, new bytes each call."""

    def __init__(self, body: io.BytesIO) -> None:
        self._body = body

    def read(self, size: int = -1) -> bytes:
        return self._body.read(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=30)
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sql", action="store_true", help="print the SQL of the 2nd upload")
    parser.add_argument("--input", choices=("server", "bytesio"), default="server")
    args = parser.parse_args()

    with schema_of_its_own(args.database_url, "profile_surge") as (database_url, workdir):
        instance = workdir / "instance"
        # Before anything imports config.py, which reads the environment once.
        os.environ.update(
            FAIRBID_ENV="development",
            DATABASE_URL=database_url,
            REDIS_URL="",
            FAIRBID_INSTANCE_DIR=str(instance),
        )
        tender_id, tokens, bodies = seed(database_url, instance, args.uploads, args.size)
        from werkzeug.test import EnvironBuilder

        from app import create_app

        app = create_app()
        path = f"/api/v1/tenders/{tender_id}/bids"
        statuses: dict[str, int] = {}

        def start_response(status, headers, exc_info=None):
            statuses[status] = statuses.get(status, 0) + 1

        def upload(index: int) -> None:
            environ = EnvironBuilder(
                path=path,
                method="POST",
                headers={
                    "Authorization": f"Bearer {tokens[index]}",
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(len(bodies[index])),
                },
                environ_base={"REMOTE_ADDR": "127.0.0.1"},
            ).get_environ()
            body = io.BytesIO(bodies[index])
            environ["wsgi.input"] = body if args.input == "bytesio" else ServerInput(body)
            environ["CONTENT_LENGTH"] = str(len(bodies[index]))
            result = app(environ, start_response)
            body = b"".join(result)
            if index == 0:
                print(f"first answer: {body[:300]!r}")
            getattr(result, "close", lambda: None)()

        upload(0)  # warm-up: imports, the connection pool, the receipt key
        if args.sql:
            from sqlalchemy import event

            from app.extensions import db

            with app.app_context():
                engine = db.engine

            def show(conn, cursor, statement, parameters, context, executemany):
                print("SQL:", " ".join(statement.split())[:160])

            event.listen(engine, "before_cursor_execute", show)
            upload(1)
            event.remove(engine, "before_cursor_execute", show)
        profiler = cProfile.Profile() if args.profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for index in range(1, args.uploads):
            upload(index)
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        n = args.uploads - 1
        print(f"statuses: {statuses}")
        print(f"per upload: wall {wall / n * 1000:.1f} ms, CPU {cpu / n * 1000:.1f} ms")
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())


if __name__ == "__main__":
    main()
