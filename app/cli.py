"""Command-line tools: `flask audit verify`, `flask seed-demo`, `flask users create`,
`flask centres create`."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app import tender_templates
from app.accounts import security
from app.accounts.models import CENTRE_ROLES, User
from app.accounts.operations import (
    check_password_strength,
    normalise_email,
    reseal_totp_secrets,
    user_by_email,
)
from app.audit import append_event, chain_head, verify_chain
from app.bids.cli import bids_cli
from app.centres.models import TradingCentre
from app.centres.operations import create_centre
from app.clock.cli import clock_command
from app.core.errors import OperationError
from app.core.text import clean_name
from app.core.types import utcnow
from app.demo import seed
from app.extensions import db
from app.scenario.cli import scenario_cli
from app.supervision.cli import flags_cli
from app.tenders.template_ops import sync_builtin_templates

audit_cli = AppGroup("audit", help="The tamper-evident audit log.")
users_cli = AppGroup("users", help="Privileged accounts.")
centres_cli = AppGroup("centres", help="Trading centres.")
templates_cli = AppGroup("templates", help="Tender templates.")


@templates_cli.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def templates_validate(files: tuple[str, ...]) -> None:
    """Validate template YAML files; print every error with its path; exit 1 if any."""
    failed = False
    for name in files:
        with open(name, encoding="utf-8") as handle:
            errors = tender_templates.validate_text(handle.read())
        if errors:
            failed = True
            for error in errors:
                click.echo(f"{name}: {error}", err=True)
        else:
            click.echo(f"{name}: valid")
    sys.exit(1 if failed else 0)


@templates_cli.command("sync-builtins")
def templates_sync_builtins() -> None:
    """Install the built-in templates (a new version when a shipped text changed)."""
    templates = sync_builtin_templates()
    db.session.commit()
    for template in templates:
        click.echo(f"{template.key}: version {template.latest.number} {template.latest.sha256}")


@audit_cli.command("verify")
@click.option("--expect-head", help="Also require the chain to end at this hash.")
def audit_verify(expect_head: str | None) -> None:
    """Recompute the hash chain; exit 1 naming the first broken event."""
    broken = verify_chain(expected_head=expect_head)
    seq, head = chain_head()
    if broken is not None:
        click.echo(f"BROKEN at {broken}", err=True)
        sys.exit(1)
    click.echo(f"OK: {seq} events, head {head}")


@audit_cli.command("head")
def audit_head() -> None:
    """Print the sequence number and hash of the newest event."""
    seq, head = chain_head()
    click.echo(f"{seq} {head}")


@users_cli.command("reseal-totp")
def users_reseal_totp() -> None:
    """Seal every TOTP secret again under the current FAIRBID_TOTP_KEY (key rotation)."""
    count = reseal_totp_secrets()
    db.session.commit()
    click.echo(f"resealed the TOTP secrets of {count} users")


@centres_cli.command("create")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--level", type=click.Choice(["city", "county", "township"]), required=True)
@click.option("--parent", "parent_code", help="Code of the parent centre.")
def centres_create(code: str, name: str, level: str, parent_code: str | None) -> None:
    """Create a trading centre."""
    from sqlalchemy import select

    parent_id = None
    if parent_code:
        parent_id = db.session.scalar(
            select(TradingCentre.id).where(TradingCentre.code == parent_code.upper())
        )
        if parent_id is None:
            raise click.ClickException(f"no centre with code {parent_code}")
    try:
        centre = create_centre(None, code=code, name=name, level=level, parent_id=parent_id)
    except OperationError as error:
        raise click.ClickException(str(error.message)) from None
    db.session.commit()
    click.echo(f"created centre {centre.code} (id {centre.id})")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", "full_name", required=True)
@click.option(
    "--role",
    type=click.Choice(["admin", "staff", "custodian", "expert", "supervisor"]),
    required=True,
)
@click.option("--centre", "centre_code", help="Centre code (staff and custodians).")
@click.password_option()
def users_create(email: str, full_name: str, role: str, centre_code: str | None, password: str):
    """Create a privileged account (the first administrator, typically)."""
    from sqlalchemy import select

    centre_id = None
    if role in CENTRE_ROLES:
        centre_id = db.session.scalar(
            select(TradingCentre.id).where(TradingCentre.code == (centre_code or "").upper())
        )
        if centre_id is None:
            raise click.ClickException("staff and custodians need --centre with an existing code")
    try:
        full_name = clean_name(full_name, "--name")
        check_password_strength(password)
    except OperationError as error:
        raise click.ClickException(str(error.message)) from None
    if user_by_email(email):
        raise click.ClickException("an account with this e-mail exists")
    user = User(
        email=normalise_email(email),
        full_name=full_name,
        role=role,
        centre_id=centre_id,
        password_hash=security.hash_password(password),
        email_confirmed_at=utcnow(),
    )
    db.session.add(user)
    db.session.flush()
    append_event(
        "user.created",
        object_type="user",
        object_id=user.id,
        centre_id=centre_id,
        data={"email": user.email, "role": role, "via": "cli"},
    )
    db.session.commit()
    click.echo(f"created {role} {user.email}; a TOTP authenticator is enrolled at first sign-in")


@click.command("seed-demo")
def seed_demo() -> None:
    """Seed demo centres and accounts (idempotent; refused in production)."""
    seed(echo=click.echo)


def init_app(app: Flask) -> None:
    app.cli.add_command(audit_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(centres_cli)
    app.cli.add_command(templates_cli)
    app.cli.add_command(seed_demo)

    app.cli.add_command(bids_cli)

    app.cli.add_command(scenario_cli)
    app.cli.add_command(flags_cli)
    app.cli.add_command(clock_command)
