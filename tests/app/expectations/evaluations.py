"""Who may call the evaluations routes."""

EXPECTED: dict = {}
