"""Benchmark (not a test): the cached announcement list vs a bare Flask endpoint, both under
gunicorn with the same settings, in one run.

What runs, all on loopback:
- the Fairbid app under gunicorn, on a SQLite file in a temporary directory seeded with
  ``--tenders`` published tenders through the models, Redis at ``--redis`` if a server
  answers there (a database of its own, ``--redis-db``), else the in-process fakeredis
  stand-in (then each gunicorn worker has its own cache);
- a bare Flask app under gunicorn with the same settings, one endpoint returning the very
  bytes the portal served for ``/tenders/`` (same size, no work).

Each target gets a warm-up, then ``--requests`` GETs (in ``--rounds`` interleaved slices)
from ``--concurrency`` client threads (http.client, one connection per request: gunicorn's
sync workers close it anyway). Printed: requests/s, p50 and p99 latency, the CPU the
server's processes used per request (from /proc, master and workers, over the target's
rounds), and the ratios. A third line measures the list with the cache missed on purpose (a
different date range per request, the same 20 rows), to show what the cache buys, and a
fourth the app's own per-request floor (/healthz).

    python bench/bench_portal.py [--tenders 200] [--requests 2000] [--concurrency 16] [--rounds 4]
        [--settings production|sync] [--redis 127.0.0.1:6379] [--redis-db 15]

Both servers run the README's production settings by default (gevent, 2 workers); Redis is
the real server when one answers (use a database of your own: ``--redis-db``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from _servers import PRODUCTION_SETTINGS, GunicornServer
from bench_surge import cpu_seconds, minor_faults

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# The same gunicorn settings for both servers: only the application differs. "production":
# the README's "Production stack" (as bench_surge.py); "sync": the 2 sync workers of the
# figures before 2026-12-05 22:00.
SETTINGS = {
    "production": PRODUCTION_SETTINGS,
    "sync": ["--workers", "2", "--worker-class", "sync", "--timeout", "60"],
}
COMMON_SETTINGS = ["--backlog", "2048", "--log-level", "warning"]


def bare_app():
    """The comparison app (gunicorn imports it as ``bench_portal:bare_app()``)."""
    from flask import Flask, Response

    body = Path(os.environ["BENCH_BARE_HTML"]).read_bytes()
    app = Flask("bare")

    @app.get("/page")
    def page():
        return Response(body, mimetype="text/html")

    return app


def redis_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def seed(database: Path, instance: Path, redis_url: str, count: int) -> None:
    """A migrated SQLite database with `count` published tenders over four centres."""
    sys.path.insert(0, str(REPO))
    from decimal import Decimal

    from flask_migrate import upgrade

    from app import create_app
    from app.accounts import security
    from app.accounts.models import Role, User
    from app.centres.models import TradingCentre
    from app.core.cache import GENERATION_KEY
    from app.core.types import utcnow
    from app.extensions import db, redis_client
    from app.tenders.models import Lot, TemplateVersion, Tender, TenderTemplate
    from config import DevelopmentConfig

    app = create_app(
        DevelopmentConfig,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
        INSTANCE_DIR=instance,
        REDIS_URL=redis_url,
    )
    with app.app_context():
        upgrade()
        centres = [
            TradingCentre(code=f"BENCH{n}", name=f"Bench City Centre {n}", level="city")
            for n in range(4)
        ]
        db.session.add_all(centres)
        db.session.flush()
        staff = User(
            email="bench-staff@example.com",
            full_name="Bench Staff",
            role=Role.STAFF,
            centre_id=centres[0].id,
            password_hash=security.hash_password("bench password 123"),
            email_confirmed_at=utcnow(),
        )
        template = TenderTemplate(key="goods", name="Goods", category="goods")
        db.session.add_all([staff, template])
        db.session.flush()
        version = TemplateVersion(
            template_id=template.id, number=1, yaml_text="key: goods", sha256="0" * 64
        )
        db.session.add(version)
        db.session.flush()
        now = utcnow()
        categories = ["goods", "works", "services", "asset_sale"]
        for n in range(count):
            published = now - timedelta(days=n, hours=n % 7)
            tender = Tender(
                centre_id=centres[n % 4].id,
                template_version_id=version.id,
                reference=f"BENCH-{2025000 + n}",
                title=f"Supply and installation of municipal equipment, batch {n}",
                category=categories[n % 4],
                direction="highest_wins" if n % 4 == 3 else "lowest_wins",
                status="published",
                budget=Decimal(1_000_000 + 1_000 * n),
                bid_bond_amount=Decimal(10_000),
                publication_at=published,
                enquiry_deadline=published + timedelta(days=15),
                submission_deadline=published + timedelta(days=20),
                opening_at=published + timedelta(days=20, hours=1),
                created_by_id=staff.id,
                published_at=published,
                published_by_id=staff.id,
            )
            db.session.add(tender)
            db.session.flush()
            db.session.add(Lot(tender_id=tender.id, number=1, title="Lot 1"))
        db.session.commit()
        if redis_url:
            # Pages cached by an earlier run describe another database.
            redis_client.client.incr(GENERATION_KEY)
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def get(port: int, path: str) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Accept-Language": "en"})
        response = connection.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body
    finally:
        connection.close()


def load(port: int, paths: list[str], concurrency: int) -> dict:
    """GET every path once, `concurrency` at a time; latencies in seconds."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cache: dict[str, int] = {}
    lock = threading.Lock()

    def one(path: str) -> None:
        start = time.perf_counter()
        try:
            status, headers, _body = get(port, path)
        except OSError:
            status, headers = 0, {}
        elapsed = time.perf_counter() - start
        with lock:
            latencies.append(elapsed)
            statuses[status] = statuses.get(status, 0) + 1
            state = headers.get("X-Portal-Cache")
            if state:
                cache[state] = cache.get(state, 0) + 1

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, paths))
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(paths),
        "wall": wall,
        "rps": len(paths) / wall,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "statuses": statuses,
        "cache": cache,
        "latencies": latencies,
    }


def merge(results: list[dict]) -> dict:
    """One target's rounds as one result (rate over the summed wall time)."""
    latencies = sorted(x for result in results for x in result["latencies"])
    statuses: dict[int, int] = {}
    cache: dict[str, int] = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        for state, count in result["cache"].items():
            cache[state] = cache.get(state, 0) + count
    wall = sum(result["wall"] for result in results)
    return {
        "cpu": sum(result.get("cpu", 0.0) for result in results),
        "faults": sum(result.get("faults", 0) for result in results),
        "requests": len(latencies),
        "wall": wall,
        "rps": len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "statuses": statuses,
        "cache": cache,
        "latencies": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenders", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per target")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port to try")
    parser.add_argument("--redis-db", type=int, default=15)
    parser.add_argument("--settings", choices=sorted(SETTINGS), default="production")
    parser.add_argument(
        "--require-redis",
        action="store_true",
        help="stop if no Redis server answers (instead of the in-process stand-in)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="cProfile every worker of both servers into DIR/app and DIR/bare "
        "(gunicorn_profile.py; profiling inflates every figure)",
    )
    args = parser.parse_args()
    gunicorn_settings = SETTINGS[args.settings] + COMMON_SETTINGS
    if args.profile:
        for name in ("app", "bare"):
            (Path(args.profile) / name).mkdir(parents=True, exist_ok=True)
        gunicorn_settings += ["--config", str(HERE / "gunicorn_profile.py")]

    host, _, port = args.redis.partition(":")
    redis_url = (
        f"redis://{host}:{port or 6379}/{args.redis_db}"
        if redis_reachable(host, int(port or 6379))
        else ""
    )
    if args.require_redis and not redis_url:
        parser.error(f"no Redis server answers at {args.redis}")
    workdir = Path(tempfile.mkdtemp(prefix="fairbid-bench-"))
    servers: list[GunicornServer] = []
    try:
        database = workdir / "fairbid.db"
        seed(database, workdir, redis_url, args.tenders)
        portal = GunicornServer(
            "portal",
            "app:create_app()",
            REPO,
            {
                "FAIRBID_ENV": "development",
                "DATABASE_URL": f"sqlite:///{database}",
                "REDIS_URL": redis_url,
                "FAIRBID_INSTANCE_DIR": str(workdir),
                **({"BENCH_PROFILE_DIR": str(Path(args.profile) / "app")} if args.profile else {}),
            },
            workdir / "portal.log",
            gunicorn_settings,
        )
        servers.append(portal)
        portal.wait_ready(lambda port: get(port, "/tenders/")[0] == 200, "/tenders/")
        status, _headers, page = get(portal.port, "/tenders/")
        assert status == 200, status
        (workdir / "page.html").write_bytes(page)
        bare = GunicornServer(
            "bare",
            "bench_portal:bare_app()",
            HERE,
            {
                "BENCH_BARE_HTML": str(workdir / "page.html"),
                **({"BENCH_PROFILE_DIR": str(Path(args.profile) / "bare")} if args.profile else {}),
            },
            workdir / "bare.log",
            gunicorn_settings,
        )
        servers.append(bare)
        bare.wait_ready(lambda port: get(port, "/page")[0] == 200, "/page")

        print(
            f"gunicorn {' '.join(SETTINGS[args.settings])} ({args.settings}); "
            f"{args.tenders} published tenders "
            f"in SQLite; Redis: {redis_url or 'fakeredis (in-process, one cache per worker)'}"
        )
        print(
            f"page: {len(page):,} bytes; {args.requests:,} requests per target, "
            f"{args.concurrency} client threads, after {args.warmup} warm-up requests"
        )
        load(bare.port, ["/page"] * args.warmup, args.concurrency)
        load(portal.port, ["/tenders/"] * args.warmup, args.concurrency)
        # A new date range per request: always a cache miss, always the same 20 rows.
        first = date(2100, 1, 1)
        misses = [
            f"/tenders/?from=2000-01-01&to={first + timedelta(days=n)}"
            for n in range(args.requests)
        ]
        # The app's own floor: every request pays its hooks (session, sign-in, limiter,
        # security headers, locale); /healthz is the lightest page that has them all.
        targets = {
            "bare": (bare.port, ["/page"] * args.requests),
            "cached": (portal.port, ["/tenders/"] * args.requests),
            "uncached": (portal.port, misses),
            "floor": (portal.port, ["/healthz"] * args.requests),
        }
        # Interleaved rounds (each target's requests split into --rounds slices, run in
        # turn): the machine's load drifts over a run, and a target measured in one block
        # would carry whatever load its minute had.
        parts: dict[str, list[dict]] = {name: [] for name in targets}
        for round_number in range(args.rounds):
            for name, (port, paths) in targets.items():
                share = paths[round_number :: args.rounds]
                server = bare if name == "bare" else portal
                before, faults = cpu_seconds(server), minor_faults(server)
                result = load(port, share, args.concurrency)
                result["cpu"] = cpu_seconds(server) - before
                result["faults"] = minor_faults(server) - faults
                parts[name].append(result)
        bare_result, cached, uncached, floor = (merge(parts[name]) for name in targets)

        rows = [
            ("bare Flask endpoint", bare_result),
            ("/tenders/ (Redis-cached)", cached),
            ("/tenders/ (cache missed)", uncached),
            ("/healthz (app floor)", floor),
        ]
        print(
            f"{'target':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU µs/req':>12}"
            f"{'faults/req':>12}  statuses / cache"
        )
        for label, result in rows:
            extra = f"{result['statuses']} {result['cache'] or ''}".strip()
            cpu = result["cpu"] / result["requests"] * 1e6
            faults = result["faults"] / result["requests"]
            print(
                f"{label:<28}{result['rps']:>10.0f}{result['p50'] * 1000:>10.1f}"
                f"{result['p99'] * 1000:>10.1f}{cpu:>12.0f}{faults:>12.1f}  {extra}"
            )
        print(f"ratio cached / bare (req/s):   {cached['rps'] / bare_result['rps']:.2f}")
        print(f"ratio uncached / bare (req/s): {uncached['rps'] / bare_result['rps']:.2f}")
        print(f"ratio cached / uncached:       {cached['rps'] / uncached['rps']:.2f}")
        print(f"ratio cached / app floor:      {cached['rps'] / floor['rps']:.2f}")
    finally:
        for server in reversed(servers):
            server.stop()
        if redis_url:
            _forget_cached_pages(redis_url)
        shutil.rmtree(workdir, ignore_errors=True)


def _forget_cached_pages(redis_url: str) -> None:
    """Leave the bench's Redis database as we found it, apart from the generation."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = [k for k in client.scan_iter("fairbid:portal:*") if not k.endswith(b"generation")]
    if keys:
        client.delete(*keys)


if __name__ == "__main__":
    main()
