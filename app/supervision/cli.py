"""`flask flags`: compute the supervisors' red flags now (the jobs do it after each opening
and nightly). Each command is its own transaction boundary."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import db
from app.supervision import flags
from app.tenders.models import Tender

flags_cli = AppGroup("flags", help="Red flags for supervisors: screen tenders and history.")


@flags_cli.command("screen")
@click.argument("tender_id", type=int)
def screen_command(tender_id: int) -> None:
    """Price and same-source flags of TENDER_ID (nothing before its opening)."""
    if db.session.get(Tender, tender_id) is None:
        raise click.ClickException(f"no tender {tender_id}")
    try:
        raised = flags.screen_tender(tender_id)
    except ValueError as error:  # a bad FAIRBID_FLAG_THRESHOLDS
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    db.session.commit()
    click.echo(f"tender {tender_id}: {raised} flag(s) raised")


@flags_cli.command("market")
def market_command() -> None:
    """Market signals of every centre over its opened tenders."""
    try:
        raised = flags.screen_market()
    except ValueError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    db.session.commit()
    click.echo(f"{raised} market flag(s) raised")
