"""RFC 3161 time-stamps on record signatures, from a time-stamping authority reached over
HTTP (`FAIRBID_TSA_URL`). The authority here is a real one in miniature: an HTTP server in
this process answering `application/timestamp-query` with tokens signed by a TSA certificate
that the platform CA issued (pyHanko's TSA responder does the signing)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from werkzeug.serving import make_server

from app.pdf import PdfAttachment, render_pdf
from app.records import signing

HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>T</title></head>
<body><h1>Record</h1><p>Time-stamped.</p></body></html>"""


def _tsa_certificate(ca: signing.KeyPair, key: rsa.RSAPrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )


@pytest.fixture
def tsa(app):
    """The URL of a time-stamping authority whose certificate the platform CA issued, and the
    number of requests it answered."""
    ca = signing.platform_ca()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the responder signs RSA
    der = serialization.Encoding.DER
    responder = DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(_tsa_certificate(ca, key).public_bytes(der)),
        tsa_key=asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        ),
        certs_to_embed=[asn1_x509.Certificate.load(ca.certificate.public_bytes(der))],
    )
    answered = []

    def authority(environ, start_response):
        if environ.get("CONTENT_TYPE") != "application/timestamp-query":
            start_response("415 Unsupported Media Type", [("Content-Length", "0")])
            return [b""]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        reply = responder.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
        answered.append(len(body))
        start_response(
            "200 OK",
            [("Content-Type", "application/timestamp-reply"), ("Content-Length", str(len(reply)))],
        )
        return [reply]

    server = make_server("127.0.0.1", 0, authority, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", answered
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_a_configured_authority_time_stamps_every_signature(app, tsa, monkeypatch):
    url, answered = tsa
    monkeypatch.setitem(app.config, "FAIRBID_TSA_URL", url)
    pdf = render_pdf(
        HTML, pdf_variant="pdf/a-3b", attachments=[PdfAttachment("scoring.json", "{}")]
    )
    signed = signing.sign_pdf(pdf, signer="platform", field_name="platform", reason="R")
    assert answered, "the authority was not asked"
    (status,) = signing.validate_pdf(signed)
    assert status.ok, status
    assert status.timestamp_ok is True, status
    # Any later change still breaks the signature, time-stamp or not.
    middle = len(pdf) // 2
    altered = signed[:middle] + bytes([signed[middle] ^ 1]) + signed[middle + 1 :]
    assert not signing.signatures_ok(altered)


def test_without_an_authority_signatures_carry_no_time_stamp(app, monkeypatch):
    monkeypatch.setitem(app.config, "FAIRBID_TSA_URL", "")
    pdf = render_pdf(
        HTML, pdf_variant="pdf/a-3b", attachments=[PdfAttachment("scoring.json", "{}")]
    )
    signed = signing.sign_pdf(pdf, signer="platform", field_name="platform", reason="R")
    (status,) = signing.validate_pdf(signed)
    assert status.ok and status.timestamp_ok is None, status


def test_an_unreachable_authority_refuses_to_sign_without_its_time_stamp(app, monkeypatch):
    monkeypatch.setitem(app.config, "FAIRBID_TSA_URL", "http://127.0.0.1:9/")
    pdf = render_pdf(
        HTML, pdf_variant="pdf/a-3b", attachments=[PdfAttachment("scoring.json", "{}")]
    )
    with pytest.raises(TimestampRequestError, match=r"timestamp (service|server)"):
        signing.sign_pdf(pdf, signer="platform", field_name="platform", reason="R")


def test_a_member_held_key_signature_is_time_stamped_too(app, tsa, monkeypatch, make_user):
    """The interrupted flow: the time-stamp is added when the server finishes the member's
    signature (an unsigned attribute), then the document time-stamp (PAdES-LTA)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from app.accounts.models import Role
    from app.records import member_keys

    url, answered = tsa
    monkeypatch.setitem(app.config, "FAIRBID_TSA_URL", url)
    member = make_user(Role.EXPERT)
    key = ec.generate_private_key(ec.SECP256R1())  # the member's browser
    row, _ = member_keys.issue_held_certificate(member, key.public_key())
    pdf = render_pdf(
        HTML, pdf_variant="pdf/a-3b", attachments=[PdfAttachment("scoring.json", "{}")]
    )
    signed = signing.sign_pdf(pdf, signer="platform", field_name="platform", reason="R")
    before = len(answered)
    prepared = member_keys.prepare_signature(
        signed, row, signer_name=member.full_name, field_name="member-1", reason="R"
    )
    out = member_keys.finish_signature(
        prepared, row, member_keys.sign_raw(key, prepared.signed_attrs)
    )
    assert len(answered) > before
    statuses = signing.validate_pdf(out)
    assert [s.field_name for s in statuses] == ["platform", "member-1"]
    assert all(s.ok and s.timestamp_ok for s in statuses), statuses
    assert statuses[1].serial == row.serial
