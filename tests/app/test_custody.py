"""Key custody: custodians' own keys (passphrase rules, nothing in clear at rest, re-keying
only while no sealed tender depends on the key), the key ceremony at publication (refused
while a custodian has no key; k shares rebuild the key, k-1 do not), the paper backup, and
the tender public key in the API."""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import timedelta
from decimal import Decimal

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import func, select

from app.accounts import operations as account_ops
from app.accounts.models import Role, User
from app.audit.models import AuditEvent
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.custody import operations as custody
from app.custody.models import CustodianKey, KeyShare, TenderKey
from app.extensions import db
from app.permissions import PermissionDenied
from app.tenders import operations as tender_ops
from app.tenders.models import Tender
from app.tenders.template_ops import sync_builtin_templates
from bidding import keys
from bidding.errors import KeyMismatch, WrongPassphrase
from tests.factories import CUSTODIAN_PASSPHRASE, PASSWORD, rebuild_tender_key
from tests.factories.accounts import bearer

NEW_PASSPHRASE = "a brand new key passphrase"


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def text(response) -> str:
    return response.get_data(as_text=True)


def audit_events(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        )
    )


def data_of(event: AuditEvent) -> dict:
    return json.loads(event.data)


def everything_stored() -> str:
    """Every key-related row and the whole audit log, as one text to search for secrets."""
    parts = []
    for model in (CustodianKey, TenderKey, KeyShare, AuditEvent):
        for row in db.session.execute(select(model.__table__)).all():
            parts.append(repr(tuple(row)))
    return "\n".join(parts)


def secret_spellings(raw: bytes) -> list[str]:
    return [raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]


def unlock_words(share: KeyShare, passphrase: str = CUSTODIAN_PASSPHRASE) -> str:
    locked = db.session.get(CustodianKey, share.custodian_key_id).locked_private_key
    private_key = keys.unlock_custodian_key(locked.encode(), passphrase)
    return keys.decrypt_share(json.loads(share.encrypted_share), private_key)


@pytest.fixture
def centre(make_centre):
    return make_centre()


@pytest.fixture
def staff(make_user, centre):
    return make_user(Role.STAFF, centre=centre)


@pytest.fixture
def goods_version(app):
    templates = {t.key: t for t in sync_builtin_templates()}
    db.session.commit()
    return templates["goods"].latest


@pytest.fixture
def make_draft(staff, centre, goods_version):
    """A draft goods tender made through the operations, naming `custodians`, k of n."""

    def make(custodians, threshold: int = 2, reference: str = "KC-2026-001") -> Tender:
        now = utcnow()
        deadline = now + timedelta(days=25)
        data = tender_ops.TenderInput(
            reference=reference,
            title="Laboratory benches",
            publication_at=now,
            enquiry_deadline=deadline - timedelta(days=5),
            submission_deadline=deadline,
            opening_at=deadline + timedelta(hours=1),
            lots=[tender_ops.LotInput("Benches", ceiling_price=Decimal("500000.00"))],
            custodian_ids=[c.id for c in custodians],
            custodian_threshold=threshold,
        )
        tender = tender_ops.create_tender(staff, centre.id, goods_version, data)
        db.session.commit()
        return tender

    return make


def publish(app, staff, tender) -> None:
    """As the staff page does it (documents are rendered with the request's URLs)."""
    with app.test_request_context():
        tender_ops.publish_tender(staff, tender, pyotp.TOTP(staff.totp_secret).now())


# --- the custodian's own key -----------------------------------------------------------------


def test_the_publication_hook_is_registered(app):
    from app.tenders.signals import tender_publishing

    assert custody.key_ceremony_on_publication in tender_publishing.receivers_for(object())


def test_envelope_tender_id(make_tender):
    tender = make_tender(keyed=False)
    assert custody.envelope_tender_id(tender) == f"T{tender.id}"


def test_a_custodian_sets_up_a_key(client, auth, make_user):
    custodian = make_user(Role.CUSTODIAN, with_key=False)
    auth.login(custodian)
    page = client.get("/custody/")
    assert page.status_code == 200 and "You have no key yet" in text(page)
    assert client.get("/custody/key").status_code == 200

    refusals = [
        ({"passphrase": "too short", "confirm": "too short"}, "Use 12 to 256 characters."),
        ({"passphrase": NEW_PASSPHRASE, "confirm": NEW_PASSPHRASE + "!"}, "passphrases differ"),
        ({"passphrase": PASSWORD, "confirm": PASSWORD}, "not your sign-in password"),
        ({"passphrase": " " * 14, "confirm": " " * 14}, "This field is required"),
    ]
    for data, message in refusals:
        response = client.post("/custody/key", data=data)
        assert response.status_code == 400, data
        assert message in text(response).replace("&#39;", "'"), data
    assert count(CustodianKey) == 0

    response = client.post(
        "/custody/key", data={"passphrase": NEW_PASSPHRASE, "confirm": NEW_PASSPHRASE}
    )
    assert response.status_code == 302
    key = db.session.scalar(select(CustodianKey).where(CustodianKey.user_id == custodian.id))
    assert key.retired_at is None
    assert len(key.public_key) == 64
    assert key.fingerprint == keys.key_fingerprint(bytes.fromhex(key.public_key))
    assert key.fingerprint in text(client.get("/custody/"))

    # The right passphrase unlocks the stored key; its private bytes are stored nowhere.
    private_key = keys.unlock_custodian_key(key.locked_private_key.encode(), NEW_PASSPHRASE)
    assert private_key.public_key().public_bytes_raw().hex() == key.public_key
    stored = everything_stored()
    for spelling in secret_spellings(private_key.private_bytes_raw()):
        assert spelling not in stored
    assert NEW_PASSPHRASE not in stored
    with pytest.raises(WrongPassphrase):
        keys.unlock_custodian_key(key.locked_private_key.encode(), NEW_PASSPHRASE + "x")

    (event,) = audit_events("custodian_key.created")
    assert event.actor_id == custodian.id
    assert data_of(event)["fingerprint"] == key.fingerprint and data_of(event)["replaces"] is None


def test_the_key_is_locked_with_the_configured_argon2id(app, make_user):
    custodian = make_user(Role.CUSTODIAN)
    key = custody.active_key_of(custodian)
    kdf = json.loads(key.locked_private_key)["kdf"]
    assert kdf["name"] == "argon2id"
    assert {k: kdf[k] for k in ("iterations", "lanes", "memory_cost")} == app.config[
        "CUSTODIAN_KEY_KDF"
    ]


def test_only_key_holders_have_keys(app, make_user):
    for role in (Role.BIDDER, Role.EXPERT, Role.ADMIN):
        with pytest.raises(PermissionDenied):
            custody.create_custodian_key(make_user(role), NEW_PASSPHRASE)
    for role in (Role.STAFF, Role.SUPERVISOR):
        assert custody.create_custodian_key(make_user(role), NEW_PASSPHRASE).id


def test_rekeying_retires_the_old_key(client, auth, make_user):
    custodian = make_user(Role.CUSTODIAN)
    old = custody.active_key_of(custodian)
    auth.login(custodian)
    response = client.post(
        "/custody/key", data={"passphrase": NEW_PASSPHRASE, "confirm": NEW_PASSPHRASE}
    )
    assert response.status_code == 302
    db.session.expire_all()
    new = custody.active_key_of(custodian)
    assert new.id != old.id and new.public_key != old.public_key
    assert db.session.get(CustodianKey, old.id).retired_at is not None
    (retired,) = audit_events("custodian_key.retired")
    assert data_of(retired) == {"fingerprint": old.fingerprint}
    assert data_of(audit_events("custodian_key.created")[-1])["replaces"] == old.fingerprint


def test_rekeying_is_refused_while_a_sealed_tender_holds_a_share(client, auth, make_tender):
    tender = make_tender(reference="SEALED-7")
    custodian = db.session.get(User, tender.custodians[0].user_id)
    key = custody.active_key_of(custodian)
    auth.login(custodian)
    page = client.get("/custody/key")
    assert "SEALED-7" in text(page)
    response = client.post(
        "/custody/key", data={"passphrase": NEW_PASSPHRASE, "confirm": NEW_PASSPHRASE}
    )
    assert response.status_code == 409
    assert "cannot be replaced yet" in text(response) and "SEALED-7" in text(response)
    db.session.expire_all()
    assert custody.active_key_of(custodian).id == key.id
    assert count(CustodianKey) == 2  # the tender's two custodians, nothing new

    # After the opening the share has done its work: the key may be replaced.
    tender.status = "opened"
    db.session.commit()
    response = client.post(
        "/custody/key", data={"passphrase": NEW_PASSPHRASE, "confirm": NEW_PASSPHRASE}
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert custody.active_key_of(custodian).id != key.id


# --- the key ceremony at publication ---------------------------------------------------------


def test_publication_is_refused_while_a_custodian_has_no_key(
    client, make_user, make_draft, staff, centre
):
    ready = make_user(Role.CUSTODIAN, centre=centre, full_name="Kim Ready")
    keyless = make_user(Role.CUSTODIAN, centre=centre, full_name="Lee Keyless", with_key=False)
    colleague = make_user(Role.STAFF, centre=centre, full_name="Sun Colleague")
    draft = make_draft([ready, keyless, colleague])
    events_before = count(AuditEvent)

    token = account_ops.create_api_token(staff, "test")
    db.session.commit()
    response = client.post(
        f"/api/v1/tenders/{draft.id}/publish",
        json={"totp_code": pyotp.TOTP(staff.totp_secret).now()},
        headers=bearer(token),
    )
    assert response.status_code == 409, response.json
    assert response.json["error"] == "custodian_keys_missing"
    message = response.json["message"]
    assert "Lee Keyless" in message and "Sun Colleague" in message and "Kim Ready" not in message
    db.session.expire_all()
    tender = db.session.get(Tender, draft.id)
    assert tender.status == "draft" and tender.published_at is None
    assert count(TenderKey) == 0 and count(KeyShare) == 0
    assert count(AuditEvent) == events_before + 1  # the API token only


def test_publication_refusal_on_the_staff_page_names_who_is_missing(
    client, auth, make_user, make_draft, staff, centre
):
    keyless = make_user(Role.CUSTODIAN, centre=centre, full_name="Lee Keyless", with_key=False)
    draft = make_draft([make_user(Role.CUSTODIAN, centre=centre), keyless])
    auth.login(staff)
    # Sign-in used the current code; publication needs a fresh one.
    code = pyotp.TOTP(staff.totp_secret).at(time.time() + 30)
    response = client.post(f"/centre/tenders/{draft.id}/publish", data={"code": code})
    assert response.status_code == 409
    assert "Lee Keyless" in text(response)
    db.session.expire_all()
    assert db.session.get(Tender, draft.id).status == "draft"
    assert count(TenderKey) == 0


def test_publication_runs_the_key_ceremony(app, make_user, make_draft, staff, centre):
    custodians = [make_user(Role.CUSTODIAN, centre=centre) for _ in range(2)]
    custodians.append(make_user(Role.SUPERVISOR, with_key=True))
    draft = make_draft(custodians, threshold=2)
    publish(app, staff, draft)
    db.session.commit()

    tender_key = db.session.get(TenderKey, draft.id)
    assert tender_key.threshold == 2
    public_raw = bytes.fromhex(tender_key.public_key)
    assert tender_key.fingerprint == keys.key_fingerprint(public_raw)
    pem_key = keys.load_public_key_pem(tender_key.public_key_pem.encode())
    assert pem_key.public_bytes_raw() == public_raw

    shares = tender_key.shares
    assert sorted(s.custodian_id for s in shares) == sorted(c.id for c in custodians)
    for share in shares:
        sealed = json.loads(share.encrypted_share)
        assert sealed["tender"] == f"T{draft.id}" and sealed["threshold"] == 2
        assert sealed["count"] == 3
        holder = db.session.get(User, share.custodian_id)
        assert share.custodian_key_id == custody.active_key_of(holder).id
        assert share.backup_downloaded_at is None

    (event,) = audit_events("tender.key_ceremony")
    assert event.object_type == "tender" and str(event.object_id) == str(draft.id)
    assert data_of(event)["fingerprint"] == tender_key.fingerprint
    assert (data_of(event)["k"], data_of(event)["n"]) == (2, 3)
    assert data_of(event)["envelope_tender_id"] == f"T{draft.id}"
    # The ceremony comes before the publication event, in the same transaction.
    (published,) = audit_events("tender.published")
    assert event.seq < published.seq

    # k shares rebuild the private key of the published public key; k - 1 do not.
    words = [unlock_words(share) for share in shares]
    for pair in ([0, 1], [0, 2], [1, 2]):
        rebuilt = keys.rebuild_private_key([words[i] for i in pair], public_raw)
        assert rebuilt.public_key().public_bytes_raw() == public_raw
    with pytest.raises(keys.InsufficientShares):
        keys.rebuild_private_key(words[:1], public_raw)
    other = X25519PrivateKey.generate().public_key()
    with pytest.raises(KeyMismatch):
        keys.rebuild_private_key(words[:2], other)

    # Neither the private key nor a share in clear is stored anywhere.
    stored = everything_stored()
    for spelling in secret_spellings(rebuilt.private_bytes_raw()):
        assert spelling not in stored
    for mnemonic in words:
        assert mnemonic not in stored and " ".join(mnemonic.split()[:4]) not in stored


def test_factory_tenders_have_a_rebuildable_key(make_tender):
    tender = make_tender()
    tender_key = db.session.get(TenderKey, tender.id)
    assert len(tender_key.shares) == 2
    rebuilt = rebuild_tender_key(tender)
    assert rebuilt.public_key().public_bytes_raw().hex() == tender_key.public_key
    assert db.session.get(TenderKey, make_tender(status="draft").id) is None


# --- paper backup ----------------------------------------------------------------------------


@pytest.fixture
def sealed(make_tender):
    """A published tender; its first custodian, and the share they hold."""
    tender = make_tender(reference="PB-1")
    tender_key = db.session.get(TenderKey, tender.id)
    share = tender_key.shares[0]
    return tender, db.session.get(User, share.custodian_id), share


def test_paper_backup_with_the_right_passphrase(client, auth, sealed, caplog):
    tender, custodian, share = sealed
    auth.login(custodian)
    page = client.get("/custody/")
    assert "PB-1" in text(page) and "2 of 2 needed" in text(page)

    caplog.set_level(logging.DEBUG)
    response = client.post(
        f"/custody/shares/{tender.id}/backup", data={"passphrase": CUSTODIAN_PASSPHRASE}
    )
    assert response.status_code == 200, text(response)[:1000]
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    body = text(response)
    assert "PB-1" in body and f"T{tender.id}" in body
    words = [
        line.split(". ", 1)[1]
        for line in body.splitlines()
        if line[:3].strip().rstrip(".").isdigit()
    ]
    assert " ".join(words) == unlock_words(share)
    assert len(words) == 33  # SLIP-39 of a 32-byte secret

    # With another custodian's share, the paper words rebuild the tender key.
    other = db.session.get(TenderKey, tender.id).shares[1]
    public_raw = bytes.fromhex(db.session.get(TenderKey, tender.id).public_key)
    keys.rebuild_private_key([words, unlock_words(other)], public_raw)

    db.session.expire_all()
    assert db.session.get(KeyShare, share.id).backup_downloaded_at is not None
    (event,) = audit_events("key_share.backup_downloaded")
    assert event.actor_id == custodian.id and data_of(event)["share_index"] == 1
    stored = everything_stored()
    assert CUSTODIAN_PASSPHRASE not in stored and " ".join(words[:3]) not in stored
    assert CUSTODIAN_PASSPHRASE not in caplog.text and " ".join(words[:3]) not in caplog.text
    assert "Downloaded" in text(client.get("/custody/"))


def test_paper_backup_with_a_wrong_passphrase(client, auth, sealed):
    tender, custodian, share = sealed
    auth.login(custodian)
    response = client.post(
        f"/custody/shares/{tender.id}/backup", data={"passphrase": "not my passphrase at all"}
    )
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Wrong passphrase" in text(response)
    db.session.expire_all()
    assert db.session.get(KeyShare, share.id).backup_downloaded_at is None
    (failed,) = audit_events("key_share.unlock_failed")
    assert failed.actor_id == custodian.id
    assert "not my passphrase" not in failed.data
    assert audit_events("key_share.backup_downloaded") == []

    response = client.post(f"/custody/shares/{tender.id}/backup", data={"passphrase": ""})
    assert response.status_code == 400 and "Enter your key passphrase" in text(response)


def test_paper_backup_only_of_ones_own_share_while_sealed(client, auth, sealed, make_user):
    tender, custodian, share = sealed
    stranger = make_user(Role.CUSTODIAN, centre=tender.centre)
    auth.login(stranger)
    response = client.post(
        f"/custody/shares/{tender.id}/backup", data={"passphrase": CUSTODIAN_PASSPHRASE}
    )
    assert response.status_code == 404
    auth.logout()

    tender.status = "opened"
    db.session.commit()
    auth.login(custodian)
    response = client.post(
        f"/custody/shares/{tender.id}/backup", data={"passphrase": CUSTODIAN_PASSPHRASE}
    )
    assert response.status_code == 409 and "still sealed" in text(response)
    with pytest.raises(Conflict):
        custody.unlock_share_backup(custodian, share, CUSTODIAN_PASSPHRASE)


def test_a_share_sealed_to_a_retired_key_still_unlocks(app, sealed):
    tender, custodian, share = sealed
    tender.status = "opened"
    db.session.commit()
    custody.create_custodian_key(custodian, NEW_PASSPHRASE)
    tender.status = "closed"  # e.g. a race with publication; the share names its key
    db.session.commit()
    backup = custody.unlock_share_backup(custodian, share, CUSTODIAN_PASSPHRASE)
    assert backup.index == 1 and backup.threshold == 2 and backup.count == 2
    with pytest.raises(OperationError) as refused, app.test_request_context():
        custody.unlock_share_backup(custodian, share, NEW_PASSPHRASE)
    assert refused.value.code == "wrong_passphrase"


def test_the_custody_page_lists_drafts_awaiting_the_key(
    client, auth, make_user, make_draft, centre
):
    keyless = make_user(Role.CUSTODIAN, centre=centre, with_key=False)
    make_draft([keyless, make_user(Role.CUSTODIAN, centre=centre)], reference="WAIT-1")
    auth.login(keyless)
    page = text(client.get("/custody/"))
    assert "WAIT-1" in page and "You have no key yet" in page


# --- the public key in the API ---------------------------------------------------------------


def test_api_gives_a_published_tenders_public_key(client, make_tender):
    tender = make_tender()
    tender_key = db.session.get(TenderKey, tender.id)
    response = client.get(f"/api/v1/tenders/{tender.id}/public-key")
    assert response.status_code == 200
    body = response.json
    assert body == {
        "tender_envelope_id": f"T{tender.id}",
        "public_key_hex": tender_key.public_key,
        "public_key_pem": tender_key.public_key_pem,
        "fingerprint": tender_key.fingerprint,
        "threshold": 2,
        "custodians": 2,
    }
    key = keys.load_public_key_pem(body["public_key_pem"].encode())
    assert key.public_bytes_raw().hex() == body["public_key_hex"]
    assert keys.key_fingerprint(key) == body["fingerprint"]


def test_api_public_key_404_for_drafts_and_unknown_tenders(client, make_tender):
    draft = make_tender(status="draft")
    assert client.get(f"/api/v1/tenders/{draft.id}/public-key").status_code == 404
    assert client.get("/api/v1/tenders/999999/public-key").status_code == 404
    unkeyed = make_tender(keyed=False)
    assert client.get(f"/api/v1/tenders/{unkeyed.id}/public-key").status_code == 404


def test_openapi_describes_the_public_key(client):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/tenders/{tender_id}/public-key"]["get"]
    assert "security" not in operation or operation["security"] == []
