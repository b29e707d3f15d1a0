"""The local infrastructure Aviso needs: a Kafka broker, its topics, optionally PostgreSQL,
the Kannel SMS gateway (with its fake SMSC) and an OpenID Provider for the console.

    python -m deploy.local.stack up [--with-postgres] [--with-kannel] [--with-oidc]
                                    [--env-file var/stack.env]
    python -m deploy.local.stack down [--purge]
    python -m deploy.local.stack status

``up`` prints shell ``export`` lines on stdout (and writes them to the env
file), so either of these works::

    eval "$(python -m deploy.local.stack up --with-postgres)"
    python -m deploy.local.stack up && . var/stack.env

``aviso up`` calls :func:`start_kafka`, :func:`start_postgres` and
:func:`stop_all` directly.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlencode

from deploy.local import kafka, kannel, oidc, postgres
from deploy.local.common import (
    LOOPBACK,
    InfraError,
    default_var_dir,
    remove_quietly,
    run_sync,
    say,
)

__all__ = [
    "DEFAULT_TOPICS",
    "main",
    "start_kafka",
    "start_kannel",
    "start_local_kannel",
    "start_oidc",
    "start_postgres",
    "stop_all",
    "write_env_file",
]

COMPONENT = "stack"

# The contract's topics (BRIEF.md). Listed here rather than imported from
# schemas/ so the tooling runs before the project is even installed.
DEFAULT_TOPICS: tuple[str, ...] = (
    "aviso.notices.v1",
    "aviso.alerts.v1",
    "aviso.rumors.v1",
    "aviso.bulletins.v1",
    "aviso.dlq.v1",
    "aviso.directory.v1",
)


def _var(var_dir: Path | None) -> Path:
    return (var_dir or default_var_dir()).resolve()


def start_kafka(
    *,
    var_dir: Path | None = None,
    port: int | None = None,
    topics: Sequence[str] = DEFAULT_TOPICS,
    partitions: int = 3,
    replication_factor: int = 1,
    timeout: float = kafka.DEFAULT_READY_TIMEOUT,
) -> str:
    """Start (or find) the broker, create the topics, return the bootstrap address."""
    bootstrap = kafka.start(port=port, data_dir=_var(var_dir) / "kafka", timeout=timeout)
    if topics:
        created = run_sync(
            lambda: kafka.ensure_topics(
                bootstrap,
                list(topics),
                partitions=partitions,
                replication_factor=replication_factor,
            )
        )
        detail = f"created {', '.join(created)}" if created else "all present already"
        say(COMPONENT, f"topics ready ({detail})")
    return bootstrap


def start_postgres(
    *, var_dir: Path | None = None, port: int | None = None, fast: bool = False
) -> str:
    """Start (or find) the PostgreSQL cluster and return its SQLAlchemy URL."""
    return postgres.start(port=port, data_dir=_var(var_dir) / "postgres", fast=fast)


def start_kannel(
    *, var_dir: Path | None = None, mo_url: str | None = None, keywords_url: str | None = None
) -> dict[str, str]:
    """Start (or find) Kannel and its fake SMSC; return the environment that reaches it.

    Replies go to `mo_url` (router), community keywords to `keywords_url` (rumor_control).
    """
    data_dir = _var(var_dir) / "kannel"
    started = kannel.start(data_dir=data_dir, mo_url=mo_url, keywords_url=keywords_url)
    return started.env(data_dir)


def start_local_kannel(*, var_dir: Path | None, port_of: Callable[[str], int]) -> dict[str, str]:
    """Kannel for `aviso up`, when installed and no other gateway is configured.

    Replies go to router's `/sms/replies` and community keywords to rumor_control's
    `/sms/keywords` (`port_of(service)` on loopback), with the shared secret the services
    read (`AVISO_KANNEL_MO_SECRET`). Returns the environment the services need ({} if none).
    """
    if os.environ.get("AVISO_KANNEL_SENDSMS_URL"):
        say(COMPONENT, f"using the SMS gateway at {os.environ['AVISO_KANNEL_SENDSMS_URL']}")
        return {}
    if not kannel.installed():
        say(COMPONENT, "kannel: not installed (apt-get install kannel kannel-extras); no SMS")
        return {}
    # Imported lazily: the stack tooling runs before the project is installed.
    from services.common.settings import CommonSettings

    key = urlencode({"key": CommonSettings().kannel_mo_secret.get_secret_value()})
    router, rumor_control = (f"http://{LOOPBACK}:{port_of(s)}" for s in ("router", "rumor_control"))
    env = start_kannel(
        var_dir=var_dir,
        mo_url=f"{router}/sms/replies?{key}",
        keywords_url=f"{rumor_control}/sms/keywords?{key}",
    )
    env["AVISO_KANNEL_SENDER"] = kannel.SHORT_CODE
    return env


def start_oidc(*, var_dir: Path | None = None, console_port: int = 8000) -> dict[str, str]:
    """Start (or find) the OpenID Provider; return the console's settings that reach it."""
    return oidc.start(
        data_dir=_var(var_dir) / "oidc",
        redirect_uris=oidc.default_redirect_uris(console_port),
    ).env()


def stop_all(*, var_dir: Path | None = None, purge: bool = False) -> None:
    """Stop this var dir's broker and cluster, if running; external services are left alone.

    ``purge`` also deletes their data, logs included (a fresh start next time).
    """
    base = _var(var_dir)
    errors: list[str] = []
    stops: list[Callable[[], object]] = [
        lambda: oidc.stop(data_dir=base / "oidc"),
        lambda: kannel.stop(data_dir=base / "kannel"),
        lambda: kafka.stop(data_dir=base / "kafka"),
    ]
    if purge:
        stops += [
            lambda: shutil.rmtree(base / "oidc", ignore_errors=True),
            lambda: shutil.rmtree(base / "kannel", ignore_errors=True),
            lambda: shutil.rmtree(base / "kafka", ignore_errors=True),
            lambda: postgres.purge(data_dir=base / "postgres"),  # stops it first
        ]
    else:
        stops.append(lambda: postgres.stop(data_dir=base / "postgres"))
    # Attempt every step even if one fails, then report them all.
    for step in stops:
        try:
            step()
        except InfraError as error:
            errors.append(str(error))
    if errors:
        raise InfraError("; ".join(errors))


def write_env_file(path: Path, values: Mapping[str, str]) -> str:
    """Write shell-sourceable ``export`` lines to path and return them."""
    text = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in values.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m deploy.local.stack``."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--var-dir", type=Path, default=None, help="state directory (default var/)")
    parser.add_argument("--env-file", type=Path, default=None, help="default <var-dir>/stack.env")
    parser.add_argument("--with-postgres", action="store_true", help="also start PostgreSQL")
    parser.add_argument(
        "--with-kannel", action="store_true", help="also start Kannel and its fake SMSC"
    )
    parser.add_argument(
        "--with-oidc",
        action="store_true",
        help="also start an OpenID Provider for the console's single sign-on",
    )
    parser.add_argument(
        "--console-port",
        type=int,
        default=8000,
        help="with --with-oidc: the console port the provider may send people back to",
    )
    parser.add_argument(
        "--kannel-mo-url", default=None, help="where Kannel delivers SMS replies (default: dropped)"
    )
    parser.add_argument(
        "--kannel-keywords-url",
        default=None,
        help="where Kannel delivers community keywords (STOP, ALTO, ...; default: as replies)",
    )
    parser.add_argument(
        "--purge", action="store_true", help="down: also delete data and logs of every service"
    )
    parser.add_argument("--kafka-port", type=int, default=None, help="0 = any free port")
    parser.add_argument("--postgres-port", type=int, default=None, help="0 = any free port")
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="PostgreSQL without fsync (tests and CI only)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        dest="topics",
        default=None,
        help="topic to create (repeatable; default: the five aviso.*.v1 topics)",
    )
    args = parser.parse_args(argv)
    var_dir = _var(args.var_dir)
    env_file: Path = args.env_file or var_dir / "stack.env"
    try:
        if args.command == "up":
            values = {
                "KAFKA_BOOTSTRAP_SERVERS": start_kafka(
                    var_dir=var_dir,
                    port=args.kafka_port,
                    topics=tuple(args.topics or DEFAULT_TOPICS),
                )
            }
            if args.with_postgres:
                values["DATABASE_URL"] = start_postgres(
                    var_dir=var_dir, port=args.postgres_port, fast=args.fast
                )
            if args.with_kannel:
                values.update(
                    start_kannel(
                        var_dir=var_dir,
                        mo_url=args.kannel_mo_url,
                        keywords_url=args.kannel_keywords_url,
                    )
                )
            if args.with_oidc:
                values.update(start_oidc(var_dir=var_dir, console_port=args.console_port))
            text = write_env_file(env_file, values)
            say(COMPONENT, f"wrote {env_file}")
            print(text, end="")
            return 0
        if args.command == "down":
            stop_all(var_dir=var_dir, purge=args.purge)
            remove_quietly(env_file)
            return 0
        kafka_at = kafka.status(data_dir=var_dir / "kafka")
        postgres_at = postgres.status(data_dir=var_dir / "postgres")
        kannel_at = kannel.status(data_dir=var_dir / "kannel")
        oidc_at = oidc.status(data_dir=var_dir / "oidc")
        say(COMPONENT, f"kafka: {kafka_at or 'not running'}")
        say(COMPONENT, f"postgres: {postgres_at or 'not running'}")
        say(COMPONENT, f"kannel: {kannel_at.sendsms_url if kannel_at else 'not running'}")
        say(COMPONENT, f"oidc: {oidc_at.issuer if oidc_at else 'not running'}")
        return 0 if kafka_at or postgres_at or kannel_at or oidc_at else 3
    except InfraError as error:
        say(COMPONENT, f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
