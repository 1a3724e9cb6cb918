from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional

from app.core.text import PlainName


class CertificateForm(FlaskForm):
    name = StringField(_l("Certificate"), validators=[DataRequired(), Length(max=200)])
    number = StringField(_l("Number"), validators=[DataRequired(), Length(max=100)])
    issued_by = StringField(_l("Issued by"), validators=[Optional(), Length(max=200)])
    expires_on = DateField(
        _l("Expires on"),
        description=_l("Leave empty if the certificate does not expire."),
        validators=[Optional()],
    )
    submit = SubmitField(_l("Add certificate"))


class AliasForm(FlaskForm):
    alias = StringField(
        _l("Other name"),
        description=_l(
            "A former or trading name. Technical bids are checked for it before blind scoring."
        ),
        validators=[DataRequired(), Length(max=200), PlainName()],
    )
    submit = SubmitField(_l("Add name"))
