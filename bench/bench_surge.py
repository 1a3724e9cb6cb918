"""Benchmark (not a test): the deadline surge. Many bidders sign in and upload at once.

Two modes, each comparing the Fairbid app with a bare WSGI sink run with the same gunicorn
settings (the README's production settings, gevent × 2; ``--settings gthread`` for 4 × 8
threads) and sent the same requests with the same start pattern, the sink first:

**sessions** (the default; issue 18's load report). The app runs with
``FAIRBID_ENV=production`` (secure cookies, HTTPS forced, receipt and signing keys from
files) behind one proxy (``FAIRBID_PROXY_COUNT=1``: each bidder has its own address in
X-Forwarded-For, as nginx would send it), on PostgreSQL (a schema of its own in
``--database-url``, dropped at the end) and a real Redis database (``--redis-url``, flushed
before and after: rate limits, the portal cache, RQ). ``--sessions`` bidders (300), each of
its own company registered for the tender, each with its own ``--size`` MB envelope sealed
with the library before the clock starts, start at random times (``--seed``) spread over
``--window`` seconds (120; 0 = all at once), one thread and one keep-alive connection each,
and do what the browser does: GET the sign-in form, POST it with its CSRF token and the
session cookie (bidders have no TOTP), follow the redirect to the start page; GET the bid
page; upload the envelope as app/static/js/upload.js does (POST the size to the form's
``data-start-url``, PUT 1 MiB chunks with Content-Range and the page's CSRF token in
X-CSRFToken, resuming after a 409 and retrying a 5xx or a network error up to 8 times);
GET the bid page again (the seal form reloads the list of bids). Meanwhile a separate
process runs ``--portal-threads`` signed-out readers of ``/tenders/`` and the tender's
public page against the app, the whole time (``--portal-before`` seconds alone before each
surge). The bidders' password hash uses the production cost (argon2id, t=3, 64 MiB).
Printed: accepted / sent, p50/p95/p99/max per step and per session, errors by type (HTTP
status or exception class, counted; retried ones too), the CPU seconds of each server's
processes, the ratios to the sink, the portal's req/s and p50/p99 before and during each
surge, and the Bid rows and bid.received / auth.signed_in audit events stored.

**tokens** (``--uploads N`` or ``--mode tokens``; unchanged, used for A/B of app changes):
``--uploads`` bidders (200) with API tokens all start one ``POST /api/v1/tenders/<id>/bids``
of their envelope at the same instant; the app in development configuration with the
in-process Redis stand-in, on PostgreSQL if it answers (else a SQLite file). Printed per
target: accepted count (must equal sent), p50 / p99 latency, throughput, the ratios, the CPU
seconds per upload, and the number of Bid rows and of bid.received audit events.

    python bench/bench_surge.py [--sessions 300] [--size 5] [--window 120]
        [--redis-url redis://127.0.0.1:6379/14] [--database-url postgresql://...]
    python bench/bench_surge.py --uploads 300 [--size 5] [--database-url postgresql://...]
        [--settings production|gthread] [--profile DIR]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import html
import http.client
import io
import json
import math
import os
import random
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from _servers import PRODUCTION_SETTINGS, GunicornServer

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# The same gunicorn settings for both servers: only the application differs. They are the
# README's production settings ("Production stack"); `--settings gthread` runs the 4 × 8
# threaded workers the earlier figures were measured with.
SETTINGS = {
    "production": PRODUCTION_SETTINGS,
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
_SINK_CHUNK = 1024 * 1024  # the app's UPLOAD_CHUNK_SIZE default


def sink_app(environ, start_response):
    """The comparison server (gunicorn imports it as ``bench_surge:sink_app``).

    Token mode: any request not below is a whole envelope: write the body to a new file,
    fsync it, answer 201. Sessions mode: the same requests as the browser sends the app
    (``_sink_session``), each answered with the least work: pages are a few bytes, chunks
    are written at their offset into the session's file, fsynced after the last one."""
    answer = _sink_session(environ)
    if answer is not None:
        status, headers, body = answer
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]
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


_HTML = [("Content-Type", "text/html; charset=utf-8")]
_JSON = [("Content-Type", "application/json")]


def _sink_session(environ) -> tuple[str, list, bytes] | None:
    """The sink's answers to a bidder session (None: not a session request)."""
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    if path == "/accounts/login" and method == "GET":
        page = b'<form><input id="csrf_token" name="csrf_token" type="hidden" value="sink"></form>'
        return "200 OK", _HTML, page
    if path == "/accounts/login" and method == "POST":
        _drain(environ)
        cookie = ("Set-Cookie", "fairbid_session=sink; Secure; HttpOnly; Path=/; SameSite=Lax")
        return "302 Found", [("Location", "/bids/"), cookie], b""
    if path == "/bids/" and method == "GET":
        return "200 OK", _HTML, b"<p>bids</p>"
    tender = re.fullmatch(r"/bids/tenders/(\d+)", path)
    if tender and method == "GET":
        page = (
            f'<form id="seal-form" data-csrf-token="sink" data-start-url="{path}/uploads" '
            f'data-chunk-size="{_SINK_CHUNK}"></form>'
        )
        return "200 OK", _HTML, page.encode()
    if re.fullmatch(r"/bids/tenders/\d+/uploads", path) and method == "POST":
        size = json.loads(_drain(environ) or b"{}").get("size")
        fd, name = tempfile.mkstemp(dir=os.environ["BENCH_SINK_DIR"], suffix=".part")
        os.close(fd)
        state = {"url": f"/bids/uploads/{Path(name).name}", "offset": 0, "size": size}
        return "201 Created", _JSON, json.dumps({**state, "chunk_size": _SINK_CHUNK}).encode()
    upload = re.fullmatch(r"/bids/uploads/([\w.-]+\.part)", path)
    if upload and method in ("PUT", "GET"):
        file = Path(os.environ["BENCH_SINK_DIR"]) / upload.group(1)
        if method == "GET":
            return "200 OK", _JSON, json.dumps({"offset": file.stat().st_size}).encode()
        first, last, total = (
            int(x)
            for x in re.fullmatch(
                r"bytes (\d+)-(\d+)/(\d+)", environ["HTTP_CONTENT_RANGE"]
            ).groups()
        )
        with open(file, "r+b") as out:
            out.seek(first)
            remaining = int(environ.get("CONTENT_LENGTH") or 0)
            stream = environ["wsgi.input"]
            while remaining > 0:
                chunk = stream.read(min(_BLOCK, remaining))
                if not chunk:
                    break
                out.write(chunk)
                remaining -= len(chunk)
            complete = last + 1 == total
            if complete:
                out.flush()
                os.fsync(out.fileno())
        state = {"offset": last + 1, "complete": complete}
        if complete:
            state["receipt"] = {"sequence": 1}
        return "200 OK", _JSON, json.dumps(state).encode()
    return None


def _drain(environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def postgres_reachable(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=2):
            return True
    except Exception:
        return False


def _seed_tenders(centre, password_hash: str, count: int) -> list:
    """A staff member of `centre`, the built-in goods template and `count` published tenders
    of one lot each (the first is the surge's); inside an app context."""
    from datetime import timedelta
    from decimal import Decimal

    from app.accounts.models import Role, User
    from app.core.types import utcnow
    from app.extensions import db
    from app.tenders.models import Lot, TemplateVersion, Tender, TenderTemplate

    template_text = (REPO / "app/tender_templates/builtin/goods.yaml").read_text()
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
        template_id=template.id,
        number=1,
        yaml_text=template_text,
        sha256=hashlib.sha256(template_text.encode()).hexdigest(),
    )
    db.session.add(version)
    db.session.flush()
    now = utcnow()
    published = []
    for n in range(count):
        tender = Tender(
            centre_id=centre.id,
            template_version_id=version.id,
            reference=f"SURGE-{n + 1}",
            title="Deadline surge" if n == 0 else f"Office supplies, batch {n}",
            category="goods",
            direction="lowest_wins",
            status="published",
            budget=Decimal(1_000_000 + n),
            publication_at=now - timedelta(days=20, minutes=n),
            enquiry_deadline=now - timedelta(days=5),
            submission_deadline=now + timedelta(hours=2, days=n),
            opening_at=now + timedelta(hours=3, days=n),
            created_by_id=staff.id,
            published_at=now - timedelta(days=20, minutes=n),
            published_by_id=staff.id,
        )
        db.session.add(tender)
        db.session.flush()
        db.session.add(Lot(tender_id=tender.id, number=1, title="Lot 1"))
        published.append(tender)
    return published


def _register_bidders(centre, tender, count: int, password_hash: str) -> list:
    """`count` approved companies registered for `tender`, one bidder each (no TOTP:
    bidders have none): [(user, company)]; inside an app context."""
    from stdnum.cn import uscc

    from app.accounts.models import Role, User
    from app.companies.models import Company, CompanyStatus
    from app.core.types import utcnow
    from app.extensions import db
    from app.tenders.models import TenderRegistration

    registered = []
    for n in range(count):
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
        assert not user.needs_totp
        db.session.add(
            TenderRegistration(tender_id=tender.id, company_id=company.id, registered_by_id=user.id)
        )
        registered.append((user, company))
    return registered


def _commit_and_let_go(tender) -> int:
    """Commits the seed and closes every connection of this process (the servers use the
    database next); returns the tender's id."""
    from app.extensions import db

    db.session.commit()
    tender_id = tender.id
    db.session.remove()
    for engine in db.engines.values():
        engine.dispose()
    return tender_id


def _seal_envelopes(public_key, tender_id: int, bidders: list[str], size_mb: int) -> list[bytes]:
    """Each bidder's (registration number's) envelope of `size_mb` MB, sealed with the library."""
    from bidding import envelope

    technical = os.urandom(size_mb * 1000 * 1000)
    envelopes = []
    for bidder in bidders:
        out = io.BytesIO()
        parts = envelope.bid_parts({"price": "1000.00"}, io.BytesIO(technical))
        envelope.seal(out, public_key, f"T{tender_id}", bidder, parts)
        envelopes.append(out.getvalue())
    return envelopes


def seed(database_url: str, instance: Path, uploads: int, size_mb: int):
    """One published tender, `uploads` approved companies registered for it, a bidder and an
    API token each, and each bidder's envelope sealed with the library."""
    sys.path.insert(0, str(REPO))

    from flask_migrate import upgrade

    from app import create_app
    from app.accounts import operations as account_ops
    from app.accounts import security
    from app.bids.receipts import platform_signing_key
    from app.centres.models import TradingCentre
    from app.extensions import db
    from bidding import keys
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
        tender = _seed_tenders(centre, password_hash, 1)[0]
        bidders = [
            (account_ops.create_api_token(user, "surge"), company.registration_number)
            for user, company in _register_bidders(centre, tender, uploads, password_hash)
        ]
        tender_id = _commit_and_let_go(tender)

    envelopes = _seal_envelopes(
        tender_key.public_key(), tender_id, [bidder for _, bidder in bidders], size_mb
    )
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
    ticks = sum(_stat_sum(pid, 11, 12) for pid in _server_pids(server))
    return ticks / os.sysconf("SC_CLK_TCK")


def minor_faults(server: GunicornServer) -> int:
    """Minor page faults so far of the server's master and workers (memory first touched or
    mapped; on a VM whose freed memory the balloon returns to the host, a first touch is
    also a fault in the host: bench/README.md, "This machine's memory")."""
    return sum(_stat_sum(pid, 7) for pid in _server_pids(server))


def _server_pids(server: GunicornServer) -> list[int]:
    pid = server.process.pid
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def _stat_sum(pid: int, *indexes: int) -> int:
    """The sum of the given fields of /proc/<pid>/stat, counted after the command name (0:
    the state, 7: minor faults, 11 and 12: user and system ticks); 0 for a process gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return sum(int(fields[index]) for index in indexes)


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


def run_tokens(args) -> None:
    """The token mode: every upload at once with an API token, one POST each."""
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


# --- sessions mode -------------------------------------------------------------------------

HOST = "surge.fairbid.test"  # the public address's host (FAIRBID_PUBLIC_URL), as a proxy sends it
PASSWORD = secrets.token_urlsafe(16)  # the bidders' (one per run)
RETRIES = 8  # app/static/js/upload.js: MAX_ATTEMPTS


def seed_sessions(
    database_url: str, instance: Path, redis_url: str, count: int, size_mb: int, tenders: int
):
    """One published tender with its key (the bid page shows it) and the built-in goods
    template, `count` approved companies registered for it with one bidder each (password,
    no TOTP: bidders have none), `tenders` more published tenders for the portal's list;
    each bidder's envelope sealed with the library. Also writes the receipt and signing keys
    the production configuration needs (development generates them) under instance/keys.

    The password hash is made once with the configured cost (Config: argon2id, time cost 3,
    64 MiB, the production values) and shared by every bidder, so that each sign-in verifies
    at the production cost and none is rehashed on sign-in."""
    sys.path.insert(0, str(REPO))

    from flask_migrate import upgrade

    from app import create_app
    from app.accounts import security
    from app.bids.receipts import platform_signing_key
    from app.centres.models import TradingCentre
    from app.custody.models import TenderKey
    from app.extensions import db
    from app.records import signing
    from bidding import keys
    from config import DevelopmentConfig

    app = create_app(
        DevelopmentConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        INSTANCE_DIR=instance,
        PLATFORM_KEY_DIR=str(instance / "keys"),
        REDIS_URL=redis_url,
    )
    tender_key = keys.generate_tender_key()
    with app.app_context():
        upgrade()
        platform_signing_key()
        signing.platform_ca()
        signing.platform_signer()
        centre = TradingCentre(code="SURGE", name="Surge City Centre", level="city")
        db.session.add(centre)
        db.session.flush()
        password_hash = security.hash_password(PASSWORD)
        tender = _seed_tenders(centre, password_hash, tenders + 1)[0]
        public_raw = tender_key.public_key().public_bytes_raw()
        db.session.add(
            TenderKey(
                tender_id=tender.id,
                public_key=public_raw.hex(),
                public_key_pem=keys.public_key_to_pem(tender_key.public_key()).decode("ascii"),
                fingerprint=keys.key_fingerprint(public_raw),
                threshold=1,
            )
        )
        bidders = [
            (user.email, company.registration_number)
            for user, company in _register_bidders(centre, tender, count, password_hash)
        ]
        tender_id = _commit_and_let_go(tender)

    envelopes = _seal_envelopes(
        tender_key.public_key(), tender_id, [bidder for _, bidder in bidders], size_mb
    )
    return tender_id, [email for email, _ in bidders], envelopes


def production_environment(instance: Path, database_url: str, redis_url: str) -> dict:
    """FAIRBID_ENV=production with what it refuses to start without, behind one proxy
    (FAIRBID_PROXY_COUNT=1: the client sends X-Forwarded-For/-Proto as nginx would, so each
    bidder has its own address for the rate limits and the requests are HTTPS to the app)."""
    from app.bids.receipts import KEY_FILENAME
    from app.records import signing

    key_dir = instance / "keys"
    return {
        "FAIRBID_ENV": "production",
        "SECRET_KEY": secrets.token_hex(32),
        "FAIRBID_PUBLIC_URL": f"https://{HOST}",
        "FAIRBID_PROXY_COUNT": "1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "FAIRBID_INSTANCE_DIR": str(instance),
        "FAIRBID_PLATFORM_KEY": str(key_dir / KEY_FILENAME),
        "FAIRBID_SIGNING_KEY": str(key_dir / signing.PLATFORM_KEY_FILENAME),
        "FAIRBID_SIGNING_CERT": str(key_dir / signing.PLATFORM_CERT_FILENAME),
        "FAIRBID_SIGNING_CHAIN": str(key_dir / signing.CA_CERT_FILENAME),
        "FAIRBID_SIGNING_CA_CERT": str(key_dir / signing.CA_CERT_FILENAME),
        "FAIRBID_SIGNING_CA_KEY": str(key_dir / signing.CA_KEY_FILENAME),
    }


class Failed(Exception):
    """A step that did not succeed; `kind` is what went wrong (HTTP status or exception)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class Browser:
    """One bidder's browser: one keep-alive connection, its cookies, its own address (sent
    as X-Forwarded-For, which the app believes from one proxy) and HTTPS as the proxy says."""

    def __init__(self, port: int, address: str):
        self.port = port
        self.address = address
        self.cookies: dict[str, str] = {}
        self.connection: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(self, method: str, path: str, body=None, headers: dict | None = None):
        sent = {
            "Host": HOST,
            "X-Forwarded-For": self.address,
            "X-Forwarded-Proto": "https",
            "User-Agent": "Mozilla/5.0 (fairbid bench_surge)",
            "Accept-Language": "en",
            **(headers or {}),
        }
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            reused = self.connection is not None
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            try:
                self.connection.request(method, path, body=body, headers=sent)
                response = self.connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 0:  # a keep-alive connection the server had closed
                    self.reconnects += 1
                    continue
                raise
            break
        for header in response.headers.get_all("Set-Cookie") or []:
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            gone = "max-age=0" in attributes.lower() or "1970" in attributes or not value
            if gone:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        if response.will_close:
            self.close()
        return response.status, response.headers, data


def _ok(status: int, expected: tuple[int, ...]) -> None:
    if status not in expected:
        raise Failed(f"HTTP {status}")


def _attribute(pattern: str, page: bytes, what: str) -> str:
    match = re.search(pattern.encode(), page)
    if not match:
        raise Failed(f"no {what} in the page")
    return html.unescape(match.group(1).decode())


def sign_in(browser: Browser, email: str) -> None:
    """GET the form, POST it (CSRF token from the form, session cookie), follow the
    redirect to the start page, as a browser does."""
    status, _headers, page = browser.request("GET", "/accounts/login")
    _ok(status, (200,))
    token = _attribute(r'name="csrf_token"[^>]*value="([^"]+)"', page, "csrf_token")
    form = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": PASSWORD})
    origin = f"https://{HOST}"
    status, headers, _page = browser.request(
        "POST",
        "/accounts/login",
        form.encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": origin,
            "Referer": f"{origin}/accounts/login",
        },
    )
    _ok(status, (302, 303))
    for _ in range(3):
        path = urllib.parse.urlsplit(headers["Location"]).path
        status, headers, _page = browser.request("GET", path, headers={"Referer": origin + "/"})
        if status not in (301, 302, 303):
            break
    _ok(status, (200,))


def bid_page(browser: Browser, tender_id: int) -> dict:
    status, _headers, page = browser.request("GET", f"/bids/tenders/{tender_id}")
    _ok(status, (200,))
    # The in-browser sealing form; without the built sealing script (`make`) the page has
    # only the form for an envelope sealed elsewhere, which uploads the same way.
    form = re.search(rb'<form id="seal-form"[^>]*>', page) or re.search(
        rb'<form id="envelope-upload"[^>]*>', page
    )
    if not form:
        raise Failed("no upload form in the bid page")
    tag = form.group(0)
    return {
        "form": "seal-form" if tag.startswith(b'<form id="seal-form"') else "envelope-upload",
        "csrf": _attribute(r'data-csrf-token="([^"]+)"', tag, "data-csrf-token"),
        "start": _attribute(r'data-start-url="([^"]+)"', tag, "data-start-url"),
        "chunk": int(_attribute(r'data-chunk-size="(\d+)"', tag, "data-chunk-size")),
    }


def upload(browser: Browser, tender_id: int, page: dict, body: bytes, note) -> dict:
    """app/static/js/upload.js: POST the size, PUT the chunks with Content-Range, on a 409
    continue from the server's offset, on a 5xx or a network error wait (0.5 s × 2^n, at
    most 30 s), ask where the upload stands and resume, at most 8 times in a row."""
    referer = f"https://{HOST}/bids/tenders/{tender_id}"
    common = {"X-CSRFToken": page["csrf"], "Accept": "application/json", "Referer": referer}
    common["Origin"] = f"https://{HOST}"
    status, _headers, data = browser.request(
        "POST",
        page["start"],
        json.dumps({"size": len(body)}).encode(),
        {**common, "Content-Type": "application/json"},
    )
    _ok(status, (201,))
    session = json.loads(data)
    url = urllib.parse.urlsplit(session["url"]).path
    chunk = page["chunk"] or session.get("chunk_size") or _SINK_CHUNK
    offset = session.get("offset", 0)
    view = memoryview(body)
    failures = 0
    while True:
        end = min(offset + chunk, len(body))
        headers = {
            **common,
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {offset}-{end - 1}/{len(body)}",
        }
        try:
            status, _headers, data = browser.request("PUT", url, view[offset:end], headers)
            kind = f"HTTP {status}"
        except OSError as error:
            browser.close()
            status, data, kind = 0, b"", type(error).__name__
        answer = _json(data)
        if status == 200:
            failures = 0
            offset = answer["offset"]
            if answer.get("complete"):
                return answer.get("receipt") or {}
            continue
        if status == 409 and isinstance(answer.get("offset"), int):
            note(f"chunk {kind} (resumed at the server's offset)")
            offset = answer["offset"]
            if offset >= len(body):
                status, _headers, data = browser.request("GET", url, headers=common)
                if _json(data).get("complete"):
                    return _json(data).get("receipt") or {}
                raise Failed(kind)
            continue
        if 0 < status < 500 and status != 503:
            raise Failed(kind)
        failures += 1
        if failures >= RETRIES:
            raise Failed(f"{kind} ×{RETRIES}")
        note(f"chunk {kind} (retried)")
        time.sleep(min(30.0, 0.5 * 2**failures))
        try:
            status, _headers, data = browser.request("GET", url, headers=common)
            if status == 200:
                where = _json(data)
                if where.get("complete"):
                    return where.get("receipt") or {}
                offset = where.get("offset", offset)
        except OSError:
            browser.close()


def _json(data: bytes) -> dict:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


STEPS = ("sign-in", "bid page", "upload", "reload")


def surge_sessions(
    port: int, tender_id: int, emails: list[str], bodies: list[bytes], offsets: list[float]
) -> dict:
    """Each bidder's session starts at its offset (seconds after the start): sign in, the
    bid page, the upload, the page again (upload.js's seal form reloads the list of bids)."""
    count = len(bodies)
    steps: dict[str, list[float]] = {step: [] for step in STEPS}
    sessions: list[float] = []
    errors: collections.Counter = collections.Counter()
    forms: collections.Counter = collections.Counter()
    lock = threading.Lock()
    accepted = [False] * count
    reconnects = [0]
    spans: list[tuple[float, float]] = []
    ready = threading.Barrier(count + 1)
    start_box: list[float] = []

    def one(index: int) -> None:
        browser = Browser(port, f"10.{1 + index // 65536}.{index // 256 % 256}.{index % 256}")
        ready.wait()
        time.sleep(max(0.0, start_box[0] + offsets[index] - time.monotonic()))
        began = time.monotonic()
        step = STEPS[0]

        def note(kind: str) -> None:
            with lock:
                errors[f"{step}: {kind}"] += 1

        timings = {}
        try:
            for step in STEPS:
                t = time.monotonic()
                if step == "sign-in":
                    sign_in(browser, emails[index])
                elif step == "bid page":
                    page = bid_page(browser, tender_id)
                    with lock:
                        forms[page["form"]] += 1
                elif step == "upload":
                    upload(browser, tender_id, page, bodies[index], note)
                    accepted[index] = True
                else:
                    status, _headers, _page = browser.request("GET", f"/bids/tenders/{tender_id}")
                    _ok(status, (200,))
                timings[step] = time.monotonic() - t
        except Failed as failure:
            note(f"{failure.kind} (session failed)")
        except Exception as error:  # counted by type; the run goes on
            note(f"{type(error).__name__} (session failed)")
        finally:
            browser.close()
        ended = time.monotonic()
        with lock:
            for name, seconds in timings.items():
                steps[name].append(seconds)
            if len(timings) == len(STEPS):
                sessions.append(ended - began)
            spans.append((began, ended))
            reconnects[0] += browser.reconnects

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    start_box.append(time.monotonic() + 0.5)
    ready.wait()
    for thread in threads:
        thread.join()
    first = min(began for began, _ in spans)
    last = max(ended for _, ended in spans)
    return {
        "sent": count,
        "accepted": sum(accepted),
        "steps": steps,
        "sessions": sessions,
        "errors": errors,
        "reconnects": reconnects[0],
        "forms": forms,
        "begin": first,
        "end": last,
        "wall": last - first,
        "bytes": sum(len(body) for body in bodies),
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def portal_load(port: int, paths: list[str], threads: int, stop, results) -> None:
    """A separate process (its own GIL): `threads` signed-out readers, one keep-alive
    connection each, GET the paths in turn until `stop` is set; sends back (end time
    (time.monotonic, system-wide), seconds, status or exception name) per request."""
    records: list[tuple[float, float, object]] = []
    lock = threading.Lock()

    def reader(index: int) -> None:
        browser = Browser(port, f"10.250.0.{index + 1}")
        mine = []
        n = index
        while not stop.is_set():
            path = paths[n % len(paths)]
            n += 1
            t = time.monotonic()
            try:
                status, _headers, _page = browser.request("GET", path)
                outcome: object = status
            except OSError as error:
                browser.close()
                outcome = type(error).__name__
            end = time.monotonic()
            mine.append((end, end - t, outcome))
        with lock:
            records.extend(mine)

    workers = [threading.Thread(target=reader, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(records)


def portal_figures(records: list, begin: float, end: float) -> dict:
    inside = [(seconds, outcome) for at, seconds, outcome in records if begin <= at < end]
    latencies = [seconds for seconds, _ in inside]
    outcomes = collections.Counter(outcome for _, outcome in inside)
    return {
        "requests": len(inside),
        "rps": len(inside) / (end - begin) if end > begin else float("nan"),
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "outcomes": outcomes,
    }


def count_sessions_rows(database_url: str) -> dict:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    queries = {
        "bids": "SELECT count(*) FROM bid",
        "bid.received": "SELECT count(*) FROM audit_event WHERE action = 'bid.received'",
        "auth.signed_in": "SELECT count(*) FROM audit_event WHERE action = 'auth.signed_in'",
    }
    try:
        with engine.connect() as connection:
            return {
                name: connection.execute(sa.text(sql)).scalar() for name, sql in queries.items()
            }
    finally:
        engine.dispose()


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _print_surge(label: str, result: dict) -> None:
    wall = result["wall"]
    print(
        f"{label}: {result['accepted']} / {result['sent']} accepted in {wall:.1f} s "
        f"(first start to last end; {result['sent'] / wall:.1f} sessions/s, "
        f"{result['bytes'] / wall / 1e6:.1f} MB/s); CPU of its processes "
        f"{result['cpu']:.1f} s ({result['cpu'] / result['sent'] * 1000:.0f} ms per session); "
        f"keep-alive reconnects {result['reconnects']}"
    )
    print(f"    {'step':<10}{'done':>6}{'p50 s':>9}{'p95 s':>9}{'p99 s':>9}{'max s':>9}")
    rows = [(step, result["steps"][step]) for step in STEPS] + [("session", result["sessions"])]
    for name, values in rows:
        print(
            f"    {name:<10}{len(values):>6}{percentile(values, 0.5):>9.2f}"
            f"{percentile(values, 0.95):>9.2f}{percentile(values, 0.99):>9.2f}"
            f"{max(values, default=float('nan')):>9.2f}"
        )
    if result["forms"]["envelope-upload"]:
        print(
            f"    {result['forms']['envelope-upload']} bid pages had no sealing form (the "
            "sealing script is not built: run `make`); uploaded through the page's "
            "envelope-upload form (the same endpoints)"
        )
    if result["errors"]:
        print("    errors by type:")
        for kind, n in sorted(result["errors"].items()):
            print(f"      {n:>5} × {kind}")
    else:
        print("    errors: none")


def print_log_errors(log: str) -> None:
    """The app log's failed requests (ids in paths as <id>) and the exceptions that ended
    their tracebacks, counted."""
    failed = collections.Counter(
        re.sub(r"/[0-9a-f-]{36}|/\d+", "/<id>", match)
        for match in re.findall(r"unhandled error on (\S+ \S+)", log)
    )
    raised = collections.Counter(
        line.strip()[:200]
        for line in log.splitlines()
        if re.match(r"^[\w.]+(Error|Exception|Timeout)\w*: ", line.strip())
    )
    print(f"app log: {sum(failed.values())} unhandled errors")
    for request, n in failed.most_common():
        print(f"    {n:>5} × {request}")
    for line, n in raised.most_common(8):
        print(f"    {n:>5} × {line}")


def run_sessions(args) -> int:
    if args.redis_url.rstrip("/").endswith("/0") or not re.search(r"/\d+$", args.redis_url):
        raise SystemExit("--redis-url must name a Redis database other than 0 (CI's), e.g. /14")
    if not postgres_reachable(args.database_url):
        raise SystemExit(f"PostgreSQL does not answer at {args.database_url}: create it first")
    import multiprocessing

    import psycopg
    import redis

    redis_client = redis.Redis.from_url(args.redis_url)
    redis_client.flushdb()  # the bench's own database: rate-limit counters of an earlier run
    gunicorn_settings = SETTINGS[args.settings] + COMMON_SETTINGS
    profile: dict[str, dict] = {"app": {}, "sink": {}}
    if args.profile:
        for name in profile:
            (Path(args.profile) / name).mkdir(parents=True, exist_ok=True)
            profile[name] = {"BENCH_PROFILE_DIR": str(Path(args.profile) / name)}
        gunicorn_settings += ["--config", str(HERE / "gunicorn_profile.py")]
    workdir = Path(tempfile.mkdtemp(prefix="fairbid-surge-"))
    schema = f"bench_surge_{os.getpid()}"
    servers: list[GunicornServer] = []
    portal = None
    status = 1
    try:
        with psycopg.connect(args.database_url, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        base = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        database_url = f"{base}?options=-csearch_path%3D{schema}"
        instance = workdir / "instance"
        sink_dir = workdir / "sink"
        sink_dir.mkdir()
        started = time.perf_counter()
        tender_id, emails, bodies = seed_sessions(
            database_url, instance, args.redis_url, args.sessions, args.size, args.tenders
        )
        print(
            f"seeded {args.sessions} bidders (argon2id t=3, 64 MiB: the production cost) "
            f"registered for tender {tender_id}, {args.tenders} more published tenders, and "
            f"sealed {len(bodies)} envelopes of {len(bodies[0]):,} bytes in "
            f"{time.perf_counter() - started:.1f} s"
        )
        rng = random.Random(args.seed)
        offsets = sorted(rng.uniform(0, args.window) for _ in bodies)

        app_server = GunicornServer(
            "fairbid",
            "app:create_app()",
            REPO,
            {**production_environment(instance, database_url, args.redis_url), **profile["app"]},
            workdir / "fairbid.log",
            gunicorn_settings,
        )
        servers.append(app_server)
        sink = GunicornServer(
            "sink",
            "bench_surge:sink_app",
            HERE,
            {"BENCH_SINK_DIR": str(sink_dir), **profile["sink"]},
            workdir / "sink.log",
            gunicorn_settings,
        )
        servers.append(sink)
        probe = Browser(0, "10.250.1.1")

        def answers(port: int, path: str) -> bool:
            probe.port = port
            probe.close()
            return probe.request("GET", path)[0] == 200

        app_server.wait_ready(lambda port: answers(port, "/healthz"), "/healthz")
        sink.wait_ready(lambda port: answers(port, "/bids/"), "/bids/")
        portal_paths = ["/tenders/", f"/tenders/{tender_id}"]
        for _ in range(16):  # warm every worker a little (imports, pools, the cached list)
            for path in portal_paths:
                answers(app_server.port, path)
            answers(sink.port, "/bids/")
        probe.close()

        print(
            f"gunicorn {' '.join(SETTINGS[args.settings])} for both; the app with "
            f"FAIRBID_ENV=production behind one proxy (X-Forwarded-For per bidder), PostgreSQL, "
            f"Redis {args.redis_url}; {args.sessions} sessions starting over {args.window:g} s "
            f"(seed {args.seed}); portal: {args.portal_threads} signed-out readers of "
            f"{' and '.join(portal_paths)} against the app the whole time"
        )
        context = multiprocessing.get_context("fork")
        stop = context.Event()
        results = context.Queue()
        portal = context.Process(
            target=portal_load,
            args=(app_server.port, portal_paths, args.portal_threads, stop, results),
        )
        portal.start()
        quiet = {}
        surges = {}
        loads = {}
        for name, server in (("sink", sink), ("Fairbid", app_server)):
            begin = time.monotonic()
            time.sleep(args.portal_before)
            quiet[name] = (begin, time.monotonic())
            loads[name] = _load()
            cpu = cpu_seconds(server)
            surges[name] = surge_sessions(server.port, tender_id, emails, bodies, offsets)
            surges[name]["cpu"] = cpu_seconds(server) - cpu
            loads[name] += " → " + _load()
        stop.set()
        records = results.get(timeout=120)
        portal.join(timeout=30)
        time.sleep(1)  # the last follow-up audit transactions
        rows = count_sessions_rows(database_url)

        for name in ("sink", "Fairbid"):
            print(f"--- {name} (load average {loads[name]})")
            _print_surge("bare WSGI sink" if name == "sink" else "Fairbid", surges[name])
        app_result, sink_result = surges["Fairbid"], surges["sink"]
        print("ratio Fairbid / sink (latency; the same requests, the same start times):")
        for name in (*STEPS, "session"):
            mine = app_result["sessions"] if name == "session" else app_result["steps"][name]
            theirs = sink_result["sessions"] if name == "session" else sink_result["steps"][name]
            ratios = [
                percentile(mine, q) / percentile(theirs, q) if percentile(theirs, q) else 0.0
                for q in (0.5, 0.95, 0.99)
            ]
            print(f"    {name:<10} p50 {ratios[0]:.2f}  p95 {ratios[1]:.2f}  p99 {ratios[2]:.2f}")
        print(
            f"ratio Fairbid / sink (wall, first start to last end): "
            f"{app_result['wall'] / sink_result['wall']:.2f}; CPU per session "
            f"{app_result['cpu'] / sink_result['cpu']:.2f}"
        )
        print("portal (signed out, against the app; all threads):")
        phases = [
            ("before the sink's surge", *quiet["sink"]),
            ("during the sink's surge", sink_result["begin"], sink_result["end"]),
            ("before Fairbid's surge", *quiet["Fairbid"]),
            ("during Fairbid's surge", app_result["begin"], app_result["end"]),
        ]
        figures = {}
        for label, begin, end in phases:
            figures[label] = f = portal_figures(records, begin, end)
            shown = ", ".join(f"{k}: {n}" for k, n in sorted(f["outcomes"].items(), key=str))
            print(
                f"    {label:<26}{f['rps']:>8.1f} req/s  p50 {f['p50'] * 1000:>7.0f} ms  "
                f"p99 {f['p99'] * 1000:>7.0f} ms  ({f['requests']} requests; {shown})"
            )
        before, during = figures["before Fairbid's surge"], figures["during Fairbid's surge"]
        print(
            f"portal during / before Fairbid's surge: req/s {during['rps'] / before['rps']:.2f}, "
            f"p99 {during['p99'] / before['p99']:.2f}"
        )
        print(
            f"Bid rows: {rows['bids']}; bid.received audit events: {rows['bid.received']}; "
            f"auth.signed_in audit events: {rows['auth.signed_in']}"
        )
        same = app_result["accepted"] == app_result["sent"] == rows["bids"] == rows["bid.received"]
        print(f"accepted == sent == stored == audited: {'OK' if same else 'MISMATCH'}")
        if not same or app_result["errors"]:
            app_server.log.flush()
            print_log_errors(app_server.log_path.read_text(errors="replace"))
        status = 0 if same else 1
    finally:
        if args.log_dir:
            Path(args.log_dir).mkdir(parents=True, exist_ok=True)
            for server in servers:
                server.log.flush()
                shutil.copy(server.log_path, Path(args.log_dir) / server.log_path.name)
        if portal is not None and portal.is_alive():
            portal.terminate()
            portal.join()
        for server in reversed(servers):
            server.stop()
        with psycopg.connect(args.database_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        redis_client.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=("sessions", "tokens"),
        help="default: tokens when --uploads is given (the earlier command lines), else sessions",
    )
    parser.add_argument("--uploads", type=int, help="tokens mode: simultaneous uploads (200)")
    parser.add_argument("--sessions", type=int, default=300, help="sessions mode: bidders")
    parser.add_argument("--size", type=int, default=5, help="envelope size in MB")
    parser.add_argument(
        "--window",
        type=float,
        default=120.0,
        help="sessions mode: session starts spread at random over this many seconds (0: all "
        "at once)",
    )
    parser.add_argument("--seed", type=int, default=18, help="sessions mode: start times' seed")
    parser.add_argument(
        "--portal-threads", type=int, default=4, help="sessions mode: signed-out portal readers"
    )
    parser.add_argument(
        "--portal-before",
        type=float,
        default=10.0,
        help="sessions mode: seconds of portal load alone before each surge",
    )
    parser.add_argument(
        "--tenders", type=int, default=30, help="sessions mode: more published tenders (portal)"
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="sessions mode: the Redis database of the app (flushed before and after)",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/fairbid_bench",
        help="PostgreSQL (a new schema, dropped afterwards); tokens mode falls back to SQLite "
        "if it does not answer",
    )
    parser.add_argument("--settings", choices=sorted(SETTINGS), default="production")
    parser.add_argument(
        "--log-dir", metavar="DIR", help="sessions mode: keep both servers' logs in DIR"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="cProfile every worker of both servers into DIR/app and DIR/sink "
        "(gunicorn_profile.py)",
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when redirected to a file
    mode = args.mode or ("tokens" if args.uploads is not None else "sessions")
    if mode == "tokens":
        if args.uploads is None:
            args.uploads = 200
        run_tokens(args)
        return 0
    return run_sessions(args)


if __name__ == "__main__":
    raise SystemExit(main())
