"""Bad input gets a clear error and nothing is stored."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from app.accounts.models import User
from app.companies.models import Company
from app.extensions import db
from tests.factories import PASSWORD
from tests.factories.accounts import signup_form, valid_uscc


def counts():
    return (
        db.session.scalar(select(func.count(User.id))),
        db.session.scalar(select(func.count(Company.id))),
    )


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    yield app
    app.config["WTF_CSRF_ENABLED"] = False


def test_missing_or_wrong_csrf_token_is_refused(csrf_app, make_centre):
    client = csrf_app.test_client()
    centre = make_centre()
    before = counts()
    response = client.post("/accounts/signup", data=signup_form(centre))
    assert response.status_code == 400
    assert b"This form has expired or did not come from Fairbid" in response.data
    response = client.post(
        "/accounts/signup", data={**signup_form(centre), "csrf_token": "forged.token.value"}
    )
    assert response.status_code == 400
    assert counts() == before


def test_form_with_the_right_csrf_token_goes_through(csrf_app, make_centre):
    import re

    client = csrf_app.test_client()
    centre = make_centre()
    page = client.get("/accounts/signup").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/accounts/signup", data={**signup_form(centre), "csrf_token": token})
    assert response.status_code == 200
    assert counts()[1] == 1


def test_malformed_form_shows_field_errors(client):
    response = client.post("/accounts/signup", data={"email": "not-an-email"})
    assert response.status_code == 400
    assert b'aria-invalid="true"' in response.data
    assert counts() == (0, 0)


def test_overlong_fields_are_refused(client, make_centre):
    centre = make_centre()
    response = client.post("/accounts/signup", data=signup_form(centre, company_name="x" * 201))
    assert response.status_code == 400
    assert b"200" in response.data  # "Field cannot be longer than 200 characters."
    assert counts() == (0, 0)


def test_body_over_the_size_limit_is_413(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/accounts/reset", data={"email": "a" * 5000 + "@x.example"})
    app.config["MAX_CONTENT_LENGTH"] = limit
    assert response.status_code == 413
    assert b"larger than the limit" in response.data


def test_non_utf8_form_body_is_refused(client, make_centre):
    centre = make_centre()
    body = b"company_name=\xff\xfe\xfa&home_centre_id=" + str(centre.id).encode()
    response = client.post(
        "/accounts/signup", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert b"not sent as UTF-8" in response.data
    assert counts() == (0, 0)


def test_non_utf8_json_body_is_refused(client):
    response = client.post(
        "/api/v1/companies", data=b'{"company_name": "\xff"}', content_type="application/json"
    )
    assert response.status_code in (400, 422)
    assert response.is_json
    assert counts() == (0, 0)


def test_brute_force_sign_in_is_rate_limited(client, make_user):
    user = make_user()
    statuses = [
        client.post(
            "/accounts/login", data={"email": user.email, "password": "wrong-1234"}
        ).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    # Even the right password waits until the window passes.
    response = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many attempts" in response.data


def test_rate_limit_counts_per_account_across_addresses(app, make_user):
    user = make_user()
    for n in range(5):
        app.test_client().post(
            "/accounts/login",
            data={"email": user.email, "password": "wrong-1234"},
            environ_base={"REMOTE_ADDR": f"10.0.0.{n}"},
        )
    response = app.test_client().post(
        "/accounts/login",
        data={"email": user.email, "password": "wrong-1234"},
        environ_base={"REMOTE_ADDR": "10.0.0.99"},
    )
    assert response.status_code == 429


def test_unknown_locale_is_a_clear_404(client):
    response = client.get("/language/xx")
    assert response.status_code == 404
    assert b"This language is not available" in response.data
    assert "fairbid_lang" not in response.headers.get("Set-Cookie", "")


def test_open_redirect_is_refused(client):
    response = client.get("/language/ko?next=https://evil.example/")
    assert response.headers["Location"] == "/"
    response = client.get("/language/ko?next=//evil.example/")
    assert response.headers["Location"] == "/"


def test_unknown_page_and_wrong_method(client):
    assert client.get("/no/such/page").status_code == 404
    response = client.put("/accounts/login")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_flags(client, make_user):
    user = make_user()
    response = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def _api_signup_body(centre) -> dict:
    form = signup_form(centre)
    form.pop("confirm")
    form["home_centre_id"] = centre.id
    return form


@pytest.mark.parametrize("depth", [33, 2_000, 200_000])
def test_deeply_nested_json_is_a_clear_400_and_stores_nothing(client, make_centre, depth):
    """Nesting beyond MAX_JSON_DEPTH, including deeper than Python's parser can recurse (a
    RecursionError, which was a 500), answers 400 with a JSON error."""
    centre = make_centre()
    body = _api_signup_body(centre)
    nested = "[" * depth + "]" * depth
    raw = json.dumps(body)[:-1] + ', "extra": ' + nested + "}"
    response = client.post("/api/v1/companies", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.is_json and response.json["error"] == "json_too_deep"
    assert counts() == (0, 0)
    # The same body without the nesting would have gone through: the depth is the reason.
    assert client.post("/api/v1/companies", json=body).status_code == 201


def test_oversized_json_is_a_clear_413_and_stores_nothing(app, client, make_centre):
    centre = make_centre()
    body = _api_signup_body(centre)
    body["legal_representative"] = "x" * (app.config["MAX_JSON_BYTES"] + 1)
    response = client.post("/api/v1/companies", json=body)
    assert response.status_code == 413
    assert response.is_json and response.json["error"] == "json_too_large"
    assert counts() == (0, 0)


def test_oversized_chunked_json_is_413(app, client, make_centre):
    """Without a declared length the body is measured once read (within the general limit)."""
    centre = make_centre()
    body = _api_signup_body(centre)
    body["legal_representative"] = "x" * (app.config["MAX_JSON_BYTES"] + 1)
    data = json.dumps(body).encode()
    response = client.post(
        "/api/v1/companies",
        input_stream=io.BytesIO(data),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        # What a server says of a chunked body (gunicorn does): read it to its end.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.is_json
    assert counts() == (0, 0)


def test_company_name_mixing_alphabets_is_refused(client, make_centre):
    """A Cyrillic "е" inside "Bridges" looks Latin: refused at registration, form and API."""
    centre = make_centre()
    lookalike = "Hangzhou Bridg\u0435s Co., Ltd."
    response = client.post("/accounts/signup", data=signup_form(centre, company_name=lookalike))
    # The form page again, with the refusal (as for an invalid registration number).
    assert "mixes alphabets" in response.get_data(as_text=True)
    assert counts() == (0, 0)
    body = _api_signup_body(centre)
    body["company_name"] = lookalike
    response = client.post("/api/v1/companies", json=body)
    assert response.status_code == 400 and response.json["error"] == "mixed_scripts"
    assert counts() == (0, 0)
    # One alphabet per word is fine, and so is Latin beside Chinese.
    body["company_name"] = "杭州 Bridges 有限公司 Москва"
    assert client.post("/api/v1/companies", json=body).status_code == 201


@pytest.mark.parametrize(
    "lookalike", ["\u0410\u0421\u041c\u0415", "\uff21\uff23\uff2d\uff25", "acme"]
)
def test_company_name_reading_like_a_registered_one_is_refused(client, make_centre, lookalike):
    """All-Cyrillic "АСМЕ", full-width "ＡＣＭＥ" or another case pass for "ACME"."""
    centre = make_centre()
    first = _api_signup_body(centre)
    first["company_name"] = "ACME"
    assert client.post("/api/v1/companies", json=first).status_code == 201
    second = signup_form(
        centre,
        company_name=lookalike,
        registration_number=valid_uscc(990002),
        email="other@acme.example",
    )
    second.pop("confirm")
    second["home_centre_id"] = centre.id
    response = client.post("/api/v1/companies", json=second)
    assert response.status_code == 409 and response.json["error"] == "lookalike_name"
    assert counts() == (1, 1)
