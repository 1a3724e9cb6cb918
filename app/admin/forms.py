from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, Optional

from app.accounts.models import Role
from app.core.text import PlainName

ROLE_LABELS = {
    Role.STAFF: _l("Trading-centre staff"),
    Role.CUSTODIAN: _l("Key custodian"),
    Role.EXPERT: _l("Evaluation expert"),
    Role.SUPERVISOR: _l("Supervisor"),
    Role.ADMIN: _l("Administrator"),
    Role.BIDDER: _l("Bidder"),
}
LEVEL_LABELS = {"city": _l("City"), "county": _l("County"), "township": _l("Township")}


ROLE_CHOICES = [SelectChoice(r.value, label) for r, label in ROLE_LABELS.items() if r != "bidder"]


def _optional_int(value: object) -> int | None:
    return int(value) if value not in (None, "", "None") else None


class CentreForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(min=2, max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    level = SelectField(_l("Level"), choices=[SelectChoice(k, v) for k, v in LEVEL_LABELS.items()])
    parent_id = SelectField(_l("Parent centre"), coerce=_optional_int, validators=[Optional()])
    submit = SubmitField(_l("Create centre"))


class UserForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=254)])
    full_name = StringField(
        _l("Full name"), validators=[DataRequired(), Length(max=100), PlainName()]
    )
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)
    centre_id = SelectField(_l("Trading centre"), coerce=_optional_int, validators=[Optional()])
    submit = SubmitField(_l("Create account and send invitation"))


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)
    centre_id = SelectField(_l("Trading centre"), coerce=_optional_int, validators=[Optional()])
    submit = SubmitField(_l("Change role"))
