"""`require_admin`: the bearer token guarding `serve`'s admin routes, over real HTTP against the served app."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from syncs.core.settings import Settings
from tests.lifecycle.conftest import ServerThread
from tests.support.clock import FakeClock
from worker.web import create_web_app
from worker.web_auth import require_admin

TOKEN = "s3cret-admin-token-\u00e9"  # non-ASCII on purpose: compared as bytes, never a TypeError


def admin_probe(request: Request) -> Response:
    if (refused := require_admin(request)) is not None:
        return refused
    return PlainTextResponse("admin ok")


def page_probe(request: Request) -> Response:
    if (refused := require_admin(request, browser_page=True)) is not None:
        return refused
    return PlainTextResponse("page ok")


def serve_with_probe(settings: Settings, clock: FakeClock) -> ServerThread:
    app = create_web_app(settings, clock)
    app.add_route("/admin-probe", admin_probe, methods=["GET"])
    app.add_route("/page-probe", page_probe, methods=["GET", "POST"])
    port = urlsplit(settings.exact_redirect_uri).port
    assert port is not None
    return ServerThread(app, port)


def test_admin_routes_answer_only_the_configured_bearer_token(life_settings: Settings, clock: FakeClock) -> None:
    settings = life_settings.model_copy(update={"serve_admin_token": SecretStr(TOKEN)})
    with serve_with_probe(settings, clock) as web:
        url = f"{web.base_url}/admin-probe"
        missing = httpx.get(url)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(url, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and "invalid_token" in wrong.headers["www-authenticate"]
        prefix = httpx.get(url, headers={b"Authorization": f"Bearer {TOKEN[:-1]}".encode()})
        assert prefix.status_code == 401
        basic = httpx.get(url, headers={b"Authorization": f"Basic {TOKEN}".encode()})
        assert basic.status_code == 401
        good = httpx.get(url, headers={b"Authorization": f"Bearer {TOKEN}".encode()})
        assert good.status_code == 200 and good.text == "admin ok"
        assert good.headers.get("cache-control") is None  # the route's own response, untouched
        assert missing.headers["cache-control"] == "no-store"
        assert httpx.get(f"{web.base_url}/health").status_code == 200  # public: no token needed


def basic(user: str, password: str) -> dict[bytes, bytes]:
    return {b"Authorization": b"Basic " + base64.b64encode(f"{user}:{password}".encode())}


def test_browser_pages_also_take_basic_with_the_token_as_password_on_get_only(
    life_settings: Settings, clock: FakeClock
) -> None:
    settings = life_settings.model_copy(update={"serve_admin_token": SecretStr(TOKEN)})
    with serve_with_probe(settings, clock) as web:
        page = f"{web.base_url}/page-probe"
        missing = httpx.get(page)
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Basic ")  # prompts
        assert httpx.get(page, headers=basic("anyone", TOKEN)).text == "page ok"
        assert httpx.get(page, headers={b"Authorization": f"Bearer {TOKEN}".encode()}).text == "page ok"
        for refused in (basic("anyone", TOKEN[:-1]), basic(TOKEN, ""), {b"Authorization": b"Basic !!notbase64"}):
            assert httpx.get(page, headers=refused).status_code == 401
        # Browsers replay Basic credentials on cross-site requests: never accepted where a request changes state.
        assert httpx.post(page, headers=basic("anyone", TOKEN)).status_code == 401
        assert httpx.get(f"{web.base_url}/admin-probe", headers=basic("anyone", TOKEN)).status_code == 401


def test_without_a_token_admin_routes_are_off(life_settings: Settings, clock: FakeClock) -> None:
    for unset in (None, SecretStr("")):
        settings = life_settings.model_copy(update={"serve_admin_token": unset})
        with serve_with_probe(settings, clock) as web:
            for headers in ({}, {"Authorization": "Bearer x"}, {"Authorization": "Bearer anything"}):
                assert httpx.get(f"{web.base_url}/admin-probe", headers=headers).status_code == 404


def test_the_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVE_ADMIN_TOKEN", TOKEN)
    token = Settings(_env_file=None).serve_admin_token
    assert token is not None and token.get_secret_value() == TOKEN and TOKEN not in repr(Settings(_env_file=None))
