"""Tender templates: built-ins, centre copies, versions. Every save is validated against
the template schema; a tender records the exact version it used."""

from __future__ import annotations

import hashlib
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import tender_templates
from app.accounts.models import User
from app.audit import append_event
from app.core.errors import Conflict, OperationError
from app.extensions import db
from app.permissions import Permission, can, require
from app.tenders.models import TemplateVersion, TenderTemplate


class TemplateInvalid(OperationError):
    """The template text does not validate; `errors` lists every problem with its path."""

    status = 422

    def __init__(self, errors):
        self.errors = errors
        summary = "; ".join(str(e) for e in errors[:5])
        super().__init__(_l("The template is not valid: %(errors)s", errors=summary), "template")

    def detail(self) -> dict[str, Any]:
        """Every error for API clients, with its path (and line, when known)."""
        return {
            "errors": [
                {
                    "path": getattr(item, "path", ""),
                    "message": str(getattr(item, "message", item)),
                    "line": getattr(item, "line", None),
                }
                for item in self.errors
            ]
        }


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_template_text(text: str) -> dict:
    """The parsed template, or TemplateInvalid naming every error."""
    errors = tender_templates.validate_text(text)
    if errors:
        raise TemplateInvalid(errors)
    return tender_templates.load_template(text)


def sync_builtin_templates() -> list[TenderTemplate]:
    """Install or update the shipped templates (a new version when the text changed)."""
    templates = []
    for key in tender_templates.BUILTIN_KEYS:
        text = tender_templates.builtin_template(key)
        doc = check_template_text(text)
        template = db.session.scalar(
            select(TenderTemplate).where(
                TenderTemplate.centre_id.is_(None), TenderTemplate.key == key
            )
        )
        if template is None:
            template = TenderTemplate(
                centre_id=None, key=key, name=_english(doc["name"]), category=doc["category"]
            )
            db.session.add(template)
            db.session.flush()
        latest = template.latest
        if latest is None or latest.sha256 != _sha256(text):
            _add_version(template, text, None)
        templates.append(template)
    return templates


def _english(name) -> str:
    return name.get("en", next(iter(name.values()))) if isinstance(name, dict) else str(name)


def _add_version(template: TenderTemplate, text: str, actor: User | None) -> TemplateVersion:
    number = (template.latest.number + 1) if template.latest else 1
    version = TemplateVersion(
        template_id=template.id,
        number=number,
        yaml_text=text,
        sha256=_sha256(text),
        created_by_id=actor.id if actor else None,
    )
    db.session.add(version)
    db.session.flush()
    db.session.refresh(template)
    append_event(
        "template.version_saved",
        actor=actor,
        object_type="template",
        object_id=template.id,
        centre_id=template.centre_id,
        data={"key": template.key, "version": number, "sha256": version.sha256},
    )
    return version


def templates_visible_to(user: User) -> list[TenderTemplate]:
    """Built-ins and the user's centre's copies (every centre's for supervisors and admins).
    Reading is open to whoever oversees tenders; changing needs MANAGE_TEMPLATES."""
    require(user, Permission.VIEW_TENDERS)
    query = select(TenderTemplate).order_by(
        TenderTemplate.centre_id.is_not(None), TenderTemplate.key
    )
    if not can(user, Permission.VIEW_ALL_CENTRES):
        query = query.where(
            (TenderTemplate.centre_id.is_(None)) | (TenderTemplate.centre_id == user.centre_id)
        )
    return list(db.session.scalars(query))


def copy_template(
    actor: User, template: TenderTemplate, centre_id: int, key: str
) -> TenderTemplate:
    """A centre takes its own editable copy of a template (built-in or its own)."""
    require(actor, Permission.MANAGE_TEMPLATES, centre_id=centre_id)
    key = (key or "").strip().lower()
    if not key or len(key) > 64 or not key.replace("-", "").replace("_", "").isalnum():
        raise OperationError(_l("Use letters, digits, - and _ for the key."), code="key")
    exists = db.session.scalar(
        select(TenderTemplate.id).where(
            TenderTemplate.centre_id == centre_id, TenderTemplate.key == key
        )
    )
    if exists:
        raise Conflict(_l("This centre already has a template with that key."), code="key_taken")
    source = template.latest
    copy = TenderTemplate(
        centre_id=centre_id,
        key=key,
        name=template.name,
        category=template.category,
        based_on=f"{template.key} v{source.number} {source.sha256[:12]}",
    )
    db.session.add(copy)
    db.session.flush()
    append_event(
        "template.copied",
        actor=actor,
        object_type="template",
        object_id=copy.id,
        centre_id=centre_id,
        data={"from_template": template.id, "from_version": source.id},
    )
    _add_version(copy, source.yaml_text, actor)
    return copy


def save_template(actor: User, template: TenderTemplate, text: str) -> TemplateVersion:
    """Validate and store a new version of a centre's template (built-ins are read-only)."""
    require(actor, Permission.MANAGE_TEMPLATES, centre_id=template.centre_id)
    if template.centre_id is None:
        raise OperationError(_l("Built-in templates are read-only: copy one first."), "builtin")
    doc = check_template_text(text)
    if doc["category"] != template.category:
        raise OperationError(_l("A template keeps its category."), code="category")
    if template.latest is not None and template.latest.sha256 == _sha256(text):
        return template.latest
    template.name = _english(doc["name"])
    return _add_version(template, text, actor)


def preview_template(actor: User, text: str, locale: str = "en") -> tuple[str | None, list, dict]:
    """(body HTML, [], sample data) for a valid text, rendered with sample tender data;
    (None, errors, {}) otherwise. Nothing is stored."""
    require(actor, Permission.MANAGE_TEMPLATES)
    errors = tender_templates.validate_text(text)
    if errors:
        return None, errors, {}
    doc = tender_templates.load_template(text)
    sample = tender_templates.sample_context(doc.get("category", "goods"))
    try:
        body = tender_templates.render_body(doc, sample, locale)
    except tender_templates.TemplateValidationError as invalid:
        return None, invalid.errors, {}
    return body, [], sample
