"""Tell bidders: an in-app notification and an e-mail, each in the person's own language."""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import force_locale
from sqlalchemy import select

from app.accounts.models import Role, User
from app.core.mail import send_after_commit
from app.core.urls import public_url
from app.extensions import db
from app.tenders.models import Notification, Tender, TenderRegistration


def registered_bidders(tender: Tender) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .join(TenderRegistration, TenderRegistration.company_id == User.company_id)
            .where(TenderRegistration.tender_id == tender.id, User.role == Role.BIDDER)
            .order_by(User.id)
        )
    )


def notify_users(
    users: Iterable[User], tender: Tender, subject, template: str, link: str, **context
) -> int:
    """For each user, a notification (titled `subject`, which may be a lazy string, in the
    user's language) and the e-mail `templates/email/<template>.txt`. Sent after commit."""
    count = 0
    for user in users:
        with force_locale(user.locale or "en"):
            title = str(subject)
        db.session.add(Notification(user_id=user.id, title=title, link=link, body=tender.title))
        send_after_commit(
            user.email,
            subject,
            template,
            locale=user.locale,
            user=user,
            tender=tender,
            link=link,
            **context,
        )
        count += 1
    return count


def notify_registered(tender: Tender, subject, template: str, **context) -> int:
    link = public_url("portal.tender", tender_id=tender.id)
    return notify_users(
        registered_bidders(tender), tender, subject, f"tender_{template}", link, **context
    )
