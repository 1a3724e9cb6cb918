"""What the benchmarks share: a free loopback port and a gunicorn server started,
probed until ready, and stopped, with the same settings for the app and its baseline."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

# The README's "Production stack" gunicorn settings, which the benchmarks run both the app
# and its baseline with (the bind address and the application differ).
PRODUCTION_SETTINGS = [
    "--worker-class",
    "gevent",
    "--workers",
    "2",
    "--worker-connections",
    "2000",
    "--timeout",
    "60",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    def __init__(
        self,
        name: str,
        app_spec: str,
        chdir: Path,
        env: dict,
        log: Path,
        settings: Sequence[str],
    ):
        self.name = name
        self.port = free_port()
        self.log_path = log
        self.log = log.open("wb")
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                *settings,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(chdir),
                app_spec,
            ],
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, probe: Callable[[int], bool], what: str, timeout: float = 60) -> None:
        """Poll `probe(port)` until it answers True (connection errors mean not yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited; see {self.log_path}")
            try:
                if probe(self.port):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} server did not answer {what} in {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@contextlib.contextmanager
def schema_of_its_own(database_url: str, name: str) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL schema and a temporary directory for one run, both removed after:
    yields the SQLAlchemy URL whose search path is that schema, and the directory."""
    import psycopg

    workdir = Path(tempfile.mkdtemp(prefix=f"fairbid-{name}-"))
    schema = f"{name}_{os.getpid()}"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        base = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}?options=-csearch_path%3D{schema}", workdir
    finally:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(workdir, ignore_errors=True)
