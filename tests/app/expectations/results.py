"""Who may call the results routes."""

EXPECTED: dict = {}
