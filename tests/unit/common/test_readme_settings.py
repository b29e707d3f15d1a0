"""The README's configuration reference is generated from the settings classes and kept in step."""

from __future__ import annotations

from services.common.settings_doc import main, render


def test_readme_configuration_reference_matches_the_settings_classes() -> None:
    assert main(["--check"]) == 0, "run `python -m services.common.settings_doc`"


def test_reference_names_every_common_setting_and_its_env_var() -> None:
    table = render()
    assert "`DATABASE_URL`" in table
    assert "`KAFKA_BOOTSTRAP_SERVERS`" in table
    assert "`AVISO_CONSUMER_MAX_ATTEMPTS`" in table
