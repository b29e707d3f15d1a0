"""Console building blocks without I/O: passwords, TOTP, sealing, lock-out, CSRF, catalogs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from cryptography.exceptions import InvalidTag

from services.common.auth import Role
from services.console.accounts import LockoutPolicy, SecretBox
from services.console.accounts.secrets import (
    TOTP_STEP_S,
    hash_password,
    matching_totp_step,
    verify_password,
)
from services.console.app import load_places
from services.console.http.bulletins import _sms_facts
from services.console.i18n import LANGUAGES, catalog, pick_language, translator
from services.console.permissions import HOME, NAV
from services.console.security import csrf_token, csrf_valid

NOW = datetime(2026, 11, 27, 15, 0, 10, tzinfo=UTC)
TEMPLATES = Path("services/console/templates")


def test_password_hash_is_argon2id_and_verifies_only_the_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert not verify_password(None, "correct horse battery")  # unknown login


def test_totp_code_matches_its_step_once_and_never_an_older_one() -> None:
    secret = pyotp.random_base32()
    code = pyotp.TOTP(secret).at(NOW)
    step = matching_totp_step(secret, code, now=NOW, after=None)
    assert step == int(NOW.timestamp()) // TOTP_STEP_S
    # Replayed: the same step was already accepted.
    assert matching_totp_step(secret, code, now=NOW, after=step) is None
    # Last step's code is still good (clock skew), two steps ago is not.
    previous = pyotp.TOTP(secret).at(NOW - timedelta(seconds=TOTP_STEP_S))
    assert matching_totp_step(secret, previous, now=NOW, after=None) == step - 1
    old = pyotp.TOTP(secret).at(NOW - timedelta(seconds=3 * TOTP_STEP_S))
    assert matching_totp_step(secret, old, now=NOW, after=None) is None
    assert matching_totp_step(secret, "12ab56", now=NOW, after=None) is None


def test_sealed_totp_secret_opens_only_for_its_user_and_key() -> None:
    box = SecretBox("key-one")
    sealed = box.seal("JBSWY3DPEHPK3PXP", user_id="u1")
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed, user_id="u1") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(InvalidTag):
        box.open(sealed, user_id="u2")
    with pytest.raises(InvalidTag):
        SecretBox("key-two").open(sealed, user_id="u1")


def test_lockout_starts_at_the_limit_doubles_and_is_capped() -> None:
    policy = LockoutPolicy(max_failures=5, first_lock_s=60, max_lock_s=600)
    assert policy.lock_for(4) is None
    assert policy.lock_for(5) == timedelta(seconds=60)
    assert policy.lock_for(6) == timedelta(seconds=120)
    assert policy.lock_for(20) == timedelta(seconds=600)


def test_csrf_token_is_bound_to_its_session() -> None:
    token = csrf_token("secret", "session-a")
    assert csrf_valid("secret", "session-a", token)
    assert not csrf_valid("secret", "session-b", token)
    assert not csrf_valid("other-secret", "session-a", token)
    assert not csrf_valid("secret", None, token)
    assert not csrf_valid("secret", "session-a", "")


def test_both_catalogs_have_the_same_keys_and_every_template_key_exists() -> None:
    english, spanish = catalog("en"), catalog("es")
    assert set(english) == set(spanish)
    assert english["signin.title"] != spanish["signin.title"]
    import re

    used = {
        key
        for template in TEMPLATES.glob("*.j2")
        for key in re.findall(r"t\('([a-z_.]+[a-z_])'", template.read_text("utf-8"))
    }
    assert used, "no message keys found in the templates"
    assert used <= set(english), used - set(english)


def test_language_is_the_users_choice_else_the_browsers() -> None:
    assert pick_language("es", "en-US") == "es"
    assert pick_language(None, "es-MX,es;q=0.9,en;q=0.5") == "es"
    assert pick_language(None, "fr-FR") == "en"
    assert translator("es")("alerts.age", minutes=3) == "hace 3 min"


def test_sms_facts_count_segments_by_encoding() -> None:
    assert _sms_facts("a" * 160) == {"length": 160, "encoding": "GSM-7", "segments": 1}
    assert _sms_facts("a" * 161)["segments"] == 2
    assert _sms_facts("¿Redadas mañana? ✔")["encoding"] == "UCS-2"


def test_every_role_has_a_home_and_navigation() -> None:
    assert set(HOME) == set(Role) == set(NAV)
    assert HOME[Role.CONTACT] == "/alerts"
    assert all("/alerts" not in path for path, _ in NAV[Role.VETTER])


def test_places_come_from_the_gazetteer_spanish_first() -> None:
    places = load_places(Path("services/rumor_control/gazetteer.yaml"))
    assert ("district-4", "Distrito 4") in places
    assert places.index(("district-4", "Distrito 4")) < places.index(("district-4", "District 4"))
    assert set(LANGUAGES) == {"en", "es"}


def test_the_console_refuses_its_published_secret_outside_development_mode(
    tmp_path: Path,
) -> None:
    from pydantic import SecretStr

    from services.common.runtime import DevelopmentSecretsRefused
    from services.console.app import create_app
    from services.console.config import ConsoleSettings

    published = ConsoleSettings(development_mode=False, var_dir=tmp_path)
    assert published.development_secrets() == ["AVISO_CONSOLE_SECRET"]
    with pytest.raises(DevelopmentSecretsRefused) as caught:
        create_app(published, migrate=False)
    assert "AVISO_CONSOLE_SECRET" in str(caught.value)
    assert "change-me" not in str(caught.value)
    # Its own secret starts it, whatever the services' shared secrets hold (it uses none).
    own = ConsoleSettings(
        development_mode=False, var_dir=tmp_path, console_secret=SecretStr("an-operator-key-42")
    )
    assert own.development_secrets() == []
    assert create_app(own, migrate=False).state.deps is not None
    assert create_app(ConsoleSettings(development_mode=True, var_dir=tmp_path), migrate=False)
