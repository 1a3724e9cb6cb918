"""The user guide served by the app (docs/guide/): linked from every page's footer, one page
per role in the viewer's language, its screenshots, nothing else from the folder."""

from __future__ import annotations

import pytest


def test_the_footer_links_the_guide_and_the_index_lists_every_role(client):
    home = client.get("/").get_data(as_text=True)
    assert 'href="/guide/"' in home
    index = client.get("/guide/").get_data(as_text=True)
    for role in ("bidder", "staff", "custodian", "expert", "supervisor", "admin"):
        assert f'href="/guide/{role}"' in index


@pytest.mark.parametrize(
    ("language", "heading", "image"),
    [
        ("en", "<h1>Bidders</h1>", "img/bidder-bid-en.png"),
        ("ko", "<h1>입찰자</h1>", "img/bidder-bid-ko.png"),
        ("zh_Hans", "<h1>投标人</h1>", "img/bidder-bid-zh.png"),
    ],
)
def test_a_role_page_in_the_viewers_language(client, language, heading, image):
    client.get(f"/language/{language}")
    page = client.get("/guide/bidder")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert heading in text and f'src="{image}"' in text


def test_links_between_guide_pages_stay_in_the_app(app):
    from app.main.guide import GUIDE_DIR, render_page

    with app.test_request_context():
        html = render_page(GUIDE_DIR / "README.md")
    assert 'href="bidder"' in html and 'href="bidder.en.md"' not in html


@pytest.mark.parametrize(
    "path",
    [
        "/guide/nobody",
        "/guide/README",
        "/guide/img/README.md",
        "/guide/img/..%2FREADME.md",
        "/guide/img/bidder-start-fr.png",
        "/guide/img/unknown-page-en.png",
    ],
)
def test_only_the_guide_pages_and_screenshots_are_served(client, path):
    assert client.get(path).status_code == 404


def test_a_screenshot_is_served_as_png(client):
    response = client.get("/guide/img/bidder-bid-en.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.get_data()[:8] == b"\x89PNG\r\n\x1a\n"
    response.close()
