from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from stdnum.cn import uscc
from wtforms import EmailField, Field, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Regexp, ValidationError

from app.accounts.operations import MIN_PASSWORD_LENGTH
from app.core.text import PlainName

_password = [
    DataRequired(),
    Length(min=MIN_PASSWORD_LENGTH, max=128, message=_l("Use 10 to 128 characters.")),
]


class SignUpForm(FlaskForm):
    company_name = StringField(
        _l("Company name"), validators=[DataRequired(), Length(max=200), PlainName()]
    )
    registration_number = StringField(
        _l("Unified social credit code"),
        description=_l("The 18-character code on the business licence."),
        validators=[DataRequired(), Length(min=18, max=18)],
    )
    legal_representative = StringField(
        _l("Legal representative"), validators=[DataRequired(), Length(max=100), PlainName()]
    )
    contact_name = StringField(
        _l("Your name"), validators=[DataRequired(), Length(max=100), PlainName()]
    )
    contact_phone = StringField(
        _l("Phone"),
        validators=[
            DataRequired(),
            Length(max=40),
            Regexp(r"^[0-9+()\- ]{5,40}$", message=_l("Digits, spaces, +, - and brackets.")),
        ],
    )
    home_centre_id = SelectField(_l("Trading centre"), coerce=int, validators=[DataRequired()])
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=_password)
    confirm = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )
    submit = SubmitField(_l("Create account"))

    def validate_registration_number(self, field: Field) -> None:
        if not uscc.is_valid(uscc.compact(field.data or "")):
            raise ValidationError(_l("This is not a valid unified social credit code."))


class SignInForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    submit = SubmitField(_l("Sign in"))


class TotpForm(FlaskForm):
    code = StringField(
        _l("Six-digit code"),
        validators=[DataRequired(), Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_l("Six digits."))],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Verify"))


class EmailForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=254)])
    submit = SubmitField(_l("Send link"))


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=_password)
    confirm = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )
    submit = SubmitField(_l("Set password"))


class ApiTokenForm(FlaskForm):
    name = StringField(_l("Token name"), validators=[DataRequired(), Length(max=100)])
    submit = SubmitField(_l("Create token"))
