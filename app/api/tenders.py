"""API: tenders, enquiries, addenda, registrations, bid bonds and templates.

Each endpoint checks the caller's role, and for an existing object the centre scope, before
the body is validated (a caller of another centre gets 403, a hidden draft 404, never a 422
that tells them the object is there); the operation's own permission check still runs.
Endpoints that write are `transactional`: one commit when the operation succeeds, a refusal
settled by the boundary and answered in the uniform JSON error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, abort, current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts.limits import account_limit
from app.accounts.operations import SignInFailed
from app.api import auth, bp, roles_required
from app.api.roles import (
    BIDDERS,
    REGISTRATION_VIEWERS,
    TEMPLATE_EDITORS,
    TENDER_MANAGERS,
)
from app.api.schemas import error_responses
from app.api.tender_schemas import (
    AddendumIn,
    AddendumPublishedOut,
    AnswerIn,
    BondIn,
    BondRecordedOut,
    CancelIn,
    EnquiryIn,
    EnquiryOut,
    PublishIn,
    RegistrationIn,
    RegistrationOut,
    TemplateCopyIn,
    TemplateDetailOut,
    TemplateErrorsOut,
    TemplateOut,
    TemplateVersionDetailOut,
    TemplateVersionIn,
    TenderFields,
    TenderIn,
    TenderOut,
    TenderPage,
    TenderQuery,
)
from app.centres.models import TradingCentre
from app.core.boundary import transactional
from app.core.errors import OperationError
from app.extensions import db, limiter
from app.permissions import Permission, require
from app.tenders import documents, operations, participation, template_ops
from app.tenders.access import staff_template, visible_tender
from app.tenders.commercial import commercial_spec_of
from app.tenders.lot_changes import CHANGEABLE, LotChange
from app.tenders.models import (
    PUBLIC_STATUSES,
    Addendum,
    BondRecord,
    Enquiry,
    TemplateVersion,
    Tender,
    TenderDocument,
    TenderRegistration,
    TenderTemplate,
)
from app.tenders.operations import LotInput, TenderInput


def _route_tender_id(tender_id: int, **_other: int) -> int:
    return tender_id


def _enquiry_tender_id(enquiry_id: int) -> int:
    return db.get_or_404(Enquiry, enquiry_id).tender_id


def _registration_tender_id(registration_id: int) -> int:
    return db.get_or_404(TenderRegistration, registration_id).tender_id


def tender_scope(
    permission: Permission, tender_id_of: Callable[..., int] = _route_tender_id
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Before the body is read: the route's tender (its `tender_id`, or the tender of the
    object the route names, by `tender_id_of(**route arguments)`) exists and is visible to
    the caller (else 404), and the caller holds `permission` for its centre (else 403)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            tender = visible_tender(auth.current_user, tender_id_of(**kwargs))
            require(auth.current_user, permission, centre_id=tender.centre_id)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def template_scope(view: Callable[..., Any]) -> Callable[..., Any]:
    """Before the body is read: the template exists (404) and the caller may edit templates
    of its centre (403; built-ins are readable by every centre)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        staff_template(auth.current_user, kwargs["template_id"])
        return view(*args, **kwargs)

    return wrapper


def reconfirmed(view: Callable[..., Any]) -> Callable[..., Any]:
    """For an action re-confirmed with a second-factor code: a wrong code answers 403, not
    SignInFailed's 401, which would tell the client that its bearer token is bad. The
    refusal still reaches the boundary, which keeps its audited attempt."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except SignInFailed as error:
            error.status = 403
            raise

    return wrapper


def _centre_of_caller(centre_id: int | None) -> int:
    centre_id = centre_id or auth.current_user.centre_id
    if centre_id is None:
        raise OperationError(_l("Name the trading centre (centre_id)."), code="centre")
    if db.session.get(TradingCentre, centre_id) is None:
        raise OperationError(_l("There is no trading centre %(id)d.", id=centre_id), code="centre")
    return centre_id


def _lots(items: list[dict]) -> list[LotInput]:
    return [
        LotInput(
            title=item["title"],
            budget=item.get("budget"),
            ceiling_price=item.get("ceiling_price"),
            reserve_price=item.get("reserve_price"),
            reference=item.get("reference", ""),
            description=item.get("description", ""),
            quantity=item.get("quantity", ""),
            bid_bond_amount=item.get("bid_bond_amount"),
        )
        for item in items
    ]


_TENDER_FIELDS = tuple(name for name in TenderFields().fields if name != "lots")


# Tenders -------------------------------------------------------------------------------


@bp.get("/tenders")
@bp.input(TenderQuery, location="query", arg_name="query")
@bp.output(TenderPage)
@bp.doc(
    summary="Published tenders (public)",
    description="Every tender past its publication, newest first; drafts are never listed.",
)
def list_tenders(query: dict) -> dict:
    select_ = select(Tender).where(Tender.status.in_(PUBLIC_STATUSES))
    if query["status"]:
        select_ = select_.where(Tender.status == query["status"])
    if query["category"]:
        select_ = select_.where(Tender.category == query["category"])
    if query["centre_id"]:
        select_ = select_.where(Tender.centre_id == query["centre_id"])
    if query["centre"]:
        select_ = select_.join(TradingCentre, TradingCentre.id == Tender.centre_id).where(
            TradingCentre.code == query["centre"].strip().upper()
        )
    select_ = select_.order_by(Tender.published_at.desc(), Tender.id.desc())
    per_page = max(1, min(query["per_page"], 200))
    page = db.paginate(select_, page=max(query["page"], 1), per_page=per_page, error_out=False)
    return {"tenders": page.items, "page": page.page, "pages": page.pages, "total": page.total}


@bp.get("/tenders/<int:tender_id>")
@bp.auth_required(auth, optional=True)
@bp.output(TenderOut)
@bp.doc(
    summary="One tender (public once published)",
    description="A draft is visible only to staff of its centre, supervisors and "
    "administrators (send a token).",
    responses=error_responses(404),
)
def get_tender(tender_id: int) -> Tender:
    return visible_tender(auth.current_user, tender_id)


@bp.get("/tenders/<int:tender_id>/commercial-fields")
@bp.auth_required(auth, optional=True)
@bp.doc(
    summary="The form of a bid's commercial part (public once published)",
    description="The field specification (format `fairbid-commercial-fields/1`) that the "
    "commercial part must follow: known fields, types, required fields, length limits. "
    "`python -m bidding seal --fields` takes this file and checks the part before sealing; "
    "at the opening a part that breaks it is recorded as malformed and the bid is "
    "non-compliant.",
    responses=error_responses(404),
)
def get_commercial_fields(tender_id: int) -> dict:
    return commercial_spec_of(visible_tender(auth.current_user, tender_id)).to_json()


@bp.post("/tenders")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@bp.input(TenderIn, arg_name="body")
@bp.output(TenderOut, status_code=201)
@bp.doc(
    summary="Create a draft tender from a template version (staff)",
    description="Money as decimal strings, times as ISO 8601 with their offset. The schedule "
    "is checked against the server clock and the category's minimum bidding period.",
    responses=error_responses(400, 403, 409),
)
@transactional
def create_tender(body: dict) -> Tender:
    centre_id = _centre_of_caller(body["centre_id"])
    version = db.session.get(TemplateVersion, body["template_version_id"])
    if version is None:
        raise OperationError(_l("Unknown template version."), code="template_version")
    data = TenderInput(
        **{name: body[name] for name in _TENDER_FIELDS},
        lots=_lots(body["lots"]),
    )
    return operations.create_tender(auth.current_user, centre_id, version, data)


@bp.patch("/tenders/<int:tender_id>")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.input(TenderFields, arg_name="body")
@bp.output(TenderOut)
@bp.doc(
    summary="Edit a draft tender (staff of its centre)",
    description="Fields left out keep their value; `lots`, when sent, replaces every lot. "
    "A published tender changes only through addenda (409).",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def update_tender(tender_id: int, body: dict) -> Tender:
    tender = visible_tender(auth.current_user, tender_id)
    data = operations.input_from_tender(tender)
    for name in _TENDER_FIELDS:
        if name in body:
            setattr(data, name, body[name])
    if "lots" in body:
        data.lots = _lots(body["lots"])
    operations.update_tender(auth.current_user, tender, data)
    return tender


@bp.post("/tenders/<int:tender_id>/publish")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"])
@account_limit(lambda: auth.current_user)
@bp.input(PublishIn, arg_name="body")
@bp.output(TenderOut)
@bp.doc(
    summary="Publish a draft tender (staff of its centre, TOTP re-confirmed)",
    description="Renders and freezes the tender document, writes the audit log and makes "
    "the announcement public. A wrong code is refused (403 `bad_totp`) and changes nothing.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
@reconfirmed
def publish_tender(tender_id: int, body: dict) -> Tender:
    tender = visible_tender(auth.current_user, tender_id)
    operations.publish_tender(auth.current_user, tender, body["totp_code"])
    return tender


@bp.post("/tenders/<int:tender_id>/cancel")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.input(CancelIn, arg_name="body")
@bp.output(TenderOut)
@bp.doc(
    summary="Cancel a tender with a public reason (staff of its centre)",
    description="Any time before the award; registered bidders are notified.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def cancel_tender(tender_id: int, body: dict) -> Tender:
    tender = visible_tender(auth.current_user, tender_id)
    operations.cancel_tender(auth.current_user, tender, body["reason"])
    return tender


@bp.post("/tenders/<int:tender_id>/addenda")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.input(AddendumIn, arg_name="body")
@bp.output(AddendumPublishedOut, status_code=201)
@bp.doc(
    summary="Publish an addendum (staff of its centre)",
    description="A new versioned document; registered bidders are notified. An addendum "
    "too close to the bid deadline extends it (see `deadline_after`). In a tender divided "
    "into lots, `lot_changes` adds, cancels or re-prices lots (the only way they change "
    "after publication); a cancelled lot takes no more envelopes.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def publish_addendum(tender_id: int, body: dict) -> dict[str, Addendum | Tender]:
    tender = visible_tender(auth.current_user, tender_id)
    addendum = operations.publish_addendum(
        auth.current_user,
        tender,
        body["title"],
        body["body"],
        body["new_deadline"],
        _lot_changes(body["lot_changes"]),
    )
    return {"addendum": addendum, "tender": tender}


def _lot_changes(items: list[dict]) -> list[LotChange]:
    changes = []
    for item in items:
        if item["action"] == "add" and item.get("new_lot") is None:
            raise OperationError(_l("Adding a lot needs the new lot."), code="lot_change")
        changes.append(
            LotChange(
                action=item["action"],
                reference=item.get("lot", ""),
                lot=_lots([item["new_lot"]])[0] if item["action"] == "add" else None,
                values={name: item[name] for name in CHANGEABLE if name in item},
            )
        )
    return changes


@bp.get("/tenders/<int:tender_id>/documents/<int:document_id>")
@bp.auth_required(auth)
@bp.doc(
    summary="Download a tender document (registered companies, staff overseeing it)",
    description="The download is recorded. The `Repr-Digest` header carries the SHA-256 "
    "listed with the document in the tender.",
    responses=error_responses(
        403,
        404,
        **{
            "200": {
                "description": "The file.",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    ),
)
@transactional
def download_document(tender_id: int, document_id: int) -> Response:
    # A GET that writes: the download is recorded, and only when the file opens.
    tender = visible_tender(auth.current_user, tender_id)
    document = db.session.get(TenderDocument, document_id)
    if document is None or document.tender_id != tender.id:
        abort(404)
    participation.record_download(auth.current_user, document)
    return documents.send_document(document, documents.open_document(document))


# Enquiries -----------------------------------------------------------------------------


@bp.get("/tenders/<int:tender_id>/enquiries")
@bp.auth_required(auth, optional=True)
@bp.output(EnquiryOut(many=True))
@bp.doc(
    summary="Questions and answers of a tender (public)",
    description="Answered questions for everyone, never with the asking company; a bidder "
    "also sees its own unanswered ones, staff of the centre all.",
    responses=error_responses(404),
)
def list_enquiries(tender_id: int) -> list[Enquiry]:
    tender = visible_tender(auth.current_user, tender_id)
    return participation.enquiries_visible_to(auth.current_user, tender)


@bp.post("/tenders/<int:tender_id>/enquiries")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.input(EnquiryIn, arg_name="body")
@bp.output(EnquiryOut, status_code=201)
@bp.doc(
    summary="Ask a question (bidders registered for the tender)",
    description="Within the enquiry period. The answer is published without the company.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def ask_enquiry(tender_id: int, body: dict) -> Enquiry:
    tender = visible_tender(auth.current_user, tender_id)
    return participation.ask_enquiry(auth.current_user, tender, body["question"])


@bp.post("/enquiries/<int:enquiry_id>/answer")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS, _enquiry_tender_id)
@bp.input(AnswerIn, arg_name="body")
@bp.output(EnquiryOut)
@bp.doc(
    summary="Answer a question publicly (staff of the tender's centre)",
    description="Registered bidders are notified.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def answer_enquiry(enquiry_id: int, body: dict) -> Enquiry:
    enquiry = db.session.get(Enquiry, enquiry_id)
    participation.answer_enquiry(auth.current_user, enquiry, body["answer"])
    return enquiry


# Registrations and bid bonds -----------------------------------------------------------


@bp.post("/tenders/<int:tender_id>/registrations")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.input(RegistrationIn, arg_name="body")
@bp.output(RegistrationOut, status_code=201)
@bp.doc(
    summary="Register the caller's company for a published tender (bidders)",
    description="Approved companies only, before the bid deadline; once per company (409). "
    "A tender divided into lots: name the lots in `lots` (one only unless the tender allows "
    "bidding for several); a tender of one lot: no body, or no `lots`.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def register_for_tender(tender_id: int, body: dict) -> TenderRegistration:
    tender = visible_tender(auth.current_user, tender_id)
    return participation.register_for_tender(auth.current_user, tender, body.get("lots"))


@bp.get("/tenders/<int:tender_id>/registrations")
@bp.auth_required(auth)
@roles_required(*REGISTRATION_VIEWERS)
@bp.output(RegistrationOut(many=True))
@bp.doc(
    summary="Registered companies and their bid-bond status",
    description="Staff of the tender's centre, supervisors and administrators see every "
    "registration; a bidder only its own company's.",
    responses=error_responses(403, 404),
)
def list_registrations(tender_id: int) -> list[TenderRegistration]:
    tender = visible_tender(auth.current_user, tender_id)
    return participation.registrations_visible_to(auth.current_user, tender)


@bp.post("/registrations/<int:registration_id>/bonds")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS, _registration_tender_id)
@bp.input(BondIn, arg_name="body")
@bp.output(BondRecordedOut, status_code=201)
@bp.doc(
    summary="Record a bid-bond payment or guarantee (staff of the tender's centre)",
    responses=error_responses(400, 403, 404),
)
@transactional
def record_bond(registration_id: int, body: dict) -> dict[str, BondRecord | TenderRegistration]:
    registration = db.session.get(TenderRegistration, registration_id)
    bond = participation.record_bond(
        auth.current_user, registration, body["kind"], body["amount"], body["reference"]
    )
    return {"bond": bond, "registration": registration}


# Templates -----------------------------------------------------------------------------


@bp.get("/templates")
@bp.auth_required(auth)
@roles_required(*TEMPLATE_EDITORS)
@bp.output(TemplateOut(many=True))
@bp.doc(summary="Templates: the built-ins and the caller's centre's own (staff)")
def list_templates() -> list[TenderTemplate]:
    return template_ops.templates_visible_to(auth.current_user)


@bp.get("/templates/<int:template_id>")
@bp.auth_required(auth)
@roles_required(*TEMPLATE_EDITORS)
@bp.output(TemplateDetailOut)
@bp.doc(
    summary="One template with its versions and latest text (staff)",
    responses=error_responses(403, 404),
)
def get_template(template_id: int) -> TenderTemplate:
    return staff_template(auth.current_user, template_id)


@bp.post("/templates/<int:template_id>/copy")
@bp.auth_required(auth)
@roles_required(*TEMPLATE_EDITORS)
@template_scope
@bp.input(TemplateCopyIn, arg_name="body")
@bp.output(TemplateDetailOut, status_code=201)
@bp.doc(
    summary="Copy a template into a centre to edit it (staff)",
    description="The copy starts with the latest version of the source and records it.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def copy_template(template_id: int, body: dict) -> TenderTemplate:
    source = staff_template(auth.current_user, template_id)
    return template_ops.copy_template(
        auth.current_user, source, _centre_of_caller(body["centre_id"]), body["key"]
    )


@bp.post("/templates/<int:template_id>/versions")
@bp.auth_required(auth)
@roles_required(*TEMPLATE_EDITORS)
@template_scope
@bp.input(TemplateVersionIn, arg_name="body")
@bp.output(TemplateVersionDetailOut, status_code=201)
@bp.doc(
    summary="Save a new version of a centre's template (staff of its centre)",
    description="Validated against the template schema; when invalid, 422 lists every "
    "error with its path. The same text as the latest version stores nothing (200).",
    responses=error_responses(
        400,
        403,
        404,
        **{
            "200": {
                "description": "The same text as the latest version: that version.",
                "content": {"application/json": {"schema": TemplateVersionDetailOut}},
            },
            "422": {
                "description": "The template is not valid: `errors` lists each problem.",
                "content": {"application/json": {"schema": TemplateErrorsOut}},
            },
        },
    ),
)
@transactional
def save_template_version(template_id: int, body: dict) -> tuple[TemplateVersion, int]:
    # An invalid text is refused: TemplateInvalid, 422, with every error in `errors`.
    template = staff_template(auth.current_user, template_id)
    latest_id = template.latest.id if template.latest else None
    version = template_ops.save_template(auth.current_user, template, body["yaml"])
    return version, 200 if version.id == latest_id else 201
