from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from app.core.forms import StrictIntegerField
from app.core.text import PlainName
from app.panels.models import SPECIALTIES
from app.panels.operations import (
    DEFAULT_PANEL_SIZE,
    POOL_SCOPES,
    TEMPLATE_MIN_PANEL_SIZE,
    TIES_FILTERS,
)
from evaluation.draw import CORE_SEAT

SPECIALTY_LABELS = {
    "civil": _l("Civil engineering"),
    "structural": _l("Structural engineering"),
    "electrical": _l("Electrical engineering"),
    "mechanical": _l("Mechanical engineering"),
    "it": _l("Information technology"),
    "medical": _l("Medical equipment"),
    "environmental": _l("Environmental protection"),
    "economic": _l("Economics and cost"),
    "legal": _l("Law"),
}
# What a seat was drawn for: a quota's specialty, the two-thirds rule, or nothing.
SEAT_LABELS = {
    **SPECIALTY_LABELS,
    CORE_SEAT: _l("Technical or economic (two-thirds rule)"),
}
EXCLUSION_LABELS = {
    "bidder_employer": _l("employed by a bidder"),
    "bidder_relationship": _l("declared relationship with a bidder"),
    "recent_service": _l("recently sat on a panel for the same procuring entity"),
}
CAUSE_LABELS = {
    "declined": _l("declined"),
    "conflict": _l("declared a conflict"),
    "removed": _l("removed by staff"),
}
VACANCY_LABELS = {
    "none_eligible": _l("no eligible expert is left for this seat"),
    "scoring_locked": _l("technical scoring has locked: seats are no longer refilled"),
}


class DrawPanelForm(FlaskForm):
    size = StrictIntegerField(
        _l("Panel size"),
        default=DEFAULT_PANEL_SIZE,
        validators=[InputRequired(), NumberRange(min=TEMPLATE_MIN_PANEL_SIZE, max=51)],
        description=_l(
            "An odd number, at least five (three only where the tender's template allows "
            "it). At least two-thirds of the seats, rounded up, go to technical or economic "
            "experts."
        ),
    )
    submit = SubmitField(_l("Draw the panel"))

    def quotas(self) -> dict[str, int]:
        return {key: getattr(self, f"quota_{key}").data or 0 for key in SPECIALTIES}


# One quota field per specialty of the controlled vocabulary.
for _key in SPECIALTIES:
    setattr(
        DrawPanelForm,
        f"quota_{_key}",
        StrictIntegerField(
            _l("Seats for: %(specialty)s", specialty=SPECIALTY_LABELS[_key]),
            default=0,
            validators=[Optional(), NumberRange(min=0, max=51)],
        ),
    )


class RemoveMemberForm(FlaskForm):
    member = SelectField(_l("Panel member"), coerce=int, validators=[InputRequired()])
    reason = TextAreaField(
        _l("Reason for the removal"), validators=[DataRequired(), Length(max=4000)]
    )
    submit = SubmitField(_l("Remove from the panel"))


class AcceptInvitationForm(FlaskForm):
    submit = SubmitField(_l("Accept the invitation"))


class DeclineInvitationForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=2000)])
    submit = SubmitField(_l("Decline the invitation"))


class ConflictDeclarationForm(FlaskForm):
    no_conflict = BooleanField(
        _l(
            "I declare that I have no conflict of interest with any bidder of this tender: "
            "I am not an employee, director or shareholder of a bidder (nor was in the last "
            "three years), not a near relative of a bidder's legal representative, and have "
            "no economic interest in the outcome."
        )
    )
    statement = TextAreaField(
        _l("Statement"),
        validators=[Length(max=4000)],
        description=_l("Required if you do have a conflict: describe it."),
    )
    submit = SubmitField(_l("Sign the declaration"))

    def validate_statement(self, field) -> None:
        if not self.no_conflict.data and not (field.data or "").strip():
            raise ValidationError(_l("Describe the conflict."))


# The pool page's filters: URL parameter -> the values it takes.
POOL_FILTER_CHOICES: dict[str, tuple[str, ...]] = {
    "pool": POOL_SCOPES,
    "specialty": SPECIALTIES,
    "available": ("yes", "no"),
    "ties": TIES_FILTERS,
}


def specialties_matching(search: str) -> tuple[str, ...]:
    """The specialty keys whose key or label (in the reader's language) holds `search`."""
    needle = search.strip().casefold()
    if not needle:
        return ()
    return tuple(
        key
        for key, label in SPECIALTY_LABELS.items()
        if needle in key or needle in str(label).casefold()
    )


class ExpertProfileForm(FlaskForm):
    email = EmailField(_l("Expert's e-mail"), validators=[DataRequired(), Length(max=254)])
    specialties = SelectMultipleField(
        _l("Specialties"),
        choices=[SelectChoice(key, label) for key, label in SPECIALTY_LABELS.items()],
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
    )
    employer = StringField(_l("Employer"), validators=[Length(max=300), PlainName()])
    available = BooleanField(_l("Available for panels"), default=True)
    city_pool = BooleanField(
        _l("Shared city pool"), description=_l("Administrators only: every centre draws from it.")
    )
    submit = SubmitField(_l("Save to the pool"))
