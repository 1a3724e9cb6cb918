"""Forms of the bid page: the envelope upload (the no-JavaScript path) and withdrawal."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SubmitField


class EnvelopeForm(FlaskForm):
    envelope = FileField(
        _l("Sealed envelope"),
        description=_l("The .env file made by python -m bidding seal (or by this page)."),
        validators=[FileRequired(_l("Choose the envelope file."))],
    )
    submit = SubmitField(_l("Submit sealed bid"))


class WithdrawForm(FlaskForm):
    """An empty form: CSRF protection for the withdraw button."""

    submit = SubmitField(_l("Withdraw this bid"))
