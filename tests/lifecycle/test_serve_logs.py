"""No invite, code, state or token reaches the output of a real `exact-sync serve` process (access log included)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.crypto import TokenCipher
from syncs.core.settings import Settings
from syncs.lifecycle.invites import create_invite
from tests.lifecycle.conftest import callback_params, consent, stored
from tests.support.cli import settings_env

ROOT = Path(__file__).resolve().parents[2]
SERVE = [sys.executable, "-c", "from worker.cli import app; app()", "serve"]


def test_serve_logs_no_secrets(life_settings: Settings, db: sessionmaker[Session], tmp_path: Path) -> None:
    key = life_settings.token_encryption_key
    assert key is not None
    port = urlsplit(life_settings.exact_redirect_uri).port
    made = create_invite(life_settings, db, TokenCipher(key.get_secret_value()), "acme", "nl")
    output = tmp_path / "serve.log"
    env = {**os.environ, **settings_env(life_settings, WEB_PORT=str(port), LOG_LEVEL="DEBUG")}
    with output.open("wb") as sink:
        process = subprocess.Popen(SERVE, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/health")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, output.read_text()
                time.sleep(0.1)
        with httpx.Client() as browser:
            started = browser.post(made.url)
            location = consent(started.headers["location"])
            params = callback_params(location)
            assert "connected" in browser.get(location).text
            assert browser.get(f"{base}/connect/acme?invite=guessed-invite").status_code == 403
            assert httpx.get(location).status_code == 400  # replayed, from a browser without the cookie
    finally:
        process.terminate()
        process.wait(10)
    assert stored(db) == (1, 1)
    logged = output.read_text()
    assert "connect.completed" in logged  # the log is captured, and the app does log
    secrets = [made.url.split("invite=")[1], params["code"], params["state"], "guessed-invite"]
    for secret in secrets:
        assert secret not in logged, logged
    assert "/oauth/callback?" not in logged and "invite=" not in logged, logged
