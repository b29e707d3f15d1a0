"""Encryption keys: rotation across restarts, key files, and the development key."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.intake.app import create_app
from services.intake.config import IntakeSettings
from services.intake.crypto import DEV_KEY_FILE_NAME, KeyConfigError, load_keyring
from tests.integration.intake.intake_support import KEY_K1, KEY_K2, run_intake

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_rotating_the_active_key_keeps_older_notices_readable(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    first = intake_settings(intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"))
    async with run_intake(first) as intake:
        old_id = (await intake.created())["id"]
        tokens = intake.tokens

    rotated = intake_settings(
        intake_encryption_keys=SecretStr(f"k1:{KEY_K1},k2:{KEY_K2}"),
        intake_encryption_active_key_id="k2",
    )
    async with run_intake(rotated, tokens=tokens) as intake:
        new_id = (await intake.created())["id"]
        for notice_id in (old_id, new_id):
            detail = (
                await intake.client.get(f"/v1/notices/{notice_id}", headers=intake.auth("contact"))
            ).json()
            assert detail["restricted"]["names"] == ["Esteban Quiroga"]
        sealed = {
            row["notice_id"]: row["restricted_sealed"]
            for row in await intake.rows("notice_versions")
        }
    assert sealed[old_id].startswith("aesgcm1:k1:")
    assert sealed[new_id].startswith("aesgcm1:k2:")


def test_keys_from_a_file(make_settings: Callable[..., IntakeSettings], tmp_path: Path) -> None:
    key_file = tmp_path / "intake.keys"
    key_file.write_text(f"# rotated 2026-11\nk2:{KEY_K2}\nk1:{KEY_K1}\n")
    ring = load_keyring(make_settings(IntakeSettings, intake_encryption_key_file=key_file))
    assert ring.active_key_id == "k2"  # the first listed
    assert set(ring.keys) == {"k1", "k2"}

    missing = make_settings(IntakeSettings, intake_encryption_key_file=tmp_path / "nope")
    with pytest.raises(KeyConfigError, match="cannot read"):
        load_keyring(missing)
    unknown = make_settings(
        IntakeSettings,
        intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"),
        intake_encryption_active_key_id="k9",
    )
    with pytest.raises(KeyConfigError, match="k9"):
        load_keyring(unknown)


def test_a_development_key_is_generated_once_when_none_is_configured(
    make_settings: Callable[..., IntakeSettings],
) -> None:
    settings = make_settings(IntakeSettings)
    ring = load_keyring(settings)
    path = settings.var_dir / DEV_KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.active_key_id == "dev1"
    again = load_keyring(settings)
    assert again.keys == ring.keys  # the same key on the next start


def test_a_short_fingerprint_key_stops_the_service_at_start(
    make_settings: Callable[..., IntakeSettings],
) -> None:
    settings = make_settings(IntakeSettings, fingerprint_key=SecretStr("short"))
    with pytest.raises(ValueError, match="FINGERPRINT_KEY"):
        create_app(settings)
