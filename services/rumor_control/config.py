"""Settings of the rumor_control service (environment variables prefixed AVISO_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from services.common.settings import CommonSettings, is_development_secret

__all__ = ["DEV_SMS_NUMBER_KEYS", "PACKAGE_DIR", "RumorControlSettings"]

PACKAGE_DIR = Path(__file__).resolve().parent
# Published with Aviso for local use only: refused outside development mode.
DEV_SMS_NUMBER_KEYS = "dev1:YXZpc28tcHVibGlzaGVkLXNtcy1udW1iZXIta2V5ISE="


class RumorControlSettings(CommonSettings):
    """Aviso rumor control settings."""

    rumor_control_port: int = Field(
        default=8003, description="HTTP port of the rumor_control service."
    )
    rumor_department_file: Path | None = Field(
        default=None,
        description="Department configuration (policy statement, phone line, partners, "
        "liaisons, radio desk). Unset: the bundled services/rumor_control/department.yaml.",
    )
    rumor_gazetteer_file: Path | None = Field(
        default=None,
        description="Gazetteer of the city's districts and neighbourhoods. Unset: the bundled "
        "services/rumor_control/gazetteer.yaml.",
    )
    rumor_cluster_window_minutes: int = Field(
        default=180,
        ge=1,
        description="Reports about the same place whose times lie within this many minutes of "
        "a rumor's reports join that rumor.",
    )
    rumor_assessment_valid_minutes: int = Field(
        default=240,
        ge=1,
        description="Default lifetime of a rumor assessment before it must be re-checked.",
    )
    rumor_notice_slack_minutes: int = Field(
        default=120,
        ge=0,
        description="How far outside a notice's window a report's time may lie and still be "
        "suggested as related to it (docs/operations.md, the suggestion rule).",
    )
    rumor_anticipation_hours: float = Field(
        default=72,
        ge=0,
        description="A report whose claim names no time is related to a notice whose window "
        "starts up to this many hours after the report (a rumor heard today about tomorrow's "
        "operation).",
    )
    rumor_radio_words_per_minute: int = Field(
        default=150, ge=60, le=300, description="Reading speed assumed for the radio script."
    )
    rumor_radio_max_seconds: int = Field(
        default=120,
        ge=10,
        description="Longest radio script (per language) a bulletin may carry, at the WPM above.",
    )
    rumor_sms_max_segments: int = Field(
        default=4, ge=1, le=10, description="Most SMS segments the short text may take."
    )
    rumor_receipt_link_ttl_days: int = Field(
        default=30, ge=1, description="How long a liaison's receipt link stays valid."
    )
    rumor_consumer_fetch_min_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        le=50 * 1024 * 1024,
        description="Bytes of events the broker gathers before it answers rumor control's "
        "fetch, or the fetch wait (AVISO_CONSUMER_FETCH_MAX_WAIT_MS) passes: a notice or an "
        "acknowledgement reaches rumor control up to that wait later, in one fetch with the "
        "others, instead of a fetch for each event (it is on no one's urgent path; most of "
        "the alert events it is sent it skips). 1: each event as it lands.",
    )
    rumor_outbox_linger_ms: float = Field(
        default=30.0,
        ge=0,
        description="How long rumor control's relay holds events handed to it for more "
        "before it publishes them in one produce round and deletes them in one statement "
        "(its events are on no one's urgent path). 0: each as it comes. At most a sixth of "
        "AVISO_OUTBOX_CLAIM_TTL_S.",
    )
    rumor_consumer_session_timeout_ms: int = Field(
        default=6_000,
        ge=1_000,
        description="How long Kafka waits for a silent rumor control member before another "
        "instance takes its partitions (its heartbeats go every third of it). Longer than "
        "AVISO_CONSUMER_SESSION_TIMEOUT_MS: its projections are on no one's urgent path, so "
        "it heartbeats a third as often (each heartbeat is a request the broker answers) and "
        "is the member least likely to be evicted while its event loop is busy. Kafka's own "
        "group.min.session.timeout.ms (6000 by default) must not exceed it.",
    )
    rumor_group_prefix: str = Field(
        default="",
        description="Prefix of the Kafka consumer group ids (tests give each app its own).",
    )
    rumor_delivery_give_up_s: float = Field(
        default=7200,
        gt=0,
        description="How long after approval (or retraction) a bulletin delivery to a liaison "
        "or the radio desk keeps being retried before it is recorded as failed.",
    )
    rumor_sms_subscribers: bool = Field(
        default=True,
        description=(
            "Community subscribers by SMS: phones text JOIN/UNIRME (and confirm) to get "
            "bulletins in their language, STOP/ALTO and START/ALTA; needs the SMS gateway."
        ),
    )
    rumor_sms_number_keys: SecretStr = Field(
        default=SecretStr(DEV_SMS_NUMBER_KEYS),
        description=(
            "AES-256-GCM keys (`id:<base64 32 bytes>`, comma-separated, the first seals new "
            "numbers) that encrypt subscribers' phone numbers at rest."
        ),
    )

    def development_secrets(self) -> list[str]:
        """The common ones, the SMS keyword secret and the key sealing subscribers' numbers."""
        found = super().development_secrets()
        if is_development_secret(self.kannel_mo_secret):
            found.append("AVISO_KANNEL_MO_SECRET")
        if self.rumor_sms_number_keys.get_secret_value() == DEV_SMS_NUMBER_KEYS:
            found.append("AVISO_RUMOR_SMS_NUMBER_KEYS")
        return found
