"""Numbers are parsed strictly: an integer sent as 1.5 is not rounded to 1, "100" is not a
number, and Unicode digits (Arabic-Indic ١٢٣, full-width １２３, which Python's int() and
Decimal() read) are never money or a count. Each is refused with a clear 400/422 and
nothing is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app.accounts.models import Role
from app.bids import operations as bid_ops
from app.bids.models import UploadSession
from app.core.errors import OperationError
from app.core.forms import StrictIntegerField
from app.extensions import db
from app.tenders.models import Tender
from app.tenders.operations import parse_money
from app.tenders.template_ops import sync_builtin_templates
from tests.factories.accounts import token_for
from tests.factories.bids import registered_bidder
from tests.factories.tenders import create

ARABIC = "\u0661\u0662\u0663.\u0665\u0660"  # ١٢٣.٥٠
FULL_WIDTH = "\uff11\uff12\uff13"  # １２３


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("size", [1.5, "100", True, 2.0, "1e3", FULL_WIDTH])
def test_an_upload_size_must_be_a_json_integer(client, make_tender, make_user, size):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    headers = token_for(bidder)
    response = client.post(
        f"/api/v1/tenders/{tender.id}/uploads", json={"size": size}, headers=headers
    )
    assert response.status_code == 422, response.json
    assert "size" in response.json["detail"]["json"]
    assert count(UploadSession) == 0
    # The page's JSON endpoint calls the operation with the JSON value: refused there too.
    with client.application.test_request_context(), pytest.raises(OperationError) as refused:
        bid_ops.start_upload(bidder, tender, size)
    assert refused.value.code == "size"
    db.session.rollback()
    assert count(UploadSession) == 0


@pytest.mark.parametrize("amount", [ARABIC, FULL_WIDTH, "12\u0663", "1e3", "+5", " 1 2"])
def test_unicode_digits_are_not_money(app, amount):
    with app.test_request_context(), pytest.raises(OperationError):
        parse_money(amount, "Budget")
    assert parse_money("1,234.50", "Budget") is not None  # the form's thousands separators


@pytest.fixture
def goods_version(app):
    templates = {t.key: t for t in sync_builtin_templates()}
    db.session.commit()
    return templates["goods"].latest


def test_the_api_refuses_unicode_digits_and_loose_integers(
    client, make_centre, make_user, goods_version
):
    centre = make_centre()
    staff = make_user(Role.STAFF, centre=centre)
    custodians = [make_user(Role.CUSTODIAN, centre=centre) for _ in range(3)]
    headers = token_for(staff)
    response = create(client, headers, goods_version, custodians, budget=ARABIC)
    assert response.status_code == 422
    assert "budget" in response.json["detail"]["json"]
    lots = [{"title": "Furniture", "ceiling_price": FULL_WIDTH}]
    response = create(client, headers, goods_version, custodians, lots=lots)
    assert response.status_code == 422
    for field, value in (
        ("evaluation_days", 10.5),
        ("evaluation_days", "10"),
        ("custodian_threshold", "2"),
        ("custodian_threshold", 2.5),
    ):
        response = create(client, headers, goods_version, custodians, **{field: value})
        assert response.status_code == 422, (field, value)
        assert field in response.json["detail"]["json"]
    response = create(
        client, headers, goods_version, custodians, custodian_ids=[str(custodians[0].id)]
    )
    assert response.status_code == 422
    assert count(Tender) == 0
    response = create(client, headers, goods_version, custodians)
    assert response.status_code == 201, response.json


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("7", 7), (" 7 ", 7), ("-3", -3), ("1.5", None), ("\u0661\u0662", None),
     (FULL_WIDTH, None), ("1e2", None), ("0x10", None), ("1_000", None)],
)  # fmt: skip
def test_form_integers_take_ascii_digits_only(app, typed, expected):
    from flask_wtf import FlaskForm

    class Form(FlaskForm):
        class Meta:
            csrf = False

        n = StrictIntegerField()

    with app.test_request_context():
        form = Form(formdata=MultiDict({"n": typed}))
        assert form.validate() is (expected is not None)
        assert form.n.data == expected
        if expected is None:
            assert form.n.errors


def test_a_content_range_with_unicode_digits_is_refused(client, make_tender, make_user):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    headers = token_for(bidder)
    started = client.post(
        f"/api/v1/tenders/{tender.id}/uploads", json={"size": 10}, headers=headers
    )
    assert started.status_code == 201, started.json
    response = client.put(
        started.json["url"],
        data=b"x" * 10,
        headers={**headers, "Content-Range": "bytes \u0660-\u0669/\u0661\u0660"},
    )
    assert response.status_code in (400, 416), response.json
