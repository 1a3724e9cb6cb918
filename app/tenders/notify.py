"""Tell every registered bidder of a tender: an in-app notification and an e-mail."""

from __future__ import annotations

from flask import url_for
from sqlalchemy import select

from app.accounts.models import Role, User
from app.core.mail import send_after_commit
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


def notify_registered(tender: Tender, subject, template: str, **context) -> int:
    link = url_for("portal.tender", tender_id=tender.id, _external=True)
    users = registered_bidders(tender)
    for user in users:
        db.session.add(
            Notification(user_id=user.id, title=str(subject), link=link, body=tender.title)
        )
        send_after_commit(
            user.email,
            subject,
            f"tender_{template}",
            locale=user.locale,
            user=user,
            tender=tender,
            link=link,
            **context,
        )
    return len(users)
