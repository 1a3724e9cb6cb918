"""Forms of the staff pages: templates, tenders, publication, addenda, enquiries, bonds."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    FieldList,
    Form,
    FormField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from app import tender_templates
from app.core.errors import OperationError
from app.core.formatting import centre_timezone
from app.core.forms import StrictIntegerField
from app.tenders.labels import LOT_AWARD_RULE_LABELS
from app.tenders.operations import parse_money
from app.tenders.participation import MAX_QUESTION

MAX_TEMPLATE_TEXT = tender_templates.MAX_TEMPLATE_CHARS
LOT_ROWS = 5
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
# What browsers send for datetime-local (seconds when the input has a step below 60).
DATETIME_FORMATS = [DATETIME_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


def to_local_input(moment: datetime | None) -> datetime | None:
    """A stored UTC moment as the naive local time a datetime-local input shows."""
    if moment is None:
        return None
    return moment.astimezone(centre_timezone()).replace(tzinfo=None)


class CentreDateTimeField(DateTimeLocalField):
    """A datetime-local input read in the centre's time zone; `.data` is aware UTC."""

    def __init__(self, label=None, validators=None, **kwargs):
        super().__init__(label, validators, format=DATETIME_FORMATS, **kwargs)

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        if self.data is not None:
            self.data = self.data.replace(tzinfo=centre_timezone()).astimezone(UTC)

    def _value(self):
        if self.raw_data:
            return " ".join(self.raw_data)
        local = to_local_input(self.data)
        return local.strftime(DATETIME_FORMAT) if local else ""


class MoneyField(StringField):
    """An amount typed as a decimal string; `.data` is a Decimal or None."""

    def process_formdata(self, valuelist):
        self.raw_data = valuelist
        try:
            self.data = parse_money((valuelist[0] if valuelist else "").strip(), self.label.text)
        except OperationError as error:
            self.data = None
            raise ValueError(str(error.message)) from None

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)


class CopyTemplateForm(FlaskForm):
    key = StringField(
        _l("Key of the copy"),
        description=_l("Letters, digits, - and _, e.g. goods-schools."),
        validators=[
            DataRequired(),
            Length(max=64),
            Regexp(r"^[A-Za-z0-9_-]+$", message=_l("Use letters, digits, - and _.")),
        ],
    )
    # Admins choose the centre; staff copy into their own (the field is removed for them).
    centre_id = SelectField(_l("Trading centre"), coerce=int, validators=[InputRequired()])
    submit = SubmitField(_l("Copy into the centre"))


class TemplateTextForm(FlaskForm):
    yaml_text = TextAreaField(
        _l("Template (YAML)"),
        validators=[DataRequired(), Length(max=MAX_TEMPLATE_TEXT)],
        render_kw={"rows": 30, "spellcheck": "false", "wrap": "off", "class": "code"},
    )
    submit = SubmitField(_l("Save as a new version"))


class PreviewForm(FlaskForm):
    yaml_text = TextAreaField(validators=[DataRequired(), Length(max=MAX_TEMPLATE_TEXT)])


class LotForm(Form):
    reference = StringField(
        _l("Lot reference"),
        validators=[Optional(), Length(max=32)],
        description=_l("What envelopes name the lot by; its number if left empty."),
    )
    title = StringField(_l("Lot title"), validators=[Optional(), Length(max=300)])
    budget = MoneyField(_l("Budget"))
    ceiling_price = MoneyField(_l("Ceiling price"))
    reserve_price = MoneyField(_l("Reserve price"))
    bid_bond_amount = MoneyField(_l("Lot bid bond"))

    @property
    def is_blank(self) -> bool:
        amounts = (self.budget, self.ceiling_price, self.reserve_price, self.bid_bond_amount)
        return not (self.title.data or "").strip() and not any(
            f.raw_data and f.raw_data[0].strip() for f in amounts
        )


class TenderForm(FlaskForm):
    centre_id = SelectField(_l("Trading centre"), coerce=int, validators=[InputRequired()])
    reference = StringField(_l("Reference number"), validators=[DataRequired(), Length(max=64)])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=300)])
    description = TextAreaField(
        _l("Description"), validators=[Optional(), Length(max=20000)], render_kw={"rows": 4}
    )
    procuring_entity = StringField(
        _l("Procuring entity"),
        validators=[Optional(), Length(max=300)],
        description=_l("Experts who recently sat on a panel for it are not drawn again."),
    )
    budget = MoneyField(_l("Budget"))
    bid_bond_amount = MoneyField(_l("Bid bond"))
    publication_at = CentreDateTimeField(
        _l("Publication"),
        description=_l("Replaced by the moment of publication when it is published."),
        validators=[InputRequired()],
    )
    enquiry_deadline = CentreDateTimeField(_l("Enquiry deadline"), validators=[InputRequired()])
    submission_deadline = CentreDateTimeField(
        _l("Bid submission deadline"), validators=[InputRequired()]
    )
    opening_at = CentreDateTimeField(_l("Opening time"), validators=[InputRequired()])
    evaluation_days = StrictIntegerField(
        _l("Evaluation period (days)"),
        default=10,
        validators=[InputRequired(), NumberRange(min=1, max=365)],
    )
    lots = FieldList(FormField(LotForm), min_entries=LOT_ROWS, max_entries=LOT_ROWS)
    multi_lot_bidding = BooleanField(_l("A company may bid for several lots"), default=True)
    max_lots_won = StrictIntegerField(
        _l("Most lots one company may win"),
        validators=[Optional(), NumberRange(min=1, max=LOT_ROWS)],
        description=_l("Leave empty for no limit."),
    )
    lot_award_rule = SelectField(
        _l("When a company would win more lots than allowed"),
        choices=[SelectChoice(key, label) for key, label in LOT_AWARD_RULE_LABELS.items()],
        default="lot_order",
    )
    custodian_ids = SelectMultipleField(
        _l("Custodians (n)"),
        description=_l("Hold Ctrl (⌘ on a Mac) to choose several."),
        coerce=int,
        render_kw={"size": 8},
    )
    custodian_threshold = StrictIntegerField(
        _l("Custodians needed to open the bids (k)"),
        default=2,
        validators=[InputRequired(), NumberRange(min=2, max=50)],
    )
    submit = SubmitField(_l("Save the draft"))

    def filled_lots(self) -> list[LotForm]:
        return [entry.form for entry in self.lots if not entry.form.is_blank]


class PublishForm(FlaskForm):
    code = StringField(
        _l("Your six-digit code"),
        description=_l("Publication is confirmed with your authenticator app."),
        validators=[DataRequired(), Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_l("Six digits."))],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Publish the tender"))


class AddendumForm(FlaskForm):
    title = StringField(_l("Addendum title"), validators=[DataRequired(), Length(max=300)])
    body = TextAreaField(
        _l("Text (Markdown)"),
        validators=[DataRequired(), Length(max=50000)],
        render_kw={"rows": 8},
    )
    new_deadline = CentreDateTimeField(
        _l("New bid submission deadline (optional)"),
        description=_l(
            "Too close to the deadline, the deadline moves to leave bidders the minimum time."
        ),
        validators=[Optional()],
    )
    # A tender divided into lots: its lots change after publication only here
    # (`for_tender` drops these fields for a tender of one lot).
    cancel_lot = SelectField(
        _l("Cancel a lot (optional)"),
        choices=[],
        default="",
        description=_l(
            "It takes no more bids; the envelopes already received are kept unopened and "
            "reported at the opening."
        ),
    )
    reprice_lot = SelectField(_l("Change a lot's price or bond (optional)"), choices=[], default="")
    new_price = MoneyField(_l("Its new ceiling or reserve price"))
    new_bid_bond = MoneyField(_l("Its new lot bid bond"))
    submit = SubmitField(_l("Publish the addendum"))

    LOT_FIELDS = ("cancel_lot", "reprice_lot", "new_price", "new_bid_bond")

    @classmethod
    def for_tender(cls, tender, **kwargs) -> AddendumForm:
        """The form with the tender's live lots to choose from (no lot fields for a tender
        of one lot)."""
        form = cls(**kwargs)
        if not tender.has_lots:
            for name in cls.LOT_FIELDS:
                delattr(form, name)
            return form
        live = [("", "—")] + [
            (lot.reference, f"{lot.reference}: {lot.title}") for lot in tender.live_lots
        ]
        form.cancel_lot.choices = live
        form.reprice_lot.choices = live
        return form


class CancelForm(FlaskForm):
    reason = TextAreaField(
        _l("Public reason"), validators=[DataRequired(), Length(max=4000)], render_kw={"rows": 3}
    )
    submit = SubmitField(_l("Cancel the tender"))


class AnswerForm(FlaskForm):
    answer = TextAreaField(
        _l("Public answer"), validators=[DataRequired(), Length(max=8000)], render_kw={"rows": 3}
    )
    submit = SubmitField(_l("Answer"))


class BondForm(FlaskForm):
    kind = SelectField(
        _l("Kind"),
        choices=[
            SelectChoice("payment", _l("Payment")),
            SelectChoice("guarantee", _l("Guarantee")),
        ],
        validators=[InputRequired()],
    )
    amount = MoneyField(_l("Amount"), validators=[InputRequired()])
    reference = StringField(
        _l("Payment or guarantee reference"), validators=[DataRequired(), Length(max=100)]
    )
    submit = SubmitField(_l("Record the bond"))


class AttachmentForm(FlaskForm):
    file = FileField(_l("File"), validators=[FileRequired()])
    title = StringField(
        _l("Title"),
        description=_l("E.g. Drawings, Bill of quantities. The file name when left empty."),
        validators=[Optional(), Length(max=300)],
    )
    submit = SubmitField(_l("Upload"))


class EnquiryForm(FlaskForm):
    question = TextAreaField(
        _l("Your question"),
        description=_l("Answered publicly; your company's name is not shown."),
        validators=[DataRequired(), Length(max=MAX_QUESTION)],
    )
    submit = SubmitField(_l("Ask"))
