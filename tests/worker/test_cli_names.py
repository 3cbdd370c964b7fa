"""Connection names follow one rule in every command, and nothing a name holds reaches the terminal raw."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import ConnectInvite, Connection
from syncs.core.settings import Settings
from tests.support.cli import CliInvoke

BAD_NAMES = ("evil\x1b[2J\x07", "a b", "x" * 65, "acme/../etc")


def test_bad_names_are_refused_by_every_command(cli: CliInvoke, db: sessionmaker[Session]) -> None:
    for bad in BAD_NAMES:
        for args in (
            ("connections", "add", bad, "--region", "nl", "--refresh-token", "r"),
            ("connections", "invite", bad, "--region", "nl"),
            ("connect", bad, "--region", "nl", "--no-browser", "--timeout", "1"),
        ):
            result = cli(*args)
            assert result.exit_code == 2, (args, result.output)
            assert "invalid connection name" in result.output and "\x1b" not in result.output
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Connection)) == 0
        assert session.scalar(select(func.count()).select_from(ConnectInvite)) == 0


def test_list_and_status_never_print_control_characters(cli: CliInvoke, db: sessionmaker[Session]) -> None:
    with db.begin() as session:  # a name stored before the rule existed
        session.add(Connection(name="evil\x1b[2J\x07[bold]x", region="nl", status_reason="gone\x1b]0;pwned\x07"))
    for args in (("connections", "list"), ("status",)):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\x07" not in result.output, repr(result.output)
        assert "evil\\x1b[2J\\x07[bold]x" in result.output


def test_invite_prints_a_single_use_link(cli: CliInvoke, sandbox_settings: Settings, db: sessionmaker[Session]) -> None:
    result = cli("connections", "invite", "acme", "--region", "be", "--expires", "2h")
    assert result.exit_code == 0, result.output
    url = result.output.splitlines()[0]
    base = sandbox_settings.exact_redirect_uri.rsplit("/oauth/callback", 1)[0]
    assert url.startswith(f"{base}/connect/acme?invite=") and "single use; connects acme (be)" in result.output
    assert cli("connections", "invite", "acme").exit_code == 2  # a new name needs its region
    assert "--region" in cli("connections", "invite", "acme").output
    assert cli("connections", "invite", "acme", "--region", "nl", "--expires", "40d").exit_code == 2
    with db() as session:
        assert session.scalar(select(func.count()).select_from(ConnectInvite)) == 1
