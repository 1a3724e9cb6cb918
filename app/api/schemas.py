from __future__ import annotations

from collections.abc import Mapping

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Email, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Regexp

from app.centres.models import CentreLevel
from app.companies.models import CompanyStatus


class TokenRequest(Schema):
    email = Email(required=True, validate=Length(max=254))
    password = String(required=True, validate=Length(max=128))
    totp_code = String(load_default="", validate=Regexp(r"^(\d{6})?$"))
    name = String(load_default="API client", validate=Length(min=1, max=100))


class TokenOut(Schema):
    token = String()
    expires_at = DateTime()


class UserOut(Schema):
    id = Integer()
    email = String()
    full_name = String()
    role = String()
    centre_id = Integer(allow_none=True)
    company_id = Integer(allow_none=True)


class CentreIn(Schema):
    code = String(required=True, validate=Length(min=2, max=32))
    name = String(required=True, validate=Length(min=1, max=200))
    level = String(required=True, validate=OneOf([level.value for level in CentreLevel]))
    parent_id = Integer(load_default=None, allow_none=True, strict=True)


class CentreOut(Schema):
    id = Integer()
    code = String()
    name = String()
    level = String()
    parent_id = Integer(allow_none=True)


class SignUpIn(Schema):
    company_name = String(required=True, validate=Length(min=1, max=200))
    registration_number = String(required=True, validate=Length(equal=18))
    legal_representative = String(required=True, validate=Length(min=1, max=100))
    contact_name = String(required=True, validate=Length(min=1, max=100))
    contact_phone = String(required=True, validate=Regexp(r"^[0-9+()\- ]{5,40}$"))
    home_centre_id = Integer(required=True, strict=True)
    email = Email(required=True, validate=Length(max=254))
    password = String(required=True, validate=Length(min=10, max=128))


class CompanyOut(Schema):
    id = Integer()
    name = String()
    registration_number = String()
    legal_representative = String()
    contact_name = String()
    contact_phone = String()
    home_centre_id = Integer()
    status = String()
    decision_reason = String()
    decided_at = DateTime(allow_none=True)
    created_at = DateTime()


class CompanyQuery(Schema):
    status = String(load_default=None, validate=OneOf([s.value for s in CompanyStatus]))
    page = Integer(load_default=1)
    per_page = Integer(load_default=50)


class CompanyPage(Schema):
    companies = List(Nested(CompanyOut))
    page = Integer()
    pages = Integer()
    total = Integer()


class DecisionIn(Schema):
    reason = String(load_default="", validate=Length(max=2000))


class AuditHead(Schema):
    seq = Integer()
    hash = String()


class AuditVerifyOut(Schema):
    ok = Boolean()
    seq = Integer(allow_none=True)
    reason = String(allow_none=True)
    head = Nested(AuditHead)


class ErrorOut(Schema):
    status = Integer()
    error = String(metadata={"description": "A stable code, e.g. `deadline_passed`."})
    message = String(metadata={"description": "A sentence for people, in their language."})


ERROR_TEXTS = {
    400: "The operation refused the request; `error` says why.",
    403: "The caller's role or centre may not do this.",
    404: "No such object, or a draft the caller may not see.",
    409: "Conflicts with the current state (status, deadline, duplicate).",
}


def error_responses(*codes: int, texts: Mapping[int, str] = ERROR_TEXTS, **overrides: dict) -> dict:
    """OpenAPI responses for `codes`, described by `texts` (the common ones by default), in
    the JSON shape of every Fairbid error (`ErrorOut`; an error's `detail()` adds fields)."""
    responses: dict = {
        code: {"description": texts[code], "content": {"application/json": {"schema": ErrorOut}}}
        for code in codes
    }
    responses.update(overrides)
    return responses
