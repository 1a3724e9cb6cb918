"""The demo data `make run` seeds: two centres, staff, custodians, a supervisor, an admin,
experts and four bidder companies. Passwords, TOTP secrets and the custodians' key
passphrases are generated on the first seed, kept only in `instance/demo-credentials.txt`
(never in the repository) and printed.

Then tenders in every stage of the lifecycle, each run by the end-to-end drill
(app.scenario) through the real operations up to its stage: open for bids (live countdown),
awaiting opening (the demo custodians hold its key), under evaluation, candidates published,
awarded, failed. The seed is idempotent: a tender whose reference exists is not made again."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyotp
from flask import current_app
from sqlalchemy import select
from stdnum.cn import uscc

from app.accounts import security
from app.accounts.models import Role, User
from app.audit import append_event
from app.centres.models import TradingCentre
from app.companies.models import Company, CompanyStatus
from app.core.types import utcnow
from app.custody.operations import create_custodian_key
from app.evaluations.models import Evaluation
from app.extensions import db
from app.panels import operations as panels
from app.panels.models import MemberStatus
from app.scenario import Custodian, Options, run
from app.tenders import operations, participation
from app.tenders.models import Tender
from app.tenders.template_ops import sync_builtin_templates

CENTRES = [
    ("HZ", "Hangzhou Public Resource Trading Centre", "city", None),
    ("HZ-XH", "Xihu District Trading Centre", "county", "HZ"),
]
PEOPLE = [
    ("admin@demo.fairbid.example", "Ada Admin", Role.ADMIN, None),
    ("staff@demo.fairbid.example", "Sun Staff", Role.STAFF, "HZ"),
    ("staff.xihu@demo.fairbid.example", "Xu Staff", Role.STAFF, "HZ-XH"),
    ("custodian1@demo.fairbid.example", "Kim Custodian", Role.CUSTODIAN, "HZ"),
    ("custodian2@demo.fairbid.example", "Lee Custodian", Role.CUSTODIAN, "HZ"),
    ("supervisor@demo.fairbid.example", "Wang Supervisor", Role.SUPERVISOR, None),
    ("expert1@demo.fairbid.example", "Zhao Expert", Role.EXPERT, None),
    ("expert2@demo.fairbid.example", "Qian Expert", Role.EXPERT, None),
    ("expert3@demo.fairbid.example", "Park Expert", Role.EXPERT, None),
]
COMPANIES = [
    ("Jiangnan Construction Co., Ltd.", "91330100MA2A", "bidder1@demo.fairbid.example", "approved"),
    ("Hanil Engineering Ltd.", "91330100MA2B", "bidder2@demo.fairbid.example", "approved"),
    ("Xinhua Supplies Co., Ltd.", "91330100MA2C", "bidder3@demo.fairbid.example", "approved"),
    ("Qiantang Services Co., Ltd.", "91330100MA2D", "bidder4@demo.fairbid.example", "pending"),
]


def demo_registration_number(prefix: str) -> str:
    """A syntactically valid USCC for demo companies (17 characters + check digit)."""
    body = (prefix + "0000000000000000")[:17]
    return body + uscc.calc_check_digit(body)


def seed(echo: Callable[[str], None] = print) -> None:
    if current_app.config["ENV_NAME"] == "production":
        raise RuntimeError("refusing to seed demo accounts in production")
    credentials_file = Path(current_app.instance_path) / "demo-credentials.txt"
    if db.session.scalar(select(User.id).where(User.email == PEOPLE[0][0])):
        echo("Demo data already present.")
        if credentials_file.exists():
            echo(credentials_file.read_text())
        return
    centres: dict[str, TradingCentre] = {}
    for code, name, level, parent in CENTRES:
        centre = TradingCentre(
            code=code, name=name, level=level, parent_id=centres[parent].id if parent else None
        )
        db.session.add(centre)
        db.session.flush()
        centres[code] = centre
        append_event(
            "centre.created",
            object_type="centre",
            object_id=centre.id,
            centre_id=centre.id,
            data={"code": code, "via": "demo"},
        )
    lines = ["Demo accounts (development only):", ""]
    now = utcnow()
    custodian_keys: list[tuple[User, str]] = []
    for email, name, role, centre_code in PEOPLE:
        password = secrets.token_urlsafe(9)
        totp = pyotp.random_base32()
        user = User(
            email=email,
            full_name=name,
            role=role,
            centre_id=centres[centre_code].id if centre_code else None,
            password_hash=security.hash_password(password),
            email_confirmed_at=now,
            totp_secret=totp,
            totp_enabled_at=now,
        )
        db.session.add(user)
        db.session.flush()
        append_event(
            "user.created",
            object_type="user",
            object_id=user.id,
            data={"email": email, "role": role, "via": "demo"},
        )
        lines.append(f"  {role:<10} {email:<34} password {password}  TOTP secret {totp}")
        if role == Role.CUSTODIAN:
            # Publication needs every named custodian's own key.
            passphrase = secrets.token_urlsafe(12)
            create_custodian_key(user, passphrase)
            custodian_keys.append((user, passphrase))
            lines.append(f"  {'':<10} {'':<34} custodian key passphrase {passphrase}")
    for name, prefix, email, status in COMPANIES:
        company = Company(
            name=name,
            registration_number=demo_registration_number(prefix),
            legal_representative="Demo Representative",
            contact_name="Demo Contact",
            contact_phone="+86 571 0000 0000",
            home_centre_id=centres["HZ"].id,
            status=status,
            decided_at=now if status == CompanyStatus.APPROVED else None,
        )
        db.session.add(company)
        db.session.flush()
        password = secrets.token_urlsafe(9)
        user = User(
            email=email,
            full_name=f"{name} contact",
            role=Role.BIDDER,
            company_id=company.id,
            password_hash=security.hash_password(password),
            email_confirmed_at=now,
        )
        db.session.add(user)
        db.session.flush()
        append_event(
            "company.registered",
            object_type="company",
            object_id=company.id,
            centre_id=company.home_centre_id,
            data={"via": "demo", "status": status},
        )
        lines.append(f"  bidder     {email:<34} password {password}  ({status})")
    lines += [
        "",
        "TOTP: add the secret to an authenticator app, or run",
        "  .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"",
    ]
    db.session.commit()
    with current_app.test_request_context(base_url=current_app.config["PUBLIC_URL"]):
        lines += seed_tenders(centres["HZ"])
        db.session.commit()
        # The accounts are committed: keep their credentials before the longer drill runs.
        _write_credentials(credentials_file, lines)
        lines += seed_stages(custodian_keys, echo)
    db.session.commit()
    echo(_write_credentials(credentials_file, lines))


def _write_credentials(path: Path, lines: list[str]) -> str:
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    path.chmod(0o600)
    return text


def seed_tenders(centre: TradingCentre) -> list[str]:
    """Built-in templates, one published goods tender open for bids (two bidders
    registered, one bond recorded) and one draft works tender, through the operations."""
    from datetime import timedelta
    from decimal import Decimal

    templates = {t.key: t for t in sync_builtin_templates()}
    staff = db.session.scalar(select(User).where(User.email == "staff@demo.fairbid.example"))
    custodians = db.session.scalars(
        select(User.id).where(User.role == Role.CUSTODIAN, User.centre_id == centre.id)
    ).all()
    now = utcnow()

    def schedule(days: int, reference: str, title: str, ceiling: str) -> operations.TenderInput:
        deadline = now + timedelta(days=days)
        return operations.TenderInput(
            reference=reference,
            title=title,
            description="Demo tender seeded by `make run`.",
            budget=Decimal(ceiling) + Decimal("10000.00"),
            bid_bond_amount=Decimal("5000.00"),
            publication_at=now,
            enquiry_deadline=deadline - timedelta(days=5),
            submission_deadline=deadline,
            opening_at=deadline + timedelta(hours=1),
            lots=[operations.LotInput(title, ceiling_price=Decimal(ceiling))],
            custodian_ids=list(custodians),
            custodian_threshold=2,
        )

    goods = operations.create_tender(
        staff,
        centre.id,
        templates["goods"].latest,
        schedule(21, "HZ-G-2026-001", "Classroom furniture for Xihu schools", "780000.00"),
    )
    operations.publish_tender(staff, goods, pyotp.TOTP(staff.totp_secret).now())
    # The seed confirmed publication with the demo staff's current code; release that code
    # so the person can sign in with it straight away (development data only).
    staff.totp_last_step = 0
    approved = [email for _name, _prefix, email, status in COMPANIES if status == "approved"]
    bidders = db.session.scalars(
        select(User).where(User.email.in_(approved[:2])).order_by(User.id)
    ).all()
    registrations = [participation.register_for_tender(b, goods) for b in bidders]
    participation.record_bond(staff, registrations[0], "payment", Decimal("5000.00"), "DEMO-001")
    operations.create_tender(
        staff,
        centre.id,
        templates["works"].latest,
        schedule(30, "HZ-W-2026-002", "Resurfacing of Wenyi Road", "2400000.00"),
    )
    return [
        "",
        "Demo tenders: HZ-G-2026-001 (goods, published, open for bids),",
        "              HZ-W-2026-002 (works, draft).",
    ]


# reference, template, last stage, bidders, incidents, how long before now the stage ended,
# what a newcomer finds.
DEMO_STAGES = [
    # First: its panel is drawn while the demo experts are in the pool (see _seat_demo_experts).
    ("HZ-DEMO-EVAL", "works", "review", 4, True, timedelta(minutes=5), "under evaluation"),
    ("HZ-DEMO-OPEN", "goods", "bids", 4, True, timedelta(minutes=5), "open for bids"),
    # Its deadline is moved to a few minutes after seeding: `make run`'s clock closes it and
    # publishes its sealing record while a newcomer watches (CLOSING_DEMO below).
    ("HZ-DEMO-CLOSING", "goods", "bids", 3, False, timedelta(minutes=5), "closes on its own"),
    ("HZ-DEMO-CLOSED", "services", "deadline", 4, True, timedelta(hours=2), "awaiting opening"),
    ("HZ-DEMO-CAND", "goods", "candidates", 5, True, timedelta(hours=1), "candidates published"),
    ("HZ-DEMO-AWARD", "goods", "award", 5, True, timedelta(minutes=5), "awarded"),
    ("HZ-DEMO-FAIL", "goods", "opening", 2, False, timedelta(minutes=5), "failed (too few bids)"),
]


CLOSING_DEMO = "HZ-DEMO-CLOSING"
EVAL_DEMO = "HZ-DEMO-EVAL"
DEMO_EXPERTS = [email for email, _name, role, _centre in PEOPLE if role == Role.EXPERT]
# Broad enough for any seat of a draw (technical or economic).
DEMO_SPECIALTIES = ["civil", "economic", "electrical", "environmental", "it", "mechanical"]

# Who to sign in as for each part of the tour (printed with the credentials).
TOUR = [
    "",
    "A guided tour (the user guide, docs/guide/, walks through each role):",
    "  bidder1@...      HZ-DEMO-OPEN is open: seal and submit a bid in the browser;",
    "                   HZ-DEMO-CLOSING closes a few minutes after start: watch its",
    "                   sealing record appear, then check your receipt against it.",
    "  staff@...        approve Qiantang Services (awaiting approval); draft tender",
    "                   HZ-W-2026-002 to publish; HZ-DEMO-CAND: decide objections, award.",
    "  custodian1@...   HZ-DEMO-CLOSED awaits its opening: unlock your key share (with",
    "  custodian2@...   the passphrase above); two of them open the bids.",
    "  supervisor@...   the dashboard, red flags and the audit log.",
    "  admin@...        accounts, centres and the expert pool.",
]


def _close_soon(tender: Tender) -> None:
    """Bring the tender's deadline to FAIRBID_DEMO_CLOSING_MINUTES (default 5) from now (its
    bids, received minutes ago, stay in time), the opening an hour later."""
    minutes = int(current_app.config.get("DEMO_CLOSING_MINUTES", 5))
    deadline = utcnow().replace(microsecond=0) + timedelta(minutes=minutes)
    tender.submission_deadline = deadline
    tender.enquiry_deadline = min(tender.enquiry_deadline, deadline)
    tender.opening_at = deadline + timedelta(hours=1)
    append_event(
        "tender.demo_deadline_moved",
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"deadline": deadline.isoformat(), "via": "demo"},
    )
    db.session.commit()


def seed_stages(
    custodian_keys: list[tuple[User, str]], echo: Callable[[str], None] = print
) -> list[str]:
    """A tender in every stage, each run by the drill up to its stage in the HZ centre, with
    the demo custodians as key holders. Tenders already there (by reference) are kept."""
    centre = db.session.scalar(select(TradingCentre).where(TradingCentre.code == "HZ"))
    admin = db.session.scalar(select(User).where(User.email == PEOPLE[0][0]))
    custodians = [Custodian(user, passphrase) for user, passphrase in custodian_keys]
    staff = db.session.scalar(select(User).where(User.email == "staff@demo.fairbid.example"))
    _demo_experts_in_pool(staff, centre, available=True)
    lines = ["", "Tenders in every stage (run by the drill, `flask scenario run`):"]
    expert_tour: list[str] = []
    for reference, template, stop_after, bidders, incidents, ago, label in DEMO_STAGES:
        if db.session.scalar(
            select(Tender.id).where(Tender.centre_id == centre.id, Tender.reference == reference)
        ):
            continue
        options = Options(
            template=template,
            bidders=bidders,
            experts=5,
            seed=sum(map(ord, reference)),
            centre_code=centre.code,
            reference=reference,
            title=f"Demo tender: {label}",
            end_at=utcnow() - ago,
            incidents=incidents,
            custodians=custodians or None,
            admin=admin,
            echo=lambda _line: None,
        )
        try:
            result = run(options, stop_after=stop_after)
        except Exception as error:  # the other stages still get their tender
            db.session.rollback()
            state = f"not seeded: {error}"
        else:
            tender = db.session.get(Tender, result.tender_id)
            if reference == CLOSING_DEMO:
                _close_soon(tender)
            if reference == EVAL_DEMO:
                expert_tour = _seat_demo_experts(staff, tender)
                # The other drills draw their panels from their own experts.
                _demo_experts_in_pool(staff, centre, available=False)
            state = f"{tender.status}, drill reached {result.reached}"
            if result.stopped and not result.failed:
                state += f" (stopped: {result.stopped})"
        line = f"  {reference:<15} {label:<22} {state}"
        echo(line)
        lines.append(line)
    _demo_experts_in_pool(staff, centre, available=True)
    db.session.commit()
    return lines + TOUR + expert_tour


def _demo_experts_in_pool(staff: User, centre: TradingCentre, available: bool) -> None:
    """The demo experts in the centre's pool (available to draws, or not)."""
    for email in DEMO_EXPERTS:
        expert = db.session.scalar(select(User).where(User.email == email))
        panels.save_expert_profile(
            staff,
            expert,
            centre_id=centre.id,
            specialties=DEMO_SPECIALTIES,
            employer="Demo Institute of Engineering",
            available=available,
        )
    db.session.commit()


def _seat_demo_experts(staff: User, tender: Tender) -> list[str]:
    """Put the demo experts on the tender's panel (scoring has started): drill experts'
    seats are handed over (removal and the draw's replayable refill) until every demo
    expert holds one. One demo expert (the first, unless the draw seated one already) has
    accepted and finds an open score sheet; those given a handed-over seat keep their
    invitation to answer (the ones the draw seated were accepted by the drill).
    Returns the tour's lines for the experts."""
    experts = [db.session.scalar(select(User).where(User.email == e)) for e in DEMO_EXPERTS]
    demo_ids = {e.id for e in experts}
    chair_id = _chair_of(tender)
    for _attempt in range(len(panels.draw_of(tender).eligible) + len(experts)):
        seated = {m.user_id for m in panels.members_of(tender) if m.status != MemberStatus.REMOVED}
        if demo_ids <= seated:
            break
        handed_over = next(
            (
                m
                for m in panels.members_of(tender)
                # A seat refilled by a drill expert (invited) is handed over too: the refill
                # draws from the same eligible list, so the demo experts' turn comes.
                if m.status in (MemberStatus.ACCEPTED, MemberStatus.INVITED)
                and m.user_id not in demo_ids
                and m.user_id != chair_id
            ),
            None,
        )
        if handed_over is None:
            break
        panels.remove_member(
            staff, tender, handed_over, "Demo: the seat is handed to a demo expert."
        )
        db.session.commit()
    statuses = {e.id: getattr(panels.member_of(e, tender), "status", None) for e in experts}
    invited = [e for e in experts if statuses[e.id] == MemberStatus.INVITED]
    if MemberStatus.ACCEPTED not in statuses.values() and invited:
        first = invited[0]
        panels.accept_invitation(first, tender)
        panels.declare_conflict(first, tender, True, "No relationship with any bidder.")
        db.session.commit()
    lines = []
    for expert in experts:
        member = panels.member_of(expert, tender)
        status = member.status if member else None
        if status == MemberStatus.ACCEPTED:
            task = "your technical score sheet is open (blind scoring)"
        elif status == MemberStatus.INVITED:
            task = "an invitation to the panel: accept it, then score"
        else:
            task = "in the expert pool"
        account = expert.email.split("@")[0] + "@..."
        lines.append(f"  {account:<16} {tender.reference}: {task}.")
    return lines


def _chair_of(tender: Tender) -> int | None:
    evaluation = db.session.scalar(select(Evaluation).where(Evaluation.tender_id == tender.id))
    return evaluation.chair_id if evaluation else None
