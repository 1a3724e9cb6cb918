"""Benchmark (not a test): render and sign an evaluation record for a large tender, against
rendering the same HTML with plain WeasyPrint.

The tender: 200 bids, 9 experts, 20 technical criteria (``evaluation.samples.
synthetic_document``), scored. The record's HTML is made once from the real template; then,
in the same process and interleaved, each of ``--repeat`` rounds times

- plain: ``weasyprint.HTML(string=html).write_pdf()``, the stylesheets inlined as data: URLs
  so that WeasyPrint's own fetcher finds them;
- record: what the job does, ``app.records.jobs.render_record_pdf`` (restricted fetcher,
  PDF/A-3b, the scoring file attached), then ``app.records.signing.sign_pdf`` as the
  platform (PAdES, visible stamp with an embedded font, validation info);

and prints the pages, the best render and signing times, and the ratios to plain (the
order alternates between rounds, after a warm-up). Runs on a
throw-away instance directory (development CA and key generated there) with a throw-away
SQLite database, migrated: the signature check reads the CA's revocation list from it.

    python bench/bench_record.py [--bids 200] [--experts 9] [--criteria 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import atexit
import base64
import io
import shutil
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pypdf import PdfReader
from weasyprint import HTML

from evaluation import dumps, score
from evaluation.samples import synthetic_document


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def inline_stylesheets(html: str) -> str:
    from app.pdf import TEMPLATES_DIR

    for name in ("document.css", "evaluation_record.css"):
        data = base64.b64encode((TEMPLATES_DIR / "pdf" / name).read_bytes()).decode()
        html = html.replace(f"fairbid:css/{name}", f"data:text/css;base64,{data}")
    return html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=200)
    parser.add_argument("--experts", type=int, default=9)
    parser.add_argument("--criteria", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--locale", default="en")
    parser.add_argument("--out", help="write the signed record there")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ResourceWarning)

    from flask_migrate import upgrade

    from app import create_app
    from app.core.types import utcnow
    from app.records import jobs, signing
    from app.records.content import build_content
    from config import TestingConfig

    text = dumps(
        score(
            synthetic_document(
                bids=args.bids, experts=args.experts, technical_criteria=args.criteria
            )
        )
    )
    instance = Path(tempfile.mkdtemp(prefix="fairbid-bench-record-"))
    atexit.register(shutil.rmtree, instance, True)  # keys and database: nothing left behind
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{instance / 'bench.db'}",
        INSTANCE_DIR=instance,
        PLATFORM_KEY_DIR=str(instance / "keys"),
    )
    with app.app_context():
        upgrade()  # the revocation list that signatures_ok reads lives in the database
    now = utcnow()
    tender = SimpleNamespace(
        reference="BENCH-2026-001",
        title="Benchmark tender: road maintenance equipment",
        centre=SimpleNamespace(name="Benchmark trading centre"),
        category="goods",
        direction="lowest_wins",
        budget=Decimal("1200000.00"),
        publication_at=now - timedelta(days=30),
        enquiry_deadline=now - timedelta(days=15),
        submission_deadline=now - timedelta(days=10),
        opening_at=now - timedelta(days=10),
    )
    evaluation = SimpleNamespace(
        round=1, started_at=now - timedelta(days=9), unblinded_at=now, finalised_at=now
    )
    panel = [
        {
            "seat": n, "expert": f"E{n}", "name": f"Expert {n}", "user_id": n,
            "specialty": "engineering", "status": "accepted", "chair": n == 1,
            "declared_at": now - timedelta(days=9), "statement": "",
            "removed_reason": "", "declined_reason": "",
        }
        for n in range(1, args.experts + 1)
    ]  # fmt: skip
    with app.test_request_context():
        from flask_babel import force_locale

        with force_locale(args.locale):
            t_content, content = timed(
                lambda: build_content(
                    text,
                    tender,
                    evaluation,
                    names={},
                    codes={},
                    sealing=None,
                    opening=[],
                    opening_sha256=None,
                    panel=panel,
                    audit_seq=1,
                    audit_head="0" * 64,
                )
            )
        t_html, html = timed(lambda: jobs.record_html(content, args.locale))
        plain_html = inline_stylesheets(html)
        signing.platform_signer()  # generate the development keys outside the timings
        best = {"plain": float("inf"), "render": float("inf"), "sign": float("inf")}
        pdf = signed = b""
        # Warm-up (fonts found and loaded, caches filled) on a small part of the record.
        HTML(
            string=plain_html[: plain_html.index("</section>") + 10] + "</body></html>"
        ).write_pdf()
        for round_ in range(args.repeat):

            def plain() -> None:
                seconds, _pdf = timed(lambda: HTML(string=plain_html).write_pdf())
                best["plain"] = min(best["plain"], seconds)

            def record() -> bytes:
                seconds, made = timed(lambda: jobs.render_record_pdf(html, text))
                best["render"] = min(best["render"], seconds)
                return made

            # Alternate the order, so that neither always runs on a warmer machine.
            if round_ % 2 == 0:
                plain()
                pdf = record()
            else:
                pdf = record()
                plain()
            seconds, signed = timed(
                lambda pdf=pdf: signing.sign_pdf(
                    pdf, signer="platform", field_name="platform", reason="Benchmark"
                )
            )
            best["sign"] = min(best["sign"], seconds)
        pages = len(PdfReader(io.BytesIO(pdf)).pages)
        ok = signing.signatures_ok(signed, expected=1)
    if args.out:
        Path(args.out).write_bytes(signed)
    rows = args.bids * args.experts
    print(
        f"record: {args.bids} bids, {args.experts} experts, {args.criteria} criteria "
        f"({rows:,} score rows); scoring file {len(text) / 1e6:.1f} MB; locale {args.locale}"
    )
    print(f"content {t_content:.2f} s, template {t_html:.2f} s, HTML {len(html) / 1e6:.1f} MB")
    print(f"pages: {pages}; PDF {len(pdf) / 1e6:.1f} MB, signed {len(signed) / 1e6:.1f} MB")
    print(f"plain WeasyPrint      {best['plain']:7.2f} s")
    print(f"record render (PDF/A) {best['render']:7.2f} s   x{best['render'] / best['plain']:.2f}")
    print(f"signing               {best['sign']:7.2f} s")
    total = best["render"] + best["sign"]
    print(f"render + sign         {total:7.2f} s   x{total / best['plain']:.2f} of plain")
    print(f"signature valid: {ok}")


if __name__ == "__main__":
    main()
