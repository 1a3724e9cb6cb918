"""Who may call the records routes."""

EXPECTED: dict = {}
