"""Hostile commercial parts: a real ceremony in which one bidder per kind of malformed part
(too-long amount, unknown field, missing required field, nested object, 1 MB string, wrong
types, Unicode digits, not JSON) seals an envelope the form would refuse. The opening records
each as opened but malformed, with its reason, for everyone; the evaluation runs normally
with those bids non-compliant; the published field specification is what the form and the
command line check before sealing."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from flask_babel import refresh

from app.evaluations import operations, scoring_file
from app.extensions import db
from app.opening import operations as opening_ops
from app.opening.models import LineStatus
from app.tenders.documents import blob_store
from app.tenders.models import Tender
from bidding import envelope as envelopes
from bidding.canonical import canonical_json
from tests.factories.bids import public_key, registered_bidder, submit, tid, uscc
from tests.factories.evaluations import (
    GOODS_FIELDS,
    QUALIFICATIONS,
    record_bond,
    seat_panel,
    text_pdf,
    use_goods_template,
)
from tests.factories.opening import open_for_real, staff_of

HONEST = {"price": "500000.00", **GOODS_FIELDS}
# kind -> the commercial part's bytes, and a word its reason must contain.
HOSTILE: dict[str, tuple[bytes, str]] = {
    "too_long_amount": (canonical_json({**HONEST, "price": "1" + "0" * 30}), "31 characters"),
    "unknown_field": (canonical_json({**HONEST, "bad key": "1"}), 'unknown field "bad key"'),
    "missing_required": (
        canonical_json({k: v for k, v in HONEST.items() if k != "delivery_days"}),
        'required field "delivery_days" is missing',
    ),
    "nested_object": (
        canonical_json({**HONEST, "delivery_days": {"days": 30}}),
        '"delivery_days" must be a whole number',
    ),
    "one_megabyte": (canonical_json({**HONEST, "brand_model": "x" * (1 << 20)}), "bytes"),
    "wrong_types": (
        canonical_json({**HONEST, "price": 500000, "warranty_months": "36", "origin": True}),
        '"price" must be an amount',
    ),
    "unicode_digits": (
        canonical_json({**HONEST, "price": "\u0665\u0660\u0660\u0660\u0660\u0660.\u0665\u0660"}),
        '"price" must be an amount',
    ),
    "not_json": (b"price=500000", "not valid JSON"),
    "nul_in_key": (canonical_json({**HONEST, "a\u0000b": "x"}), "unknown field"),
}


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


def seal_raw(tender: Tender, bidder, commercial: bytes) -> bytes:
    key = X25519PublicKey.from_public_bytes(public_key(tender))
    technical = io.BytesIO(text_pdf(["Technical proposal"]))
    quals = [io.BytesIO(f"qualification {n}".encode()) for n in range(1, QUALIFICATIONS + 1)]
    out = io.BytesIO()
    parts = envelopes.bid_parts(commercial, technical, quals)
    envelopes.seal(out, key, tid(tender), uscc(bidder), parts)
    return out.getvalue()


def signed_in(app, user):
    from tests.conftest import AuthActions

    client = app.test_client()
    AuthActions(client).login(user)
    return client


def test_hostile_commercial_parts_end_in_a_normal_evaluation(app, make_tender, make_user):
    tender = use_goods_template(make_tender())
    honest_prices = ["500000.00", "510000.00", "520000.00"]
    honest = [registered_bidder(make_user, tender) for _ in honest_prices]
    hostile = {kind: registered_bidder(make_user, tender) for kind in HOSTILE}
    bids = {}
    for bidder, price in zip(honest, honest_prices, strict=True):
        bids[price] = submit(tender, bidder, seal_raw(tender, bidder, canonical_json(
            {**HONEST, "price": price}
        )))  # fmt: skip
        record_bond(tender, bidder)
    for kind, (commercial, _) in HOSTILE.items():
        bids[kind] = submit(tender, hostile[kind], seal_raw(tender, hostile[kind], commercial))
        record_bond(tender, hostile[kind])
    tender = open_for_real(tender)

    # The opening: every envelope opened; the malformed ones say why, on the line and in
    # the published opening record; only well-formed fields are kept.
    lines = {line.bid_id: line for line in opening_ops.lines_of(tender)}
    assert all(line.status == LineStatus.OPENED for line in lines.values())
    for price in honest_prices:
        assert lines[bids[price].id].reason == "" and lines[bids[price].id].price == price
    for kind, (_, word) in HOSTILE.items():
        line = lines[bids[kind].id]
        assert line.reason.startswith("malformed commercial part"), kind
        assert word in line.reason, (kind, line.reason)
        assert "\x00" not in line.reason and len(line.reason) < 2000
        assert len(line.commercial or "") < 1000, kind
    assert lines[bids["too_long_amount"].id].price is None
    assert lines[bids["unknown_field"].id].price == "500000.00"
    assert "bad key" not in (lines[bids["unknown_field"].id].commercial or "")
    record = json.loads(blob_store().path_for(opening_ops.record_of(tender).sha256).read_bytes())
    record = record["record"]  # the signed document's body
    malformed = [line for line in record["lines"] if line["reason"]]
    assert len(malformed) == len(HOSTILE)
    assert all(line["status"] == "opened" and line["problems"] for line in malformed)
    public = app.test_client().get(f"/opening/tenders/{tender.id}").get_data(as_text=True)
    assert "malformed commercial part" in public and "unknown field" in public
    assert "must be a whole number" in public
    korean = app.test_client()
    korean.set_cookie("fairbid_lang", "ko")
    refresh()  # this test's own request context cached its locale
    page = korean.get(f"/opening/tenders/{tender.id}").get_data(as_text=True)
    refresh()
    assert "형식이 잘못된 상업 부분" in page and "알 수 없는 필드" in page

    # The evaluation: a normal review; the hostile bids take part, non-compliant, with the
    # reason; the honest ones are scored.
    experts = seat_panel(make_user, tender, 3)
    staff = signed_in(app, staff_of(tender))
    assert staff.get(f"/evaluations/tenders/{tender.id}").status_code == 200
    operations.start_evaluation(staff_of(tender), tender)
    db.session.commit()
    assert staff.get(f"/evaluations/tenders/{tender.id}").status_code == 200
    scored = scoring_file.provisional(tender)
    results = {b["id"]: b for b in scored["result"]["bids"]}
    assert len(results) == len(HOSTILE) + len(honest_prices)
    for kind in HOSTILE:
        result = results[uscc(hostile[kind])]
        assert result["compliant"] is False, kind
        checks = [r["params"].get("check") for r in result["reasons"]]
        assert "commercial_part_valid" in checks, (kind, result["reasons"])
    assert results[uscc(hostile["too_long_amount"])]["price"] is None
    codes = {r["code"] for r in results[uscc(hostile["too_long_amount"])]["reasons"]}
    assert "price_missing" in codes
    for bidder in honest:
        assert results[uscc(bidder)]["compliant"] is True
        assert results[uscc(bidder)]["price_score"] is not None
    chair = signed_in(app, experts[0])
    page = chair.get(f"/evaluations/tenders/{tender.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Commercial part follows the tender" in text
    assert "unknown field &#34;bad key&#34;" in text or 'unknown field "bad key"' in text
    chair.set_cookie("fairbid_lang", "zh_Hans")
    refresh()
    chinese = chair.get(f"/evaluations/tenders/{tender.id}").get_data(as_text=True)
    assert "商务部分格式错误" in chinese and "未知字段" in chinese
    chair.set_cookie("fairbid_lang", "en")
    refresh()
    assert "The bid has no readable price." in text
    # An overrule cannot make a bid without a price compliant (and nothing crashes).
    no_price = bids["too_long_amount"].id
    assert chair.post(
        f"/evaluations/tenders/{tender.id}/bids/{no_price}/overrule",
        data={"decision": "compliant", "reason": "Looks fine."},
    ).status_code == 302  # fmt: skip
    db.session.expire_all()
    scored = scoring_file.provisional(db.session.get(Tender, tender.id))
    assert {b["id"]: b for b in scored["result"]["bids"]}[uscc(hostile["too_long_amount"])][
        "compliant"
    ] is False
    assert chair.get(f"/evaluations/tenders/{tender.id}").status_code == 200


def test_the_field_specification_is_published(app, make_tender):
    tender = use_goods_template(make_tender())
    client = app.test_client()
    spec = client.get(f"/api/v1/tenders/{tender.id}/commercial-fields").json
    assert spec["format"] == "fairbid-commercial-fields/1"
    assert spec["max_number_length"] == 24
    keys = [f["key"] for f in spec["fields"]]
    assert keys[0] == "price" and "delivery_days" in keys
    delivery = next(f for f in spec["fields"] if f["key"] == "delivery_days")
    assert delivery == {"key": "delivery_days", "type": "integer", "required": True,
                        "min": "1", "max": "90"}  # fmt: skip
    assert client.get("/api/v1/tenders/999999/commercial-fields").status_code == 404
    page = client.get(f"/tenders/{tender.id}").get_data(as_text=True)
    assert f"/api/v1/tenders/{tender.id}/commercial-fields" in page
