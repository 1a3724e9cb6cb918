"""API: envelope submission (the same envelopes `python -m bidding seal` makes), receipts,
sealing records."""

from __future__ import annotations
