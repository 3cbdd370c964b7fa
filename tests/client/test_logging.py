"""Tokens and secrets never reach the logs, whatever path the client takes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import pytest
import structlog
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.errors import ReauthRequiredError
from syncs.core.lazy_logger import LazyLogger
from syncs.core.logging import REDACTED, configure_logging
from syncs.core.settings import Settings
from syncs.exact.client import ExactClient
from syncs.sandbox import SandboxServer
from tests.client.conftest import store_pair
from tests.support.clock import FakeClock
from tests.support.tokens import token_store


@pytest.fixture
def log_stream(client_settings: Settings) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(client_settings.model_copy(update={"log_json": True, "log_level": "DEBUG"}), stream)
    yield stream
    structlog.reset_defaults()


def test_redaction_processor(log_stream: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "event",
        access_token="AT-secret",
        headers={"Authorization": "Bearer BEARER-secret", "nested": [{"refresh_token": "RT-secret"}]},
        note="sent grant_type=refresh_token&refresh_token=FORM-secret&client_secret=CS-secret",
        connection_id=7,
    )
    line = json.loads(log_stream.getvalue())
    text = log_stream.getvalue()
    for secret in ("AT-secret", "BEARER-secret", "RT-secret", "FORM-secret", "CS-secret"):
        assert secret not in text
    assert line["access_token"] == REDACTED and line["connection_id"] == 7


def test_a_lazy_logger_logs_through_the_configured_pipeline(log_stream: io.StringIO) -> None:
    """The modules `status` reads log through a LazyLogger (structlog imported at the first event): the same
    events, redacted alike."""
    LazyLogger("t").warning("ratelimit.release_failed", division="7", access_token="AT-secret")
    line = json.loads(log_stream.getvalue())
    assert line["event"] == "ratelimit.release_failed" and line["level"] == "warning" and line["division"] == "7"
    assert line["access_token"] == REDACTED


def test_redaction_of_json_shaped_secrets_inside_strings(log_stream: io.StringIO) -> None:
    structlog.get_logger("t").warning(
        "event",
        error='token endpoint sent {"access_token": "JAT-secret", "refresh_token":"JRT-secret","expires_in":"600"}',
        cut='starts with \'{"access_token":"CUT-secret',  # a preview cut off inside the value
        escaped='{\\"code\\":\\"ESC-secret\\"}',
        python_repr="{'client_secret': 'PY-secret', 'region': 'nl'}",
        nested=[{"detail": '{"code": "NESTED-secret"}'}],
    )
    text = log_stream.getvalue()
    for secret in ("JAT-secret", "JRT-secret", "CUT-secret", "ESC-secret", "PY-secret", "NESTED-secret"):
        assert secret not in text
    line = json.loads(text)
    assert '"expires_in":"600"' in line["error"] and "'region': 'nl'" in line["python_repr"]
    assert line["error"].count(REDACTED) == 2


def test_refresh_and_failures_never_log_tokens(
    log_stream: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    client_settings: Settings,
    connection_id: int,
    open_exact: Callable[[Settings], ExactClient],
    clock: FakeClock,
) -> None:
    caplog.set_level("DEBUG")
    issued = sandbox.state.issue_tokens()
    secrets = [issued["access_token"], issued["refresh_token"], "sandbox-secret"]
    store_pair(db, client_settings, connection_id, issued, clock.now())
    clock.advance(580)
    with open_exact(client_settings) as exact:
        exact.current_me()  # refreshes in the window
        fresh = token_store(db, client_settings).load(connection_id)
        assert fresh.access_token is not None
        secrets += [fresh.access_token, fresh.refresh_token]
        sandbox.state.revoke_refresh_tokens()
        clock.advance(600)
        with pytest.raises(ReauthRequiredError) as raised:
            exact.current_me()
    output = log_stream.getvalue() + caplog.text + str(raised.value)
    assert "token.refreshed" in output and "token.reauth_required" in output
    for secret in secrets:
        assert secret not in output
