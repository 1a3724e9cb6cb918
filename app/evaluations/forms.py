"""Forms of the evaluation's review stage (the chair's actions, staff start, the bidder's
price justification). The review page renders its per-bid forms by hand (one set per bid);
these classes validate what comes back."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import HiddenField, SelectChoice, SelectField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from app.core.forms import StrictIntegerField

REASON = [DataRequired(message=_l("Write the reason.")), Length(max=4000)]


class StartEvaluationForm(FlaskForm):
    chair = SelectField(_l("Chair of the panel"), coerce=int, validators=[InputRequired()])
    submit = SubmitField(_l("Start the evaluation"))


class OverruleForm(FlaskForm):
    decision = SelectField(
        _l("The panel finds the bid"),
        choices=[
            SelectChoice("compliant", _l("compliant")),
            SelectChoice("non_compliant", _l("non-compliant")),
            SelectChoice("withdraw", _l("as the automatic verdict (withdraw the overrule)")),
        ],
        validators=[InputRequired()],
    )
    reason = TextAreaField(_l("Written reason"), validators=REASON)
    submit = SubmitField(_l("Record the decision"))


class CheckForm(FlaskForm):
    check = SelectField(_l("Check"), validators=[InputRequired()])
    result = SelectField(
        _l("Result"),
        choices=[SelectChoice("pass", _l("passed")), SelectChoice("fail", _l("failed"))],
        validators=[InputRequired()],
    )
    reason = TextAreaField(_l("Written reason"), validators=REASON)
    submit = SubmitField(_l("Record the check"))


class RequestJustificationForm(FlaskForm):
    days = StrictIntegerField(
        _l("Days the bidder has to answer"),
        default=3,
        validators=[Optional(), NumberRange(min=1, max=30)],
    )
    submit = SubmitField(_l("Ask the bidder to justify its price"))


class DecisionForm(FlaskForm):
    decision = SelectField(
        _l("Decision"),
        choices=[SelectChoice("accept", _l("accept")), SelectChoice("reject", _l("reject"))],
        validators=[InputRequired()],
    )
    reason = TextAreaField(_l("Written reason"), validators=REASON)
    submit = SubmitField(_l("Record the decision"))


class AnonymityForm(DecisionForm):
    code = HiddenField(validators=[DataRequired()])


class ConfirmForm(FlaskForm):
    submit = SubmitField(_l("Confirm the review and open technical scoring"))


class JustificationForm(FlaskForm):
    text = TextAreaField(
        _l("Your justification"),
        validators=[DataRequired(message=_l("Write your justification.")), Length(max=20000)],
    )
    files = MultipleFileField(_l("Attachments (optional)"))
    submit = SubmitField(_l("Submit the justification"))
