"""`aviso tokens` issues, lists and revokes real tokens (stored hashed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.common.auth import authenticate
from services.common.db import make_engine, make_session_factory
from services.common.settings import CommonSettings


def _aviso(var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AVISO_VAR_DIR=str(var_dir), AVISO_LOG_LEVEL="WARNING")
    env.pop("DATABASE_URL", None)  # the embedded SQLite store under var_dir
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_issue_list_revoke(tmp_path: Path) -> None:
    issued = _aviso(tmp_path, "tokens", "issue", "--role", "ops", "--name", "Night desk")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("avs_")
    assert "\n" not in token, "stdout holds the token alone"
    assert "shown only this once" in issued.stderr

    listed = _aviso(tmp_path, "tokens", "list")
    assert "Night desk" in listed.stdout
    assert token not in listed.stdout
    token_id = listed.stdout.split()[0]

    settings = CommonSettings(var_dir=tmp_path, database_url=None)
    engine = make_engine(settings, "auth")
    try:
        async with make_session_factory(engine)() as session:
            principal = await authenticate(session, token)
            assert principal is not None
            assert principal.role == "ops"
        assert token not in (tmp_path / "auth.db").read_bytes().decode("latin-1")

        assert _aviso(tmp_path, "tokens", "revoke", token_id).returncode == 0
        async with make_session_factory(engine)() as session:
            assert await authenticate(session, token) is None
    finally:
        await engine.dispose()

    again = _aviso(tmp_path, "tokens", "revoke", token_id)
    assert again.returncode == 1
    assert "no active token" in again.stderr
    unknown_role = _aviso(tmp_path, "tokens", "issue", "--role", "sheriff", "--name", "x")
    assert unknown_role.returncode != 0
    assert "unknown role" in unknown_role.stderr


async def test_the_admin_grants_a_contact_restricted_detail_explicitly(tmp_path: Path) -> None:
    granted = _aviso(
        tmp_path,
        *("tokens", "issue", "--role", "contact", "--name", "Backup SPOC"),
        *("--subject", "backup-being-onboarded", "--grant-restricted"),
    )
    assert granted.returncode == 0, granted.stderr
    assert "granted restricted detail" in granted.stderr
    token = granted.stdout.strip()
    assert token not in granted.stderr
    plain = _aviso(tmp_path, "tokens", "issue", "--role", "contact", "--name", "Other")
    assert "granted" not in plain.stderr
    refused = _aviso(
        tmp_path, "tokens", "issue", "--role", "ops", "--name", "x", "--grant-restricted"
    )
    assert refused.returncode != 0
    assert "contact role only" in refused.stderr

    settings = CommonSettings(var_dir=tmp_path, database_url=None)
    engine = make_engine(settings, "auth")
    try:
        async with make_session_factory(engine)() as session:
            principal = await authenticate(session, token)
            other = await authenticate(session, plain.stdout.strip())
        assert principal is not None
        assert principal.restricted_grant
        assert other is not None
        assert not other.restricted_grant
    finally:
        await engine.dispose()
