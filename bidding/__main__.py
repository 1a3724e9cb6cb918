"""Entry point of ``python -m bidding`` (see :mod:`bidding.cli`)."""

from .cli import main

raise SystemExit(main())
