"""Staff do not see administrator-only options: signed in as staff, every same-site link
and form on the key staff pages leads somewhere staff may go. Links (and GET forms) are
followed and must not answer 403; POST forms are matched to their route and checked
against the permission walk's expectations (tests/app/expectations), without posting."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from werkzeug.exceptions import MethodNotAllowed, NotFound

from app.accounts.models import Role
from app.companies.models import CompanyStatus
from app.extensions import db
from app.panels.models import ExpertProfile
from tests.app.expectations import merged
from tests.conftest import AuthActions

EXPECTED = merged()


class _Targets(HTMLParser):
    """The href of every <a> and the action and method of every <form>."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(found["href"])
        elif tag == "form":
            self.forms.append((found.get("action") or "", (found.get("method") or "get").upper()))


def _same_site(page: str, target: str) -> str | None:
    url = urlsplit(urljoin(f"http://localhost{page}", target))
    if url.netloc != "localhost" or url.scheme not in ("http", "https"):
        return None
    if url.path.startswith("/static/"):
        return None
    return url.path + (f"?{url.query}" if url.query else "")


def test_staff_pages_offer_nothing_staff_are_refused(
    app, make_centre, make_company, make_user, make_tender
):
    centre = make_centre()
    staff = make_user(Role.STAFF, centre=centre)
    tender = make_tender(centre=centre)
    draft = make_tender(centre=centre, status="draft")
    company = make_company(centre=centre, status=CompanyStatus.PENDING)
    expert = make_user(Role.EXPERT)
    db.session.add(ExpertProfile(user_id=expert.id, centre_id=centre.id, specialties="civil"))
    db.session.commit()
    template_id = tender.template_version.template_id
    pages = [
        "/start",
        "/centre/tenders/",
        f"/centre/tenders/{tender.id}",
        f"/centre/tenders/{draft.id}",
        f"/centre/tenders/{draft.id}/edit",
        "/centre/templates/",
        f"/centre/templates/{template_id}",
        "/centre/companies/?status=all",
        f"/centre/companies/{company.id}",
        "/panels/pool",
        f"/panels/tenders/{tender.id}",
        "/accounts/profile",
    ]
    client = app.test_client()
    AuthActions(client).login(staff)
    adapter = app.url_map.bind("localhost")
    links: dict[str, str] = {}  # target -> the page that offers it
    posts: dict[str, str] = {}
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        targets = _Targets()
        targets.feed(response.get_data(as_text=True))
        for href in targets.links:
            if (target := _same_site(page, href)) is not None:
                links.setdefault(target, page)
        for action, method in targets.forms:
            if (target := _same_site(page, action or page)) is None:
                continue
            (posts if method == "POST" else links).setdefault(target, page)
    assert len(links) > 20 and posts  # the walk saw the pages' navigation and forms
    refused = []
    for target, page in sorted(links.items()):
        if target.startswith("/accounts/logout"):
            continue
        if client.get(target).status_code == 403:
            refused.append(f"{page} links to {target}")
    for target, page in sorted(posts.items()):
        try:
            endpoint, _ = adapter.match(urlsplit(target).path, method="POST")
        except (MethodNotAllowed, NotFound):
            refused.append(f"{page} posts to {target}, which takes no POST")
            continue
        if "staff_a" not in EXPECTED[endpoint]:
            refused.append(f"{page} posts to {target} ({endpoint}: not for staff)")
    assert refused == []
