"""Forms every area uses."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import IntegerField, SubmitField

_WHOLE = re.compile(r"-?[0-9]{1,18}", re.ASCII)


class ButtonForm(FlaskForm):
    """An empty form: CSRF protection for button-only actions."""

    submit = SubmitField()


class StrictIntegerField(IntegerField):
    """A whole number written in ASCII digits: "1.5", "١٢" (Unicode digits, which Python's
    int() reads) and " 12 " with inner spaces are refused, never rounded or reinterpreted."""

    def process_formdata(self, valuelist: list) -> None:
        if valuelist and valuelist[0] not in (None, "") and isinstance(valuelist[0], str):
            text = valuelist[0].strip()
            if not _WHOLE.fullmatch(text):
                self.data = None
                raise ValueError(self.gettext("Not a valid integer value."))
            valuelist = [text]
        super().process_formdata(valuelist)
