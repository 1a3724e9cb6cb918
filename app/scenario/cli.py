"""`flask scenario run`: the end-to-end drill from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from app.scenario import Options, run

scenario_cli = AppGroup("scenario", help="The end-to-end drill (training, rehearsals, tests).")


@scenario_cli.command("run")
@click.option("--bidders", type=click.IntRange(1, 500), default=5, show_default=True)
@click.option("--experts", type=click.IntRange(1, 99), default=5, show_default=True)
@click.option(
    "--template",
    type=click.Choice(["goods", "works", "services", "asset_sale"]),
    default="goods",
    show_default=True,
)
@click.option(
    "--lots",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    help="Divide the tender into this many lots (companies spread over them, one bidding "
    "for every lot; a company wins at most one).",
)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, help="Seed of the random prices and scores.")
@click.option("--centre", "centre_code", help="Run in this existing centre (default: a new one).")
@click.option(
    "--stop-after",
    type=click.Choice(
        [
            "setup",
            "create",
            "publish",
            "companies",
            "bids",
            "deadline",
            "opening",
            "panel",
            "review",
            "scoring",
            "unblinded",
            "record",
            "candidates",
            "award",
        ]
    ),
    default="award",
    show_default=True,
)
@click.option("--no-migrate", is_flag=True, help="Do not apply the migrations first.")
def scenario_run(
    bidders: int,
    experts: int,
    template: str,
    lots: int,
    out: Path,
    seed: int | None,
    centre_code: str | None,
    stop_after: str,
    no_migrate: bool,
) -> None:
    """Run a whole tender through the real services on the configured database and write
    its records, receipts, scoring file, open data and audit events to OUT."""
    from flask import current_app

    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("the drill creates accounts and tenders: not in production")
    if not no_migrate:
        from flask_migrate import upgrade

        upgrade()
    options = Options(
        template=template,
        bidders=bidders,
        experts=experts,
        lots=lots,
        seed=seed,
        centre_code=centre_code,
        echo=click.echo,
    )
    try:
        result = run(options, stop_after=stop_after, out=out)
    except (ValueError, LookupError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    if result.stopped and not result.failed:
        sys.exit(2)
