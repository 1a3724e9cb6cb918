"""Forms of the records pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Regexp


class RequestRecordForm(FlaskForm):
    submit = SubmitField(_l("Make the record again"))


class CountersignForm(FlaskForm):
    code = StringField(
        _l("Your six-digit code"),
        description=_l("Your signature is confirmed with your authenticator app."),
        validators=[DataRequired(), Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_l("Six digits."))],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Countersign the record with my key"))


class EnrolKeyForm(FlaskForm):
    """The enrolment page's code field; the request itself is JSON from member_key.js."""

    code = StringField(
        _l("Your six-digit code"),
        description=_l("Enrolment is confirmed with your authenticator app."),
        validators=[DataRequired(), Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_l("Six digits."))],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Create my signing key in this browser"))
