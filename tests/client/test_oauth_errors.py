"""No part of a token-endpoint body reaches an error message, the logs, the database or `status`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from sqlalchemy.orm import Session, sessionmaker

from models import ConnectionToken
from syncs.core.errors import ExactRequestError, ReauthRequiredError, TokenRefreshError
from syncs.core.logging import configure_logging
from syncs.core.settings import Settings
from syncs.exact.oauth import OAuthClient
from tests.client.conftest import store_pair
from tests.client.stub import Answer, StubServer
from tests.support.clock import FakeClock

ACCESS, REFRESH = "Zq9XwV7mKp3LtB", "Hj4RnY8cVd2QsW"
OLD = {"access_token": "old-access", "refresh_token": "old-refresh", "expires_in": "600"}
JSON = {"Content-Type": "application/json"}


def leaks(text: str) -> list[str]:
    """Every 4-character piece of the secrets that shows up in `text`."""
    return [
        secret[i : i + 4] for secret in (ACCESS, REFRESH) for i in range(len(secret) - 3) if secret[i : i + 4] in text
    ]


@pytest.fixture
def log_stream(client_settings: Settings) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(client_settings.model_copy(update={"log_json": True, "log_level": "DEBUG"}), stream)
    yield stream
    structlog.reset_defaults()


def test_a_truncated_token_body_never_reaches_message_logs_or_database(
    log_stream: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    make_refresher: Any,
    clock: FakeClock,
    connection_id: int,
    db: sessionmaker[Session],
    client_settings: Settings,
) -> None:
    caplog.set_level("DEBUG")
    truncated = f'{{"access_token":"{ACCESS}","token_type":"bearer","refresh_token":"{REFRESH}'
    store_pair(db, client_settings, connection_id, OLD, clock.now() - 600)
    with StubServer(lambda path: Answer(200, truncated, JSON)) as stub:
        with pytest.raises(TokenRefreshError) as raised:
            make_refresher(base_url=stub.base_url).valid_access_token(connection_id)
        assert len(stub.requests) == 1
    message = str(raised.value)
    assert "HTTP 200" in message and "application/json" in message and f"{len(truncated)} bytes" in message
    with db() as session:
        row = session.get_one(ConnectionToken, connection_id)
        stored = row.last_refresh_error or ""
    assert stored and "not JSON" in stored
    output = log_stream.getvalue() + caplog.text
    assert "token.refresh_failed" in output
    assert leaks(message) == [] and leaks(stored) == [] and leaks(output) == []


@pytest.mark.parametrize(
    "body",
    [
        f'{{"access_token":"{ACCESS}","expires_in":"600"}}',  # no refresh token
        f'{{"access_token":"{ACCESS}","refresh_token":"{REFRESH}","expires_in":"{ACCESS}"}}',  # bad expires_in
        f'["{ACCESS}","{REFRESH}"]',  # not an object
        f"<html>{ACCESS} {REFRESH}</html>",  # not JSON at all
    ],
)
def test_unreadable_200_bodies_are_described_not_quoted(body: str, clock: FakeClock) -> None:
    with StubServer(lambda path: Answer(200, body, {"Content-Type": "text/plain"})) as stub:
        oauth = OAuthClient(stub.base_url, "client", "secret", clock=clock, timeout=5)
        try:
            for grant in ("refresh_token", "authorization_code"):
                with pytest.raises(TokenRefreshError) as raised:
                    if grant == "refresh_token":
                        oauth.refresh("r")
                    else:
                        oauth.exchange_code("c", "http://127.0.0.1/cb")
                message = str(raised.value)
                assert f"({grant})" in message, message
                assert "HTTP 200, text/plain" in message and f"{len(body)} bytes" in message, message
                assert leaks(message) == [], message
        finally:
            oauth.close()


def test_refusals_quote_only_the_oauth_error_fields(clock: FakeClock) -> None:
    answers = {
        "oauth": Answer(400, {"error": "invalid_grant", "error_description": "Old refresh token used."}),
        "garbage": Answer(400, f'{{"access_token":"{ACCESS}', JSON),
        "text": Answer(401, f"Old refresh token used ({REFRESH})", {"Content-Type": "text/plain"}),
        "forbidden": Answer(403, f"<html>{ACCESS}</html>", {"Content-Type": "text/html"}),
    }
    current = ["oauth"]
    with StubServer(lambda path: answers[current[0]]) as stub:
        oauth = OAuthClient(stub.base_url, "client", "secret", clock=clock, timeout=5)
        try:
            with pytest.raises(ReauthRequiredError, match="invalid_grant Old refresh token used"):
                oauth.refresh("r")
            current[0] = "garbage"
            with pytest.raises(ExactRequestError) as garbage:
                oauth.refresh("r")
            assert "HTTP 400, application/json" in str(garbage.value) and leaks(str(garbage.value)) == []
            current[0] = "text"  # the marker is still recognised, but only our own words are quoted
            with pytest.raises(ReauthRequiredError) as text:
                oauth.refresh("r")
            assert "'old refresh token'" in str(text.value) and leaks(str(text.value)) == []
            current[0] = "forbidden"
            with pytest.raises(ExactRequestError) as forbidden:
                oauth.refresh("r")
            assert forbidden.value.status_code == 403 and "HTTP 403, text/html" in str(forbidden.value)
            assert leaks(str(forbidden.value)) == []
        finally:
            oauth.close()
