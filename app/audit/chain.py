"""The hash chain of the audit log: the pure functions live in `bidding.audit_export`.

Each event's hash covers its header (sequence, time, tender, action), the hashes of its public
payload and of its private payload (IP address, salt) and the previous event's hash (version 2;
events written before cover their whole content, version 1), so altering, removing or
reordering any event breaks every later link. Removing the newest events is detectable against
a signed checkpoint or a head published elsewhere (evaluation records embed the head at the
time of signing), which `verify_events` accepts.
"""

from __future__ import annotations

import json
from typing import Any

from bidding.audit_export import (
    GENESIS,
    HASH_VERSION,
    LEGACY_FIELDS,
    ChainBreak,
    event_hash,
    private_payload_hash,
    public_event,
    public_payload_hash,
    verify_events,
)

HASHED_FIELDS = LEGACY_FIELDS

__all__ = [
    "GENESIS",
    "HASHED_FIELDS",
    "HASH_VERSION",
    "ChainBreak",
    "canonical_json",
    "event_hash",
    "private_payload_hash",
    "public_event",
    "public_payload_hash",
    "verify_events",
]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
