"""Outside development mode a service refuses the published secrets (issue 12, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from services.common.runtime import (
    DevelopmentSecretsRefused,
    ServiceRuntime,
    refuse_development_secrets,
)
from services.common.settings import CommonSettings
from services.intake.config import IntakeSettings
from services.router.config import RouterSettings
from services.rumor_control.config import RumorControlSettings

OWN = {
    "fingerprint_key": SecretStr("an-operator-chosen-fingerprint-key-0123"),
    "link_secret": SecretStr("an-operator-chosen-link-secret"),
    "webhook_secrets": [SecretStr("an-operator-chosen-webhook-secret")],
    "kannel_dlr_secret": SecretStr("an-operator-chosen-dlr-secret"),
    "kannel_mo_secret": SecretStr("an-operator-chosen-sms-reply-secret"),
}


def test_defaults_outside_development_mode_are_refused_naming_each_setting(
    tmp_path: Path,
) -> None:
    settings = CommonSettings(development_mode=False, var_dir=tmp_path)
    with pytest.raises(DevelopmentSecretsRefused) as caught:
        refuse_development_secrets(settings, service="router")
    message = str(caught.value)
    for name in ("AVISO_FINGERPRINT_KEY", "AVISO_LINK_SECRET", "AVISO_WEBHOOK_SECRETS"):
        assert name in message
    assert "change-me" not in message  # names the setting, never the value
    # The runtime itself will not even be built on them.
    with pytest.raises(DevelopmentSecretsRefused):
        ServiceRuntime(name="router", settings=settings)


def test_one_published_secret_among_own_ones_is_named_alone(tmp_path: Path) -> None:
    settings = CommonSettings(
        development_mode=False,
        var_dir=tmp_path,
        **{**OWN, "link_secret": SecretStr("change-me-link-secret")},
    )
    assert settings.development_secrets() == ["AVISO_LINK_SECRET"]


def test_own_secrets_or_development_mode_start(tmp_path: Path) -> None:
    refuse_development_secrets(
        CommonSettings(development_mode=False, var_dir=tmp_path, **OWN), service="router"
    )
    refuse_development_secrets(
        CommonSettings(development_mode=True, var_dir=tmp_path), service="router"
    )


def test_intake_refuses_a_generated_or_published_encryption_key_and_signing_secret(
    tmp_path: Path,
) -> None:
    generated = IntakeSettings(development_mode=False, var_dir=tmp_path, **OWN)
    assert generated.development_secrets() == ["AVISO_INTAKE_ENCRYPTION_KEYS"]
    published = IntakeSettings(
        development_mode=False,
        var_dir=tmp_path,
        intake_encryption_keys=SecretStr("dev1:V0Pt6kow8ZOhlojVCdHtk4KgZEQTLIw5pCsP1D4MS0I="),
        intake_signing_secrets=[SecretStr("change-me-field-office-signing-secret")],
        **OWN,
    )
    assert published.development_secrets() == [
        "AVISO_INTAKE_SIGNING_SECRETS",
        "AVISO_INTAKE_ENCRYPTION_KEYS",
    ]
    own = IntakeSettings(
        development_mode=False,
        var_dir=tmp_path,
        intake_encryption_keys=SecretStr("k1:V0Pt6kow8ZOhlojVCdHtk4KgZEQTLIw5pCsP1D4MS0I="),
        **OWN,
    )
    assert own.development_secrets() == []


def test_the_tests_run_in_development_mode() -> None:
    assert CommonSettings().development_mode is True


def test_the_sms_services_refuse_the_published_sms_secrets(tmp_path: Path) -> None:
    router = RouterSettings(development_mode=False, var_dir=tmp_path, **OWN)
    assert router.development_secrets() == []
    published = {"kannel_dlr_secret": SecretStr("change-me"), "kannel_mo_secret": SecretStr("x")}
    router = RouterSettings(development_mode=False, var_dir=tmp_path, **{**OWN, **published})
    assert router.development_secrets() == ["AVISO_KANNEL_DLR_SECRET"]
    rumor = RumorControlSettings(development_mode=False, var_dir=tmp_path, **OWN)
    assert rumor.development_secrets() == ["AVISO_RUMOR_SMS_NUMBER_KEYS"]
    own_keys = "k1:" + "A" * 43 + "="
    rumor = RumorControlSettings(
        development_mode=False, var_dir=tmp_path, rumor_sms_number_keys=own_keys, **OWN
    )
    assert rumor.development_secrets() == []
    # intake has no SMS: its secrets say nothing about the gateway's.
    intake = IntakeSettings(development_mode=False, var_dir=tmp_path, **OWN)
    assert not [name for name in intake.development_secrets() if "KANNEL" in name]
