"""The bid page's sealing form marks the files the tender template requires (its required
qualification documents) like the required commercial fields: "*" and a visually hidden
"(required)"; optional ones say so. The marks do not block sealing: no `required` or
`data-required` on the file inputs (the browser script checks only data-required fields)."""

from __future__ import annotations

import re

from tests.conftest import AuthActions
from tests.factories.bids import registered_bidder
from tests.factories.evaluations import use_goods_template

REQUIRED_MARK = '<span aria-hidden="true">*</span><span class="visually-hidden">(required)</span>'


def test_required_qualification_documents_are_marked(app, make_tender, make_user):
    tender = use_goods_template(make_tender())
    bidder = registered_bidder(make_user, tender)
    client = app.test_client()
    AuthActions(client).login(bidder)
    html = client.get(f"/bids/tenders/{tender.id}").get_data(as_text=True)
    files = html[html.index('<fieldset id="seal-files"') :]
    files = files[: files.index("</fieldset>")]
    labels = dict(re.findall(r'<label for="seal-qualification-(\d+)">(.*?)</label>', files))
    assert len(labels) == 6  # goods.yaml: five required documents, then one optional
    for number in "12345":
        assert labels[number].endswith(REQUIRED_MARK), labels[number]
    assert labels["6"].startswith("Product certificates")
    assert REQUIRED_MARK not in labels["6"] and "(optional here)" in labels["6"]
    # Marked the same way as the required commercial fields.
    price = rf'<label for="commercial-price">[^<]*{re.escape(REQUIRED_MARK)}</label>'
    assert re.search(price, html)
    # Nothing that would stop the browser script from sealing without the files.
    inputs = re.findall(r'<input type="file"[^>]*>', files)
    assert len(inputs) == 7  # the technical proposal and the six documents
    assert not any(" required" in i or "data-required" in i for i in inputs)


def test_required_marks_are_translated(app, make_tender, make_user):
    tender = use_goods_template(make_tender())
    bidder = registered_bidder(make_user, tender)
    client = app.test_client()
    AuthActions(client).login(bidder)
    client.get("/language/ko")
    html = client.get(f"/bids/tenders/{tender.id}").get_data(as_text=True)
    assert '<label for="seal-qualification-1">사업자등록증' in html
    assert '<span class="visually-hidden">(required)</span>' not in html
