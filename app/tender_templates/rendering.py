"""Render a template's Markdown body into the tender document's safe HTML.

Steps: the body's ``{{ placeholders }}`` are filled in by Jinja2's ``SandboxedEnvironment``
(autoescape on, ``StrictUndefined``), then the Markdown is turned into HTML by markdown-it-py
in CommonMark mode with raw HTML off (``MarkdownIt("commonmark", {"html": False})``) and
tables on.  Raw HTML written in a body is therefore shown as text, never passed through, and
markdown-it refuses ``javascript:``-style link targets.

Every value a placeholder puts into the Markdown is written as literal text: whitespace is
collapsed to single spaces and ASCII punctuation is backslash-escaped, so a tender title such
as ``1. <b>Lot</b> | *A*`` can start no list, tag, table cell or emphasis.  Tables and lists
made by the package (``{{ lots }}``, ``{{ commercial_fields }}``, ...) are Markdown it built
itself from escaped cells.

Only a small part of Jinja is allowed in a body, checked before rendering
(``placeholder_problems``): ``{{ name.attribute }}`` placeholders from ``PLACEHOLDERS``,
``{% if %}`` / ``{% elif %}`` / ``{% else %}`` with comparisons, ``and``, ``or``, ``not`` and
constants, ``{% for x in list %}``, ``{# comments #}``, and nothing else (no filters, calls,
arithmetic, includes or macros).  That keeps the sandbox's surface tiny, makes the cost of a
render proportional to the data, and lets validation name every unknown placeholder.

The placeholder vocabulary (``PLACEHOLDERS`` documents each one):

- ``tender``: ``title``, ``reference``, ``centre``, ``category`` (localized), ``budget``,
  ``ceiling_price``, ``reserve_price``, ``bid_bond`` (money, formatted with ``currency``),
  ``currency``, ``lot_count`` (a number, e.g. ``{% if tender.lot_count > 1 %}``).
- ``schedule``: ``publication``, ``enquiry_deadline``, ``submission_deadline``, ``opening``,
  ``evaluation_period``.
- ``lots``: a table (No., lot, budget, ceiling or reserve price); also a list of
  ``number``, ``title``, ``budget``, ``ceiling_price``, ``reserve_price``.
- ``custodians``: ``count`` (n key custodians) and ``threshold`` (k of them open the bids).
- ``contact``: ``name``, ``phone``, ``email``, ``address``.
- ``template``: ``key``, ``name``.
- ``price_method``: the price-scoring method with its formula and parameters, in words.
- ``points``: ``price``, ``commercial``, ``technical``, ``total`` (maximum points).
- ``rules``: ``min_bids``, ``aggregation`` (in words), ``submission_days_min``,
  ``addendum_min_days``, ``bid_bond_max_pct``.
- ``commercial_fields``: a table; items ``key``, ``label``, ``type``, ``required``, ``bounds``.
- ``commercial_criteria``: a table; items ``key``, ``title``, ``field``, ``max_points``,
  ``rule`` (in words).
- ``technical_criteria``: a table; items ``key``, ``title``, ``max_points``, ``step``,
  ``pass_mark``, ``guidance``.
- ``qualification_documents``: a bullet list; items ``key``, ``label``, ``required``.
- inside ``{% for %}``: ``loop.index``, ``loop.index0``, ``loop.first``, ``loop.last``,
  ``loop.length``, ``loop.revindex``, ``loop.revindex0``.

A value the tender does not have (no budget, no reserve price, ...) renders as an em dash;
a placeholder outside the vocabulary is a validation error (and ``TemplateRenderError`` at
render time), never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache, partial
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from markupsafe import Markup

from app.tender_templates.errors import TemplateError, TemplateRenderError
from evaluation.decimals import fmt, is_decimal_string, parse_decimal

LOCALES = ("en", "ko", "zh_Hans")
NOT_SET = "—"

# --- the placeholder vocabulary -----------------------------------------------------------

PLACEHOLDERS: dict[str, str] = {
    "tender.title": "The tender's title.",
    "tender.reference": "The tender's reference number (unique per centre).",
    "tender.centre": "The trading centre's name.",
    "tender.category": "The template's category, in the reader's language.",
    "tender.budget": "The budget (estimated price), formatted with the currency.",
    "tender.ceiling_price": "The ceiling price (procurement); a bid above it is rejected.",
    "tender.reserve_price": "The reserve price (sales); a bid below it is rejected.",
    "tender.bid_bond": "The bid bond amount.",
    "tender.currency": "The currency code, e.g. CNY.",
    "tender.lot_count": "The number of lots (a number, usable in {% if %}).",
    "schedule.publication": "Publication date and time.",
    "schedule.enquiry_deadline": "Deadline for enquiries.",
    "schedule.submission_deadline": "Bid submission deadline.",
    "schedule.opening": "Bid opening date and time.",
    "schedule.evaluation_period": "The evaluation period, as text.",
    "lots": "Table of the lots (No., lot, budget, ceiling or reserve price).",
    "lots[].number": "The lot's number (1, 2, ...).",
    "lots[].title": "The lot's title.",
    "lots[].budget": "The lot's budget.",
    "lots[].ceiling_price": "The lot's ceiling price.",
    "lots[].reserve_price": "The lot's reserve price.",
    "custodians.count": "How many key custodians the tender names (n).",
    "custodians.threshold": "How many of them must act together to open the bids (k).",
    "contact.name": "Contact person or office.",
    "contact.phone": "Contact telephone.",
    "contact.email": "Contact e-mail.",
    "contact.address": "Contact address.",
    "template.key": "The template's key.",
    "template.name": "The template's name, in the reader's language.",
    "price_method": "The price-scoring method with its formula and parameters, in words.",
    "points.price": "Maximum price points.",
    "points.commercial": "Maximum commercial points (sum of the commercial criteria).",
    "points.technical": "Maximum technical points (sum of the technical criteria).",
    "points.total": "Maximum total points.",
    "rules.min_bids": "Fewest bids for an opening.",
    "rules.aggregation": "How the experts' technical scores are combined, in words.",
    "rules.submission_days_min": "Minimum days between publication and the deadline.",
    "rules.addendum_min_days": "An addendum later than this many days before the deadline "
    "extends it.",
    "rules.bid_bond_max_pct": "Largest bid bond as a percentage of the budget.",
    "commercial_fields": "Table of the commercial fields a bid must fill in.",
    "commercial_fields[].key": "The field's key.",
    "commercial_fields[].label": "The field's label.",
    "commercial_fields[].type": "The field's type, in words.",
    "commercial_fields[].required": "Whether the field is required (yes / no).",
    "commercial_fields[].bounds": "The allowed values, in words.",
    "commercial_criteria": "Table of the commercial criteria and how they are scored.",
    "commercial_criteria[].key": "The criterion's key.",
    "commercial_criteria[].title": "The criterion's title.",
    "commercial_criteria[].field": "The label of the field it scores.",
    "commercial_criteria[].max_points": "The criterion's maximum points.",
    "commercial_criteria[].rule": "How it is scored, in words.",
    "technical_criteria": "Table of the technical criteria (scored blind by the experts).",
    "technical_criteria[].key": "The criterion's key.",
    "technical_criteria[].title": "The criterion's title.",
    "technical_criteria[].max_points": "The criterion's maximum points.",
    "technical_criteria[].step": "The scoring step.",
    "technical_criteria[].pass_mark": "The pass mark (lowest evaluated price), or a dash.",
    "technical_criteria[].guidance": "The scoring guidance.",
    "qualification_documents": "Bullet list of the qualification documents.",
    "qualification_documents[].key": "The document's key.",
    "qualification_documents[].label": "The document's name.",
    "qualification_documents[].required": "Whether it is required (yes / no).",
}

_LOOP_ATTRIBUTES = ("index", "index0", "revindex", "revindex0", "first", "last", "length")


@dataclass(frozen=True)
class _ListOf:
    """A list placeholder: renders as a table or list; its items have these attributes."""

    item: Mapping[str, None]


def _vocabulary() -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name in PLACEHOLDERS:
        head, _, rest = name.partition(".")
        if head.endswith("[]"):
            base = head[:-2]
            current = tree.get(base)
            items = dict(current.item) if isinstance(current, _ListOf) else {}
            items[rest] = None
            tree[base] = _ListOf(items)
        elif rest:
            tree.setdefault(head, {})[rest] = None
        else:
            tree.setdefault(head, _ListOf({}))
    return tree


VOCABULARY: dict[str, Any] = _vocabulary()
_LOOP = dict.fromkeys(_LOOP_ATTRIBUTES)

# --- localized texts of the generated parts ------------------------------------------------

_TEXTS: dict[str, tuple[str, str, str]] = {
    # en, ko, zh_Hans
    "goods": ("Goods", "물품", "货物"),
    "works": ("Works", "공사", "工程"),
    "services": ("Services", "용역", "服务"),
    "asset_sale": (
        "Sale of assets and land-use rights",
        "자산·토지사용권 매각",
        "资产及土地使用权出让",
    ),
    "type_money": ("Amount", "금액", "金额"),
    "type_integer": ("Whole number", "정수", "整数"),
    "type_decimal": ("Number", "숫자", "数值"),
    "type_text": ("Text", "텍스트", "文本"),
    "type_choice": ("Choice", "선택", "选项"),
    "type_date": ("Date", "날짜", "日期"),
    "yes": ("Yes", "예", "是"),
    "no": ("No", "아니요", "否"),
    "none": ("None", "없음", "无"),
    "required": ("required", "필수", "必须提供"),
    "optional": ("optional", "선택", "可选"),
    "col_no": ("No.", "번호", "序号"),
    "col_lot": ("Lot", "로트", "标段"),
    "col_budget": ("Budget", "예산", "预算金额"),
    "col_ceiling": ("Ceiling price", "상한가격", "最高限价"),
    "col_reserve": ("Reserve price", "최저매각가격", "保留价"),
    "col_field": ("Field", "항목", "项目"),
    "col_type": ("Type", "유형", "类型"),
    "col_required": ("Required", "필수", "是否必填"),
    "col_allowed": ("Allowed values", "허용 값", "取值要求"),
    "col_criterion": ("Criterion", "평가항목", "评审因素"),
    "col_points": ("Points", "배점", "分值"),
    "col_max_points": ("Max. points", "최고점", "最高分"),
    "col_step": ("Step", "점수 단위", "评分步长"),
    "col_pass_mark": ("Pass mark", "통과 기준점", "合格分"),
    "col_guidance": ("Scoring guidance", "평가 기준", "评分标准"),
    "col_rule": ("Scoring rule", "산정 방식", "计分规则"),
    "bound_range": ("{min} to {max}", "{min} ~ {max}", "{min} 至 {max}"),
    "bound_min": ("at least {min}", "{min} 이상", "不低于 {min}"),
    "bound_max": ("at most {max}", "{max} 이하", "不高于 {max}"),
    "bound_choices": ("one of: {choices}", "다음 중 하나: {choices}", "以下之一：{choices}"),
    "bound_length": ("up to {n} characters", "최대 {n}자", "不超过 {n} 个字符"),
    "bound_ceiling": ("at most the ceiling price", "상한가격 이하", "不高于最高限价"),
    "bound_reserve": ("at least the reserve price", "최저매각가격 이상", "不低于保留价"),
    "linear_lower": (
        "{max} points at {lower} or less, 0 points at {upper} or more, in proportion between",
        "{lower} 이하 {max}점, {upper} 이상 0점, 그 사이는 비례 배점",
        "{lower} 及以下得 {max} 分，{upper} 及以上得 0 分，其间按比例计分",
    ),
    "linear_higher": (
        "{max} points at {upper} or more, 0 points at {lower} or less, in proportion between",
        "{upper} 이상 {max}점, {lower} 이하 0점, 그 사이는 비례 배점",
        "{upper} 及以上得 {max} 分，{lower} 及以下得 0 分，其间按比例计分",
    ),
    "step_higher": (
        "{threshold} or more: {points} points",
        "{threshold} 이상: {points}점",
        "{threshold} 及以上：{points} 分",
    ),
    "step_lower": (
        "{threshold} or less: {points} points",
        "{threshold} 이하: {points}점",
        "{threshold} 及以下：{points} 分",
    ),
    "steps_else": ("otherwise 0 points", "그 외 0점", "其余 0 分"),
    "separator": ("; ", "; ", "；"),
    "agg_mean": (
        "the mean of the experts' totals",
        "평가위원 총점의 평균",
        "各评标专家评分合计的算术平均值",
    ),
    "agg_trimmed_mean": (
        "the mean of the experts' totals after leaving out the highest and the lowest",
        "최고 총점과 최저 총점을 제외한 평가위원 총점의 평균",
        "去掉一个最高分和一个最低分后各评标专家评分合计的算术平均值",
    ),
    "agg_auto": (
        "the mean of the experts' totals; with five or more experts the highest and the "
        "lowest totals are left out",
        "평가위원 총점의 평균(평가위원이 5명 이상이면 최고 총점과 최저 총점 제외)",
        "各评标专家评分合计的算术平均值（专家五人及以上时去掉一个最高分和一个最低分）",
    ),
    "m_lowest_price_benchmark": (
        "Lowest-price benchmark: the lowest price among the compliant bids is the benchmark "
        "price B; each compliant bid's price score = {max} × B ÷ bid price.",
        "최저가 기준: 적격 입찰 중 최저 입찰가격을 기준가격 B로 하며, 각 입찰의 "
        "가격점수 = {max} × B ÷ 입찰가격입니다.",
        "低价优先法：满足招标文件要求且投标价格最低的投标报价为评标基准价 B，"
        "各投标人的价格分 = {max} × B ÷ 投标报价。",
    ),
    "m_average_benchmark": (
        "Average benchmark: the benchmark price B is the average of the compliant bid prices "
        "× ({one_plus_k}); from {dh} compliant bids on the highest price is left out of the "
        "average, from {dl} the lowest as well. For each bid D = (bid price − B) ÷ B × 100; "
        "the price score is {max} − {above} × D when the bid price is above B and "
        "{max} − {below} × |D| when it is at or below B, never less than 0.",
        "평균가 기준: 적격 입찰가격의 평균 × ({one_plus_k})을 기준가격 B로 합니다. 적격 "
        "입찰이 {dh}건 이상이면 최고가를, {dl}건 이상이면 최저가도 평균에서 제외합니다. 각 "
        "입찰의 편차율 D = (입찰가격 − B) ÷ B × 100이며, 입찰가격이 B보다 높으면 가격점수 = "
        "{max} − {above} × D, B 이하이면 {max} − {below} × |D|이고 0점 미만은 0점입니다.",
        "平均值基准价法：以有效投标报价的算术平均值 ×（{one_plus_k}）为评标基准价 B；"
        "有效投标达到 {dh} 家时去掉一个最高报价，达到 {dl} 家时再去掉一个最低报价。"
        "偏差率 D =（投标报价 − B）÷ B × 100；投标报价高于 B 时价格分 = {max} − {above} × D，"
        "等于或低于 B 时价格分 = {max} − {below} × |D|，最低为 0 分。",
    ),
    "m_highest_price": (
        "Highest price: the highest price among the compliant bids is the benchmark price B; "
        "each compliant bid's price score = {max} × bid price ÷ B.",
        "최고가 기준: 적격 입찰 중 최고 입찰가격을 기준가격 B로 하며, 각 입찰의 "
        "가격점수 = {max} × 입찰가격 ÷ B입니다.",
        "价高者得：满足要求的最高报价为基准价 B，各竞买人的价格分 = {max} × 报价 ÷ B。",
    ),
    "m_lowest_evaluated_price": (
        "Lowest evaluated price: no points are given. The evaluated price of each compliant "
        "bid is its bid price plus the adjustments stated in this document; the bid with the "
        "lowest evaluated price ranks first.",
        "최저 평가가격: 점수를 부여하지 않습니다. 각 적격 입찰의 평가가격은 입찰가격에 본 "
        "문서에서 정한 조정액을 더한 금액이며, 평가가격이 가장 낮은 입찰이 1순위입니다.",
        "经评审的最低投标价法：不计分。各有效投标的评审价格为投标报价加上本文件规定的价格"
        "调整，评审价格最低的投标人排名第一。",
    ),
    "rounding": (
        "Each score is rounded once to two decimal places (half up).",
        "각 점수는 소수점 둘째 자리까지 한 번 반올림합니다.",
        "各项得分保留两位小数（四舍五入），只修约一次。",
    ),
    "adjustments": ("Adjustments: {text}", "가격 조정: {text}", "价格调整：{text}"),
}


def normalize_locale(locale: str | None) -> str:
    """``"ko"``, ``"zh_Hans"`` (also ``zh``, ``zh-Hans``, ``zh_CN``) or ``"en"`` (the default)."""
    text = (locale or "").replace("-", "_").lower()
    if text.startswith("zh"):
        return "zh_Hans"
    if text.startswith("ko"):
        return "ko"
    return "en"


def _t(locale: str, msgid: str, **params: str) -> str:
    text = _TEXTS[msgid][LOCALES.index(locale)]
    return text.format(**params) if params else text


def localized(value: Any, locale: str) -> str:
    """The text of a ``{en, ko, zh_Hans}`` mapping in ``locale``, falling back to English."""
    if isinstance(value, Mapping):
        text = value.get(locale) or value.get("en")
        return text if isinstance(text, str) else ""
    return value if isinstance(value, str) else ""


# --- values: escaping and formatting -----------------------------------------------------

_MARKDOWN_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")


def markdown_escape(text: str) -> str:
    """``text`` as literal Markdown: whitespace collapsed, every ASCII punctuation escaped."""
    return _MARKDOWN_PUNCTUATION.sub(lambda m: "\\" + m.group(0), " ".join(text.split()))


@dataclass(frozen=True)
class MarkdownBlock:
    """Markdown the package built itself (escaped where it holds values): passed through."""

    markdown: str


class MarkdownList(list):  # type: ignore[type-arg]
    """A list placeholder's items, rendered as ``markdown`` when output as a whole."""

    def __init__(self, items: Sequence[Any], markdown: str) -> None:
        super().__init__(items)
        self.markdown = markdown


def _finalize(locale: str, value: Any) -> Markup:
    if isinstance(value, MarkdownList | MarkdownBlock):
        return Markup(f"\n\n{value.markdown}\n\n")  # noqa: S704 (built from escaped cells)
    if isinstance(value, bool):
        text = _t(locale, "yes" if value else "no")
    elif value is None or value == "":
        text = NOT_SET
    else:
        text = str(value)
    return Markup(markdown_escape(text))  # noqa: S704 (escaped for Markdown; HTML is off)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if is_decimal_string(value):
        return parse_decimal(value)
    return None


def format_money(value: Any, currency: str = "") -> str | None:
    """``Decimal("1250000")`` -> ``"CNY 1,250,000.00"``; ``None`` when not set."""
    if value is None or value == "":
        return None
    amount = _decimal(value)
    if amount is None:
        return str(value)
    try:
        text = f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"
    except InvalidOperation:
        text = fmt(amount)
    return f"{currency} {text}" if currency else text


def format_datetime(value: Any) -> str | None:
    """A date (``2025-04-18``) or date and time (``2025-04-18 09:30 (UTC+08:00)``)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        text = f"{value:%Y-%m-%d %H:%M}"
        offset = value.utcoffset()
        if offset is None:
            return text
        sign = "-" if offset < timedelta(0) else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        return f"{text} (UTC{sign}{minutes // 60:02d}:{minutes % 60:02d})"
    if isinstance(value, date):
        return f"{value:%Y-%m-%d}"
    return str(value)


def _number(value: Any) -> str:
    decimal = _decimal(value)
    return fmt(decimal) if decimal is not None else str(value)


# --- Markdown builders ---------------------------------------------------------------------


def _cell(value: Any, locale: str) -> str:
    text = _finalize(locale, value)
    return str(text) if text else NOT_SET


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], locale: str) -> str:
    if not rows:
        return markdown_escape(_t(locale, "none"))
    lines = [
        "| " + " | ".join(markdown_escape(h) for h in headers) + " |",
        "|" + "---|" * len(headers),
    ]
    lines += ["| " + " | ".join(_cell(v, locale) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _bounds(field: Mapping[str, Any], locale: str, direction: Any = None) -> str:
    kind = field.get("type")
    if field.get("key") == "price":
        return _t(locale, "bound_reserve" if direction == "highest_wins" else "bound_ceiling")
    if kind == "choice":
        return _t(locale, "bound_choices", choices=", ".join(field.get("choices", [])))
    if kind == "text" and "max_length" in field:
        return _t(locale, "bound_length", n=str(field["max_length"]))
    low, high = field.get("min"), field.get("max")
    if low is not None and high is not None:
        return _t(locale, "bound_range", min=low, max=high)
    if low is not None:
        return _t(locale, "bound_min", min=low)
    if high is not None:
        return _t(locale, "bound_max", max=high)
    return ""


def _criterion_rule(criterion: Mapping[str, Any], locale: str) -> str:
    better = criterion.get("better")
    if criterion.get("rule") == "linear":
        msgid = "linear_lower" if better == "lower" else "linear_higher"
        return _t(
            locale,
            msgid,
            max=str(criterion.get("max_points")),
            lower=str(criterion.get("lower")),
            upper=str(criterion.get("upper")),
        )
    msgid = "step_lower" if better == "lower" else "step_higher"
    steps = sorted(
        criterion.get("steps", []),
        key=lambda s: _decimal(s.get("threshold")) or Decimal(0),
        reverse=better != "lower",
    )
    parts = [
        _t(locale, msgid, threshold=str(s.get("threshold")), points=str(s.get("points")))
        for s in steps
    ]
    if locale == "en":  # "1 point", not "1 points"
        parts = [re.sub(r"(?<![\d.])1 points$", "1 point", p) for p in parts]
    parts.append(_t(locale, "steps_else"))
    return _t(locale, "separator").join(parts)


def price_method_text(doc: Mapping[str, Any], locale: str = "en") -> str:
    """The price-scoring method of ``doc`` described in words, with its parameters."""
    locale = normalize_locale(locale)
    price = doc.get("price", {})
    method = price.get("method", "")
    params = price.get("params") or {}
    if method == "lowest_evaluated_price":
        text = _t(locale, "m_lowest_evaluated_price")
        if price.get("adjustments"):
            adjustments = localized(price["adjustments"], locale)
            text += " " + _t(locale, "adjustments", text=adjustments)
        return text
    max_points = str(price.get("max_points", "0"))
    if method == "average_benchmark":
        k = _decimal(params.get("k", "0")) or Decimal(0)
        one_plus_k = f"1 − {fmt(-k)}" if k < 0 else f"1 + {fmt(k)}"
        text = _t(
            locale,
            "m_average_benchmark",
            max=max_points,
            one_plus_k=one_plus_k,
            dh=str(params.get("drop_highest_from", 6)),
            dl=str(params.get("drop_lowest_from", 7)),
            above=str(params.get("above_per_pct", "1.0")),
            below=str(params.get("below_per_pct", "0.5")),
        )
    elif method in ("lowest_price_benchmark", "highest_price"):
        text = _t(locale, f"m_{method}", max=max_points)
    else:
        return str(method)
    return f"{text} {_t(locale, 'rounding')}"


def aggregation_text(aggregation: str, locale: str = "en") -> str:
    return _t(normalize_locale(locale), f"agg_{aggregation}")


def _points(doc: Mapping[str, Any]) -> dict[str, str]:
    def total(items: Any) -> Decimal:
        return sum((_decimal(c.get("max_points")) or Decimal(0) for c in items or []), Decimal(0))

    price = _decimal(doc.get("price", {}).get("max_points", "0")) or Decimal(0)
    commercial = total(doc.get("commercial_criteria"))
    technical = total(doc.get("technical_criteria"))
    return {
        "price": fmt(price),
        "commercial": fmt(commercial),
        "technical": fmt(technical),
        "total": fmt(price + commercial + technical),
    }


# --- the namespace a body is rendered with ----------------------------------------------------


def build_namespace(
    doc: Mapping[str, Any], context: Mapping[str, Any], locale: str = "en"
) -> dict[str, Any]:
    """Everything a body's placeholders can name, formatted for ``locale``.

    ``doc`` is a valid template; ``context`` holds the tender's own data (see
    ``sample_context`` for its shape): money as ``Decimal`` or decimal strings, dates as
    ``date``/``datetime`` (or text), missing values allowed.
    """
    locale = normalize_locale(locale)
    tender_in = context.get("tender") or {}
    currency = str(tender_in.get("currency") or "")
    direction = doc.get("direction")

    def money(value: Any) -> str | None:
        return format_money(value, currency)

    lots_in = list(context.get("lots") or [])
    lot_items = [
        {
            "number": lot.get("number", i + 1),
            "title": lot.get("title"),
            "budget": money(lot.get("budget")),
            "ceiling_price": money(lot.get("ceiling_price")),
            "reserve_price": money(lot.get("reserve_price")),
        }
        for i, lot in enumerate(lots_in)
    ]
    limit_key = "reserve_price" if direction == "highest_wins" else "ceiling_price"
    limit_header = _t(locale, "col_reserve" if direction == "highest_wins" else "col_ceiling")
    with_budget = any(lot["budget"] for lot in lot_items)
    headers = [_t(locale, "col_no"), _t(locale, "col_lot")]
    headers += [_t(locale, "col_budget")] if with_budget else []
    headers += [limit_header]
    rows = [
        [lot["number"], lot["title"], *([lot["budget"]] if with_budget else []), lot[limit_key]]
        for lot in lot_items
    ]
    lots = MarkdownList(lot_items, _table(headers, rows, locale))

    fields = [
        {
            "key": f["key"],
            "label": localized(f.get("label"), locale),
            "type": _t(locale, f"type_{f['type']}"),
            "required": f.get("required", True) is not False,
            "bounds": _bounds(f, locale, direction),
        }
        for f in doc.get("commercial_fields", [])
    ]
    fields_table = _table(
        [
            _t(locale, "col_field"),
            _t(locale, "col_type"),
            _t(locale, "col_required"),
            _t(locale, "col_allowed"),
        ],
        [[f["label"], f["type"], f["required"], f["bounds"]] for f in fields],
        locale,
    )
    labels = {f["key"]: f["label"] for f in fields}

    commercial = [
        {
            "key": c["key"],
            "title": localized(c.get("title"), locale) or c["key"],
            "field": labels.get(c["field"], c["field"]),
            "max_points": c["max_points"],
            "rule": _criterion_rule(c, locale),
        }
        for c in doc.get("commercial_criteria", [])
    ]
    commercial_table = _table(
        [
            _t(locale, "col_criterion"),
            _t(locale, "col_field"),
            _t(locale, "col_points"),
            _t(locale, "col_rule"),
        ],
        [[c["title"], c["field"], c["max_points"], c["rule"]] for c in commercial],
        locale,
    )

    technical = [
        {
            "key": c["key"],
            "title": localized(c.get("title"), locale),
            "max_points": c["max_points"],
            "step": c["step"],
            "pass_mark": c.get("pass_mark"),
            "guidance": localized(c.get("guidance"), locale),
        }
        for c in doc.get("technical_criteria", [])
    ]
    with_pass = any(c["pass_mark"] is not None for c in technical)
    technical_headers = [
        _t(locale, "col_criterion"),
        _t(locale, "col_max_points"),
        _t(locale, "col_step"),
        *([_t(locale, "col_pass_mark")] if with_pass else []),
        _t(locale, "col_guidance"),
    ]
    technical_table = _table(
        technical_headers,
        [
            [
                c["title"],
                c["max_points"],
                c["step"],
                *([c["pass_mark"]] if with_pass else []),
                c["guidance"],
            ]
            for c in technical
        ],
        locale,
    )

    documents = [
        {
            "key": d["key"],
            "label": localized(d.get("label"), locale),
            "required": d.get("required", True) is not False,
        }
        for d in doc.get("qualification_documents", [])
    ]
    documents_list = (
        "\n".join(
            f"- {markdown_escape(d['label'])} "
            f"({markdown_escape(_t(locale, 'required' if d['required'] else 'optional'))})"
            for d in documents
        )
        if documents
        else markdown_escape(_t(locale, "none"))
    )

    compliance = doc.get("compliance") or {}
    bond_pct = compliance.get("bid_bond_max_pct", "2" if direction == "lowest_wins" else None)
    schedule_in = context.get("schedule") or {}
    custodians_in = context.get("custodians") or {}
    contact_in = context.get("contact") or {}
    return {
        "tender": {
            "title": tender_in.get("title"),
            "reference": tender_in.get("reference"),
            "centre": tender_in.get("centre"),
            "category": _t(locale, doc["category"]) if doc.get("category") in _TEXTS else None,
            "budget": money(tender_in.get("budget")),
            "ceiling_price": money(tender_in.get("ceiling_price")),
            "reserve_price": money(tender_in.get("reserve_price")),
            "bid_bond": money(tender_in.get("bid_bond")),
            "currency": currency or None,
            "lot_count": len(lot_items),
        },
        "schedule": {
            name: format_datetime(schedule_in.get(name))
            for name in (
                "publication",
                "enquiry_deadline",
                "submission_deadline",
                "opening",
                "evaluation_period",
            )
        },
        "lots": lots,
        "custodians": {
            "count": custodians_in.get("count"),
            "threshold": custodians_in.get("threshold"),
        },
        "contact": {name: contact_in.get(name) for name in ("name", "phone", "email", "address")},
        "template": {"key": doc.get("key"), "name": localized(doc.get("name"), locale)},
        "price_method": price_method_text(doc, locale),
        "points": _points(doc),
        "rules": {
            "min_bids": doc.get("min_bids", 3),
            "aggregation": aggregation_text(doc.get("aggregation", "auto"), locale),
            "submission_days_min": doc.get("submission_days_min")
            or default_submission_days(doc.get("category")),
            "addendum_min_days": doc.get("addendum_min_days", 15),
            "bid_bond_max_pct": _number(bond_pct) if bond_pct is not None else None,
        },
        "commercial_fields": MarkdownList(fields, fields_table),
        "commercial_criteria": MarkdownList(commercial, commercial_table),
        "technical_criteria": MarkdownList(technical, technical_table),
        "qualification_documents": MarkdownList(documents, documents_list),
    }


SUBMISSION_DAYS_MIN = {"works": 20, "goods": 20, "services": 20, "asset_sale": 20}


def default_submission_days(category: Any) -> int:
    """Default days between publication and deadline: 20 (the legal minimum in China)."""
    return SUBMISSION_DAYS_MIN.get(category, 20) if isinstance(category, str) else 20


# --- checking a body's placeholders ----------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str, lineno: int | None) -> None:
        text = f"{message} (line {lineno} of the body)" if lineno else message
        if text not in self.messages:
            self.messages.append(text)


_UNKNOWN = object()


def _expression_name(node: nodes.Node) -> str:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_expression_name(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return f"{_expression_name(node.node)}[{node.arg.value!r}]"
    return "…"


def _resolve(node: nodes.Node, scope: Mapping[str, Any], problems: _Problems) -> Any:
    """The vocabulary entry an expression names, or ``_UNKNOWN`` (with a problem recorded)."""
    if isinstance(node, nodes.Name):
        if node.name in scope:
            return scope[node.name]
        if node.name in VOCABULARY:
            return VOCABULARY[node.name]
        problems.add(f"unknown placeholder '{node.name}'", node.lineno)
        return _UNKNOWN
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getitem):
            if not isinstance(node.arg, nodes.Const) or not isinstance(node.arg.value, str | int):
                problems.add("only constant subscripts such as lots[0] are allowed", node.lineno)
                return _UNKNOWN
            attr = node.arg.value
        else:
            attr = node.attr
        base = _resolve(node.node, scope, problems)
        if base is _UNKNOWN:
            return _UNKNOWN
        if isinstance(base, _ListOf) and isinstance(attr, int) and not isinstance(attr, bool):
            return base.item
        if isinstance(base, Mapping) and isinstance(attr, str) and attr in base:
            return base[attr]
        problems.add(f"unknown placeholder '{_expression_name(node)}'", node.lineno)
        return _UNKNOWN
    if isinstance(node, nodes.Const):
        if node.value is None or isinstance(node.value, str | int | bool):
            return None
        problems.add(f"the constant {node.value!r} is not allowed", node.lineno)
        return _UNKNOWN
    if isinstance(node, nodes.Not):
        _resolve(node.node, scope, problems)
        return None
    if isinstance(node, nodes.And | nodes.Or):
        _resolve(node.left, scope, problems)
        _resolve(node.right, scope, problems)
        return None
    if isinstance(node, nodes.Compare):
        _resolve(node.expr, scope, problems)
        for operand in node.ops:
            _resolve(operand.expr, scope, problems)
        return None
    problems.add(_unsupported(node), node.lineno)
    return _UNKNOWN


_STATEMENTS = {
    "Assign": "{% set %}",
    "AssignBlock": "{% set %}",
    "Include": "{% include %}",
    "Extends": "{% extends %}",
    "Import": "{% import %}",
    "FromImport": "{% from ... import %}",
    "Macro": "{% macro %}",
    "CallBlock": "{% call %}",
    "FilterBlock": "{% filter %}",
    "With": "{% with %}",
    "Block": "{% block %}",
    "ScopedEvalContextModifier": "{% autoescape %}",
    "ExprStmt": "{% do %}",
    "Continue": "{% continue %}",
    "Break": "{% break %}",
    "Filter": "a filter (|)",
    "Call": "a call",
    "Test": "a test (is ...)",
    "CondExpr": "an inline if-expression",
}


def _unsupported(node: nodes.Node) -> str:
    kind = _STATEMENTS.get(type(node).__name__)
    if kind is None and isinstance(node, nodes.BinExpr | nodes.UnaryExpr):
        kind = "arithmetic"
    kind = kind or f"'{type(node).__name__}'"
    return (
        f"{kind} is not allowed in a tender body: use {{{{ placeholders }}}}, "
        "{% if %} and {% for %}"
    )


def _walk(body: Sequence[nodes.Node], scope: Mapping[str, Any], problems: _Problems) -> None:
    for node in body:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    continue
                value = _resolve(child, scope, problems)
                if isinstance(value, Mapping):
                    name = _expression_name(child)
                    problems.add(
                        f"'{name}' is a group, not a placeholder: use one of "
                        + ", ".join(f"{name}.{a}" for a in value),
                        child.lineno,
                    )
        elif isinstance(node, nodes.If):
            _resolve(node.test, scope, problems)
            _walk(node.body, scope, problems)
            for branch in node.elif_:
                _resolve(branch.test, scope, problems)
                _walk(branch.body, scope, problems)
            _walk(node.else_, scope, problems)
        elif isinstance(node, nodes.For):
            if node.test is not None or node.recursive or not isinstance(node.target, nodes.Name):
                problems.add(
                    "only '{% for name in list %}' loops are allowed (no filters, tuples or "
                    "recursion)",
                    node.lineno,
                )
                continue
            iterable = _resolve(node.iter, scope, problems)
            if iterable is _UNKNOWN:
                continue
            if not isinstance(iterable, _ListOf):
                problems.add(
                    f"'{_expression_name(node.iter)}' is not a list to loop over", node.lineno
                )
                continue
            inner = {**scope, node.target.name: iterable.item, "loop": _LOOP}
            _walk(node.body, inner, problems)
            _walk(node.else_, scope, problems)
        else:
            problems.add(_unsupported(node), node.lineno)


def placeholder_problems(source: str) -> list[str]:
    """Every problem with a body's placeholders and constructs (empty: the body is fine)."""
    env = _environment("en")
    try:
        tree = env.parse(source)
    except JinjaError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line} of the body)" if line else ""
        return [f"placeholder syntax error: {getattr(exc, 'message', None) or exc}{where}"]
    except RecursionError:
        return ["the body's placeholders are nested too deeply"]
    problems = _Problems()
    try:
        _walk(tree.body, {}, problems)
    except RecursionError:
        problems.add("the body's placeholders are nested too deeply", None)
    return problems.messages


# --- rendering --------------------------------------------------------------------------------


def _environment(locale: str) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=True,
        undefined=StrictUndefined,
        finalize=partial(_finalize, locale),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        cache_size=0,
        auto_reload=False,
    )
    env.globals.clear()
    env.filters.clear()
    env.tests.clear()
    return env


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def body_source(doc: Mapping[str, Any], locale: str = "en") -> tuple[str, str]:
    """``(path, Markdown source)`` of the body for ``locale`` (English when not translated)."""
    body = doc.get("body")
    if isinstance(body, Mapping):
        locale = normalize_locale(locale)
        chosen = locale if isinstance(body.get(locale), str) else "en"
        return f"body.{chosen}", str(body.get(chosen, ""))
    return "body", str(body or "")


def render_markdown(doc: Mapping[str, Any], context: Mapping[str, Any], locale: str = "en") -> str:
    """The body with its placeholders filled in: Markdown, before conversion to HTML."""
    locale = normalize_locale(locale)
    path, source = body_source(doc, locale)
    problems = placeholder_problems(source)
    if problems:
        raise TemplateRenderError([TemplateError(path, p) for p in problems])
    namespace = build_namespace(doc, context, locale)
    try:
        return _environment(locale).from_string(source).render(namespace)
    except (JinjaError, TypeError, ValueError) as exc:
        # e.g. a comparison with a value the tender does not have ({% if x > 1 %}, x unset)
        message = getattr(exc, "message", None) or str(exc)
        raise TemplateRenderError([TemplateError(path, f"cannot render: {message}")]) from exc


def render_body(doc: Mapping[str, Any], context: Mapping[str, Any], locale: str = "en") -> str:
    """The tender document's body as safe HTML for ``locale`` (``en``, ``ko``, ``zh_Hans``).

    ``doc`` must be a valid template (``validate_template`` returned no error); ``context``
    is the tender's data, shaped like ``sample_context()``.  Raises ``TemplateRenderError``
    for a body with an unknown placeholder or a construct that is not allowed.
    """
    return _markdown().render(render_markdown(doc, context, locale))


# --- sample data for previews -----------------------------------------------------------------

_CHINA = timezone(timedelta(hours=8))


def sample_context(category: str = "goods") -> dict[str, Any]:
    """Tender data for previews and checks, shaped as ``render_body`` expects.

    Money is given as ``Decimal`` (strings of decimals work too), dates as timezone-aware
    ``datetime``; every key is optional.  Sales (``asset_sale``) get a reserve price,
    procurement a budget and a ceiling price.
    """
    sale = category == "asset_sale"
    titles = {
        "goods": "Supply of teaching equipment for municipal secondary schools",
        "works": "Reconstruction of Riverside Road (K0+000 to K2+350)",
        "services": "Property management services for the Civic Service Centre",
        "asset_sale": "Transfer of the land-use right of plot 2025-07, Eastern Industrial Park",
    }
    lots: list[dict[str, Any]] = [
        {"number": 1, "title": "Lot 1: laboratory equipment"},
        {"number": 2, "title": "Lot 2: classroom multimedia"},
    ]
    if sale:
        lots = [{"number": 1, "title": "Plot 2025-07 (12,480 m², industrial use, 50 years)"}]
        lots[0]["reserve_price"] = Decimal("18600000.00")
    else:
        lots[0].update(budget=Decimal("1280000.00"), ceiling_price=Decimal("1250000.00"))
        lots[1].update(budget=Decimal("860000.00"), ceiling_price=Decimal("840000.00"))
    publication = datetime(2025, 4, 1, 9, 0, tzinfo=_CHINA)
    days = default_submission_days(category)
    deadline = publication + timedelta(days=days, hours=0, minutes=30)
    return {
        "tender": {
            "title": titles.get(category, titles["goods"]),
            "reference": f"FB-2025-{'AS' if sale else 'GP'}-0042",
            "centre": "Qinghe City Public Resource Trading Centre",
            "budget": None if sale else Decimal("2140000.00"),
            "ceiling_price": None if sale else Decimal("2090000.00"),
            "reserve_price": Decimal("18600000.00") if sale else None,
            "bid_bond": Decimal("3720000.00") if sale else Decimal("40000.00"),
            "currency": "CNY",
        },
        "schedule": {
            "publication": publication,
            "enquiry_deadline": deadline - timedelta(days=10),
            "submission_deadline": deadline,
            "opening": deadline,
            "evaluation_period": "3 working days after the opening",
        },
        "lots": lots,
        "custodians": {"count": 5, "threshold": 3},
        "contact": {
            "name": "Tendering Office, Qinghe City Public Resource Trading Centre",
            "phone": "+86 571 8800 1234",
            "email": "tenders@qinghe-ggzy.example.cn",
            "address": "88 Civic Avenue, Qinghe",
        },
    }
