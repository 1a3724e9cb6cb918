"""`flask bids`: audit reconciliation and sealing records. Each command is its own
transaction boundary."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.bids.jobs import seal_tender
from app.bids.operations import reconcile_audit
from app.core.errors import OperationError
from app.extensions import db
from app.tenders.models import TenderDocument

bids_cli = AppGroup("bids", help="Sealed bids: audit reconciliation, sealing records.")


@bids_cli.command("reconcile-audit")
def reconcile_audit_command() -> None:
    """Append the bid.received audit events a crash left out."""
    appended = reconcile_audit()
    db.session.commit()
    click.echo(f"appended {len(appended)} missing bid.received event(s)")
    for bid_id in appended:
        click.echo(f"  bid {bid_id}")


@bids_cli.command("seal-tender")
@click.argument("tender_id", type=int)
def seal_tender_command(tender_id: int) -> None:
    """Publish TENDER_ID's sealing record (after its deadline; idempotent)."""
    try:
        document_id = seal_tender(tender_id)
    except OperationError as error:
        db.session.rollback()
        raise click.ClickException(str(error.message)) from None
    document = db.session.get(TenderDocument, document_id)
    click.echo(f"sealing record of tender {tender_id}: document {document_id} {document.sha256}")
