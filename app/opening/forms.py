from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length


class StartOpeningForm(FlaskForm):
    submit = SubmitField(_l("Open the ceremony"))


class UnlockForOpeningForm(FlaskForm):
    passphrase = PasswordField(
        _l("Key passphrase"),
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "off"},
    )
    submit = SubmitField(_l("Unlock my share for the opening"))


class ConfirmLineForm(FlaskForm):
    submit = SubmitField(_l("Confirm our line"))


class ObjectLineForm(FlaskForm):
    objection = TextAreaField(_l("Objection"), validators=[DataRequired(), Length(max=4000)])
    submit = SubmitField(_l("Object to our line"))
