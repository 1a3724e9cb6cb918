"""The hash chain of the audit log: pure functions, no database.

Each event's hash is SHA-256 over the canonical JSON of its content and the previous
event's hash, so altering, removing or reordering any event breaks every later link.
Removing the newest events is only detectable against a head hash published elsewhere
(evaluation records embed the head at the time of signing), which `verify_events` accepts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_role",
    "centre_id",
    "action",
    "object_type",
    "object_id",
    "ip",
    "data",
    "prev_hash",
)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: Mapping[str, Any]) -> str:
    content = {name: event[name] for name in HASHED_FIELDS}
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"event {self.seq}" if self.seq is not None else "end of log"
        return f"{where}: {self.reason}"


def verify_events(
    events: Iterable[Mapping[str, Any]], expected_head: str | None = None
) -> ChainBreak | None:
    """Return the first break in the chain, or None when every link holds.

    `events` must come ordered by `seq` as stored; they are checked one at a time, so a
    log of any length is verified in constant memory.
    """
    prev_hash, expected_seq = GENESIS, 1
    for event in events:
        seq = event["seq"]
        if seq != expected_seq:
            return ChainBreak(seq, f"sequence number {seq} where {expected_seq} was expected")
        if event["prev_hash"] != prev_hash:
            return ChainBreak(seq, "previous-hash link does not match the event before it")
        if event_hash(event) != event["hash"]:
            return ChainBreak(seq, "content does not match its hash (event altered)")
        prev_hash, expected_seq = event["hash"], seq + 1
    if expected_head is not None and prev_hash != expected_head:
        return ChainBreak(None, f"head {prev_hash} differs from the expected head {expected_head}")
    return None
