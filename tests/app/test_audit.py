"""The hash-chained audit log: any alteration, deletion or reordering is detected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from app.audit import AuditEvent, append_event, chain_head, verify_chain
from app.audit.chain import GENESIS, event_hash, verify_events
from app.extensions import db

# ---- the pure chain -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
event_content = st.fixed_dictionaries(
    {
        "occurred_at": st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
        "actor_id": st.none() | st.integers(1, 10**6),
        "actor_role": st.none() | st.sampled_from(["bidder", "staff", "admin"]),
        "centre_id": st.none() | st.integers(1, 100),
        "action": st.text(min_size=1, max_size=20),
        "object_type": st.none() | st.text(max_size=10),
        "object_id": st.none() | st.text(max_size=10),
        "ip": st.none() | st.ip_addresses().map(str),
        "data": st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    }
)


def build_chain(contents):
    events, prev = [], GENESIS
    for seq, content in enumerate(contents, start=1):
        event = {**content, "seq": seq, "prev_hash": prev}
        event["hash"] = event_hash(event)
        events.append(event)
        prev = event["hash"]
    return events


chains = st.lists(event_content, min_size=2, max_size=12).map(build_chain)
FIELDS = [
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
    "hash",
    "seq",
]


@given(chains)
def test_intact_chain_verifies(events):
    assert verify_events(events) is None
    assert verify_events(events, expected_head=events[-1]["hash"]) is None


def _altered(value):
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, int) and not isinstance(value, bool):
        return value + 1
    if isinstance(value, dict):
        return {**value, "tampered": True}
    return "tampered"


@given(chains, st.data())
def test_any_altered_field_is_detected(events, data):
    index = data.draw(st.integers(0, len(events) - 1))
    field = data.draw(st.sampled_from(FIELDS))
    tampered = [dict(e) for e in events]
    tampered[index][field] = _altered(tampered[index][field])
    broken = verify_events(tampered)
    assert broken is not None
    assert broken.seq in {events[index]["seq"], tampered[index]["seq"]}


@given(chains, st.data())
def test_any_deletion_is_detected(events, data):
    index = data.draw(st.integers(0, len(events) - 2))  # the newest needs the head, below
    remaining = events[:index] + events[index + 1 :]
    assert verify_events(remaining) is not None


@given(chains)
def test_deleting_the_newest_is_detected_against_the_published_head(events):
    assert verify_events(events[:-1], expected_head=events[-1]["hash"]) is not None


@given(chains, st.data())
def test_any_reorder_is_detected(events, data):
    i = data.draw(st.integers(0, len(events) - 1))
    j = data.draw(st.integers(0, len(events) - 1).filter(lambda k: k != i))
    swapped = list(events)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    assert verify_events(swapped) is not None


@settings(max_examples=25)
@given(chains, st.data())
def test_rehashed_forgery_is_detected_by_the_next_link(events, data):
    """An attacker who alters an event and recomputes its hash still breaks the next link."""
    index = data.draw(st.integers(0, len(events) - 2))
    forged = [dict(e) for e in events]
    forged[index]["action"] = "forged"
    forged[index]["hash"] = event_hash(forged[index])
    broken = verify_events(forged)
    assert broken is not None and broken.seq == events[index + 1]["seq"]


# ---- in the database ----------------------------------------------------------------


def _record(n: int) -> None:
    for i in range(n):
        append_event("test.event", object_type="thing", object_id=i, data={"i": i})
    db.session.commit()


def _bypass_append_only(statement: str, params: dict) -> None:
    """What a database administrator with full rights could do behind the app's back."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER USER")
        connection.execute(text(statement), params)
        connection.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER USER")
    else:
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_delete")
        connection.execute(text(statement), params)


def test_events_are_chained_in_the_database(app):
    _record(5)
    assert verify_chain() is None
    seq, head = chain_head()
    assert seq == 5
    assert verify_chain(expected_head=head) is None


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_event SET action = 'x' WHERE seq = 2", "DELETE FROM audit_event WHERE seq = 2"],
)
def test_database_refuses_update_and_delete(app, statement):
    _record(3)
    with pytest.raises(DatabaseError, match="append-only"), db.session.begin_nested():
        db.session.execute(text(statement))
    assert verify_chain() is None


def test_orm_refuses_to_change_an_event(app):
    _record(2)
    event = db.session.get(AuditEvent, 1)
    event.action = "rewritten"
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.flush()
    db.session.rollback()


def test_flask_audit_verify_names_the_altered_event(app, runner):
    _record(4)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK: 4 events" in result.output
    _bypass_append_only("UPDATE audit_event SET data = :data WHERE seq = 3", {"data": '{"i":99}'})
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "event 3" in result.output and "altered" in result.output


def test_flask_audit_verify_names_a_removed_event(app, runner):
    _record(4)
    _bypass_append_only("DELETE FROM audit_event WHERE seq = :seq", {"seq": 2})
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "event 3" in result.output


def test_flask_audit_verify_detects_reordering(app, runner):
    _record(3)
    rows = {r.seq: r for r in db.session.execute(select(AuditEvent.__table__)).all()}
    # Swap the contents of events 1 and 2 while keeping their sequence numbers.
    swap = (
        "UPDATE audit_event SET action = :action, data = :data, prev_hash = :prev, "
        "hash = :hash WHERE seq = :seq"
    )
    _bypass_append_only(
        swap,
        {
            "action": rows[2].action,
            "data": rows[2].data,
            "prev": "p" * 64,
            "hash": "h" * 64,
            "seq": 1,
        },
    )
    _bypass_append_only(
        swap,
        {
            "action": rows[1].action,
            "data": rows[1].data,
            "prev": rows[1].prev_hash,
            "hash": rows[1].hash,
            "seq": 2,
        },
    )
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "event 1" in result.output
