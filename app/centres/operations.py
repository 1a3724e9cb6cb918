"""Trading centres: tenants of the platform, in a city > county > township hierarchy."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts.models import Role, User
from app.audit import append_event
from app.centres.models import PARENT_LEVEL, CentreLevel, TradingCentre
from app.core.cache import invalidate_after_commit
from app.core.errors import Conflict, OperationError
from app.extensions import db
from app.permissions import Permission, require

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")


def all_centres() -> list[TradingCentre]:
    """Centres are public: bidders pick their home centre at sign-up."""
    return list(db.session.scalars(select(TradingCentre).order_by(TradingCentre.code)))


def create_centre(
    actor: User | None, *, code: str, name: str, level: str, parent_id: int | None
) -> TradingCentre:
    """Create a centre. `actor` None is the command line (a shell on the server)."""
    if actor is not None:
        require(actor, Permission.MANAGE_CENTRES)
    code = (code or "").strip().upper()
    if not CODE_RE.match(code):
        raise OperationError(
            _l("A centre code is 2 to 32 capital letters, digits or hyphens."), code="code"
        )
    if level not in set(CentreLevel):
        raise OperationError(_l("Choose city, county or township."), code="level")
    parent = db.session.get(TradingCentre, parent_id) if parent_id else None
    expected = PARENT_LEVEL.get(CentreLevel(level))
    if (parent.level if parent else None) != expected:
        raise OperationError(
            _l("A county centre sits under a city, a township centre under a county."),
            code="parent",
        )
    if db.session.scalar(select(TradingCentre.id).where(TradingCentre.code == code)):
        raise Conflict(_l("A centre with this code exists."), code="code_taken")
    centre = TradingCentre(code=code, name=name.strip(), level=level, parent_id=parent_id)
    db.session.add(centre)
    db.session.flush()
    append_event(
        "centre.created",
        actor=actor,
        object_type="centre",
        object_id=centre.id,
        centre_id=centre.id,
        data={"code": code, "name": centre.name, "level": level, "parent_id": parent_id},
    )
    # The portal's search form lists the centres: its cached pages are stale now.
    invalidate_after_commit()
    return centre


def centre_and_below(root_id: int) -> set[int]:
    """The centre and every centre under it (a city: its counties and their townships)."""
    rows = db.session.execute(select(TradingCentre.id, TradingCentre.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    for centre_id, parent_id in rows:
        children.setdefault(parent_id, []).append(centre_id)
    found: set[int] = set()
    todo = [root_id]
    while todo:
        node = todo.pop()
        if node not in found:
            found.add(node)
            todo.extend(children.get(node, []))
    return found


def oversees(user: User, centre_id: int) -> bool:
    """Whether a supervisor's jurisdiction holds the centre: a supervisor placed at a centre
    oversees it and the centres below it; one placed nowhere (and an administrator) all."""
    if user.role != Role.SUPERVISOR or not user.centre_id:
        return True
    return centre_id in centre_and_below(user.centre_id)
