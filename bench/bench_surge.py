"""Benchmark (not a test): the deadline surge. Many bidders upload their envelopes at once.

What runs, all on loopback, with the same gunicorn settings for both servers (the README's
production settings, gevent × 2; ``--settings gthread`` for 4 × 8 threads):
- the Fairbid app, receiving envelopes at ``POST /api/v1/tenders/<id>/bids`` (streamed to
  the blob store with fsync, checked without a key, receipted, audited after the commit),
  on PostgreSQL when one answers at ``--database-url`` (a schema of its own, dropped at the
  end), else on a SQLite file; Redis is the in-process stand-in (the submission path never
  needs Redis);
- a bare WSGI sink that only writes each request body to a file (and fsyncs it, as the
  blob store does) and answers 201.

``--uploads`` bidders (default 200), each of its own company registered for one tender
beforehand with its own API token, each with its own ``--size`` MB envelope sealed once
with the library before the clock starts (an envelope names its bidder, so one cannot be
reused), all start uploading at the same instant: one thread per bidder, one connection
each. Printed per target: accepted count (must equal sent), p50 / p99 latency, throughput,
and the ratios; then the number of Bid rows and of bid.received audit events.

Also printed: the CPU seconds each server's processes used during its surge, per upload.

    python bench/bench_surge.py [--uploads 200] [--size 5] [--database-url postgresql://...]
        [--settings production|gthread] [--profile DIR]
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _servers import GunicornServer

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# The same gunicorn settings for both servers: only the application differs. They are the
# README's production settings ("Production stack"); `--settings gthread` runs the 4 × 8
# threaded workers the earlier figures were measured with.
SETTINGS = {
    "production": [
        "--worker-class",
        "gevent",
        "--workers",
        "2",
        "--worker-connections",
        "2000",
        "--timeout",
        "60",
    ],
    "gthread": [
        "--workers",
        "4",
        "--worker-class",
        "gthread",
        "--threads",
        "8",
        "--timeout",
        "300",
    ],
}
COMMON_SETTINGS = ["--backlog", "2048", "--log-level", "warning"]
_BLOCK = 1024 * 1024


def sink_app(environ, start_response):
    """The comparison server (gunicorn imports it as ``bench_surge:sink_app``): write the
    body to a new file, fsync it, answer 201."""
    directory = os.environ["BENCH_SINK_DIR"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    fd, _path = tempfile.mkstemp(dir=directory, suffix=".env")
    with os.fdopen(fd, "wb") as out:
        while remaining > 0:
            chunk = stream.read(min(_BLOCK, remaining))
            if not chunk:
                break
            out.write(chunk)
            remaining -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    body = b'{"stored":true}'
    start_response(
        "201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def postgres_reachable(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=2):
            return True
    except Exception:
        return False


def seed(database_url: str, instance: Path, uploads: int, size_mb: int):
    """One published tender, `uploads` approved companies registered for it, a bidder and an
    API token each, and each bidder's envelope sealed with the library."""
    sys.path.insert(0, str(REPO))
    from datetime import timedelta
    from decimal import Decimal

    from flask_migrate import upgrade
    from stdnum.cn import uscc

    from app import create_app
    from app.accounts import operations as account_ops
    from app.accounts import security
    from app.accounts.models import Role, User
    from app.bids.receipts import platform_signing_key
    from app.centres.models import TradingCentre
    from app.companies.models import Company, CompanyStatus
    from app.core.types import utcnow
    from app.extensions import db
    from app.tenders.models import Lot, TemplateVersion, Tender, TenderRegistration, TenderTemplate
    from bidding import envelope, keys
    from config import DevelopmentConfig

    app = create_app(
        DevelopmentConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        INSTANCE_DIR=instance,
        REDIS_URL="",
        ARGON2_TIME_COST=1,
        ARGON2_MEMORY_COST=1024,
    )
    tender_key = keys.generate_tender_key()
    with app.app_context():
        upgrade()
        platform_signing_key()  # generated once here, not raced by the workers
        centre = TradingCentre(code="SURGE", name="Surge City Centre", level="city")
        db.session.add(centre)
        db.session.flush()
        password_hash = security.hash_password("bench password 123")
        staff = User(
            email="surge-staff@example.com",
            full_name="Surge Staff",
            role=Role.STAFF,
            centre_id=centre.id,
            password_hash=password_hash,
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
        tender = Tender(
            centre_id=centre.id,
            template_version_id=version.id,
            reference="SURGE-1",
            title="Deadline surge",
            category="goods",
            direction="lowest_wins",
            status="published",
            budget=Decimal(1_000_000),
            publication_at=now - timedelta(days=20),
            enquiry_deadline=now - timedelta(days=5),
            submission_deadline=now + timedelta(hours=2),
            opening_at=now + timedelta(hours=3),
            created_by_id=staff.id,
            published_at=now - timedelta(days=20),
            published_by_id=staff.id,
        )
        db.session.add(tender)
        db.session.flush()
        db.session.add(Lot(tender_id=tender.id, number=1, title="Lot 1"))
        bidders = []
        for n in range(uploads):
            body = f"91330100MB{n:07d}"[:17]
            company = Company(
                name=f"Surge Bidder {n} Ltd.",
                registration_number=body + uscc.calc_check_digit(body),
                legal_representative="Rep",
                contact_name="Contact",
                contact_phone="+86 571 1234 5678",
                home_centre_id=centre.id,
                status=CompanyStatus.APPROVED,
            )
            db.session.add(company)
            db.session.flush()
            user = User(
                email=f"surge-bidder-{n}@example.com",
                full_name=f"Bidder {n}",
                role=Role.BIDDER,
                company_id=company.id,
                password_hash=password_hash,
                email_confirmed_at=utcnow(),
            )
            db.session.add(user)
            db.session.flush()
            db.session.add(
                TenderRegistration(
                    tender_id=tender.id, company_id=company.id, registered_by_id=user.id
                )
            )
            token = account_ops.create_api_token(user, "surge")
            bidders.append((token, company.registration_number))
        db.session.commit()
        tender_id = tender.id
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()

    technical = os.urandom(size_mb * 1000 * 1000)
    envelopes = []
    for _token, bidder in bidders:
        out = io.BytesIO()
        parts = envelope.bid_parts({"price": "1000.00"}, io.BytesIO(technical))
        envelope.seal(out, tender_key.public_key(), f"T{tender_id}", bidder, parts)
        envelopes.append(out.getvalue())
    return tender_id, [token for token, _ in bidders], envelopes


def request(port: int, method: str, path: str, body: bytes, headers: dict):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def surge(port: int, path: str, bodies: list[bytes], tokens: list[str]) -> dict:
    """Every upload starts at the same instant, one thread and connection each."""
    barrier = threading.Barrier(len(bodies) + 1)
    latencies: list[float] = [0.0] * len(bodies)
    statuses: list[int] = [0] * len(bodies)
    errors: list[str] = []

    def one(index: int) -> None:
        headers = {
            "Authorization": f"Bearer {tokens[index]}",
            "Content-Type": "application/octet-stream",
        }
        barrier.wait()
        start = time.perf_counter()
        try:
            status, body = request(port, "POST", path, bodies[index], headers)
        except OSError as error:
            status, body = 0, str(error).encode()
        latencies[index] = time.perf_counter() - start
        statuses[index] = status
        if status != 201 and len(errors) < 5:
            errors.append(f"{status}: {body[:200]!r}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    total = sum(len(body) for body in bodies)
    return {
        "sent": len(bodies),
        "accepted": statuses.count(201),
        "wall": wall,
        "rps": len(bodies) / wall,
        "mbps": total / wall / 1e6,
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "errors": errors,
    }


def cpu_seconds(server: GunicornServer) -> float:
    """User + system CPU seconds used so far by the server's master and workers (and, for
    the app, nothing of PostgreSQL's: `postgres_cpu_seconds`)."""
    total = 0.0
    master = _proc_times(server.process.pid)
    total += master
    for child in _children(server.process.pid):
        total += _proc_times(child)
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def _proc_times(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_rows(database_url: str) -> tuple[int, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            bids = connection.execute(sa.text("SELECT count(*) FROM bid")).scalar()
            events = connection.execute(
                sa.text("SELECT count(*) FROM audit_event WHERE action = 'bid.received'")
            ).scalar()
    finally:
        engine.dispose()
    return bids, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--size", type=int, default=5, help="envelope size in MB")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL to use if it answers (a new schema, dropped afterwards)",
    )
    parser.add_argument("--settings", choices=sorted(SETTINGS), default="production")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="cProfile every worker of both servers into DIR (gunicorn_profile.py)",
    )
    args = parser.parse_args()
    gunicorn_settings = SETTINGS[args.settings] + COMMON_SETTINGS
    if args.profile:
        for name in ("app", "sink"):
            (Path(args.profile) / name).mkdir(parents=True, exist_ok=True)
        gunicorn_settings += ["--config", str(HERE / "gunicorn_profile.py")]

    workdir = Path(tempfile.mkdtemp(prefix="fairbid-surge-"))
    schema = f"bench_surge_{os.getpid()}"
    use_postgres = postgres_reachable(args.database_url)
    servers: list[GunicornServer] = []
    try:
        if use_postgres:
            import psycopg

            with psycopg.connect(args.database_url, autocommit=True) as connection:
                connection.execute(f'CREATE SCHEMA "{schema}"')
            base = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
            database_url = f"{base}?options=-csearch_path%3D{schema}"
        else:
            database_url = f"sqlite:///{workdir / 'fairbid.db'}"
        instance = workdir / "instance"
        sink_dir = workdir / "sink"
        sink_dir.mkdir()
        started = time.perf_counter()
        tender_id, tokens, bodies = seed(database_url, instance, args.uploads, args.size)
        print(
            f"seeded {args.uploads} registered bidders and sealed {len(bodies)} envelopes of "
            f"{len(bodies[0]):,} bytes in {time.perf_counter() - started:.1f} s"
        )

        app_server = GunicornServer(
            "fairbid",
            "app:create_app()",
            REPO,
            {
                "FAIRBID_ENV": "development",
                "DATABASE_URL": database_url,
                "REDIS_URL": "",
                "FAIRBID_INSTANCE_DIR": str(instance),
                **({"BENCH_PROFILE_DIR": str(Path(args.profile) / "app")} if args.profile else {}),
            },
            workdir / "fairbid.log",
            gunicorn_settings,
        )
        servers.append(app_server)
        sink = GunicornServer(
            "sink",
            "bench_surge:sink_app",
            HERE,
            {
                "BENCH_SINK_DIR": str(sink_dir),
                **({"BENCH_PROFILE_DIR": str(Path(args.profile) / "sink")} if args.profile else {}),
            },
            workdir / "sink.log",
            gunicorn_settings,
        )
        servers.append(sink)
        key_path = "/api/v1/platform/receipt-key.pem"
        app_server.wait_ready(
            lambda port: request(port, "GET", key_path, b"", {})[0] == 200, key_path
        )
        sink.wait_ready(
            lambda port: request(port, "POST", "/warm-up", b"", {})[0] in (200, 201), "/warm-up"
        )
        # Warm every worker a little (imports, connection pools) before the clock starts.
        for _ in range(16):
            request(app_server.port, "GET", "/api/v1/platform/receipt-key.pem", b"", {})
            request(sink.port, "POST", "/warm-up", b"x", {})

        print(
            f"gunicorn {' '.join(SETTINGS[args.settings])} for both; database: "
            f"{'PostgreSQL' if use_postgres else 'SQLite'}; {args.uploads} simultaneous uploads"
        )
        cpu = cpu_seconds(sink)
        sink_result = surge(sink.port, "/upload", bodies, tokens)
        sink_result["cpu"] = cpu_seconds(sink) - cpu
        cpu = cpu_seconds(app_server)
        app_result = surge(app_server.port, f"/api/v1/tenders/{tender_id}/bids", bodies, tokens)
        app_result["cpu"] = cpu_seconds(app_server) - cpu
        time.sleep(1)  # the last follow-up audit transactions
        bids, events = count_rows(database_url)

        header = f"{'target':<22}{'sent':>6}{'accepted':>10}{'p50 s':>9}{'p99 s':>9}"
        print(header + f"{'uploads/s':>11}{'MB/s':>9}")
        for label, result in (("bare WSGI sink", sink_result), ("Fairbid API", app_result)):
            print(
                f"{label:<22}{result['sent']:>6}{result['accepted']:>10}{result['p50']:>9.2f}"
                f"{result['p99']:>9.2f}{result['rps']:>11.1f}{result['mbps']:>9.1f}"
            )
            for error in result["errors"]:
                print(f"    {label} error: {error}")
        for label, result in (("sink", sink_result), ("Fairbid", app_result)):
            print(
                f"{label} workers' CPU during its surge: {result['cpu']:.1f} s "
                f"({result['cpu'] / result['sent'] * 1000:.0f} ms per upload)"
            )
        print(f"ratio Fairbid / sink (throughput): {app_result['rps'] / sink_result['rps']:.2f}")
        print(f"ratio Fairbid / sink (p50 latency): {app_result['p50'] / sink_result['p50']:.2f}")
        print(f"ratio Fairbid / sink (p99 latency): {app_result['p99'] / sink_result['p99']:.2f}")
        print(f"Bid rows: {bids}; bid.received audit events: {events}")
        status = "OK" if app_result["accepted"] == app_result["sent"] == bids else "MISMATCH"
        print(f"accepted == sent == stored: {status}")
        if app_result["accepted"] != app_result["sent"]:
            app_server.log.flush()
            errors = [
                line
                for line in app_server.log_path.read_text(errors="replace").splitlines()
                if "Error" in line or "error" in line
            ]
            print(f"app log: {len(errors)} error lines; distinct ones:")
            for line in sorted(set(errors))[:12]:
                print(f"    {line[:300]}")
    finally:
        for server in reversed(servers):
            server.stop()
        if use_postgres:
            import psycopg

            with psycopg.connect(args.database_url, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
