"""The JSON API: tokens, accounts, centres, company registrations, audit; OpenAPI."""

from __future__ import annotations

from sqlalchemy import func, select

from app.accounts.models import ApiToken, Role
from app.companies.models import Company, CompanyStatus
from app.extensions import db
from tests.conftest import totp_now
from tests.factories import PASSWORD, valid_uscc
from tests.factories.accounts import bearer


def get_token(client, user, **extra) -> str:
    body = {"email": user.email, "password": PASSWORD, **extra}
    if user.needs_totp and "totp_code" not in extra:
        body["totp_code"] = totp_now(user)
    response = client.post("/api/v1/tokens", json=body)
    assert response.status_code == 201, response.json
    return response.json["token"]


def test_openapi_document_lists_the_endpoints(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    for path in [
        "/api/v1/tokens",
        "/api/v1/me",
        "/api/v1/centres",
        "/api/v1/companies",
        "/api/v1/companies/{company_id}/approve",
        "/api/v1/audit/verify",
    ]:
        assert path in spec["paths"], path
    schemes = spec["components"]["securitySchemes"].values()
    assert {"type": "http", "scheme": "bearer"}.items() <= next(iter(schemes)).items()
    assert spec["paths"]["/api/v1/me"]["get"]["security"]


def test_token_lifecycle(client, make_user):
    user = make_user()
    token = get_token(client, user)
    assert token.startswith("fb_")
    stored = db.session.scalar(select(ApiToken.token_hash))
    assert token not in stored  # only the hash is stored
    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.json["email"] == user.email
    assert client.delete("/api/v1/tokens/current", headers=bearer(token)).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_privileged_token_needs_totp(client, make_user):
    staff = make_user(Role.STAFF)
    response = client.post("/api/v1/tokens", json={"email": staff.email, "password": PASSWORD})
    assert response.status_code == 401
    assert response.json["error"] == "bad_totp"
    assert get_token(client, staff)


def test_wrong_password_gets_401_json(client, make_user):
    user = make_user()
    response = client.post("/api/v1/tokens", json={"email": user.email, "password": "nope-nope"})
    assert response.status_code == 401
    assert response.json == {
        "status": 401,
        "error": "bad_credentials",
        "message": "Wrong e-mail address or password.",
    }


def test_forged_token_is_refused(client):
    response = client.get("/api/v1/me", headers=bearer("fb_forged"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_sign_up_and_staff_decision_through_the_api(client, make_centre, make_user, outbox):
    centre = make_centre()
    body = {
        "company_name": "API Builders Ltd.",
        "registration_number": valid_uscc(770001),
        "legal_representative": "Wang Wu",
        "contact_name": "Zhao Liu",
        "contact_phone": "+86 10 1234 5678",
        "home_centre_id": centre.id,
        "email": "zhao@api-builders.example",
        "password": PASSWORD,
    }
    response = client.post("/api/v1/companies", json=body)
    assert response.status_code == 201, response.json
    company_id = response.json["id"]
    assert response.json["status"] == "pending"
    assert len(outbox) == 1

    duplicate = client.post("/api/v1/companies", json={**body, "email": "other@x.example"})
    assert duplicate.status_code == 409 and duplicate.json["error"] == "company_exists"

    other_staff = make_user(Role.STAFF)  # another centre
    token = get_token(client, other_staff)
    assert client.get(f"/api/v1/companies/{company_id}", headers=bearer(token)).status_code == 403
    listing = client.get("/api/v1/companies", headers=bearer(token)).json
    assert listing["total"] == 0

    staff = make_user(Role.STAFF, centre=centre)
    token = get_token(client, staff)
    listing = client.get("/api/v1/companies?status=pending", headers=bearer(token)).json
    assert [c["id"] for c in listing["companies"]] == [company_id]
    refused = client.post(f"/api/v1/companies/{company_id}/reject", json={}, headers=bearer(token))
    assert refused.status_code == 400 and refused.json["error"] == "reason"
    response = client.post(
        f"/api/v1/companies/{company_id}/reject",
        json={"reason": "Licence copy unreadable"},
        headers=bearer(token),
    )
    assert response.status_code == 200
    assert response.json["status"] == "rejected"
    again = client.post(f"/api/v1/companies/{company_id}/approve", json={}, headers=bearer(token))
    assert again.status_code == 409
    assert db.session.get(Company, company_id).status == CompanyStatus.REJECTED
    assert len(outbox) == 2  # the decision e-mail


def test_validation_errors_are_422_with_details(client):
    response = client.post("/api/v1/companies", json={"company_name": ""})
    assert response.status_code == 422
    assert "registration_number" in response.json["detail"]["json"]
    assert db.session.scalar(select(func.count(Company.id))) == 0


def test_admin_creates_centres_with_hierarchy_rules(client, make_user):
    admin = make_user(Role.ADMIN)
    token = get_token(client, admin)
    city = client.post(
        "/api/v1/centres",
        json={"code": "sz", "name": "Suzhou", "level": "city"},
        headers=bearer(token),
    )
    assert city.status_code == 201 and city.json["code"] == "SZ"
    orphan = client.post(
        "/api/v1/centres",
        json={
            "code": "SZ-T1",
            "name": "Township",
            "level": "township",
            "parent_id": city.json["id"],
        },
        headers=bearer(token),
    )
    assert orphan.status_code == 400 and orphan.json["error"] == "parent"
    county = client.post(
        "/api/v1/centres",
        json={"code": "SZ-GS", "name": "Gusu", "level": "county", "parent_id": city.json["id"]},
        headers=bearer(token),
    )
    assert county.status_code == 201
    assert client.get(f"/api/v1/centres/{county.json['id']}").json["parent_id"] == city.json["id"]


def test_supervisor_verifies_the_audit_chain(client, make_user):
    supervisor = make_user(Role.SUPERVISOR)
    token = get_token(client, supervisor)
    result = client.get("/api/v1/audit/verify", headers=bearer(token)).json
    assert result["ok"] is True
    assert result["head"]["seq"] >= 1  # at least the token creation
