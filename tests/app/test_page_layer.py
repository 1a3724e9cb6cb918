"""The signed-out page layer (app.core.page_cache.SignedOutPages): a signed-out visitor's
stored announcement page served before Flask's request machinery, answering exactly what
Flask answers (issue 18). Whether Flask ran is seen through its `request_started` signal,
which the layer never sends."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import flask_babel
import pytest
from flask import request_started

from app.accounts.models import Role
from app.core import cache, page_cache
from app.core.request_hooks import NO_LIMIT_APPLIES
from app.extensions import db, redis_client

# A moment the footer shows, the same for Flask and the layer (byte-for-byte comparisons).
MOMENT = datetime(2031, 7, 8, 9, 10, 11, 120000, tzinfo=UTC)
FOOTER = re.compile(r'<time datetime="([^"]+)">([^<]*)</time>(?= · <a href="/guide)')


@pytest.fixture
def flask_runs(app):
    """The number of requests Flask itself handled so far (a list, read with len()). The
    layer starts with nothing remembered (the app outlives each test)."""
    layer(app).answers.clear()
    seen: list[str] = []

    def started(sender, **extra):
        seen.append("request")

    request_started.connect(started, app)
    yield seen
    request_started.disconnect(started, app)


@pytest.fixture
def fixed_time(monkeypatch):
    monkeypatch.setattr(page_cache, "utcnow", lambda: MOMENT)


def layer(app) -> page_cache.SignedOutPages:
    wsgi = app.wsgi_app
    while not isinstance(wsgi, page_cache.SignedOutPages):
        wsgi = wsgi.wsgi_app
    return wsgi


def answer(response) -> tuple[str, list[tuple[str, str]], bytes]:
    return response.status, list(response.headers.items()), response.get_data()


def warm(client, flask_runs, path="/tenders/", method="GET", **kwargs):
    """Flask renders the page (miss), then serves it whole from the cache (hit, which the
    layer remembers): that second answer is returned, as Flask gave it."""
    for state in ("miss", "hit"):
        before = len(flask_runs)
        response = client.open(path, method=method, **kwargs)
        assert len(flask_runs) == before + 1
        if method == "GET":
            assert response.headers["X-Portal-Cache"] == state
    return response


@pytest.mark.parametrize(
    ("headers", "cookie", "lang", "footer_text"),
    [
        ({"Accept-Language": "en"}, None, "en", "8 Jul 2031 17:10"),
        ({"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"}, None, "ko", "2031. 7. 8. 17:10"),
        ({"Accept-Language": "zh-CN,zh;q=0.9"}, None, "zh-Hans", "2031年7月8日 17:10"),
        ({}, "ko", "ko", "2031. 7. 8. 17:10"),
        ({"Accept-Language": "ko"}, "zh_Hans", "zh-Hans", "2031年7月8日 17:10"),
    ],
)
def test_layer_answers_byte_for_byte_what_flask_answers(
    app, client, flask_runs, fixed_time, make_tender, headers, cookie, lang, footer_text
):
    make_tender(title="Layered announcement")
    flask_babel.refresh()
    if cookie:
        client.set_cookie("fairbid_lang", cookie)
    by_flask = warm(client, flask_runs, headers=headers)
    before = len(flask_runs)
    by_layer = client.get("/tenders/", headers=headers)
    assert len(flask_runs) == before  # Flask did not run
    assert answer(by_layer) == answer(by_flask)  # status, every header in order, the bytes
    page = by_layer.get_data(as_text=True)
    assert f'<html lang="{lang}">' in page and "Layered announcement" in page
    assert FOOTER.search(page).groups() == (MOMENT.isoformat(), FOOTER.search(page).group(2))
    assert footer_text in FOOTER.search(page).group(2)
    assert "fairbid:server-time" not in page
    names = {name for name, _value in by_layer.headers.items()}
    assert {"Content-Security-Policy", "X-Frame-Options", "Vary", "Referrer-Policy"} <= names
    assert "Cookie" in by_layer.headers["Vary"]
    assert by_layer.headers["Content-Length"] == str(len(by_layer.get_data()))


def test_the_server_time_is_each_requests_own(app, client, flask_runs, make_tender):
    make_tender()
    warm(client, flask_runs)
    before = len(flask_runs)
    page = client.get("/tenders/").get_data(as_text=True)
    assert len(flask_runs) == before
    moment = datetime.fromisoformat(FOOTER.search(page).group(1))
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 600  # not the stored render's
    assert "2000-01-02" not in FOOTER.search(page).group(0)


def test_head_is_answered_as_flask_answers_it(app, client, flask_runs, fixed_time, make_tender):
    make_tender()
    flask_babel.refresh()
    client.get("/tenders/")  # stores the page
    by_flask = client.head("/tenders/")
    before = len(flask_runs)
    assert by_flask.headers["X-Portal-Cache"] == "hit" and by_flask.get_data() == b""
    by_layer = client.head("/tenders/")
    assert len(flask_runs) == before
    assert answer(by_layer) == answer(by_flask)
    full = client.get("/tenders/")
    assert by_layer.headers["Content-Length"] == str(len(full.get_data()))


def test_a_signed_in_user_never_gets_the_layers_page(
    app, client, auth, flask_runs, make_tender, make_user
):
    make_tender(title="Shared announcement")
    visitor = app.test_client()
    warm(visitor, flask_runs)
    bidder = make_user(Role.BIDDER, full_name="Wang Fang Bidder")
    auth.login(bidder)
    before = len(flask_runs)
    page = client.get("/tenders/").get_data(as_text=True)
    assert len(flask_runs) == before + 1
    assert "Wang Fang Bidder" in page and "Sign out" in page
    # A remember-me cookie alone (the session gone) is someone signing back in: Flask.
    remembered = app.test_client()
    remembered.set_cookie("remember_token", "1|whatever")
    remembered.get("/tenders/")
    assert len(flask_runs) == before + 2
    # Any session cookie (a flash message may wait in it): Flask.
    flashed = app.test_client()
    assert flashed.get("/start").status_code == 302  # "Sign in to continue." flashed
    page = flashed.get("/tenders/").get_data(as_text=True)
    assert len(flask_runs) == before + 4
    assert "Sign in to continue." in page


def test_other_hosts_schemes_and_requests_with_a_body_go_to_flask(
    app, client, flask_runs, make_tender
):
    make_tender()
    warm(client, flask_runs)
    before = len(flask_runs)
    # Refused before the layer (and before Flask): the trusted-host check runs first.
    assert client.get("/tenders/", headers={"Host": "evil.example"}).status_code == 400
    assert len(flask_runs) == before
    # Another trusted host, the HTTPS scheme, a forwarded scheme: Flask answers first.
    assert client.get("/tenders/", headers={"Host": "127.0.0.1"}).status_code == 200
    assert client.get("/tenders/", base_url="https://localhost").status_code == 200
    assert client.get("/tenders/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
    assert len(flask_runs) == before + 3
    # A body is Flask's to parse and check (here: a NUL byte it refuses).
    refused = client.get(
        "/tenders/", data={"q": "a\x00b"}, content_type="application/x-www-form-urlencoded"
    )
    assert refused.status_code == 400
    assert len(flask_runs) == before + 4
    # An address Flask did not answer with a whole page (not canonical): Flask each time.
    for _ in range(2):
        assert client.get("/tenders/?utm_source=x").headers["X-Portal-Cache"] == "hit"
    assert len(flask_runs) == before + 6


def test_a_publication_takes_effect_at_once(app, client, flask_runs, make_tender):
    tender = make_tender(title="Original title")
    warm(client, flask_runs)
    before = len(flask_runs)
    assert "Original title" in client.get("/tenders/").get_data(as_text=True)
    assert len(flask_runs) == before
    tender.title = "Changed title"
    cache.invalidate_after_commit()
    db.session.commit()
    after = client.get("/tenders/")
    assert len(flask_runs) == before + 1  # the stored page is stale: Flask renders anew
    assert after.headers["X-Portal-Cache"] == "miss"
    assert "Changed title" in after.get_data(as_text=True)
    # The page Flask just stored is under the same key: the layer serves it at once.
    page = client.get("/tenders/").get_data(as_text=True)
    assert len(flask_runs) == before + 1
    assert "Changed title" in page and "Original title" not in page


def test_redis_down_falls_through_to_flask(app, client, flask_runs, make_tender):
    from app import web
    from tests.factories import unreachable_redis

    make_tender(title="Still listed")
    warm(client, flask_runs)
    original = app.extensions["fairbid_redis"]
    app.extensions["fairbid_redis"] = unreachable_redis()
    try:
        # Redis believed up (checked a moment ago): the layer's MGET fails, Flask answers.
        web._redis_state.update(checked=web.time.monotonic(), ok=True)
        before = len(flask_runs)
        response = client.get("/tenders/")
        assert len(flask_runs) == before + 1
        assert response.status_code == 200 and response.headers["X-Portal-Cache"] == "miss"
        assert "Still listed" in response.get_data(as_text=True)
        # Known down, or not checked for a while: Flask answers (and asks Redis itself).
        now = web.time.monotonic()
        for state in ({"checked": now, "ok": False}, {"checked": 0.0, "ok": True}):
            web._redis_state.update(state)
            response = client.get("/tenders/")
            assert response.status_code == 200 and "Still listed" in response.get_data(as_text=True)
        assert len(flask_runs) == before + 3
    finally:
        app.extensions["fairbid_redis"] = original
        web._redis_state.update(checked=0.0, ok=True)


def test_a_rate_limit_on_the_page_turns_the_layer_off(
    app, client, flask_runs, make_tender, monkeypatch
):
    make_tender()
    warm(client, flask_runs)
    monkeypatch.setitem(app.extensions, NO_LIMIT_APPLIES, lambda endpoint: False)
    before = len(flask_runs)
    assert client.get("/tenders/").status_code == 200
    assert len(flask_runs) == before + 1  # the limiter's pass runs in Flask


def test_the_limit_check_the_layer_asks_is_the_limiters(app):
    no_limit_applies = app.extensions[NO_LIMIT_APPLIES]
    assert no_limit_applies("portal.tenders")
    assert not no_limit_applies("accounts.login")  # decorated with the sign-in limit
    assert not no_limit_applies(None)


def test_the_layer_remembers_only_what_flask_answered_whole(app, client, flask_runs, make_tender):
    make_tender()
    layer(app).answers.clear()
    client.get("/tenders/")  # a miss: nothing to remember
    client.get("/healthz")
    assert not layer(app).answers
    client.get("/tenders/")  # Flask's whole-page hit
    (remembered,) = layer(app).answers.values()
    assert remembered.key in {k.decode() for k in redis_client.client.keys("fairbid:portal:*")}
    assert str(remembered.locale) == "en" and remembered.endpoint == "portal.tenders"
