"""The evaluation record reads well in every language and is a consistent PDF/A-3B file:
translated reasons and words (no scoring-file identifiers), scores at their precision,
money with its currency, headers and tables that fit their page, charts with legends and
labels that do not overlap, signature times on the platform's clock."""

from __future__ import annotations

import html
import io
import re
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask_babel import force_locale
from flask_babel import gettext as _
from pypdf import PdfReader

from app.evaluations import charts
from app.pdf import PdfAttachment, render_pdf
from app.records import labels, signing
from tests.conftest import run_queued_jobs
from tests.factories.records import build_finalised

# Identifiers of the scoring file and the database that a reader must never see.
RAW_IDENTIFIERS = (
    "lowest_wins",
    "highest_wins",
    "average_benchmark",
    "lowest_price_benchmark",
    "trimmed_mean",
    "n_used",
    "n_valid",
    "raw_score",
    "technical_economic",
    "financial_statement",
    "construction_organisation",
    "quality_assurance",
    "above_ceiling",
    "qualification_document_missing",
)
LONG_DECIMAL = re.compile(r"\d[.,]\d{11,}")


def _record_pdf(built) -> bytes:
    from app.extensions import db
    from app.records import operations
    from app.records.models import RecordStatus

    record = operations.request_record(built.staff, built.tender)
    db.session.commit()
    run_queued_jobs()
    db.session.refresh(record)
    assert record.status == RecordStatus.SIGNED, record.error
    return operations.record_pdf(record)


def _run(tool: list[str], pdf: bytes, tmp_path) -> str:
    path = tmp_path / "record.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        [*tool, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def _flat(text: str) -> str:
    return "".join(text.split())


@pytest.fixture
def works_record(app, make_tender, make_user, make_company):
    """A works tender's signed record (seven criteria, a bid above the ceiling, one without a
    qualification document) in the staff member's `locale`."""

    def make(locale):
        built = build_finalised(make_tender, make_user, make_company, locale=locale, works=True)
        return built, _record_pdf(built)

    return make


@pytest.mark.parametrize("locale", ["ko", "zh_Hans"])
def test_korean_and_chinese_records_read_in_their_language(works_record, tmp_path, locale):
    built, pdf = works_record(locale)
    text = _run(["pdftotext", "-layout"], pdf, tmp_path)
    flat = _flat(text)
    result = built.scoring["result"]
    reasons = [r for bid in result["bids"] for r in bid["reasons"]]
    assert {r["code"] for r in reasons} == {"above_ceiling", "qualification_document_missing"}
    with force_locale(locale):
        for reason in reasons:
            # never the scoring file's English message, always the translated reason, its
            # amounts in money and its document by the template's name
            assert _flat(reason["message"]) not in flat
            translated = labels.reason(reason, _names(built.tender))
            assert translated != reason["message"]
            assert _flat(translated) in flat, translated
        assert _flat(labels.money("1200000.00")) in flat  # the ceiling, with its currency
        words = [
            _("Bid price"),  # the price chart's legend
            _("Points"),  # the spread charts' axis
            str(labels.LINE_STATUS_LABELS["opened"]),
            str(labels.PRICE_METHOD_LABELS["average_benchmark"]),
            str(labels.DIRECTION_LABELS["lowest_wins"]),
            _("panel mean"),
        ]
    for word in words:
        assert _flat(word) in flat, word
    for english in ("Bid price", "Price (CNY)", "Lowest price wins", "Average benchmark"):
        assert english not in text, english
    for identifier in RAW_IDENTIFIERS:
        assert identifier not in text, identifier
    assert not LONG_DECIMAL.search(text), LONG_DECIMAL.search(text)
    # the works template's criteria by their translated titles, numbered C1..C7
    assert "C7" in text


def _names(tender):
    from app.records.content import _template_names

    return _template_names(tender)


def test_scores_and_money_are_shown_at_their_precision(app):
    with force_locale("en"):
        assert labels.score("37.66666666666666666666666667") == "37.67"
        assert labels.percent("-15.03713332942366819835799857") == "-15.04 %"
        assert labels.percent("2.4") == "+2.40 %"
        assert labels.points("0.5") == "0.5" and labels.points("30") == "30"
        assert labels.money("1086330.05") == "CN¥1,086,330.05"
        assert labels.money("920674.306", exact=True) == "CN¥920,674.306"
        assert labels.money("920674.306") == "CN¥920,674.31"
        # an unknown code reads as words, never as an identifier
        assert labels.label(labels.PRICE_METHOD_LABELS, "new_method") == "new method"
    with force_locale("zh_Hans"):
        assert labels.money("1086330.05") == "¥1,086,330.05"
        assert labels.outcome(
            {"code": "no_compliant_bid", "params": {}, "message": "No bid passed"}
        ) == _("No bid passed the compliance review: the tender fails.")
        assert "No bid" not in labels.outcome({"code": "no_compliant_bid", "params": {}})


def test_cjk_headers_stay_on_one_line_and_the_works_tables_fit_the_page(works_record, tmp_path):
    _built, pdf = works_record("zh_Hans")
    text = _run(["pdftotext", "-layout"], pdf, tmp_path)
    with force_locale("zh_Hans"):
        headers = [_("Automatic verdict"), _("Final verdict"), _("Panel overrule")]
        headers += [_("Price read out"), _("Conflict of interest declaration"), _("Rank")]
    for header in headers:
        # a header wrapped a character per line would not appear whole on one line
        assert header in text, header
    _assert_words_inside_pages(pdf, tmp_path)
    # the aggregated table's last column, rank, is on the (landscape) page
    pages = _pages(pdf, tmp_path)
    with force_locale("zh_Hans"):
        rank, total = _("Rank"), _("Total")
    landscape = [p for p in pages if p["width"] > p["height"]]
    found = [
        (p, w)
        for p in landscape
        for w in p["words"]
        if w["text"] == rank and any(o["text"] == total and o["y"] == w["y"] for o in p["words"])
    ]
    assert found, "the aggregated table's header is not on a landscape page"
    for page, word in found:
        assert word["x1"] <= page["width"] - 30, (word, page["width"])
    _assert_no_lonely_chart(pdf, tmp_path, "zh_Hans")


def _assert_no_lonely_chart(pdf: bytes, tmp_path, locale: str) -> None:
    """No page holds a single chart and nothing else: a page with one chart also has a
    section heading or a table (the charts stay with their section, two spreads a row)."""
    with force_locale(locale):
        price_caption = _flat(_("Price distribution and benchmark"))
        spread_caption = _flat(_("Criterion %(key)s: %(title)s (maximum %(max)s)"))
        spread_caption = spread_caption.split("%(key)s")[0]
        others = [_flat(_("Bidder")), _flat(_("Technical criteria"))]
    pages = _run(["pdftotext", "-layout"], pdf, tmp_path).split("\f")
    charted = 0
    for number, page in enumerate(pages, start=1):
        flat = _flat(page)
        figures = flat.count(price_caption) + flat.count(spread_caption)
        charted += figures
        if figures == 1:
            assert any(other in flat for other in others), (number, page)
    assert charted >= 8  # the price chart and the seven criteria's spreads


def test_the_english_works_record_fits_its_pages(works_record, tmp_path):
    _built, pdf = works_record(None)
    _assert_words_inside_pages(pdf, tmp_path)
    text = _run(["pdftotext", "-layout"], pdf, tmp_path)
    for identifier in RAW_IDENTIFIERS:
        assert identifier not in text, identifier
    assert not LONG_DECIMAL.search(text)
    assert "Technical score: the mean of the experts' totals" in " ".join(text.split())


def _pages(pdf: bytes, tmp_path) -> list[dict]:
    """Each page's size and words with their boxes, from poppler's `pdftotext -bbox`."""
    out = _run(["pdftotext", "-bbox"], pdf, tmp_path)
    pages = []
    for page in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out, re.S):
        words = [
            {
                "x0": float(m[1]),
                "y": round(float(m[2]), 1),
                "x1": float(m[3]),
                "text": html.unescape(m[5]),
            }
            for m in re.finditer(
                r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">'
                r"(.*?)</word>",
                page[3],
            )
        ]
        pages.append({"width": float(page[1]), "height": float(page[2]), "words": words})
    assert pages
    return pages


def _assert_words_inside_pages(pdf: bytes, tmp_path) -> None:
    """No word runs past a page's right edge (a table wider than its page is cut there)."""
    for number, page in enumerate(_pages(pdf, tmp_path), start=1):
        for word in page["words"]:
            assert word["x1"] <= page["width"] - 20, (number, word, page["width"])


# --- charts ---------------------------------------------------------------------------------


def _text_boxes(svg: str) -> list[tuple[float, float, float, float, str]]:
    """Every <text> of a chart as (x0, y0, x1, y1, text), legend entries placed by their
    group's translation, widths by the same estimate the charts are laid out with."""
    boxes = []
    for group in re.finditer(
        r'<g class="legend-item" transform="translate\(([\d.]+),([\d.]+)\)">(.*?)</g>', svg
    ):
        dx, dy = float(group[1]), float(group[2])
        for m in re.finditer(
            r'<text x="([\d.]+)" y="([\d.]+)" font-size="(\d+)"[^>]*>(.*?)</text>', group[3]
        ):
            boxes.append(_box(dx + float(m[1]), dy + float(m[2]), "start", float(m[3]), m[4]))
    plot = re.sub(r'<g class="legend">.*?</g></g>', "", svg)
    for m in re.finditer(r"<text ([^>]*)>(.*?)</text>", plot):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m[1]))
        boxes.append(
            _box(
                float(attrs["x"]),
                float(attrs["y"]),
                attrs.get("text-anchor", "start"),
                float(attrs.get("font-size", charts.FONT_SIZE)),
                m[2],
            )
        )
    return boxes


def _box(x, y, anchor, size, text):
    text = html.unescape(text)
    width = charts.text_width(text, size)
    x0 = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
    return (x0, y - size * 0.8, x0 + width, y + size * 0.25, text)


def _assert_no_overlap(svg: str) -> None:
    boxes = _text_boxes(svg)
    assert boxes
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= charts.WIDTH, a
        for b in boxes[i + 1 :]:
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap, (a, b)


def test_score_spread_has_a_legend_and_labels_that_never_overlap():
    experts = [f"E{n}" for n in range(1, 10)]
    rows = [
        (
            label,
            {e: Decimal(12) - Decimal(i % 3) / 2 for i, e in enumerate(experts)},
            {"E9"} if n == 0 else set(),
        )
        for n, label in enumerate(
            [
                "시공 조직 및 공법이 매우 긴 입찰자 이름 주식회사",
                "施工方案与技术措施有限公司很长的名字",
                "T-3QK",
            ]
        )
    ]
    svg = charts.score_spread_svg(
        rows,
        Decimal(12),
        title="C1",
        mean_label="평가위원회 평균",
        outlier_label="이상치",
        band_label="평가위원회 평균 ± 배점의 30% (이상치 아님)",
        axis_label="점수",
    )
    legend = re.findall(r'<g class="legend-item"[^>]*>.*?<text[^>]*>(.*?)</text>', svg)
    assert legend == [
        *experts,
        "평가위원회 평균",
        "평가위원회 평균 ± 배점의 30% (이상치 아님)",
        "이상치",
    ]
    # nine experts on the same score: only dots, no per-score text that could collide
    assert "E1,E2" not in svg
    assert 'font-family="Noto Sans CJK SC' in svg
    _assert_no_overlap(svg)


def test_price_chart_shows_money_on_its_axis_and_a_legend():
    money = lambda value: f"CN¥{value:,.2f}"  # noqa: E731 - the record passes labels.money
    prices = [(f"投标人 {n} 有限责任公司", Decimal(900_000 + 37_123 * n)) for n in range(6)]
    svg = charts.price_chart_svg(
        prices,
        Decimal("992674.306"),
        title="价格分布",
        benchmark_label="基准价",
        price_label="投标报价",
        axis_label="价格（CNY）",
        format_value=money,
    )
    legend = re.findall(r'<g class="legend-item"[^>]*>.*?<text[^>]*>(.*?)</text>', svg)
    assert legend == ["投标报价", "基准价: CN¥992,674.31"]
    assert "价格（CNY）" in svg
    ticks = re.findall(r'text-anchor="middle" fill="#6b7280">(.*?)</text>', svg)
    assert ticks and all(t.startswith("CN¥") for t in ticks)
    assert "CN¥1,085,615.00" in svg  # the dearest bid, its label kept inside the chart
    _assert_no_overlap(svg)


# --- PDF/A-3B and signature times -------------------------------------------------------------


def _xmp(reader: PdfReader) -> str:
    return reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")


def _assert_pdfa3b(pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-1.7\n")
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    assert root.get("/Version") in (None, "/1.7")  # never 2.0 in a PDF/A-3 file
    assert "/ISO_" not in (root.get("/Extensions") or {})
    associated = [a.get_object() for a in root["/AF"]]
    assert len(associated) == 1 == len(reader.attachments)  # listed once
    spec = associated[0]
    assert spec["/F"] == spec["/UF"] == "scoring.json"
    assert spec["/AFRelationship"] == "/Data"
    stream = spec["/EF"]["/F"].get_object()
    assert stream["/Subtype"] == "/application/json" and "/ModDate" in stream["/Params"]
    xmp = _xmp(reader)
    assert re.search(r'pdfaid:part(="3"|>3<)', xmp) and re.search(
        r'pdfaid:conformance(="B"|>B<)', xmp
    )
    intents = root["/OutputIntents"]
    assert len(intents) == 1 and intents[0]["/S"] == "/GTS_PDFA1"
    assert "/DestOutputProfile" in intents[0]
    info = reader.trailer["/Info"].get_object() if "/Info" in reader.trailer else {}
    if "/Producer" in info:  # the information dictionary agrees with the XMP
        producer = re.search(r'pdf:Producer(?:="([^"]*)"|>([^<]*)<)', xmp)
        assert producer and info["/Producer"] in (producer[1], producer[2])


def test_the_signed_record_is_a_consistent_pdfa3b_file(app, make_tender, make_user, make_company):
    import pyotp

    from app.extensions import db
    from app.records import operations
    from app.records.models import EvaluationRecord

    built = build_finalised(make_tender, make_user, make_company)
    pdf = _record_pdf(built)
    _assert_pdfa3b(pdf)
    record = db.session.scalar(db.select(EvaluationRecord))
    expert = built.experts[0]
    operations.countersign(expert, record, pyotp.TOTP(expert.totp_secret).now())
    db.session.commit()
    countersigned = operations.record_pdf(record)
    _assert_pdfa3b(countersigned)
    assert signing.signatures_ok(countersigned, expected=2)
    report = signing.pdfsig_report(countersigned, signing.trust_roots_pem())
    assert report.signature_count == 2 and report.all_valid, report.text


def test_signatures_carry_the_platform_clock(app, tmp_path):
    """The drill backdates the platform's clock: its records' stamps and signing times are
    the record's own timeline, and still validate."""
    from app.scenario.clock import SimulatedClock

    pdf = render_pdf(
        "<html><body><p>Record</p></body></html>",
        pdf_variant="pdf/a-3b",
        attachments=[PdfAttachment("scoring.json", "{}")],
    )
    signing.platform_certificate()
    moment = (datetime.now(UTC) - timedelta(days=20)).replace(second=0, microsecond=0)
    with SimulatedClock(moment):
        signed = signing.sign_pdf(
            pdf, signer="platform", field_name="platform", reason="R", stamp_text="%(ts)s"
        )
    reader = PdfReader(io.BytesIO(signed))
    field = reader.trailer["/Root"]["/AcroForm"]["/Fields"][0].get_object()
    assert field["/V"].get_object()["/M"].startswith(moment.strftime("D:%Y%m%d%H"))
    text = _run(["pdftotext"], signed, tmp_path)
    assert moment.strftime("%Y-%m-%d %H:%M") in text  # the visible stamp
    report = signing.pdfsig_report(signed, signing.trust_roots_pem())
    assert f"Signing Time: {moment.strftime('%b %d %Y %H:%M')}" in report.text, report.text
    assert report.all_valid, report.text
    assert signing.signatures_ok(signed, expected=1)
    _assert_pdfa3b(signed)


def test_opening_and_commercial_part_reasons_are_translated(app):
    """A malformed commercial part reads as the opening recorded its problems, translated;
    the opening's own reasons for a withdrawn line too."""
    problems = [{"code": "missing_field", "field": "construction_days", "params": {}}]
    failed = {
        "code": "check_failed_with_reason",
        "params": {"check": "commercial_part_valid", "reason": "malformed commercial part"},
        "message": "Check 'commercial_part_valid' failed: malformed commercial part",
    }
    with force_locale("zh_Hans"):
        text = labels.reason(failed, None, problems)
        assert "construction_days" in text and "commercial_part_valid" not in text
        assert "failed" not in text and "missing" not in text
        withdrawn = labels.opening_reason("the stored envelope is missing or unreadable")
        assert withdrawn == "存储的投标文件缺失或无法读取"
        assert "malformed" not in labels.opening_reason("malformed commercial part", problems)
        # a reason the record does not know stays as recorded, never dropped
        assert labels.opening_reason("EnvelopeError: bad tag") == "EnvelopeError: bad tag"
