"""Signed PDF evaluation records: rendered by a job from `templates/pdf/`, PDF/A-3 with the
scoring file attached, signed PAdES by the platform and countersigned by each panel member
with a certificate issued by the platform CA."""
