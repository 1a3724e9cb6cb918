from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from app.evaluations.models import EvaluationStage
from app.results.models import ObjectionStatus
from app.results.operations import FAILURE_CODES, MAX_OBJECTION_TEXT, failure_labels


class PublishCandidatesForm(FlaskForm):
    submit = SubmitField(_l("Publish the candidates"))


def lot_field() -> HiddenField:
    """The lot's reference in a tender of several lots (empty: the whole tender)."""
    return HiddenField(validators=[Optional(), Length(max=32)])


class PublishAwardForm(FlaskForm):
    lot = lot_field()
    submit = SubmitField(_l("Publish the award"))


class RetenderForm(FlaskForm):
    submit = SubmitField(_l("Re-tender from the same data"))


class ObjectionForm(FlaskForm):
    text = TextAreaField(
        _l("Your objection"),
        validators=[DataRequired(), Length(max=MAX_OBJECTION_TEXT)],
        description=_l("What you object to in the candidates notice, and why."),
    )
    attachments = MultipleFileField(
        _l("Attachments"),
        description=_l("PDF, Word, Excel, ZIP, PNG, JPEG, text or CSV; at most five files."),
    )
    lot = lot_field()
    submit = SubmitField(_l("File the objection"))


class DecideObjectionForm(FlaskForm):
    outcome = RadioField(
        _l("Decision"),
        choices=[
            SelectChoice(ObjectionStatus.UPHELD.value, _l("Uphold")),
            SelectChoice(ObjectionStatus.DISMISSED.value, _l("Dismiss")),
        ],
        validators=[DataRequired()],
    )
    reason = TextAreaField(
        _l("Reason (sent to the bidder)"),
        validators=[DataRequired(), Length(max=MAX_OBJECTION_TEXT)],
    )
    submit = SubmitField(_l("Record the decision"))


class ReopenEvaluationForm(FlaskForm):
    stage = SelectField(
        _l("Back to"),
        choices=[
            SelectChoice(
                EvaluationStage.SCORING.value, _l("Technical scoring (the panel scores again)")
            ),
            SelectChoice(EvaluationStage.REVIEW.value, _l("Compliance review, then scoring")),
        ],
        validators=[DataRequired()],
    )
    reason = TextAreaField(
        _l("Reason"), validators=[DataRequired(), Length(max=MAX_OBJECTION_TEXT)]
    )
    submit = SubmitField(_l("Send the tender back to evaluation"))


class DeclareFailedForm(FlaskForm):
    reason_code = SelectField(
        _l("Reason"),
        choices=[SelectChoice(code, failure_labels()[code]) for code in FAILURE_CODES],
        validators=[DataRequired()],
    )
    text = TextAreaField(
        _l("Explanation (public; required for another reason)"),
        validators=[Optional(), Length(max=4000)],
    )
    lot = lot_field()
    submit = SubmitField(_l("Declare the tender failed"))
