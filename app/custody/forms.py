from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from app.custody.operations import MAX_PASSPHRASE_LENGTH, MIN_PASSPHRASE_LENGTH


class CustodianKeyForm(FlaskForm):
    passphrase = PasswordField(
        _l("Key passphrase"),
        description=_l(
            "At least 12 characters, not your sign-in password. Nobody can recover it: "
            "without it your shares cannot be used."
        ),
        validators=[
            DataRequired(),
            Length(
                min=MIN_PASSPHRASE_LENGTH,
                max=MAX_PASSPHRASE_LENGTH,
                message=_l("Use 12 to 256 characters."),
            ),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Repeat the passphrase"),
        validators=[
            DataRequired(),
            EqualTo("passphrase", message=_l("The passphrases differ.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField(_l("Create my key"))


class UnlockShareForm(FlaskForm):
    passphrase = PasswordField(
        _l("Key passphrase"),
        validators=[DataRequired(), Length(max=MAX_PASSPHRASE_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField(_l("Download the paper backup"))
