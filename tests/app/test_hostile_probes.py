"""The hostile probes of the outside review (issue 12), one table, each run against the app:
what a hostile bidder, a curious expert or another centre's staff member sent, and the answer
the brief asks for: a clear error with a stable code, and nothing stored.

To add a probe, append a `Probe` to PROBES. URLs and bodies may name the objects of the
`world` fixture in braces (`{draft}`, `{staff_email}`...); `as_` signs a role in first
(`web:ROLE` through the forms, `pending:ROLE` after the password step only, `bearer:ROLE`
with an API token); `after_limit` first spends the per-account limit with the same request
from other addresses, so the probe itself is the attempt one past the limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from app.accounts.models import Role
from app.extensions import db, limiter
from tests.conftest import AuthActions, using_postgres
from tests.factories import PASSWORD, valid_uscc
from tests.factories.accounts import token_for

BIG = str(2**64)  # one past what SQLite and PostgreSQL integers hold
HUGE = "9" * 40
RLO = "\u202e"  # right-to-left override: "Acme \u202eLtd" shows as "Acme dtL"


@dataclass(frozen=True)
class Probe:
    item: int
    name: str
    method: str
    url: str
    status: int
    error: str | None = None  # the JSON body's stable `error` code
    says: str | None = None  # text the HTML answer shows
    form: dict[str, Any] | None = None
    json: Any = None
    raw: bytes | None = None  # a JSON body as bytes, for what json.dumps cannot write
    as_: str | None = None
    after_limit: bool = False
    host: str | None = None  # the Host header, when the probe forges it

    def __str__(self) -> str:
        return f"{self.item}-{self.name}"


def signup_form(**changes: str) -> dict[str, str]:
    data = {
        "company_name": "Hostile Probes Co., Ltd.",
        "registration_number": valid_uscc(770001),
        "legal_representative": "Zhang San",
        "contact_name": "Li Si",
        "contact_phone": "+86 571 8888 0000",
        "home_centre_id": "{centre}",
        "email": "probe@hostile.example",
        "password": PASSWORD,
        "confirm": PASSWORD,
    }
    return {**data, **changes}


def signup_json(**changes: Any) -> dict[str, Any]:
    data = {k: v for k, v in signup_form().items() if k != "confirm"}
    data["home_centre_id"] = "{centre:int}"
    return {**data, **changes}


def user_form(**changes: str) -> dict[str, str]:
    return {"email": "new.staff@probe.example", "full_name": "Wang Wu", "role": "expert", **changes}


PROBES = [
    # --- 5: one per-account limit on every entry point that checks a secret ---------------
    Probe(
        5,
        "web sign-in",
        "POST",
        "/accounts/login",
        429,
        says="Too many attempts",
        form={"email": "{staff_email}", "password": "wrong password 1"},
        after_limit=True,
    ),
    Probe(
        5,
        "web sign-in, other spelling of the address",
        "POST",
        "/accounts/login",
        429,
        form={"email": "  {staff_email_upper}", "password": "wrong password 1"},
        after_limit=True,
    ),
    Probe(
        5,
        "web two-factor",
        "POST",
        "/accounts/two-factor",
        429,
        says="Too many attempts",
        form={"code": "000000"},
        as_="pending:staff",
        after_limit=True,
    ),
    Probe(
        5,
        "API token, wrong password",
        "POST",
        "/api/v1/tokens",
        429,
        error="too_many_attempts",
        json={"email": "{staff_email}", "password": "wrong password 1"},
        after_limit=True,
    ),
    Probe(
        5,
        "API token, TOTP guessing",
        "POST",
        "/api/v1/tokens",
        429,
        error="too_many_attempts",
        json={"email": "{staff_email}", "password": PASSWORD, "totp_code": "000000"},
        after_limit=True,
    ),
    Probe(
        5,
        "web publication",
        "POST",
        "/centre/tenders/{draft}/publish",
        429,
        says="Too many attempts",
        form={"code": "000000"},
        as_="web:staff",
        after_limit=True,
    ),
    Probe(
        5,
        "API publication",
        "POST",
        "/api/v1/tenders/{draft}/publish",
        429,
        error="too_many_attempts",
        json={"totp_code": "000000"},
        as_="bearer:staff",
        after_limit=True,
    ),
    Probe(
        5,
        "custodian key unlock at the opening",
        "POST",
        "/opening/tenders/{sealed}/unlock",
        429,
        says="Too many attempts",
        form={"passphrase": "not the passphrase at all"},
        as_="web:custodian",
        after_limit=True,
    ),
    Probe(
        5,
        "custodian paper backup",
        "POST",
        "/custody/shares/{sealed}/backup",
        429,
        says="Too many attempts",
        form={"passphrase": "not the passphrase at all"},
        as_="web:custodian",
        after_limit=True,
    ),
    Probe(
        5,
        "countersigning the record",
        "POST",
        "/records/tenders/{sealed}/countersign",
        429,
        says="Too many attempts",
        form={"code": "000000"},
        as_="web:expert",
        after_limit=True,
    ),
    # --- 8: integers beyond 64 bits, NUL bytes ------------------------------------------
    Probe(8, "public tender id", "GET", f"/tenders/{BIG}", 404),
    Probe(8, "public document ids", "GET", f"/tenders/{HUGE}/documents/{BIG}", 404),
    Probe(8, "API tender id", "GET", f"/api/v1/tenders/{BIG}", 404),
    # Within 64 bits but beyond the 32-bit id columns of PostgreSQL.
    Probe(8, "API tender id beyond 32 bits", "GET", f"/api/v1/tenders/{2**40}", 404),
    Probe(
        8, "staff tender id beyond 32 bits", "GET", f"/centre/tenders/{2**31}", 404, as_="web:staff"
    ),
    Probe(
        8,
        "API sign-up home centre beyond 32 bits",
        "POST",
        "/api/v1/companies",
        400,
        error="number_out_of_range",
        json=signup_json(home_centre_id=2**40),
    ),
    Probe(
        8,
        "API tender update, custodian ids beyond 32 bits",
        "PATCH",
        "/api/v1/tenders/{draft}",
        400,
        error="number_out_of_range",
        json={"custodian_ids": [1, 2**31]},
        as_="bearer:staff",
    ),
    Probe(
        8,
        "API tenders centre_id beyond 32 bits",
        "GET",
        f"/api/v1/tenders?centre_id={2**40}",
        400,
        error="number_out_of_range",
    ),
    Probe(
        8,
        "sign-up home centre beyond 32 bits",
        "POST",
        "/accounts/signup",
        400,
        says="too large",
        form=signup_form(home_centre_id=str(2**40)),
    ),
    # A page within 64 bits whose offset is not.
    Probe(
        8,
        "API tenders page with an offset beyond 64 bits",
        "GET",
        f"/api/v1/tenders?page={2**62}",
        400,
        error="number_out_of_range",
    ),
    Probe(
        8,
        "notifications page with an offset beyond 64 bits",
        "GET",
        f"/bidder/notifications?page={2**62}",
        400,
        says="too large",
        as_="web:bidder",
    ),
    Probe(8, "API public key", "GET", f"/api/v1/tenders/{HUGE}/public-key", 404),
    Probe(8, "staff tender id", "GET", f"/centre/tenders/{BIG}", 404, as_="web:staff"),
    Probe(8, "staff company id", "GET", f"/centre/companies/{BIG}", 404, as_="web:staff"),
    Probe(8, "alias id", "POST", f"/bidder/profile/aliases/{BIG}/delete", 404, as_="web:bidder"),
    Probe(8, "portal page", "GET", f"/tenders/?page={BIG}", 400),
    Probe(
        8,
        "staff companies page",
        "GET",
        f"/centre/companies/?page={BIG}",
        400,
        says="too large",
        as_="web:staff",
    ),
    Probe(
        8,
        "bidder notifications page",
        "GET",
        f"/bidder/notifications?page={BIG}",
        400,
        says="too large",
        as_="web:bidder",
    ),
    Probe(
        8,
        "API tenders page",
        "GET",
        f"/api/v1/tenders?page={BIG}",
        400,
        error="number_out_of_range",
    ),
    Probe(
        8,
        "API tenders per_page",
        "GET",
        f"/api/v1/tenders?per_page=-{HUGE}",
        400,
        error="number_out_of_range",
    ),
    Probe(
        8,
        "API tenders centre_id",
        "GET",
        f"/api/v1/tenders?centre_id={BIG}",
        400,
        error="number_out_of_range",
    ),
    Probe(
        8,
        "API companies page",
        "GET",
        f"/api/v1/companies?page={BIG}",
        400,
        error="number_out_of_range",
        as_="bearer:staff",
    ),
    Probe(
        8,
        "sign-up home centre",
        "POST",
        "/accounts/signup",
        400,
        says="too large",
        form=signup_form(home_centre_id=BIG),
    ),
    Probe(
        8,
        "sign-up home centre, 5000 digits",
        "POST",
        "/accounts/signup",
        400,
        says="too large",
        form=signup_form(home_centre_id="1" * 5000),
    ),
    Probe(
        8,
        "API sign-up home centre",
        "POST",
        "/api/v1/companies",
        400,
        error="number_out_of_range",
        json=signup_json(home_centre_id=2**64),
    ),
    Probe(
        8,
        "API sign-up home centre as a float (the strict schema refuses it, item 11)",
        "POST",
        "/api/v1/companies",
        422,
        json=signup_json(home_centre_id=1e30),
    ),
    Probe(
        8,
        "API sign-up home centre as text",
        "POST",
        "/api/v1/companies",
        400,
        error="number_out_of_range",
        json=signup_json(home_centre_id=BIG),
    ),
    Probe(
        8,
        "sign-up NUL in company name",
        "POST",
        "/accounts/signup",
        400,
        says="NUL byte",
        form=signup_form(company_name="Acme\x00 Ltd"),
    ),
    Probe(
        8,
        "sign-in NUL in e-mail",
        "POST",
        "/accounts/login",
        400,
        says="NUL byte",
        form={"email": "a\x00b@probe.example", "password": "wrong password 1"},
    ),
    Probe(8, "NUL in a query", "GET", "/tenders/?q=a%00b", 400, says="NUL byte"),
    Probe(
        8,
        "NUL in a form field name",
        "POST",
        "/accounts/reset",
        400,
        says="NUL byte",
        form={"email": "a@probe.example", "x\x00": "1"},
    ),
    Probe(
        8,
        "API sign-up NUL",
        "POST",
        "/api/v1/companies",
        400,
        error="invalid_character",
        json=signup_json(company_name="Acme\x00 Ltd"),
    ),
    Probe(
        8,
        "API token NUL in e-mail",
        "POST",
        "/api/v1/tokens",
        400,
        error="invalid_character",
        json={"email": "{staff_email}\x00", "password": "wrong password 1"},
    ),
    Probe(
        8,
        "API lone surrogate",
        "POST",
        "/api/v1/companies",
        400,
        error="invalid_character",
        raw=b'{"company_name": "Acme \\ud800 Ltd"}',
    ),
    Probe(
        8,
        "API NUL in a nested key",
        "POST",
        "/api/v1/tenders/{draft}/publish",
        400,
        error="invalid_character",
        json={"totp_code": "123456", "x": [{"k\x00": 1}]},
        as_="bearer:staff",
    ),
    # --- 9: a privileged account that never enrolled a second factor --------------------
    Probe(
        9,
        "API token, never enrolled, with a code",
        "POST",
        "/api/v1/tokens",
        403,
        error="totp_not_enrolled",
        json={"email": "{unenrolled_email}", "password": PASSWORD, "totp_code": "123456"},
    ),
    Probe(
        9,
        "API token, never enrolled, no code",
        "POST",
        "/api/v1/tokens",
        403,
        error="totp_not_enrolled",
        json={"email": "{unenrolled_email}", "password": PASSWORD},
    ),
    # --- 13: bidi and control characters in company and person names ---------------------
    Probe(
        13,
        "sign-up RLO in company name",
        "POST",
        "/accounts/signup",
        400,
        says="U+202E",
        form=signup_form(company_name=f"Acme {RLO}Ltd"),
    ),
    Probe(
        13,
        "sign-up isolate in legal representative",
        "POST",
        "/accounts/signup",
        400,
        says="U+2066",
        form=signup_form(legal_representative="Zhang \u2066San"),
    ),
    Probe(
        13,
        "sign-up zero-width space in contact name",
        "POST",
        "/accounts/signup",
        400,
        says="U+200B",
        form=signup_form(contact_name="Li\u200bSi"),
    ),
    Probe(
        13,
        "sign-up bell in company name",
        "POST",
        "/accounts/signup",
        400,
        says="U+0007",
        form=signup_form(company_name="Acme\x07 Ltd"),
    ),
    Probe(
        13,
        "API sign-up RLO",
        "POST",
        "/api/v1/companies",
        400,
        error="bad_characters",
        json=signup_json(company_name=f"Acme {RLO}Ltd"),
    ),
    Probe(
        13,
        "API sign-up newline in contact name",
        "POST",
        "/api/v1/companies",
        400,
        error="bad_characters",
        json=signup_json(contact_name="Li\nSi"),
    ),
    Probe(
        13,
        "API sign-up LRM in legal representative",
        "POST",
        "/api/v1/companies",
        400,
        error="bad_characters",
        json=signup_json(legal_representative="\u200eZhang San"),
    ),
    Probe(
        13,
        "company alias RLO",
        "POST",
        "/bidder/profile/aliases",
        400,
        says="U+202E",
        form={"alias": f"Acme {RLO}Ltd"},
        as_="web:bidder",
    ),
    Probe(
        13,
        "admin user creation RLO",
        "POST",
        "/admin/users",
        400,
        says="U+202E",
        form=user_form(full_name=f"Wang {RLO}Wu"),
        as_="web:admin",
    ),
    Probe(
        13,
        "expert employer RLO",
        "POST",
        "/panels/pool",
        400,
        says="U+202E",
        form={"email": "{expert_email}", "employer": f"Acme {RLO}Ltd", "available": "y"},
        as_="web:staff",
    ),
    Probe(
        13,
        "API expert employer RLO",
        "PUT",
        "/api/v1/experts/{expert_id}/profile",
        400,
        error="bad_characters",
        json={"employer": f"Acme {RLO}Ltd"},
        as_="bearer:staff",
    ),
    # --- 3: the Host header never reaches e-mailed links; unknown hosts are refused -------
    Probe(
        3,
        "password reset asked through a forged Host",
        "POST",
        "/accounts/reset",
        400,
        form={"email": "{staff_email}"},
        host="evil.example",
    ),
    # --- 11: numbers are parsed strictly ------------------------------------------------------
    Probe(
        11,
        "API sign-up home centre as a string of digits",
        "POST",
        "/api/v1/companies",
        422,
        json=signup_json(home_centre_id="{centre}"),
    ),
    Probe(
        11,
        "API sign-up home centre as 1.5",
        "POST",
        "/api/v1/companies",
        422,
        json=signup_json(home_centre_id=1.5),
    ),
]


@pytest.fixture
def world(make_centre, make_user, make_tender):
    """The objects the probes name: a centre, its staff, a draft and a published tender
    (keys made, custodians holding shares), an expert, a bidder, an administrator and a
    privileged account that never enrolled a second factor."""
    from app.custody.models import TenderKey

    centre = make_centre()
    staff = make_user(Role.STAFF, centre=centre)
    draft = make_tender(centre=centre, status="draft")
    sealed = make_tender(centre=centre)
    custodian_id = db.session.get(TenderKey, sealed.id).shares[0].custodian_id
    users = {
        "staff": staff,
        "custodian": db.session.get(type(staff), custodian_id),
        "expert": make_user(Role.EXPERT),
        "bidder": make_user(Role.BIDDER),
        "admin": make_user(Role.ADMIN),
        "unenrolled": make_user(Role.STAFF, centre=centre, totp=False),
    }
    names = {
        "centre": centre.id,
        "draft": draft.id,
        "sealed": sealed.id,
        "staff_email_upper": staff.email.upper(),
        "expert_id": users["expert"].id,
        **{f"{role}_email": user.email for role, user in users.items()},
    }
    return users, names


def fill(value: Any, names: dict[str, Any]) -> Any:
    """The probe's URL or body with the world's objects put in."""
    if isinstance(value, str):
        for key, named in names.items():
            if value == f"{{{key}:int}}":
                return named
            value = value.replace(f"{{{key}}}", str(named))
        return value
    if isinstance(value, dict):
        return {fill(k, names): fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


def stored() -> dict[str, int]:
    """Rows in every table: a refused probe changes none of them."""
    return {
        table.name: db.session.scalar(select(func.count()).select_from(table))
        for table in db.metadata.sorted_tables
    }


def send(client, probe: Probe, names: dict, headers: dict, address: str):
    if probe.host:
        headers = {**headers, "Host": probe.host}
    kwargs: dict[str, Any] = {"headers": headers, "environ_base": {"REMOTE_ADDR": address}}
    if probe.form is not None:
        kwargs["data"] = fill(probe.form, names)
    elif probe.json is not None:
        kwargs["data"] = json.dumps(fill(probe.json, names))
        kwargs["content_type"] = "application/json"
    elif probe.raw is not None:
        kwargs["data"] = probe.raw
        kwargs["content_type"] = "application/json"
    return client.open(fill(probe.url, names), method=probe.method, **kwargs)


ADDRESS = "10.0.6.1"


def signed_in(app, probe: Probe, users: dict):
    """A client (and headers) as the probe's role; the limiter forgets the sign-in."""
    client, headers = app.test_client(), {}
    client.environ_base["REMOTE_ADDR"] = ADDRESS
    if probe.as_:
        how, role = probe.as_.split(":")
        user = users[role]
        if how == "web":
            AuthActions(client).login(user)
        elif how == "pending":
            response = client.post(
                "/accounts/login", data={"email": user.email, "password": PASSWORD}
            )
            assert response.status_code == 302
        else:
            headers = token_for(user)
    limiter.reset()
    return client, headers


@pytest.mark.parametrize("probe", PROBES, ids=str)
def test_hostile_probe(app, world, probe: Probe):
    users, names = world
    client, headers = signed_in(app, probe, users)
    if probe.after_limit:
        allowed = int(app.config["RATELIMIT_LOGIN_ACCOUNT"].split()[0])
        for n in range(allowed):
            # A web session is bound to its address (strong session protection): it makes
            # its attempts from one; everybody else from a new address each time.
            address = ADDRESS if (probe.as_ or "").startswith("web:") else f"10.0.5.{n}"
            response = send(client, probe, names, headers, address)
            assert response.status_code != 429, f"attempt {n + 1} of {allowed} refused"
    before = stored()
    response = send(client, probe, names, headers, ADDRESS)
    body = response.get_data(as_text=True)
    assert response.status_code == probe.status, body[:2000]
    if probe.error is not None:
        assert response.is_json and response.json["error"] == probe.error, body[:500]
    if probe.says is not None:
        assert probe.says in body, body[:2000]
    assert response.status_code < 500
    db.session.expire_all()
    assert stored() == before


# The probes whose answer once depended on the database: run them on PostgreSQL too.
POSTGRES_PROBES = [p for p in PROBES if p.item in (8, 13)]


@pytest.mark.postgres
@pytest.mark.skipif(not using_postgres(), reason="needs DATABASE_URL=postgresql://...")
@pytest.mark.parametrize("probe", POSTGRES_PROBES, ids=str)
def test_hostile_probe_on_postgres(app, world, probe: Probe):
    test_hostile_probe(app, world, probe)


def test_names_are_stored_nfc_normalised(app, client, world):
    """A decomposed name (e + combining acute) is stored composed, so it matches itself."""
    from app.companies.models import Company

    _, names = world
    response = client.post(
        "/accounts/signup", data=fill(signup_form(company_name="Cafe\u0301 Ltd"), names)
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    company = db.session.scalar(select(Company).where(Company.name.like("Caf%")))
    assert company.name == "Caf\u00e9 Ltd"


def test_attempts_add_up_across_entry_points(app, world):
    """The limit is one per account: guesses spread over sign-in, the API token request and
    publication from several addresses count together, and the next try anywhere is a 429
    that stores nothing."""
    from app.tenders.models import Tender

    users, names = world
    staff = users["staff"]
    api = app.test_client()
    headers = token_for(staff)
    limiter.reset()
    allowed = int(app.config["RATELIMIT_LOGIN_ACCOUNT"].split()[0])
    attempts = [
        ("/accounts/login", {"data": {"email": staff.email, "password": "wrong password 1"}}),
        ("/api/v1/tokens", {"json": {"email": staff.email, "password": "wrong password 2"}}),
        (f"/api/v1/tenders/{names['draft']}/publish", {"json": {"totp_code": "000000"}}),
    ]
    for n in range(allowed):
        url, body = attempts[n % len(attempts)]
        response = api.post(
            url,
            headers=headers if "publish" in url else {},
            environ_base={"REMOTE_ADDR": f"10.0.7.{n}"},
            **body,
        )
        assert response.status_code in (401, 403), (url, response.status_code)
    before = stored()
    response = app.test_client().post(
        "/accounts/login",
        data={"email": staff.email.upper(), "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.0.7.200"},
    )
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    response = api.post(
        f"/api/v1/tenders/{names['draft']}/publish",
        json={"totp_code": "000000"},
        headers=headers,
        environ_base={"REMOTE_ADDR": "10.0.7.201"},
    )
    assert response.status_code == 429 and response.json["error"] == "too_many_attempts"
    db.session.expire_all()
    assert stored() == before
    assert db.session.get(Tender, names["draft"]).status == "draft"
    # Another account is not affected.
    other = users["unenrolled"]
    response = app.test_client().post(
        "/accounts/login", data={"email": other.email, "password": "wrong password 1"}
    )
    assert response.status_code == 401


def test_cli_refuses_a_name_with_a_bidi_override(runner):
    from app.accounts.models import User

    name = f"Root {RLO}Admin"
    args = ["users", "create", "--email", "root@probe.example", "--name", name, "--role", "admin"]
    result = runner.invoke(args=[*args, "--password", PASSWORD])
    assert result.exit_code != 0 and "U+202E" in result.output
    assert db.session.scalar(select(User).where(User.email == "root@probe.example")) is None
