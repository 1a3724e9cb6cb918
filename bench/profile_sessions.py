"""Profile (not a test): the CPU of each request of one bidder session, in-process.

Seeds what bench_surge.py's sessions mode seeds (PostgreSQL schema of its own at
``--database-url``, dropped at the end; the bidders' password hash at the production argon2
cost), then runs ``--sessions`` bidder sessions one after the other straight into the WSGI
application (Flask's test client: no server, no client, no concurrency) and prints, per
request of the session, the median CPU time (``time.process_time``) and wall time: the
sign-in form, the sign-in POST, the start page, the bid page, the upload's start, its
chunks (1 MiB), its last chunk (the bid's acceptance), the bid page again. Redis is the
real one at ``--redis-url`` (flushed before and after). CSRF is off here (its check is a
few HMACs); everything else is the app's development configuration with production costs.

    python bench/profile_sessions.py --database-url postgresql://... [--sessions 20]
        [--redis-url redis://127.0.0.1:6379/14] [--profile "GET bid page"]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _servers import schema_of_its_own  # noqa: E402
from bench_surge import PASSWORD, seed_sessions  # noqa: E402

REPO = HERE.parent
CHUNK = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--profile", metavar="REQUEST", help='cProfile one request type, e.g. "GET bid page"'
    )
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    profiler = cProfile.Profile()

    import redis

    redis_client = redis.Redis.from_url(args.redis_url)
    redis_client.flushdb()
    stack = contextlib.ExitStack()
    try:
        run = schema_of_its_own(args.database_url, "profile_sessions")
        database_url, workdir = stack.enter_context(run)
        instance = workdir / "instance"
        tender_id, emails, bodies = seed_sessions(
            database_url, instance, args.redis_url, args.sessions, args.size, 30
        )
        from app import create_app
        from config import DevelopmentConfig

        app = create_app(
            DevelopmentConfig,
            SQLALCHEMY_DATABASE_URI=database_url,
            INSTANCE_DIR=instance,
            PLATFORM_KEY_DIR=str(instance / "keys"),
            REDIS_URL=args.redis_url,
            WTF_CSRF_ENABLED=False,
        )
        cpu: dict[str, list[float]] = {}
        wall: dict[str, list[float]] = {}

        def timed(name: str, expected: int, client, method: str, path: str, **kwargs):
            profiled = name == args.profile
            started_cpu, started = time.process_time(), time.perf_counter()
            if profiled:
                profiler.enable()
            response = client.open(path, method=method, **kwargs)
            if profiled:
                profiler.disable()
            cpu.setdefault(name, []).append(time.process_time() - started_cpu)
            wall.setdefault(name, []).append(time.perf_counter() - started)
            assert response.status_code == expected, (name, response.status_code)
            return response

        page = f"/bids/tenders/{tender_id}"
        for email, body in zip(emails, bodies, strict=True):
            client = app.test_client()
            timed("GET sign-in form", 200, client, "GET", "/accounts/login")
            login = {"email": email, "password": PASSWORD}
            answer = timed("POST sign-in", 302, client, "POST", "/accounts/login", data=login)
            timed("GET start page", 200, client, "GET", answer.headers["Location"])
            timed("GET bid page", 200, client, "GET", page)
            size = {"size": len(body)}
            answer = timed("POST upload start", 201, client, "POST", f"{page}/uploads", json=size)
            url = json.loads(answer.data)["url"]
            for offset in range(0, len(body), CHUNK):
                end = min(offset + CHUNK, len(body))
                headers = {
                    "Content-Range": f"bytes {offset}-{end - 1}/{len(body)}",
                    "Content-Type": "application/octet-stream",
                }
                name = "PUT last chunk" if end == len(body) else "PUT chunk"
                timed(name, 200, client, "PUT", url, data=body[offset:end], headers=headers)
            timed("GET bid page again", 200, client, "GET", page)

        print(
            f"{args.sessions} sessions one after the other, {len(bodies[0]):,}-byte envelopes; "
            f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
        )
        print(f"{'request':<22}{'count':>7}{'CPU ms (median)':>17}{'wall ms (median)':>18}")
        per_session = 0.0
        for name, values in cpu.items():
            median = statistics.median(values)
            per_session += median * len(values) / args.sessions
            print(
                f"{name:<22}{len(values):>7}{median * 1000:>17.1f}"
                f"{statistics.median(wall[name]) * 1000:>18.1f}"
            )
        print(f"CPU per session (sum of the medians × count): {per_session * 1000:.0f} ms")
        if args.profile:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
            stats.print_stats(args.top)
            print(out.getvalue())
    finally:
        stack.close()
        redis_client.flushdb()


if __name__ == "__main__":
    main()
