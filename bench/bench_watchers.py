"""Benchmark (not a test): 1,000 watchers of one live opening on the production stack
(gunicorn with gevent workers, PostgreSQL, Redis), the delivery latency of events from
publish to receipt, and the portal's throughput with and without the watchers, one run.

What runs, all on loopback:
- the Fairbid app under gunicorn with the README's production settings (``--worker-class
  gevent``, ``--workers 2``, ``--worker-connections 2000``), on PostgreSQL (a schema of its
  own in ``--database-url``, dropped at the end) seeded with ``--tenders`` published
  tenders and one closed tender whose opening is awaited, and Redis database
  ``--redis-db``;
- a watcher process (asyncio + aiohttp): ``--watchers`` EventSource-like clients of
  ``/opening/tenders/<id>/events``, spread over loopback addresses 127.0.1.x so that none
  exceeds the per-address cap (``FAIRBID_EVENT_STREAMS_PER_ADDRESS``, 20);
- this process: publishes ``--events`` events on the opening's Redis channel (each with its
  publish time, every ``--interval`` s) while it loads the portal list ``/tenders/``
  (Redis-cached) from ``--concurrency`` threads; the same load runs first without watchers.

Printed: watchers connected and refused, latency p50/p99/max over every (event, watcher)
receipt, events lost, portal req/s and p50/p99 without and with the watchers, the load
average of the (shared) machine before and after.

    python bench/bench_watchers.py [--watchers 1000] [--events 40] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from _servers import PRODUCTION_SETTINGS, GunicornServer

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_portal import get, load  # noqa: E402  (the same client as the portal bench)

# The README's production settings (Production stack), only the bind address differs.
GUNICORN_SETTINGS = [
    *PRODUCTION_SETTINGS,
    "--backlog",
    "2048",
    "--log-level",
    "warning",
]
PER_ADDRESS = 20


def seed(database_url: str, instance: Path, redis_url: str, count: int) -> int:
    """`count` published tenders and one closed tender awaiting its opening; its id."""
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
        SQLALCHEMY_DATABASE_URI=database_url,
        INSTANCE_DIR=instance,
        REDIS_URL=redis_url,
    )
    with app.app_context():
        upgrade()
        centre = TradingCentre(code="WATCH", name="Watch City Centre", level="city")
        db.session.add(centre)
        db.session.flush()
        staff = User(
            email="bench-staff@example.com",
            full_name="Bench Staff",
            role=Role.STAFF,
            centre_id=centre.id,
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
        watched = None
        for n in range(count + 1):
            published = now - timedelta(days=n + 21 if n == 0 else n, hours=n % 7)
            tender = Tender(
                centre_id=centre.id,
                template_version_id=version.id,
                reference=f"WATCH-{2025000 + n}",
                title=f"Supply and installation of municipal equipment, batch {n}",
                category="goods",
                direction="lowest_wins",
                status="closed" if n == 0 else "published",
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
            watched = watched or tender.id
        db.session.commit()
        redis_client.client.incr(GENERATION_KEY)  # cached pages of an earlier run
        # Stream slots an interrupted earlier run may have left (they expire by themselves
        # within a minute; the bench's Redis database is its own).
        stale = list(redis_client.client.scan_iter("fairbid:streams:*"))
        if stale:
            redis_client.client.delete(*stale)
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    return watched


# --- the watcher process ------------------------------------------------------------------


async def _watch(session, url: str, events: int, results: dict, ready: asyncio.Event) -> None:
    counted = False

    def count(outcome: str, key=None) -> None:
        nonlocal counted
        if key is None:
            results[outcome] += 1
        else:
            results[outcome][key] = results[outcome].get(key, 0) + 1
        if not counted:
            counted = True
            results["pending"] -= 1
            if results["pending"] == 0:
                ready.set()

    try:
        async with session.get(url, headers={"Accept": "text/event-stream"}) as response:
            if response.status != 200:
                count("refused", response.status)
                return
            count("connected")
            event = None
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "bench":
                    now = time.time()
                    data = json.loads(line[6:])
                    results["latencies"].append(now - data["t"])
                    if data["seq"] == events - 1:
                        break
    except Exception as error:  # a dropped stream counts as lost events
        count("errors", type(error).__name__)


async def _watchers(port: int, tender: int, count: int, events: int, wait: float) -> dict:
    import aiohttp

    results = {
        "connected": 0,
        "pending": count,
        "refused": {},
        "errors": {},
        "latencies": [],
    }
    ready = asyncio.Event()
    url = f"http://127.0.0.1:{port}/opening/tenders/{tender}/events"
    sessions = []
    tasks = []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    for group in range((count + PER_ADDRESS - 1) // PER_ADDRESS):
        connector = aiohttp.TCPConnector(limit=0, local_addr=(f"127.0.1.{group + 1}", 0))
        session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        sessions.append(session)
        for _ in range(min(PER_ADDRESS, count - group * PER_ADDRESS)):
            tasks.append(asyncio.create_task(_watch(session, url, events, results, ready)))
    await ready.wait()
    print(json.dumps({"ready": results["connected"], "refused": results["refused"]}), flush=True)
    _done, pending = await asyncio.wait(tasks, timeout=wait)
    for task in pending:
        task.cancel()
    for session in sessions:
        await session.close()
    results["unfinished"] = len(pending)
    return results


def watcher_process(args) -> None:
    results = asyncio.run(_watchers(args.port, args.tender, args.watchers, args.events, args.wait))
    print(json.dumps(results), flush=True)


# --- the driver ---------------------------------------------------------------------------


def publish(redis_url: str, channel: str, count: int, interval: float, started: threading.Event):
    import redis

    client = redis.Redis.from_url(redis_url)
    started.wait()
    for seq in range(count):
        client.publish(channel, json.dumps({"event": "bench", "seq": seq, "t": time.time()}))
        time.sleep(interval)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--tenders", type=int, default=200)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/fairbid_live"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    # The watcher process (started by the driver).
    parser.add_argument("--watcher-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tender", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--wait", type=float, default=300, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watcher_process:
        watcher_process(args)
        return

    import psycopg

    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="fairbid-watchers-"))
    schema = f"bench_watchers_{os.getpid()}"
    with psycopg.connect(args.database_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    base = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    database_url = f"{base}?options=-csearch_path%3D{schema}"
    server = None
    try:
        tender = seed(database_url, workdir, args.redis_url, args.tenders)
        server = GunicornServer(
            "fairbid",
            "app:create_app()",
            REPO,
            {
                "FAIRBID_ENV": "development",
                "DATABASE_URL": database_url,
                "REDIS_URL": args.redis_url,
                "FAIRBID_INSTANCE_DIR": str(workdir),
                # Streams outlast the run: every watcher stays on one connection.
                "FAIRBID_EVENT_STREAM_SECONDS": "600",
                "FAIRBID_EVENT_STREAMS_PER_ADDRESS": str(PER_ADDRESS),
            },
            workdir / "gunicorn.log",
            GUNICORN_SETTINGS,
        )
        server.wait_ready(lambda port: get(port, "/tenders/")[0] == 200, "/tenders/")
        print(
            f"gunicorn {' '.join(GUNICORN_SETTINGS[:6])}; PostgreSQL schema {schema}; "
            f"Redis {args.redis_url}; {args.tenders} published tenders + 1 awaiting opening"
        )
        print(
            f"machine: {os.cpu_count()} CPUs; load average before "
            f"{' '.join(f'{v:.2f}' for v in load_before)}"
        )
        paths = ["/tenders/"] * args.requests
        load(server.port, paths[:300], args.concurrency)  # warm-up
        alone = load(server.port, paths, args.concurrency)

        watchers = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--watcher-process",
                "--port",
                str(server.port),
                "--tender",
                str(tender),
                "--watchers",
                str(args.watchers),
                "--events",
                str(args.events),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        started = time.perf_counter()
        ready = json.loads(watchers.stdout.readline())
        connect_time = time.perf_counter() - started
        print(
            f"watchers: {ready['ready']} connected in {connect_time:.1f} s, "
            f"refused {ready['refused'] or 0}"
        )
        go = threading.Event()
        channel = f"fairbid:opening:{tender}"
        publisher = threading.Thread(
            target=publish, args=(args.redis_url, channel, args.events, args.interval, go)
        )
        publisher.start()
        go.set()
        during = load(server.port, paths, args.concurrency)
        publisher.join()
        results = json.loads(watchers.stdout.readline())
        watchers.wait(timeout=60)
        # The site still answers a page that needs the database, with the streams held.
        status = get(server.port, f"/opening/tenders/{tender}")[0]
        load_after = os.getloadavg()

        latencies = results["latencies"]
        expected = ready["ready"] * args.events
        print(
            f"events: {args.events} published every {args.interval} s; receipts "
            f"{len(latencies):,} of {expected:,} expected (lost {expected - len(latencies):,}); "
            f"stream errors {results['errors'] or 0}; unfinished {results['unfinished']}"
        )
        if latencies:
            p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
            print(
                f"delivery latency publish -> receipt: p50 {p50 * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
            )
        header = f"{'portal /tenders/ (Redis-cached)':<36}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        print(f"{header}  statuses")
        for label, result in (("without watchers", alone), ("with the watchers", during)):
            print(
                f"{label:<36}{result['rps']:>8.0f}{result['p50'] * 1000:>9.1f}"
                f"{result['p99'] * 1000:>9.1f}  {result['statuses']}"
            )
        print(f"ratio with / without (req/s): {during['rps'] / alone['rps']:.2f}")
        print(f"opening page during the streams: HTTP {status}")
        print(f"load average after {' '.join(f'{v:.2f}' for v in load_after)}")
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(args.database_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
