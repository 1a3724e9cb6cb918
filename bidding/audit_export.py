"""The audit log's hash chain, its signed checkpoints and the verifiable export of one tender.

The platform's audit log is one global hash chain. Each event has a *header* (sequence number,
time, tender, action), a *public payload* (actor, centre, object, data) and a *private
payload* (the client's IP address, and a per-event random ``salt``: personal data that the
platform keeps and never publishes). From hash version 2 on, an event's hash covers the
header, the SHA-256 of each payload separately and the previous event's hash::

    payload_public_sha256 = SHA-256(cj({actor_id, actor_role, centre_id, object_type,
                                         object_id, data}))
    payload_private_sha256 = SHA-256(cj({ip, salt}))
    hash = SHA-256(cj({version: 2, seq, occurred_at, tender, action, payload_public_sha256,
                       payload_private_sha256, prev_hash}))

where ``cj`` is ``json.dumps(value, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` in UTF-8. The salt (128 random bits in hex) makes the private hash
impossible to brute-force although an IP address has little entropy. Events written before
version 2 (``version`` 1) hash their whole content instead (`LEGACY_FIELDS`), so they stay
verifiable as they were.

So an event can be published without its private payload (its public payload and
``payload_private_sha256``), an event of another tender as a *stub* (its header and both
payload hashes), and the chain still be recomputed over the complete sequence.

A *checkpoint* is the chain head (``seq``, ``head``) signed by the platform's Ed25519 key
(``fairbid-audit-checkpoint``, signed like receipts: ``format NUL cj(body)``).

An *export* (JSON Lines) is: a header line ``{"type": "export", "format":
"fairbid-audit-export", "tender": ..., "from_seq": a, "to_seq": b}``; then a checkpoint line
``{"type": "checkpoint", "document": ...}`` at ``a`` (none when ``a`` is 0: the chain's
genesis); then every event ``a+1 .. b`` in order, with its public payload and private payload
hash (``"type": "event"``) if it is the tender's, else as a stub (``"type": "stub"``), with
checkpoints in between where they were made; and last a checkpoint at ``b``. `verify_export`
proves the sequence is complete and unaltered between the two signed checkpoints and that no
stub belongs to the tender.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import is_hex_sha256
from .errors import AuditExportError
from .receipts import check_signature, load_document, sign_document

GENESIS = "0" * 64
HASH_VERSION = 2
EXPORT_FORMAT = "fairbid-audit-export"
CHECKPOINT_FORMAT = "fairbid-audit-checkpoint"

HEADER_FIELDS = ("seq", "occurred_at", "tender", "action")
PUBLIC_FIELDS = (
    "actor_id",
    "actor_role",
    "centre_id",
    "object_type",
    "object_id",
    "data",
)
# Personal or technical data, never published (hashed with the event's random salt).
PRIVATE_FIELDS = ("ip", "salt")
PAYLOAD_FIELDS = PUBLIC_FIELDS + PRIVATE_FIELDS
# What a version-1 event's hash covers (the whole event, no tender in the header).
LEGACY_FIELDS = (
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


def cj(value: Any) -> bytes:
    """The chain's canonical JSON (floats allowed, unlike `canonical.canonical_json`)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def public_payload_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 of an event's public payload (actor, centre, object, data)."""
    return _sha256(cj({name: event[name] for name in PUBLIC_FIELDS}))


def private_payload_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 of an event's private payload (IP address and salt)."""
    return _sha256(cj({name: event[name] for name in PRIVATE_FIELDS}))


def _digest(event: Mapping[str, Any], name: str, compute: Any) -> str:
    return event[name] if name in event else compute(event)


def event_hash(event: Mapping[str, Any]) -> str:
    """The hash of an event (version 1: its whole content; version 2: its header, each
    payload or, in its place, the payload's hash ``payload_public_sha256`` /
    ``payload_private_sha256``, and its link)."""
    version = event.get("version", 1)
    if version == 1:
        return _sha256(cj({name: event[name] for name in LEGACY_FIELDS}))
    if version != HASH_VERSION:
        raise ValueError(f"unknown hash version {version!r}")
    content = {name: event[name] for name in HEADER_FIELDS}
    content.update(
        version=HASH_VERSION,
        payload_public_sha256=_digest(event, "payload_public_sha256", public_payload_hash),
        payload_private_sha256=_digest(event, "payload_private_sha256", private_payload_hash),
        prev_hash=event["prev_hash"],
    )
    return _sha256(cj(content))


def public_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A version-2 event as published: its private payload replaced by its hash."""
    line = {name: value for name, value in event.items() if name not in PRIVATE_FIELDS}
    line["payload_private_sha256"] = _digest(event, "payload_private_sha256", private_payload_hash)
    return line


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
    """The first break in a complete chain from genesis, or None when every link holds.

    `events` come ordered by `seq` as stored; checked one at a time (constant memory)."""
    prev_hash, expected_seq = GENESIS, 1
    for event in events:
        seq = event["seq"]
        if seq != expected_seq:
            return ChainBreak(seq, f"sequence number {seq} where {expected_seq} was expected")
        if event["prev_hash"] != prev_hash:
            return ChainBreak(seq, "previous-hash link does not match the event before it")
        try:
            computed = event_hash(event)
        except ValueError as exc:
            return ChainBreak(seq, str(exc))
        if computed != event["hash"]:
            return ChainBreak(seq, "content does not match its hash (event altered)")
        prev_hash, expected_seq = event["hash"], seq + 1
    if expected_head is not None and prev_hash != expected_head:
        return ChainBreak(None, f"head {prev_hash} differs from the expected head {expected_head}")
    return None


# --- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: str
    made_at: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "head": self.head, "made_at": self.made_at, "reason": self.reason}


def sign_checkpoint(checkpoint: Checkpoint, platform_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The JSON-ready signed checkpoint (store it with `receipts.dump_document`)."""
    _check_checkpoint(checkpoint.to_json(), ValueError)
    return sign_document(CHECKPOINT_FORMAT, "checkpoint", checkpoint.to_json(), platform_key)


def verify_checkpoint(
    document: Mapping[str, Any] | bytes | str, platform_public_key: Ed25519PublicKey
) -> Checkpoint:
    """Check a signed checkpoint; return it. Raises AuditExportError."""
    doc, body = load_document(
        document, CHECKPOINT_FORMAT, "checkpoint", "checkpoint", AuditExportError
    )
    _check_checkpoint(body, AuditExportError)
    check_signature(
        doc, CHECKPOINT_FORMAT, body, platform_public_key, "checkpoint", AuditExportError
    )
    return Checkpoint(body["seq"], body["head"], body["made_at"], body["reason"])


def _check_checkpoint(body: Mapping[str, Any], error: type[Exception]) -> None:
    if set(body) != {"seq", "head", "made_at", "reason"}:
        raise error("malformed checkpoint: fields must be seq, head, made_at, reason")
    if type(body["seq"]) is not int or body["seq"] < 1:
        raise error("malformed checkpoint: seq must be a positive integer")
    if not is_hex_sha256(body["head"]):
        raise error("malformed checkpoint: head must be a SHA-256 in hex")
    if not isinstance(body["made_at"], str) or not isinstance(body["reason"], str):
        raise error("malformed checkpoint: made_at and reason must be strings")


# --- export --------------------------------------------------------------------------------


def export_lines(
    header: Mapping[str, Any],
    items: Iterable[tuple[str, Mapping[str, Any]]],
) -> Iterable[bytes]:
    """The export's lines. `header` holds at least ``tender``, ``from_seq`` and ``to_seq``;
    `items` are ("event", chain dict) in order and ("checkpoint", signed document) where they
    fall. An event whose ``tender`` is not the header's becomes a stub."""
    tender = header["tender"]
    yield cj({"type": "export", "format": EXPORT_FORMAT, **header}) + b"\n"
    for kind, item in items:
        if kind == "checkpoint":
            yield cj({"type": "checkpoint", "document": dict(item)}) + b"\n"
        elif item.get("tender") == tender:
            if item.get("version", 1) == 1:
                # A version-1 hash covers the whole event: it cannot be shown without it.
                full = {name: value for name, value in item.items() if name != "salt"}
                yield cj({"type": "event", **full}) + b"\n"
            else:
                yield cj({"type": "event", **public_event(item)}) + b"\n"
        else:
            yield cj(stub(item)) + b"\n"


def stub(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event without its payloads (its header, both payload hashes and links)."""
    version = event.get("version", 1)
    line: dict[str, Any] = {"type": "stub", "version": version}
    line.update({name: event.get(name) for name in HEADER_FIELDS})
    line["prev_hash"] = event["prev_hash"]
    line["hash"] = event["hash"]
    if version != 1:
        line["payload_public_sha256"] = _digest(event, "payload_public_sha256", public_payload_hash)
        line["payload_private_sha256"] = _digest(
            event, "payload_private_sha256", private_payload_hash
        )
    return line


@dataclass(frozen=True)
class ExportSummary:
    tender: Any
    from_seq: int
    to_seq: int
    events: int
    stubs: int
    checkpoints: int
    first_checkpoint: Checkpoint | None
    last_checkpoint: Checkpoint


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise AuditExportError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse_line(number: int, line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except AuditExportError as exc:
        raise AuditExportError(f"line {number}: {exc}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AuditExportError(f"line {number}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise AuditExportError(f"line {number}: not a JSON object")
    return value


_LINKS = {"type", "version", *HEADER_FIELDS, "prev_hash", "hash"}
_EVENT_KEYS = {*_LINKS, *PUBLIC_FIELDS, "payload_private_sha256"}
_STUB_KEYS = {*_LINKS, "payload_public_sha256", "payload_private_sha256"}
_V1_EVENT_KEYS = {*_LINKS, *LEGACY_FIELDS}


def verify_export(
    data: bytes,
    platform_public_key: Ed25519PublicKey,
    expected_tender: Any = None,
) -> ExportSummary:
    """Verify an export: every line parses, the chain links from the opening checkpoint (or
    genesis) through every event to the closing checkpoint, every checkpoint is signed by the
    platform and matches the chain where it stands, every full event is the tender's and no
    stub is. Raises AuditExportError naming the first problem."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise AuditExportError("empty export")
    header = _parse_line(1, lines[0])
    if header.get("type") != "export" or header.get("format") != EXPORT_FORMAT:
        raise AuditExportError(f"line 1: not a {EXPORT_FORMAT} header")
    tender = header.get("tender")
    from_seq, to_seq = header.get("from_seq"), header.get("to_seq")
    if tender is None or isinstance(tender, bool) or not isinstance(tender, int | str):
        raise AuditExportError("line 1: the header names no tender")
    if type(from_seq) is not int or type(to_seq) is not int or not 0 <= from_seq < to_seq:
        raise AuditExportError("line 1: from_seq and to_seq must be integers, from < to")
    if expected_tender is not None and str(tender) != str(expected_tender):
        raise AuditExportError(f"the export is of tender {tender}, not {expected_tender}")

    seq, head = 0, GENESIS
    first: Checkpoint | None = None
    last: Checkpoint | None = None
    started = from_seq == 0
    counts = {"event": 0, "stub": 0, "checkpoint": 0}
    for number, raw in enumerate(lines[1:], 2):
        item = _parse_line(number, raw)
        kind = item.get("type")
        if kind == "checkpoint":
            try:
                checkpoint = verify_checkpoint(item.get("document"), platform_public_key)
            except AuditExportError as exc:
                raise AuditExportError(f"line {number}: {exc}") from exc
            if not started:
                if checkpoint.seq != from_seq:
                    raise AuditExportError(
                        f"line {number}: the opening checkpoint is at event {checkpoint.seq}, "
                        f"the header says {from_seq}"
                    )
                seq, head, started, first = checkpoint.seq, checkpoint.head, True, checkpoint
            elif checkpoint.seq != seq or checkpoint.head != head:
                raise AuditExportError(
                    f"line {number}: checkpoint of event {checkpoint.seq} (head "
                    f"{checkpoint.head[:16]}...) does not match the chain recomputed up to "
                    f"event {seq} (head {head[:16]}...)"
                )
            last = checkpoint
            counts["checkpoint"] += 1
            continue
        if kind not in ("event", "stub"):
            raise AuditExportError(f"line {number}: unknown line type {str(kind)[:20]!r}")
        if not started:
            raise AuditExportError(
                f"line {number}: events before the opening checkpoint at event {from_seq}"
            )
        event_seq = item.get("seq")
        where = f"line {number} (event {event_seq})"
        if item.get("version") == 1:
            expected = _V1_EVENT_KEYS if kind == "event" else set(item)
        else:
            expected = _EVENT_KEYS if kind == "event" else _STUB_KEYS
        if set(item) != expected:
            raise AuditExportError(f"{where}: malformed {kind} (unexpected or missing fields)")
        if event_seq != seq + 1:
            raise AuditExportError(
                f"{where}: sequence number {event_seq} where {seq + 1} was expected "
                "(an event is missing, repeated or out of order)"
            )
        if item["prev_hash"] != head:
            raise AuditExportError(f"{where}: previous-hash link does not match the event before")
        if kind == "stub":
            if item.get("version") == 1:
                raise AuditExportError(
                    f"{where}: a version-1 stub cannot be checked (its hash covers its whole "
                    "content)"
                )
            if item["tender"] is not None and str(item["tender"]) == str(tender):
                raise AuditExportError(
                    f"{where}: a stub of tender {tender} itself (its events must be in full)"
                )
            if not is_hex_sha256(item["payload_public_sha256"]):
                raise AuditExportError(f"{where}: malformed payload hash")
        elif item.get("version") != 1 and (
            item["tender"] is None or str(item["tender"]) != str(tender)
        ):
            raise AuditExportError(
                f"{where}: a full event of tender {item['tender']}, not {tender}"
            )
        if item.get("version") != 1 and not is_hex_sha256(item["payload_private_sha256"]):
            raise AuditExportError(f"{where}: malformed private payload hash")
        try:
            computed = event_hash(item)
        except (ValueError, KeyError) as exc:
            raise AuditExportError(f"{where}: {exc}") from exc
        if computed != item["hash"]:
            raise AuditExportError(f"{where}: content does not match its hash (event altered)")
        seq, head = event_seq, computed
        counts[kind] += 1
    if not started:
        raise AuditExportError(f"no opening checkpoint at event {from_seq}")
    if last is None or last.seq != seq or seq != to_seq:
        raise AuditExportError(
            f"the export stops at event {seq} without the closing signed checkpoint at event "
            f"{to_seq} (truncated?)"
        )
    return ExportSummary(
        tender,
        from_seq,
        to_seq,
        counts["event"],
        counts["stub"],
        counts["checkpoint"],
        first,
        last,
    )
