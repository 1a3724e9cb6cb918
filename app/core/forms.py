"""Forms every area uses."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SubmitField


class ButtonForm(FlaskForm):
    """An empty form: CSRF protection for button-only actions."""

    submit = SubmitField()
