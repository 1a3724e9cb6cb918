"""A real gunicorn server of the drill's app (its database schema, instance folder and blob
store), and the raw HTTP a drill needs to cut an upload in the middle."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psutil
from sqlalchemy import select

from app.bids.models import Bid
from app.extensions import db
from app.tenders.documents import blob_store

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_database_url(app, application_name: str) -> str:
    """The drill app's database URL with its schema (and a name to find its backends by)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["options"]
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(options)}&application_name={application_name}"


class Gunicorn:
    """`gunicorn app:create_app()` on a free port, with one sync worker by default (so the
    drill knows which process holds its request), the app preloaded in the master (a
    killed worker is replaced at once)."""

    def __init__(self, app, log: Path, env: dict | None = None, settings=()):
        self.application_name = f"fairbid-drill-{os.getpid()}-{free_port()}"
        self.env = {
            **os.environ,
            "FAIRBID_ENV": "development",  # errors answered as in production
            "DATABASE_URL": server_database_url(app, self.application_name),
            "REDIS_URL": app.config["REDIS_URL"],
            "FAIRBID_INSTANCE_DIR": str(app.config["INSTANCE_DIR"]),
            "FAIRBID_BLOB_DIR": str(app.config["BLOB_DIR"] or ""),
            "FAIRBID_MAX_ENVELOPE_SIZE": str(app.config["MAX_ENVELOPE_SIZE"]),
            **(env or {}),
        }
        self.settings = list(settings) or ["--workers", "1", "--timeout", "60", "--preload"]
        self.log_path = log
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(gunicorn),
                    *self.settings,
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--chdir",
                    str(REPO),
                    "app:create_app()",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-3000:]}")
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer: {self.log_path.read_text()[-3000:]}")

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def kill_worker(self) -> None:
        """SIGKILL the (one) worker; the master starts a new one."""
        (worker,) = self.workers()
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)

    def kill_all(self) -> None:
        """SIGKILL the master and its workers at once, as a power cut would."""
        processes = [psutil.Process(self.process.pid), *self.workers()]
        for process in processes:
            process.send_signal(signal.SIGKILL)
        psutil.wait_procs(processes, timeout=10)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_all()

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            return response.status, data, dict(response.getheaders())
        finally:
            connection.close()

    def json(self, method: str, path: str, body=None, headers: dict | None = None):
        headers = dict(headers or {})
        raw = b"" if body is None else body
        if body is not None and not isinstance(body, bytes):
            raw = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, data, _ = self.request(method, path, raw, headers)
        return status, (json.loads(data) if data else None)

    def partial_request(self, method: str, path: str, headers: dict, sent: bytes, length: int):
        """Open a request announcing `length` body bytes and send only `sent`: the worker is
        then inside the request, reading. Returns the socket (the caller closes it)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"Content-Length: {length}", "Connection: close", "", ""]
        sock.sendall("\r\n".join(lines).encode() + sent)
        return sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the response on `sock` (0 and b"" if the server hung up)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    if not data:
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def wait_for(condition, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def bids_of(tender) -> list[Bid]:
    db.session.expire_all()
    return list(db.session.scalars(select(Bid).where(Bid.tender_id == tender.id)))


def temp_files(app=None) -> list:
    return sorted((blob_store().root / "tmp").glob("*.part"))


def blob_count() -> int:
    root = blob_store().root
    return sum(1 for path in root.glob("??/??/*") if path.is_file())


def answers(server) -> bool:
    try:
        return server.request("GET", "/healthz")[0] == 200
    except OSError:
        return False
