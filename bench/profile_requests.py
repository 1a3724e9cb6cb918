"""Profile (not a test): the app's per-request cost in-process, without a server or a client.

Seeds the same database as bench_portal.py (published tenders in SQLite; Redis db
``--redis-db`` if a server answers, else fakeredis), then calls the WSGI application
directly ``--requests`` times per path and prints the CPU time per request
(``time.process_time``) and, with ``--profile``, cProfile's top entries by cumulative and
own time. Compare two code versions by running this script on each.

    python bench/profile_requests.py [--requests 2000] [--profile] [--path /healthz ...]

A path containing ``{day}`` gets a new date per request, e.g. the cache-missed list:
``--path '/tenders/?from=2000-01-01&to={day}'`` (as bench_portal.py's misses).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_portal import redis_reachable, seed  # noqa: E402

REPO = HERE.parent


def environ_for(path: str, host: str) -> dict:
    from werkzeug.test import EnvironBuilder

    path, _, query = path.partition("?")
    builder = EnvironBuilder(
        path=path,
        query_string=query,
        headers={"Accept-Language": "en", "Host": host},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    return builder.get_environ()


def run(app, path: str, host: str, count: int) -> float:
    """CPU seconds per request over `count` requests of `path`."""
    statuses: dict[str, int] = {}

    def start_response(status, headers, exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1

    # A path with "{day}" gets a new date per request (2100-01-01 + n days): the list's
    # `to={day}` misses the page cache every time with the same rows (as bench_portal.py).
    varying = "{day}" in path
    template = environ_for(path.replace("{day}", "2100-01-01"), host)
    run.counter = getattr(run, "counter", 0)
    start = time.process_time()
    for _ in range(count):
        environ = dict(template)
        if varying:
            run.counter += 1
            day = date(2100, 1, 1) + timedelta(days=run.counter)
            environ["QUERY_STRING"] = path.partition("?")[2].replace("{day}", day.isoformat())
        environ["wsgi.input"] = io.BytesIO(b"")
        body = app(environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close:
            close()
    spent = time.process_time() - start
    if list(statuses) != ["200 OK"]:
        print(f"  {path}: statuses {statuses}")
    return spent / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--tenders", type=int, default=200)
    parser.add_argument("--redis-db", type=int, default=15)
    parser.add_argument("--path", action="append")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--callers", help="also print the callers of functions matching this")
    args = parser.parse_args()
    paths = args.path or ["/healthz", "/tenders/"]
    redis_url = (
        f"redis://127.0.0.1:6379/{args.redis_db}" if redis_reachable("127.0.0.1", 6379) else ""
    )
    workdir = Path(tempfile.mkdtemp(prefix="fairbid-profile-"))
    try:
        database = workdir / "fairbid.db"
        seed(database, workdir, redis_url, args.tenders)
        sys.path.insert(0, str(REPO))
        from app import create_app
        from config import DevelopmentConfig

        # The settings gunicorn's app gets in bench_portal.py (development, this database).
        app = create_app(
            DevelopmentConfig,
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
            INSTANCE_DIR=workdir,
            REDIS_URL=redis_url,
        )
        host = app.config["SERVER_NAME"]
        # The bare Flask endpoint of bench_portal.py, returning the portal's bytes.
        from flask import Flask, Response

        page = app.test_client().get("/tenders/", headers={"Host": host}).data
        bare = Flask("bare")
        bare.add_url_rule("/page", "page", lambda: Response(page, mimetype="text/html"))
        per = min(run(bare, "/page", host, args.requests) for _ in range(3))
        print(f"{'bare Flask endpoint':<40} {per * 1e6:8.0f} µs CPU per request (best of 3)")
        for path in paths:
            run(app, path, host, 50)  # warm-up (and the cache filled)
            per = min(run(app, path, host, args.requests) for _ in range(3))
            print(f"{path:<40} {per * 1e6:8.0f} µs CPU per request (best of 3)")
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                run(app, path, host, args.requests)
                profiler.disable()
                for key in ("cumulative", "tottime"):
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(args.top)
                    print(out.getvalue())
                if args.callers:
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).print_callers(args.callers)
                    print(out.getvalue())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
