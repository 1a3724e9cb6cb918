"""The expert pool's search and filters, on the page (/panels/pool) and the API
(GET /api/v1/experts/pool): search by name, employer or specialty; filters by pool,
specialty, availability and declared ties; pagination keeps the filters; an unknown filter
value is refused (page 400, API 422), never silently ignored."""

from __future__ import annotations

import re

import pytest

from app.accounts.models import Role
from app.extensions import db
from app.panels import operations as ops
from app.panels.models import ExpertProfile
from tests.conftest import AuthActions
from tests.factories.accounts import token_for


@pytest.fixture
def pool(app, make_user, make_centre, make_company):
    centre, other = make_centre(), make_centre()
    staff = make_user(Role.STAFF, centre=centre)

    def expert(name, centre_id, specialties, available=True, employer="Institute"):
        user = make_user(Role.EXPERT, full_name=name)
        db.session.add(
            ExpertProfile(
                user_id=user.id,
                centre_id=centre_id,
                specialties=specialties,
                employer=employer,
                available=available,
            )
        )
        db.session.commit()
        return user

    experts = {
        "ada": expert("Ada Civil", centre.id, "civil,economic"),
        "bo": expert("Bo Wires", centre.id, "electrical", available=False),
        "cy": expert("Cy City", None, "legal", employer="Law 100% Firm"),
        "di": expert("Di Other", other.id, "civil"),  # another centre's pool: never listed
    }
    ops.declare_relationship(experts["bo"], make_company(centre=centre), "shareholder")
    db.session.commit()
    return {"staff": staff, **experts}


def _names(html: bytes) -> list[str]:
    return re.findall(r"<td>([A-Z][a-z]+ [A-Za-z0-9]+) \(", html.decode())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, ["Ada Civil", "Bo Wires", "Cy City"]),
        ({"q": "bo w"}, ["Bo Wires"]),
        ({"q": "CIVIL"}, ["Ada Civil"]),  # name and specialty key
        ({"q": "structural"}, []),
        ({"q": "Electrical engineering"}, ["Bo Wires"]),  # the specialty's label
        ({"q": "100%"}, ["Cy City"]),  # the employer; % is no wildcard
        ({"q": "%"}, ["Cy City"]),
        ({"pool": "city"}, ["Cy City"]),
        ({"pool": "centre"}, ["Ada Civil", "Bo Wires"]),
        ({"specialty": "economic"}, ["Ada Civil"]),
        ({"specialty": "civil"}, ["Ada Civil"]),
        ({"available": "no"}, ["Bo Wires"]),
        ({"available": "yes", "pool": "centre"}, ["Ada Civil"]),
        ({"ties": "declared"}, ["Bo Wires"]),
        ({"ties": "none"}, ["Ada Civil", "Cy City"]),
    ],
)
def test_pool_page_search_and_filters(app, pool, args, expected):
    client = app.test_client()
    AuthActions(client).login(pool["staff"])
    response = client.get("/panels/pool", query_string=args)
    assert response.status_code == 200
    assert _names(response.data) == expected
    # The chosen values stay selected in the filter form.
    for key, value in args.items():
        if key == "q":
            assert f'name="q" value="{value}"'.encode() in response.data.replace(b"&#34;", b'"')
        else:
            assert f'<option value="{value}" selected>'.encode() in response.data


@pytest.mark.parametrize(
    "args",
    [{"pool": "mars"}, {"specialty": "astrology"}, {"available": "maybe"}, {"ties": "1"}],
)
def test_pool_page_refuses_unknown_filter_values(app, pool, args):
    client = app.test_client()
    AuthActions(client).login(pool["staff"])
    response = client.get("/panels/pool", query_string=args)
    assert response.status_code == 400
    assert f"“{next(iter(args))}”".encode() in response.data
    assert b"Ada Civil" not in response.data


def test_pool_page_paginates_keeping_the_filters(app, pool, make_user):
    for n in range(30):
        user = make_user(Role.EXPERT, full_name=f"Zed Extra{n:02d}")
        db.session.add(ExpertProfile(user_id=user.id, centre_id=None, specialties="it"))
    db.session.commit()
    client = app.test_client()
    AuthActions(client).login(pool["staff"])
    first = client.get("/panels/pool?specialty=it&q=zed").data
    assert len(_names(first)) == 25 and b"30 experts found." in first
    assert b"Page 1 of 2" in first
    link = re.search(rb'href="([^"]*page=2[^"]*)"', first).group(1).decode().replace("&amp;", "&")
    assert "specialty=it" in link and "q=zed" in link
    second = client.get(link).data
    assert _names(second) == [
        "Zed Extra25",
        "Zed Extra26",
        "Zed Extra27",
        "Zed Extra28",
        "Zed Extra29",
    ]


def test_staff_pool_form_offers_no_city_pool_but_admins_get_it(app, pool, make_user):
    client = app.test_client()
    AuthActions(client).login(pool["staff"])
    assert b'name="city_pool"' not in client.get("/panels/pool").data
    admin = make_user(Role.ADMIN)
    admin_client = app.test_client()
    AuthActions(admin_client).login(admin)
    assert b'name="city_pool"' in admin_client.get("/panels/pool").data


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, ["ada", "bo", "cy"]),
        ({"q": "wires"}, ["bo"]),
        ({"q": "legal"}, ["cy"]),
        ({"pool": "city"}, ["cy"]),
        ({"specialty": "electrical"}, ["bo"]),
        ({"available": "false"}, ["bo"]),
        ({"available": "true", "ties": "none"}, ["ada", "cy"]),
        ({"ties": "declared"}, ["bo"]),
        ({"per_page": 2}, ["ada", "bo"]),
        ({"per_page": 2, "page": 2}, ["cy"]),
    ],
)
def test_pool_api_search_and_filters(app, pool, args, expected):
    answer = app.test_client().get(
        "/api/v1/experts/pool", query_string=args, headers=token_for(pool["staff"])
    )
    assert answer.status_code == 200
    body = answer.get_json()
    assert [e["user_id"] for e in body["experts"]] == [pool[key].id for key in expected]
    assert body["page"] == args.get("page", 1)
    assert body["total"] == (3 if set(args) <= {"page", "per_page"} else len(expected))


@pytest.mark.parametrize(
    "args",
    [
        {"pool": "mars"},
        {"specialty": "astrology"},
        {"available": "maybe"},
        {"ties": "1"},
        {"page": 0},
        {"per_page": 500},
        {"q": "x" * 201},
    ],
)
def test_pool_api_refuses_bad_parameters(app, pool, args):
    answer = app.test_client().get(
        "/api/v1/experts/pool", query_string=args, headers=token_for(pool["staff"])
    )
    assert answer.status_code == 422
    assert next(iter(args)) in str(answer.get_json())


def test_pool_api_documents_its_parameters(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/experts/pool"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"q", "pool", "specialty", "available", "ties", "page", "per_page"} <= names
