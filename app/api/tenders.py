"""API: tenders, enquiries, addenda, registrations, bid bonds and templates.

Each endpoint checks the caller's role, and for an existing object the centre scope, before
the body is validated (a caller of another centre gets 403, a hidden draft 404, never a 422
that tells them the object is there); the operation's own permission check still runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps

from flask import abort, current_app, jsonify
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts.operations import SignInFailed
from app.api import auth, bp, roles_required
from app.api.roles import (
    BIDDERS,
    REGISTRATION_VIEWERS,
    TEMPLATE_EDITORS,
    TENDER_MANAGERS,
)
from app.api.tender_schemas import (
    AddendumIn,
    AddendumPublishedOut,
    AnswerIn,
    BondIn,
    BondRecordedOut,
    CancelIn,
    EnquiryIn,
    EnquiryOut,
    ErrorOut,
    PublishIn,
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
from app.core.errors import OperationError
from app.extensions import db, limiter
from app.permissions import Permission, require
from app.tenders import documents, operations, participation, template_ops
from app.tenders.models import (
    PUBLIC_STATUSES,
    Enquiry,
    TemplateVersion,
    Tender,
    TenderDocument,
    TenderRegistration,
)
from app.tenders.operations import LotInput, TenderInput
from app.tenders.template_ops import TemplateInvalid

_ERROR_TEXT = {
    400: "The operation refused the request; `error` says why.",
    403: "The caller's role or centre may not do this.",
    404: "No such object, or a draft the caller may not see.",
    409: "Conflicts with the current state (status, deadline, duplicate).",
}


def _errors(*codes: int, **overrides) -> dict:
    """OpenAPI responses in the JSON shape of every Fairbid error."""
    responses = {}
    for code in codes:
        responses[code] = {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"schema": ErrorOut}},
        }
    responses.update(overrides)
    return responses


@contextmanager
def _transaction() -> Iterator[None]:
    """Commit once when the operation succeeds; a refusal leaves nothing behind."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


def _visible(tender: Tender | None) -> Tender:
    if tender is None or not participation.can_see_tender(auth.current_user, tender):
        abort(404)
    return tender


def _tender(tender_id: int) -> Tender:
    return _visible(db.session.get(Tender, tender_id))


def _tender_of_enquiry(enquiry_id: int) -> Tender:
    enquiry = db.session.get(Enquiry, enquiry_id) or abort(404)
    return _visible(db.session.get(Tender, enquiry.tender_id))


def _tender_of_registration(registration_id: int) -> Tender:
    registration = db.session.get(TenderRegistration, registration_id) or abort(404)
    return _visible(registration.tender)


def tender_scope(load: Callable[..., Tender], permission: Permission):
    """Before the body is read: the object exists and is visible (else 404), and the caller
    holds `permission` for its tender's centre (else 403)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            tender = load(**kwargs)
            require(auth.current_user, permission, centre_id=tender.centre_id)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def template_scope(view):
    """Before the body is read: the template exists (404) and the caller may edit templates
    of its centre (403; built-ins are readable by every centre)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        template_ops.get_template_for(auth.current_user, kwargs["template_id"]) or abort(404)
        return view(*args, **kwargs)

    return wrapper


def _centre_of_caller(centre_id: int | None) -> int:
    centre_id = centre_id or auth.current_user.centre_id
    if centre_id is None:
        raise OperationError(_l("Name the trading centre (centre_id)."), code="centre")
    return centre_id


def _lots(items: list[dict]) -> list[LotInput]:
    return [
        LotInput(
            title=item["title"],
            budget=item.get("budget"),
            ceiling_price=item.get("ceiling_price"),
            reserve_price=item.get("reserve_price"),
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
def list_tenders(query):
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
    responses=_errors(404),
)
def get_tender(tender_id: int):
    return _tender(tender_id)


@bp.post("/tenders")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@bp.input(TenderIn, arg_name="body")
@bp.output(TenderOut, status_code=201)
@bp.doc(
    summary="Create a draft tender from a template version (staff)",
    description="Money as decimal strings, times as ISO 8601 with their offset. The schedule "
    "is checked against the server clock and the category's minimum bidding period.",
    responses=_errors(400, 403, 409),
)
def create_tender(body):
    actor = auth.current_user
    with _transaction():
        centre_id = _centre_of_caller(body["centre_id"])
        version = db.session.get(TemplateVersion, body["template_version_id"])
        if version is None:
            raise OperationError(_l("Unknown template version."), code="template_version")
        data = TenderInput(
            **{name: body[name] for name in _TENDER_FIELDS},
            lots=_lots(body["lots"]),
        )
        tender = operations.create_tender(actor, centre_id, version, data)
    return tender


@bp.patch("/tenders/<int:tender_id>")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(_tender, Permission.MANAGE_TENDERS)
@bp.input(TenderFields, arg_name="body")
@bp.output(TenderOut)
@bp.doc(
    summary="Edit a draft tender (staff of its centre)",
    description="Fields left out keep their value; `lots`, when sent, replaces every lot. "
    "A published tender changes only through addenda (409).",
    responses=_errors(400, 403, 404, 409),
)
def update_tender(tender_id: int, body):
    tender = _tender(tender_id)
    data = operations.input_from_tender(tender)
    for name in _TENDER_FIELDS:
        if name in body:
            setattr(data, name, body[name])
    if "lots" in body:
        data.lots = _lots(body["lots"])
    with _transaction():
        operations.update_tender(auth.current_user, tender, data)
    return tender


@bp.post("/tenders/<int:tender_id>/publish")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(_tender, Permission.MANAGE_TENDERS)
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"])
@bp.input(PublishIn, arg_name="body")
@bp.output(TenderOut)
@bp.doc(
    summary="Publish a draft tender (staff of its centre, TOTP re-confirmed)",
    description="Renders and freezes the tender document, writes the audit log and makes "
    "the announcement public. A wrong code is refused (403 `bad_totp`) and changes nothing.",
    responses=_errors(400, 403, 404, 409),
)
def publish_tender(tender_id: int, body):
    tender = _tender(tender_id)
    try:
        operations.publish_tender(auth.current_user, tender, body["totp_code"])
    except SignInFailed as error:
        # The code is checked before anything changes: keep only the audited failure. Not
        # a 401, which would tell the client that its bearer token is bad.
        db.session.commit()
        raise OperationError(error.message, code=error.code, status=403) from None
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    return tender


@bp.post("/tenders/<int:tender_id>/cancel")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(_tender, Permission.MANAGE_TENDERS)
@bp.input(CancelIn, arg_name="body")
@bp.output(TenderOut)
@bp.doc(
    summary="Cancel a tender with a public reason (staff of its centre)",
    description="Any time before the award; registered bidders are notified.",
    responses=_errors(400, 403, 404, 409),
)
def cancel_tender(tender_id: int, body):
    tender = _tender(tender_id)
    with _transaction():
        operations.cancel_tender(auth.current_user, tender, body["reason"])
    return tender


@bp.post("/tenders/<int:tender_id>/addenda")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(_tender, Permission.MANAGE_TENDERS)
@bp.input(AddendumIn, arg_name="body")
@bp.output(AddendumPublishedOut, status_code=201)
@bp.doc(
    summary="Publish an addendum (staff of its centre)",
    description="A new versioned document; registered bidders are notified. An addendum "
    "too close to the bid deadline extends it (see `deadline_after`).",
    responses=_errors(400, 403, 404, 409),
)
def publish_addendum(tender_id: int, body):
    tender = _tender(tender_id)
    with _transaction():
        addendum = operations.publish_addendum(
            auth.current_user, tender, body["title"], body["body"], body["new_deadline"]
        )
    return {"addendum": addendum, "tender": tender}


@bp.get("/tenders/<int:tender_id>/documents/<int:document_id>")
@bp.auth_required(auth)
@bp.doc(
    summary="Download a tender document (registered companies, staff overseeing it)",
    description="The download is recorded. The `Repr-Digest` header carries the SHA-256 "
    "listed with the document in the tender.",
    responses=_errors(
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
def download_document(tender_id: int, document_id: int):
    tender = _tender(tender_id)
    document = db.session.get(TenderDocument, document_id)
    if document is None or document.tender_id != tender.id:
        abort(404)
    with _transaction():
        participation.record_download(auth.current_user, document)
        stream = documents.open_document(document)
    return documents.send_document(document, stream)


# Enquiries -----------------------------------------------------------------------------


@bp.get("/tenders/<int:tender_id>/enquiries")
@bp.auth_required(auth, optional=True)
@bp.output(EnquiryOut(many=True))
@bp.doc(
    summary="Questions and answers of a tender (public)",
    description="Answered questions for everyone, never with the asking company; a bidder "
    "also sees its own unanswered ones, staff of the centre all.",
    responses=_errors(404),
)
def list_enquiries(tender_id: int):
    return participation.enquiries_visible_to(auth.current_user, _tender(tender_id))


@bp.post("/tenders/<int:tender_id>/enquiries")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.input(EnquiryIn, arg_name="body")
@bp.output(EnquiryOut, status_code=201)
@bp.doc(
    summary="Ask a question (bidders registered for the tender)",
    description="Within the enquiry period. The answer is published without the company.",
    responses=_errors(400, 403, 404, 409),
)
def ask_enquiry(tender_id: int, body):
    tender = _tender(tender_id)
    with _transaction():
        enquiry = participation.ask_enquiry(auth.current_user, tender, body["question"])
    return enquiry


@bp.post("/enquiries/<int:enquiry_id>/answer")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(_tender_of_enquiry, Permission.MANAGE_TENDERS)
@bp.input(AnswerIn, arg_name="body")
@bp.output(EnquiryOut)
@bp.doc(
    summary="Answer a question publicly (staff of the tender's centre)",
    description="Registered bidders are notified.",
    responses=_errors(400, 403, 404, 409),
)
def answer_enquiry(enquiry_id: int, body):
    enquiry = db.session.get(Enquiry, enquiry_id)
    with _transaction():
        participation.answer_enquiry(auth.current_user, enquiry, body["answer"])
    return enquiry


# Registrations and bid bonds -----------------------------------------------------------


@bp.post("/tenders/<int:tender_id>/registrations")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.output(RegistrationOut, status_code=201)
@bp.doc(
    summary="Register the caller's company for a published tender (bidders)",
    description="Approved companies only, before the bid deadline; once per company (409).",
    responses=_errors(403, 404, 409),
)
def register_for_tender(tender_id: int):
    tender = _tender(tender_id)
    with _transaction():
        registration = participation.register_for_tender(auth.current_user, tender)
    return registration


@bp.get("/tenders/<int:tender_id>/registrations")
@bp.auth_required(auth)
@roles_required(*REGISTRATION_VIEWERS)
@bp.output(RegistrationOut(many=True))
@bp.doc(
    summary="Registered companies and their bid-bond status",
    description="Staff of the tender's centre, supervisors and administrators see every "
    "registration; a bidder only its own company's.",
    responses=_errors(403, 404),
)
def list_registrations(tender_id: int):
    return participation.registrations_visible_to(auth.current_user, _tender(tender_id))


@bp.post("/registrations/<int:registration_id>/bonds")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(_tender_of_registration, Permission.MANAGE_TENDERS)
@bp.input(BondIn, arg_name="body")
@bp.output(BondRecordedOut, status_code=201)
@bp.doc(
    summary="Record a bid-bond payment or guarantee (staff of the tender's centre)",
    responses=_errors(400, 403, 404),
)
def record_bond(registration_id: int, body):
    registration = db.session.get(TenderRegistration, registration_id)
    with _transaction():
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
def list_templates():
    return template_ops.templates_visible_to(auth.current_user)


@bp.get("/templates/<int:template_id>")
@bp.auth_required(auth)
@roles_required(*TEMPLATE_EDITORS)
@bp.output(TemplateDetailOut)
@bp.doc(
    summary="One template with its versions and latest text (staff)",
    responses=_errors(403, 404),
)
def get_template(template_id: int):
    return template_ops.get_template_for(auth.current_user, template_id) or abort(404)


@bp.post("/templates/<int:template_id>/copy")
@bp.auth_required(auth)
@roles_required(*TEMPLATE_EDITORS)
@template_scope
@bp.input(TemplateCopyIn, arg_name="body")
@bp.output(TemplateDetailOut, status_code=201)
@bp.doc(
    summary="Copy a template into a centre to edit it (staff)",
    description="The copy starts with the latest version of the source and records it.",
    responses=_errors(400, 403, 404, 409),
)
def copy_template(template_id: int, body):
    source = template_ops.get_template_for(auth.current_user, template_id)
    with _transaction():
        copy = template_ops.copy_template(
            auth.current_user, source, _centre_of_caller(body["centre_id"]), body["key"]
        )
    return copy


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
    responses=_errors(
        400,
        403,
        404,
        **{
            "422": {
                "description": "The template is not valid: `errors` lists each problem.",
                "content": {"application/json": {"schema": TemplateErrorsOut}},
            }
        },
    ),
)
def save_template_version(template_id: int, body):
    template = template_ops.get_template_for(auth.current_user, template_id)
    latest_id = template.latest.id if template.latest else None
    try:
        with _transaction():
            version = template_ops.save_template(auth.current_user, template, body["yaml"])
    except TemplateInvalid as error:
        return _template_errors(error)
    return version, 200 if version.id == latest_id else 201


def _template_errors(error: TemplateInvalid):
    response = jsonify(
        {
            "status": 422,
            "error": error.code,
            "message": str(error.message),
            "errors": [
                {
                    "path": getattr(item, "path", ""),
                    "message": str(getattr(item, "message", item)),
                    "line": getattr(item, "line", None),
                }
                for item in error.errors
            ],
        }
    )
    response.status_code = 422
    return response
