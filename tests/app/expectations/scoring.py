"""Who may call the scoring routes."""

EXPECTED: dict = {}
