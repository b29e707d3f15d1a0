"""`aviso users create|disable|reset` on the embedded auth store, as an operator runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp

from services.common.db import make_engine, make_session_factory
from services.console.accounts import LockoutPolicy, SecretBox, sign_in
from services.console.config import ConsoleSettings

SECRET = "cli-test-console-secret"


def _aviso(var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        AVISO_VAR_DIR=str(var_dir),
        AVISO_LOG_LEVEL="WARNING",
        AVISO_CONSOLE_SECRET=SECRET,
    )
    env.pop("DATABASE_URL", None)  # the embedded SQLite store under var_dir
    env.pop("AVISO_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "users", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _secrets(output: str) -> tuple[str, str]:
    password = re.search(r"^password:\s+(\S+)$", output, re.M)
    secret = re.search(r"^TOTP secret:\s+(\S+)$", output, re.M)
    assert password is not None, output
    assert secret is not None, output
    assert re.search(r"^TOTP URI:\s+otpauth://totp/", output, re.M), output
    return password.group(1), secret.group(1)


async def _try(var_dir: Path, password: str, secret: str, *, at: datetime) -> str | None:
    settings = ConsoleSettings(var_dir=var_dir, database_url=None)
    engine = make_engine(settings, "auth")
    try:
        async with make_session_factory(engine).begin() as session:
            result = await sign_in(
                session,
                box=SecretBox(SECRET),
                login="a.reyes",
                password=password,
                code=pyotp.TOTP(secret).at(at),
                now=at,
                ttl=timedelta(hours=1),
                policy=LockoutPolicy(),
            )
    finally:
        await engine.dispose()
    return result.reason if result.session is None else None


async def test_create_disable_reset(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    created = _aviso(
        tmp_path,
        "create",
        "--login",
        "a.reyes",
        "--name",
        "A. Reyes",
        "--role",
        "contact",
        "--subject",
        "3f0e7a53-0000-4000-8000-000000000001",
    )
    assert created.returncode == 0, created.stderr
    assert "shown only this once" in created.stderr
    password, secret = _secrets(created.stdout)
    assert password.encode() not in (tmp_path / "auth.db").read_bytes()
    assert secret.encode() not in (tmp_path / "auth.db").read_bytes()
    assert await _try(tmp_path, password, secret, at=now) is None

    assert _aviso(tmp_path, "disable", "a.reyes").returncode == 0
    later = now + timedelta(seconds=60)
    assert await _try(tmp_path, password, secret, at=later) == "disabled"

    reset = _aviso(tmp_path, "reset", "a.reyes")
    assert reset.returncode == 0, reset.stderr
    new_password, new_secret = _secrets(reset.stdout)
    assert new_password != password
    assert await _try(tmp_path, new_password, new_secret, at=later) is None

    taken = _aviso(tmp_path, "create", "--login", "a.reyes", "--name", "x", "--role", "ops")
    assert taken.returncode != 0
    assert "taken" in taken.stderr
    bad_role = _aviso(tmp_path, "create", "--login", "x.y", "--name", "x", "--role", "sheriff")
    assert bad_role.returncode != 0


def test_users_refuses_the_published_console_secret_outside_development_mode(
    tmp_path: Path,
) -> None:
    env = dict(os.environ, AVISO_VAR_DIR=str(tmp_path), AVISO_DEVELOPMENT_MODE="false")
    for name in ("AVISO_CONSOLE_SECRET", "DATABASE_URL", "AVISO_DATABASE_URL"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "users", "create", "--login", "a.reyes",
         "--name", "A. Reyes", "--role", "contact"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "AVISO_CONSOLE_SECRET" in done.stderr
    assert "password:" not in done.stdout  # nothing was created or shown
