"""Process settings, read once from the environment (and an optional `.env` file).

Every setting has an `AVISO_`-prefixed environment variable; the two addresses an
operator sets most often also answer to their conventional names,
`DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_DEPARTMENT_TIMEZONE",
    "CommonSettings",
    "get_settings",
    "is_development_secret",
    "repo_root",
]

# The example department's zone (the story's city is in US Central time).
DEFAULT_DEPARTMENT_TIMEZONE = "America/Chicago"

# Every secret published with Aviso contains one of these: the defaults and the compose file
# ("change-me"), the Kubernetes example ("REPLACE-").
_PUBLISHED_SECRET_MARKERS = ("change-me", "REPLACE-")


def is_development_secret(secret: SecretStr) -> bool:
    """Whether `secret` is one of the values published with Aviso (a default or an example)."""
    value = secret.get_secret_value()
    return any(marker in value for marker in _PUBLISHED_SECRET_MARKERS)


def repo_root() -> Path:
    """The checkout this code runs from (where `deploy/` and `var/` live)."""
    return Path(__file__).resolve().parents[2]


class CommonSettings(BaseSettings):
    """Settings every Aviso process shares; services subclass it for their own."""

    model_config = SettingsConfigDict(
        env_prefix="AVISO_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AVISO_DATABASE_URL", "DATABASE_URL"),
        description=(
            "SQLAlchemy URL of the PostgreSQL database (postgresql+asyncpg://...). "
            "Unset: each component uses its own SQLite file under var_dir."
        ),
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("AVISO_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of the Kafka cluster.",
    )
    var_dir: Path = Field(
        default_factory=lambda: repo_root() / "var",
        description="Where SQLite files, logs and local broker data live.",
    )
    log_level: str = Field(default="INFO", description="Minimum log level.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a TTY, JSON lines otherwise."
    )
    log_file: Path | None = Field(
        default=None, description="Also append JSON log lines to this file."
    )
    development_mode: bool = Field(
        default=False,
        description=(
            "Local development: accept the published development secrets. Outside it a "
            "service refuses to start while any secret setting holds one (`make run`, "
            "`aviso up` and the tests set it)."
        ),
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    trusted_proxies: str | None = Field(
        default=None,
        description=(
            "Comma-separated addresses or networks (e.g. `127.0.0.1` or `10.0.0.0/8`) of "
            "reverse proxies whose X-Forwarded-For and X-Forwarded-Proto a service believes: "
            "the client address in the request's log line and the request's scheme. Unset: "
            "none, the client is the connection's peer. Set it when a proxy fronts the "
            "services, to the proxy's address."
        ),
    )
    metrics_address: str | None = Field(
        default=None,
        pattern=r"^[^\s:]*:[0-9]{1,5}$",
        description=(
            "host:port to serve `/metrics` on instead of the service's own port (e.g. an "
            "interface only the monitoring network reaches); set it per process."
        ),
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base URL used in links sent to people (defaults to http://host:port).",
    )
    console_base_url: str | None = Field(
        default=None,
        description=(
            "Base URL of the console as people reach it (e.g. https://aviso.example.gov). "
            "When set, every notification links to the console's page of its alert or "
            "bulletin; unset, alerts link to intake's API (contact token required)."
        ),
    )
    department_timezone: str = Field(
        default=DEFAULT_DEPARTMENT_TIMEZONE,
        validation_alias=AliasChoices("AVISO_DEPARTMENT_TIMEZONE", "AVISO_ROUTER_DISPLAY_TIMEZONE"),
        description=(
            "IANA time zone of the department: every time a person reads (router "
            "notifications, bulletins, radio scripts, CAP messages) is shown in it. "
            "AVISO_ROUTER_DISPLAY_TIMEZONE is its former name, still read."
        ),
    )
    max_body_bytes: int = Field(default=64 * 1024, description="Largest accepted request body.")
    consumer_max_attempts: int = Field(
        default=3, ge=1, description="Tries (K) before a message goes to the DLQ."
    )
    consumer_backoff_s: float = Field(
        default=0.2, ge=0, description="First retry delay; doubles on each further try."
    )
    consumer_session_timeout_ms: int = Field(
        default=2_000,
        ge=1_000,
        description=(
            "How long Kafka waits for a silent consumer before giving its partitions to "
            "another instance (failover time after a crash); heartbeats go every third of it. "
            "The brokers' group.min.session.timeout.ms must not exceed it (Kafka's default is "
            "6000: lower it, or raise this)."
        ),
    )
    consumer_commit_every: int = Field(
        default=100,
        ge=1,
        description=(
            "Processed messages after which a consumer commits its offsets (1: after each). "
            "The inbox makes the messages a crash re-delivers no-ops."
        ),
    )
    consumer_batch_max: int = Field(
        default=20,
        ge=1,
        le=1_000,
        description=(
            "Most messages a consumer applies in one transaction: what Kafka has already "
            "fetched, up to this many (1: one transaction per message). A batch that fails "
            "is applied again one message at a time. Every message of a batch waits for its "
            "commit: more saves little per message and lengthens that wait."
        ),
    )
    consumer_commit_interval_ms: int = Field(
        default=5_000,
        ge=1,
        description=(
            "Longest a processed message's offset waits to be committed; offsets are also "
            "committed before a rebalance and on stop. Each commit is a request the broker "
            "answers: at 10 messages a second, one every 5 s instead of every second. A "
            "crash re-delivers up to this much (the inbox makes it a no-op)."
        ),
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=1_000,
        ge=1,
        le=30_000,
        description=(
            "Longest an idle consumer's fetch waits at the broker for a record (a long-poll: "
            "a record that arrives is returned at once). Longer means fewer empty fetches "
            "while idle, but failover after a crash takes up to this much longer than the "
            "session timeout (the survivor's next fetch queues behind the one in flight)."
        ),
    )
    outbox_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Fallback poll of the outbox; commits wake the relay at once. Five times "
            "longer while the relay listens for PostgreSQL's NOTIFY."
        ),
    )
    outbox_batch_size: int = Field(default=100, ge=1, description="Rows a relay claims per round.")
    outbox_claim_ttl_s: float = Field(
        default=2.0,
        gt=0,
        description=(
            "Lease of a relay's claim on outbox rows, renewed every third of it while the relay "
            "publishes: how long a crashed relay's rows wait before another relay takes them."
        ),
    )
    outbox_retention_s: float = Field(
        default=7 * 86_400,
        ge=60,
        description=(
            "How long an outbox row marked sent by an earlier release is kept (the relay "
            "now deletes a row once Kafka has it; unsent rows are never deleted). A worker "
            "of every service deletes older ones, in small batches."
        ),
    )
    inbox_retention_s: float = Field(
        default=30 * 86_400,
        ge=3_600,
        description=(
            "How long a consumer remembers a message it applied, so a redelivery changes "
            "nothing. Keep it longer than the topics' retention (Kafka's default is 7 "
            "days): a message replayed after its claim is gone would be applied again."
        ),
    )
    messaging_prune_interval_s: float = Field(
        default=3_600,
        gt=0,
        description="How often each service deletes outbox rows and inbox claims past retention.",
    )
    shutdown_grace_s: float = Field(
        default=20.0, gt=0, description="Time allowed for in-flight work on SIGTERM."
    )
    fingerprint_key: SecretStr = Field(
        default=SecretStr("aviso-dev-fingerprint-key-change-me"),
        description="HMAC key fingerprinting restricted terms (intake and rumor_control share it).",
    )
    link_secret: SecretStr = Field(
        default=SecretStr("aviso-dev-link-secret-change-me"),
        description="HMAC key for one-click acknowledgement and receipt links.",
    )
    auth_cache_ttl_s: float = Field(default=30.0, ge=0, description="Token lookup cache lifetime.")
    webhook_secrets: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("aviso-dev-webhook-secret-change-me")],
        description=(
            "Secrets that sign outgoing webhooks (Aviso-Signature); the first signs, list several "
            "while receivers rotate. JSON list in the environment."
        ),
    )
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="Timeout of one webhook call.")
    smtp_host: str = Field(default="127.0.0.1", description="SMTP relay for e-mail delivery.")
    smtp_port: int = Field(default=8025, description="SMTP relay port.")
    smtp_sender: str = Field(
        default="aviso@localhost", description="From address of e-mail Aviso sends."
    )
    smtp_starttls: bool = Field(default=False, description="Use STARTTLS with the relay.")
    smtp_username: str | None = Field(default=None, description="SMTP login, when required.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one SMTP session.")
    smtp_pool_size: int = Field(
        default=16,
        ge=1,
        description=(
            "SMTP connections kept open to the relay and reused, opened as needed. Every "
            "e-mail of a process goes over them: a send waiting for one is a send the "
            "delivery engine counts as under way (with 4, e-mails at 200/s waited here for "
            "seconds on a busy host)."
        ),
    )
    kannel_sendsms_url: str = Field(
        default="http://127.0.0.1:13013/cgi-bin/sendsms",
        description="Kannel smsbox's sendsms URL (SMS delivery).",
    )
    kannel_username: str = Field(default="aviso", description="Kannel sendsms-user name.")
    kannel_password: SecretStr = Field(
        default=SecretStr("aviso-dev-kannel-password-change-me"),
        description="Kannel sendsms-user password.",
    )
    kannel_sender: str = Field(
        default="", description="Sender number or short code of outgoing SMS ('': Kannel's own)."
    )
    kannel_dlr_url: str | None = Field(
        default=None,
        description=(
            "Aviso's delivery-report endpoint Kannel calls back (delivery id, status and a "
            "signature are added). Unset: the service's own `/sms/reports` at its public base "
            "URL."
        ),
    )
    kannel_dlr_secret: SecretStr = Field(
        default=SecretStr("aviso-dev-kannel-dlr-secret-change-me"),
        description="Signs the delivery id in delivery-report callbacks so they cannot be forged.",
    )
    kannel_max_segments: int = Field(
        default=6,
        ge=1,
        le=255,
        description="Longest SMS sent, in segments; at most the sendsms-user's max-messages.",
    )
    kannel_timeout_s: float = Field(
        default=5.0, gt=0, description="Timeout of one sendsms request."
    )
    kannel_mo_secret: SecretStr = Field(
        default=SecretStr("aviso-dev-kannel-mo-secret-change-me"),
        description=(
            "Shared secret Kannel's sms-service puts in the reply URL (`key=`): a reply "
            "(mobile-originated SMS) without it is refused."
        ),
    )
    kannel_handset_attempts: int = Field(
        default=2,
        ge=1,
        description=(
            "Sends of one SMS in all when the gateway reports that the handset did not get "
            "it; after the last, the channel has failed (the next channel or step follows)."
        ),
    )
    kannel_handset_retry_s: float = Field(
        default=30.0,
        gt=0,
        description="Wait before sending an SMS again after a handset failure report.",
    )
    delivery_max_in_flight: int = Field(
        default=64, ge=1, description="Deliveries one process sends at once (all destinations)."
    )
    delivery_per_destination: int = Field(
        default=4,
        ge=1,
        description=(
            "Deliveries one process starts sending at once to one address; an address that "
            "answers quickly earns more, up to AVISO_DELIVERY_PER_DESTINATION_MAX, and one "
            "that times out or fails gets half (a slow one waits alone)."
        ),
    )
    delivery_per_destination_max: int = Field(
        default=32,
        ge=1,
        description=(
            "Most deliveries one process sends at once to one address that keeps answering "
            "quickly (the adaptive limit's ceiling; set it to AVISO_DELIVERY_PER_DESTINATION "
            "for a fixed limit)."
        ),
    )
    delivery_fast_answer_s: float = Field(
        default=0.25,
        gt=0,
        description=(
            "A successful delivery answered within this many seconds raises its address's "
            "limit by one (see AVISO_DELIVERY_PER_DESTINATION_MAX)."
        ),
    )
    delivery_lease_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How long a claim on a delivery being sent lasts unless renewed. Long, because a "
            "process slowed down by load must not lose a send another would repeat (a person "
            "would read it twice); the price is that a crashed process's in-flight deliveries "
            "wait up to this long. Pending deliveries are never held by a lease."
        ),
    )
    delivery_heartbeat_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "How often the heartbeat looks at the claims of deliveries in flight (at most half "
            "a lease); each is renewed once half its lease, or two heartbeats, is left."
        ),
    )
    delivery_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "When another process's commit that may have made deliveries due is heard of "
            "(PostgreSQL's NOTIFY), the dispatcher looks again no sooner than this after its "
            "last look; this process's own accepts wake it at once."
        ),
    )
    delivery_idle_poll_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Safety poll for due deliveries when nothing is due and nothing was heard of "
            "(known retry and lease times wake the dispatcher on time); at most the lease."
        ),
    )
    delivery_retry_base_s: float = Field(
        default=1.0, gt=0, description="Ceiling of the first retry delay (full jitter, doubling)."
    )
    delivery_retry_max_s: float = Field(
        default=60.0, gt=0, description="Largest retry delay of a delivery."
    )
    delivery_breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Consecutive failures to one address that open its circuit breaker.",
    )
    delivery_breaker_cooldown_s: float = Field(
        default=15.0,
        gt=0,
        description="How long an open breaker skips its address before one probe is tried.",
    )
    delivery_sibling_wait_ms: int = Field(
        default=25,
        ge=0,
        le=1000,
        description=(
            "How long a finished delivery's outcome waits for deliveries of the same alert or "
            "bulletin still being sent (an alert's webhook, e-mail and SMS), so that one "
            "transaction records them together. Not while new orders wait or the engine is "
            "busy; 0 records each outcome at once."
        ),
    )
    delivery_outcome_linger_ms: int = Field(
        default=40,
        ge=0,
        le=1000,
        description=(
            "At a steady rate (sends under way, or a round this long ago), how long the "
            "oldest finished delivery's outcome waits for more outcomes (other alerts' or "
            "bulletins'), so that one statement records them together. At most a quarter of "
            "the lease; not while new orders wait or the engine is busy; 0 turns it off."
        ),
    )
    delivery_hand_off: bool = Field(
        default=True,
        description=(
            "Whether a delivery accepted while this process's engine has free slots is "
            "claimed by it in the accepting transaction and sent as soon as that commits "
            "(no claim transaction). Off: every delivery waits for a claim."
        ),
    )

    @field_validator("department_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)  # an unknown zone stops the start, not the first notification
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    def development_secrets(self) -> list[str]:
        """Environment names of the secret settings that hold a published development value."""
        found: list[str] = []
        checked = {
            "AVISO_FINGERPRINT_KEY": [self.fingerprint_key],
            "AVISO_LINK_SECRET": [self.link_secret],
            "AVISO_WEBHOOK_SECRETS": list(self.webhook_secrets),
        }
        for name, secrets in checked.items():
            if any(is_development_secret(secret) for secret in secrets):
                found.append(name)
        return found


SettingsT = TypeVar("SettingsT", bound=CommonSettings)


@cache
def _cached(cls: type[CommonSettings]) -> CommonSettings:
    return cls()


def get_settings(cls: type[SettingsT] = CommonSettings) -> SettingsT:  # type: ignore[assignment]
    """The settings of class `cls`, read from the environment once per process."""
    settings = _cached(cls)
    assert isinstance(settings, cls)
    return settings
