"""Forms of blind technical scoring. Score values are checked by the operation (bounds,
step, reasons), which names each refused field; the forms carry CSRF and lengths."""

from __future__ import annotations

from collections.abc import Sequence

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

MAX_REASON = 4000


class BidScoresForm(FlaskForm):
    """One bid's scores: `score_<criterion>` and `reason_<criterion>` fields, added per
    tender by `bid_scores_form`."""

    submit = SubmitField(_l("Save draft"))

    def entries(self, criteria) -> list[tuple[str, str, str]]:
        return [
            (
                c.key,
                (getattr(self, f"score_{c.key}").data or "").strip(),
                (getattr(self, f"reason_{c.key}").data or "").strip(),
            )
            for c in criteria
        ]


def bid_scores_form(criteria: Sequence, **kwargs) -> BidScoresForm:
    class Form(BidScoresForm):
        pass

    for c in criteria:
        setattr(
            Form,
            f"score_{c.key}",
            StringField(
                c.title,
                validators=[Optional(), Length(max=32)],
                description=_l(
                    "From 0 to %(max)s in steps of %(step)s.",
                    max=format(c.max_points, "f"),
                    step=format(c.step, "f"),
                ),
                render_kw={"inputmode": "decimal", "autocomplete": "off"},
            ),
        )
        setattr(
            Form,
            f"reason_{c.key}",
            TextAreaField(
                _l("Reason for %(criterion)s", criterion=c.title),
                validators=[Optional(), Length(max=MAX_REASON)],
                description=_l("Required for a score of 0 or of the maximum."),
                render_kw={"rows": 2},
            ),
        )
    return Form(**kwargs)


class LockSheetForm(FlaskForm):
    submit = SubmitField(_l("Submit and lock my sheet"))


class OutlierReasonForm(FlaskForm):
    code = HiddenField(validators=[DataRequired(), Length(max=16)])
    criterion = HiddenField(validators=[DataRequired(), Length(max=64)])
    reason = TextAreaField(
        _l("Why this score"),
        validators=[DataRequired(), Length(max=MAX_REASON)],
        render_kw={"rows": 2},
    )
    submit = SubmitField(_l("Record the reason"))


class ReopenSheetForm(FlaskForm):
    seat = SelectField(_l("Member's sheet"), coerce=int, validators=[DataRequired()])
    reason = TextAreaField(
        _l("Reason for reopening"),
        validators=[DataRequired(), Length(max=MAX_REASON)],
        render_kw={"rows": 2},
    )
    submit = SubmitField(_l("Reopen the sheet"))


class UnblindForm(FlaskForm):
    submit = SubmitField(_l("Reveal the identities and rank the bids"))


class DrawLotsForm(FlaskForm):
    submit = SubmitField(_l("Draw lots for the tied bids"))


class FinaliseForm(FlaskForm):
    submit = SubmitField(_l("Finalise the evaluation"))
