"""Forms of the supervision area."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectChoice, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from app.tenders.suspension import MAX_REASON, ResumeKind


class SuspendForm(FlaskForm):
    reason = TextAreaField(
        _l("Public reason for the suspension"),
        validators=[DataRequired(), Length(max=MAX_REASON)],
        description=_l(
            "Shown on the tender page and in the open data, and sent to everyone involved."
        ),
    )
    submit = SubmitField(_l("Suspend the tender"))


class ResumeRequestForm(FlaskForm):
    kind = RadioField(
        _l("What should happen"),
        choices=[
            SelectChoice(ResumeKind.RESUME.value, _l("Resume where it stopped")),
            SelectChoice(ResumeKind.REEVALUATE.value, _l("Resume and redo the evaluation")),
        ],
        default=ResumeKind.RESUME.value,
    )
    note = TextAreaField(
        _l("Why the tender may resume"), validators=[DataRequired(), Length(max=MAX_REASON)]
    )
    submit = SubmitField(_l("Ask a second supervisor to approve"))
