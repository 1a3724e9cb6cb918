"""The audit export (bidding.audit_export): a tender's events with their public payload and
the hash of their private one (no IP address), other tenders' as stubs, between two signed
checkpoints; every tampering is named by `verify_export` and by
`python -m bidding verify-audit`."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidding import audit_export as ax
from bidding.cli import main
from bidding.errors import AuditExportError
from bidding.keys import public_key_to_pem
from bidding.receipts import dump_document

TENDER = 7
IP = "192.0.2.1"


def make_chain(tenders: list[int | None], start_version: int = 2) -> list[dict]:
    """Events chained from genesis, one per entry of `tenders` (the tender each belongs to)."""
    events, prev = [], ax.GENESIS
    for seq, tender in enumerate(tenders, 1):
        event = {
            "seq": seq,
            "version": start_version,
            "tender": tender,
            "occurred_at": f"2026-12-01T10:{seq % 60:02d}:00.000000Z",
            "actor_id": seq % 3 or None,
            "actor_role": "staff",
            "centre_id": 1,
            "action": f"test.action_{seq % 4}",
            "object_type": "tender" if tender else "user",
            "object_id": str(tender or seq),
            "ip": IP,
            "data": {"n": seq, "secret": f"payload of {tender}"},
            "prev_hash": prev,
        }
        if start_version == 2:
            event["salt"] = f"{seq:032x}"
        event["hash"] = ax.event_hash(event)
        events.append(event)
        prev = event["hash"]
    return events


def checkpoint(events: list[dict], seq: int, key: Ed25519PrivateKey) -> dict:
    head = events[seq - 1]["hash"]
    return ax.sign_checkpoint(ax.Checkpoint(seq, head, f"2026-12-01T11:{seq:02d}:00", "test"), key)


def export(
    events: list[dict], key: Ed25519PrivateKey, from_seq: int, to_seq: int, tender: int = TENDER
) -> bytes:
    items: list[tuple[str, dict]] = []
    if from_seq:
        items.append(("checkpoint", checkpoint(events, from_seq, key)))
    for event in events[from_seq:to_seq]:
        items.append(("event", event))
    items.append(("checkpoint", checkpoint(events, to_seq, key)))
    header = {"tender": tender, "from_seq": from_seq, "to_seq": to_seq}
    return b"".join(ax.export_lines(header, items))


def lines_of(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


def join(lines: list[dict]) -> bytes:
    return b"".join(ax.cj(line) + b"\n" for line in lines)


TENDERS = [None, 3, TENDER, 3, TENDER, None, TENDER, 5, 3, TENDER, 5]


@pytest.fixture(scope="module")
def chain() -> list[dict]:
    return make_chain(TENDERS)


def test_an_export_verifies_and_hides_other_tenders_payloads(chain, platform_key):
    data = export(chain, platform_key, 2, 11)
    summary = ax.verify_export(data, platform_key.public_key(), expected_tender=TENDER)
    assert (summary.events, summary.stubs, summary.checkpoints) == (4, 5, 2)
    assert (summary.from_seq, summary.to_seq) == (2, 11)
    assert b"payload of 3" not in data and b"payload of 5" not in data
    assert b"payload of 7" in data
    # No event carries its private payload: only its hash.
    assert IP.encode() not in data and b'"salt"' not in data and b'"ip"' not in data
    events = [line for line in lines_of(data) if line["type"] == "event"]
    assert all(
        line["payload_private_sha256"] == ax.private_payload_hash(chain[line["seq"] - 1])
        for line in events
    )
    # From the genesis, no opening checkpoint is needed.
    assert ax.verify_export(export(chain, platform_key, 0, 10), platform_key.public_key())


def _delete(index: int) -> Callable[[list[dict]], list[dict]]:
    return lambda lines: lines[:index] + lines[index + 1 :]


def _alter_payload(lines: list[dict]) -> list[dict]:
    for line in lines:
        if line["type"] == "event":
            line["data"]["n"] = 999
            break
    return lines


def _rehash_payload(lines: list[dict]) -> list[dict]:
    """Alter an event and recompute its own hash: the next link breaks."""
    for line in lines:
        if line["type"] == "event":
            line["data"]["n"] = 999
            line["hash"] = ax.event_hash(line)
            break
    return lines


def _alter_private_hash(lines: list[dict]) -> list[dict]:
    for line in lines:
        if line["type"] == "event":
            line["payload_private_sha256"] = "0" * 64
            break
    return lines


def _alter_stub_private_hash(lines: list[dict]) -> list[dict]:
    for line in lines:
        if line["type"] == "stub":
            line["payload_private_sha256"] = "0" * 64
            break
    return lines


def _publish_private(lines: list[dict]) -> list[dict]:
    """An event line carrying an IP address is refused (the format has no place for it)."""
    for line in lines:
        if line["type"] == "event":
            line["ip"] = IP
            break
    return lines


def _claim_stub(lines: list[dict]) -> list[dict]:
    """Hide one of the tender's events as a stub, still claiming its tender."""
    for index, line in enumerate(lines):
        if line["type"] == "event":
            lines[index] = ax.stub(line)
            break
    return lines


def _relabel_stub(lines: list[dict]) -> list[dict]:
    """Hide one of the tender's events as a stub of another tender."""
    for index, line in enumerate(lines):
        if line["type"] == "event":
            hidden = ax.stub(line)
            hidden["tender"] = 3
            lines[index] = hidden
            break
    return lines


def _swap(lines: list[dict]) -> list[dict]:
    lines[3], lines[4] = lines[4], lines[3]
    return lines


def _forge_signature(lines: list[dict]) -> list[dict]:
    forged = ax.sign_checkpoint(
        ax.Checkpoint(**{**lines[-1]["document"]["checkpoint"]}), Ed25519PrivateKey.generate()
    )
    lines[-1]["document"]["signature"] = forged["signature"]
    return lines


def _move_checkpoint(lines: list[dict]) -> list[dict]:
    """A genuine checkpoint of an earlier head, claimed as the closing one."""
    lines[-1] = lines[1]
    return lines


def _alter_stub_header(lines: list[dict]) -> list[dict]:
    for line in lines:
        if line["type"] == "stub":
            line["action"] = "test.something_else"
            break
    return lines


def _other_tender(lines: list[dict]) -> list[dict]:
    lines[0]["tender"] = 3
    return lines


TAMPERING = {
    "event deleted": (_delete(3), "sequence number"),
    "events reordered": (_swap, "sequence number"),
    "truncated (last events and checkpoint)": (lambda lines: lines[:-3], "truncated"),
    "truncated (closing checkpoint)": (lambda lines: lines[:-1], "truncated"),
    "truncated (last event, checkpoint kept)": (
        lambda lines: lines[:-2] + lines[-1:],
        "does not match the chain",
    ),
    "payload altered": (_alter_payload, "content does not match its hash"),
    "payload altered and rehashed": (_rehash_payload, "previous-hash link"),
    "private payload hash altered": (_alter_private_hash, "content does not match its hash"),
    "stub's private payload hash altered": (
        _alter_stub_private_hash,
        "content does not match its hash",
    ),
    "private payload published": (_publish_private, "malformed event"),
    "stub header altered": (_alter_stub_header, "content does not match its hash"),
    "stub claimed for this tender": (_claim_stub, "stub of tender 7 itself"),
    "tender's event relabelled as another's stub": (
        _relabel_stub,
        "content does not match its hash",
    ),
    "checkpoint signature forged": (_forge_signature, "signature"),
    "earlier checkpoint as the closing one": (_move_checkpoint, "does not match the chain"),
    "opening checkpoint removed": (_delete(1), "opening checkpoint"),
    "header names another tender": (_other_tender, "a full event of tender 7, not 3"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_every_tampering_is_named(chain, platform_key, case):
    tamper, reason = TAMPERING[case]
    data = join(tamper(lines_of(export(chain, platform_key, 2, 11))))
    with pytest.raises(AuditExportError, match=reason):
        ax.verify_export(data, platform_key.public_key())


def test_the_expected_tender_is_checked(chain, platform_key):
    with pytest.raises(AuditExportError, match="of tender 7, not 3"):
        ax.verify_export(export(chain, platform_key, 2, 11), platform_key.public_key(), 3)


def test_malformed_input_is_refused(platform_key):
    key = platform_key.public_key()
    for data, reason in [
        (b"", "empty export"),
        (b"not json\n", "not valid JSON"),
        (b'{"type":"export"}\n', "header"),
        (
            b'{"type":"export","format":"fairbid-audit-export","tender":1,"from_seq":3,'
            b'"to_seq":2}\n',
            "from < to",
        ),
    ]:
        with pytest.raises(AuditExportError, match=reason):
            ax.verify_export(data, key)


def test_version_one_events_verify_in_full_but_not_as_stubs(platform_key):
    legacy = make_chain([TENDER, 3, TENDER], start_version=1)
    assert ax.verify_events(legacy) is None
    with pytest.raises(AuditExportError, match="version-1 stub"):
        ax.verify_export(export(legacy, platform_key, 0, 3), platform_key.public_key())


def test_the_private_hash_is_salted():
    """The same IP address hashes differently under two salts, and the hash commits to it."""
    event = make_chain([TENDER])[0]
    other = {**event, "salt": "f" * 32}
    assert ax.private_payload_hash(event) != ax.private_payload_hash(other)
    assert ax.private_payload_hash(event) != ax.private_payload_hash({**event, "ip": "192.0.2.2"})
    assert ax.event_hash(ax.public_event(event)) == event["hash"]
    assert "ip" not in ax.public_event(event) and "salt" not in ax.public_event(event)


def test_the_chain_of_mixed_versions_verifies_and_breaks(chain):
    mixed = make_chain([1, 2], start_version=1)
    tail = make_chain([3, 4])
    prev = mixed[-1]["hash"]
    for offset, event in enumerate(tail, 3):
        event["seq"], event["prev_hash"] = offset, prev
        event["hash"] = ax.event_hash(event)
        prev = event["hash"]
    events = mixed + tail
    assert ax.verify_events(events, expected_head=prev) is None
    events[2] = {**events[2], "tender": 9}
    assert "altered" in str(ax.verify_events(events))


# --- property: any single change of any export is caught --------------------------------

tender_lists = st.lists(st.sampled_from([None, 1, 2, TENDER]), min_size=2, max_size=14).filter(
    lambda tenders: TENDER in tenders
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tender_lists, st.data())
def test_any_single_change_is_caught(platform_key, tenders, data):
    events = make_chain(tenders)
    first = tenders.index(TENDER) + 1
    from_seq = data.draw(st.integers(0, first - 1), label="from")
    to_seq = data.draw(st.integers(max(first, from_seq + 1), len(events)), label="to")
    genuine = export(events, platform_key, from_seq, to_seq)
    summary = ax.verify_export(genuine, platform_key.public_key(), TENDER)
    assert summary.events + summary.stubs == to_seq - from_seq
    lines = lines_of(genuine)
    body = [i for i, line in enumerate(lines) if line["type"] in ("event", "stub")]
    change = data.draw(st.sampled_from(["delete", "swap", "alter", "truncate"]), label="change")
    index = data.draw(st.sampled_from(body), label="line")
    if change == "delete":
        del lines[index]
    elif change == "swap":
        neighbours = [i for i in body if i != index]
        if not neighbours:
            return
        other = data.draw(st.sampled_from(neighbours), label="other")
        lines[index], lines[other] = lines[other], lines[index]
    elif change == "alter":
        fields = (
            ["occurred_at", "payload_public_sha256", "payload_private_sha256"]
            if lines[index]["type"] == "stub"
            else ["data", "actor_id", "payload_private_sha256"]
        )
        field = data.draw(st.sampled_from(fields), label="field")
        lines[index][field] = "changed"
    else:
        lines = lines[:index]
    with pytest.raises(AuditExportError):
        ax.verify_export(join(lines), platform_key.public_key(), TENDER)


# --- command line --------------------------------------------------------------------------


def test_the_command_line_verifies_and_names_the_first_problem(
    chain, platform_key, tmp_path, capsys
):
    key_file = tmp_path / "platform.pem"
    key_file.write_bytes(public_key_to_pem(platform_key.public_key()))
    good = tmp_path / "audit.jsonl"
    good.write_bytes(export(chain, platform_key, 2, 11))
    assert main(["verify-audit", str(good), "--platform-key", str(key_file)]) == 0
    assert "valid audit export of tender 7" in capsys.readouterr().out
    bad = tmp_path / "deleted.jsonl"
    bad.write_bytes(join(_delete(4)(lines_of(good.read_bytes()))))
    assert main(["verify-audit", str(bad), "--platform-key", str(key_file)]) == 1
    assert "sequence number" in capsys.readouterr().err
    assert main(["verify-audit", str(good), "--platform-key", str(key_file), "--tender", "3"]) == 1
    assert main(["verify-audit", str(tmp_path / "missing"), "--platform-key", str(key_file)]) == 2


def test_a_signed_checkpoint_round_trips(platform_key):
    document = dump_document(
        ax.sign_checkpoint(ax.Checkpoint(5, "a" * 64, "2026-12-01T00:00:00", "first"), platform_key)
    )
    assert ax.verify_checkpoint(document, platform_key.public_key()).seq == 5
    with pytest.raises(ValueError):
        ax.sign_checkpoint(ax.Checkpoint(0, "a" * 64, "x", "first"), platform_key)
