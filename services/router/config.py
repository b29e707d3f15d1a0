"""Settings of the router service (environment variables prefixed AVISO_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import CommonSettings, is_development_secret

__all__ = ["RouterSettings"]


class RouterSettings(CommonSettings):
    """Aviso router settings."""

    router_port: int = Field(default=8002, description="HTTP port of the router service.")
    router_group_prefix: str = Field(
        default="router",
        min_length=1,
        max_length=80,
        description=(
            "Prefix of the router's Kafka consumer group (`<prefix>.notices`, alerting). "
            "Instances sharing a prefix share work."
        ),
    )
    router_urgency_horizon_s: float = Field(
        default=2 * 3600,
        gt=0,
        description="An operation starting within this many seconds (or under way) is urgent.",
    )
    router_directory_file: Path | None = Field(
        default=None,
        description=(
            "YAML directory loaded at start when set. It becomes the current directory only when "
            "the file changed since it was last loaded, so edits made through PUT /v1/directory "
            "survive restarts until the file itself changes."
        ),
    )
    router_timer_poll_interval_s: float = Field(
        default=0.5,
        gt=0,
        le=5,
        description=(
            "How soon after a commit that may have set a timer (an event enqueued here, or "
            "another router's NOTIFY) the escalation worker looks again; with nothing heard of "
            "it looks every ten of these. Known deadlines fire on time regardless."
        ),
    )
    router_timer_batch_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description=(
            "Due escalation timers claimed (row-locked) and fired in one transaction; a burst "
            "is fired batch after batch. Larger batches commit less often but hold their rows "
            "(and an acknowledgement of one of them) a little longer."
        ),
    )
    router_timer_concurrency: int = Field(
        default=2,
        ge=1,
        le=8,
        description=(
            "Batches of due escalation timers fired at the same time by one router on "
            "PostgreSQL (each claims different rows); while one batch waits on the database "
            "the next is prepared. SQLite fires one batch at a time (one writer)."
        ),
    )
    router_delivery_give_up_s: float = Field(
        default=900.0,
        gt=0,
        description=(
            "How long a notification keeps being retried (backoff, jitter) while its alert is "
            "open; after this its channel has failed for good (alert.delivery_failed final)."
        ),
    )
    router_ack_link_ttl_s: float = Field(
        default=12 * 3600,
        gt=0,
        description="Lifetime of the signed one-click acknowledgement link in each notification.",
    )
    router_intake_base_url: str = Field(
        default="http://127.0.0.1:8001",
        description=(
            "Base URL of intake put in notifications: the restricted detail is read there "
            "(GET /v1/notices/{id} with a contact token), never sent over a channel."
        ),
    )
    router_metrics_refresh_s: float = Field(
        default=5.0, gt=0, description="How often the open-alerts gauge is recounted."
    )
    router_outbox_linger_ms: float = Field(
        default=300.0,
        ge=0,
        description="How long router's relay holds events handed to it for more before it "
        "publishes them in one produce round and deletes them in one statement: a few "
        "notices' alert events go together at 10 notices a second (none is on the SPOC's "
        "path; rumor control's fetch waits up to a second anyway). A directory change goes "
        "at once (intake's access decisions follow it). 0: each as it comes. Cut to a "
        "sixth of AVISO_OUTBOX_CLAIM_TTL_S when longer.",
    )

    def development_secrets(self) -> list[str]:
        """The common ones, and the SMS gateway's: report signatures and the reply secret."""
        found = super().development_secrets()
        if is_development_secret(self.kannel_dlr_secret):
            found.append("AVISO_KANNEL_DLR_SECRET")
        if is_development_secret(self.kannel_mo_secret):
            found.append("AVISO_KANNEL_MO_SECRET")
        return found
