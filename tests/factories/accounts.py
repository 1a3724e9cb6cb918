"""Account builders: the sign-up form's data and API bearer headers."""

from __future__ import annotations

from app.accounts import operations as account_ops
from app.extensions import db
from tests.factories import PASSWORD, valid_uscc


def signup_form(centre, **changes):
    data = {
        "company_name": "Hangzhou Bridges Co., Ltd.",
        "registration_number": valid_uscc(990001),
        "legal_representative": "Zhang San",
        "contact_name": "Li Si",
        "contact_phone": "+86 571 8888 0000",
        "home_centre_id": str(centre.id),
        "email": "li.si@bridges.example",
        "password": PASSWORD,
        "confirm": PASSWORD,
    }
    data.update(changes)
    return data


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def token_for(user) -> dict:
    """A bearer header made without the TOTP step, so a test's next TOTP code is fresh."""
    token = account_ops.create_api_token(user, "test")
    db.session.commit()
    return bearer(token)
