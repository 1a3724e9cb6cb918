"""`flask clock`: tick every FAIRBID_CLOCK_SECONDS until stopped; `flask clock --once`."""

from __future__ import annotations

import logging
import os
import threading

import click
from flask import Flask, current_app

from app.clock.service import TickReport, tick
from app.extensions import db

log = logging.getLogger(__name__)


def _echo(report: TickReport) -> None:
    for step, tender in report.performed:
        click.echo(f"{report.now.isoformat()} {step} tender {tender}")
    for seq in report.checkpoints:
        click.echo(f"{report.now.isoformat()} audit checkpoint at event {seq}")
    for step, tender in report.failed:
        click.echo(f"{report.now.isoformat()} FAILED {step} tender {tender}", err=True)
    for kind, tender in report.raised:
        click.echo(f"{report.now.isoformat()} alert {kind} tender {tender}")


def run_forever(app: Flask, stop: threading.Event, seconds: float, echo=None) -> None:
    """Tick until `stop` is set. A tick that raises is logged and the next one runs."""
    while not stop.is_set():
        with app.app_context():
            try:
                report = tick()
                if echo is not None:
                    echo(report)
            except Exception:
                log.exception("clock tick failed; the next tick retries")
            finally:
                db.session.remove()
        stop.wait(seconds)


@click.command("clock")
@click.option("--once", is_flag=True, help="Tick once and exit.")
@click.option("--seconds", type=float, default=None, help="Interval (FAIRBID_CLOCK_SECONDS).")
def clock_command(once: bool, seconds: float | None) -> None:
    """Run the clock: deadlines, sealing, opening notices, overdue alerts."""
    if once:
        _echo(tick())
        return
    interval = seconds or float(current_app.config.get("CLOCK_SECONDS", 15))
    click.echo(f"clock: ticking every {interval:g} s (Ctrl-C stops)")
    stop = threading.Event()
    try:
        run_forever(current_app._get_current_object(), stop, interval, _echo)
    except KeyboardInterrupt:
        stop.set()


def start_in_process(app: Flask) -> threading.Thread | None:
    """`make run` (embedded defaults): the clock as a daemon thread of the web process, so it
    shares the in-process Redis stand-in (cache, live events) with the pages. Not in the
    reloader's watching parent, which serves nothing."""
    if app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true":
        return None
    stop = threading.Event()
    seconds = float(app.config.get("CLOCK_SECONDS", 15))
    thread = threading.Thread(
        target=run_forever, args=(app, stop, seconds), name="fairbid-clock", daemon=True
    )
    thread.start()
    log.info("clock: ticking every %g s in this process", seconds)
    return thread
