"""`aviso up`: Kafka, the database and every service on this machine, in the foreground.

The services run as `aviso serve` children whose JSON log lines are summarised on this
terminal (the full lines go to `var/log/`); local sinks stand in for phones, liaisons
and a mail server, and the demo story plays once everything is ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

from services.common.settings import CommonSettings, get_settings

if TYPE_CHECKING:
    from deploy.local.sinks import SmtpSink, WebhookSink

__all__ = ["CONSOLE_PORT", "SERVICES", "service_port", "up"]

SERVICES: dict[str, int] = {"intake": 8001, "router": 8002, "rumor_control": 8003}
# The console is served like a service but is no part of the event flow (no Kafka).
CONSOLE_PORT = 8000


def service_port(service: str) -> int:
    """The service's HTTP port: `AVISO_<SERVICE>_PORT`, else its default."""
    env = os.environ.get(f"AVISO_{service.upper()}_PORT")
    return int(env) if env else SERVICES.get(service, CONSOLE_PORT)


_COLORS = {
    "console": "bright_white",
    "intake": "cyan",
    "router": "magenta",
    "rumor_control": "green",
    "stack": "yellow",
}


def _say(component: str, message: str) -> None:
    # One write per line, so that lines printed from several threads never interleave.
    typer.echo(typer.style(f"[{component}] ", fg=_COLORS.get(component, "white")) + message)


def _summarise(line: str) -> str | None:
    """One readable line from a JSON log line (the full line stays in var/log/); None hides it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return line
    if not isinstance(record, dict):
        return line
    if record.get("logger") in _QUIET_LOGGERS or "/internal/" in str(record.get("event", "")):
        return None
    level = record.pop("level", "info")
    event = record.pop("event", "")
    for noise in ("ts", "timestamp", "service", "logger", "request_id"):
        record.pop(noise, None)
    fields = " ".join(f"{k}={v}" for k, v in record.items() if not isinstance(v, dict | list))
    return f"{level:<7} {event} {fields}".rstrip()


# Start-up chatter that is in the log files but would drown the story on the terminal.
_QUIET_LOGGERS = {"alembic.runtime.migration", "uvicorn.access", "aviso.access"}


def _pump(service: str, stream: object) -> None:
    for raw in iter(stream.readline, ""):  # type: ignore[attr-defined]
        summary = _summarise(raw.rstrip("\n"))
        if summary is not None:
            _say(service, summary)


def _wait_ready(urls: dict[str, str], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    while pending and time.monotonic() < deadline:
        for service, url in list(pending.items()):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/internal/ready", timeout=2).status_code == 200:
                    docs = "" if service == "console" else f"  (docs {url}/docs)"
                    _say(service, f"ready at {url}{docs}")
                    del pending[service]
        time.sleep(0.5)
    return list(pending)


def up(
    with_postgres: Annotated[
        bool, typer.Option(help="Start a local PostgreSQL too instead of the embedded SQLite files")
    ] = False,
    demo: Annotated[bool, typer.Option(help="Play the demo story once the stack is ready")] = True,
    kafka_port: Annotated[int, typer.Option(help="Port of the local Kafka broker")] = 9092,
    sinks: Annotated[
        bool,
        typer.Option(help="Run local webhook (8090) and SMTP (8025) sinks that record deliveries"),
    ] = True,
) -> None:
    """Start Kafka, the database and all three services in the foreground; Ctrl-C stops all."""
    from deploy.local import stack

    settings = get_settings(CommonSettings)
    # SIGTERM (a service manager, `timeout`, CI) stops the stack the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    var_dir = settings.var_dir
    log_dir = var_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = _stack_env(var_dir, with_postgres=with_postgres, kafka_port=kafka_port)
    local_sinks = _start_sinks(settings, var_dir) if sinks else None
    urls = {s: f"http://127.0.0.1:{service_port(s)}" for s in (*SERVICES, "console")}
    _say("console", f"the console for people: {urls['console']}  (demo accounts below)")
    env.update(_console_env(urls))
    children: dict[str, subprocess.Popen[str]] = {}
    try:
        for service in urls:
            children[service] = _spawn(service, env, log_dir)
        not_ready = _wait_ready(urls, timeout=90)
        if not_ready:
            raise typer.Exit(_fail(f"not ready after 90 s: {', '.join(not_ready)}; see {log_dir}"))
        _say("console", f"open {urls['console']} in a browser")
        _say(
            "stack", f"all services ready in {time.monotonic() - started:.1f} s; logs in {log_dir}"
        )
        if demo:
            # The demo issues its tokens where the services read them.
            demo_settings = settings.model_copy(update={"database_url": env.get("DATABASE_URL")})
            _run_demo(urls, demo_settings, local_sinks)
        _say("stack", "running; press Ctrl-C to stop")
        while all(child.poll() is None for child in children.values()):
            time.sleep(0.5)
        dead = [s for s, c in children.items() if c.poll() is not None]
        raise typer.Exit(_fail(f"stopped unexpectedly: {', '.join(dead)}; see {log_dir}"))
    except KeyboardInterrupt:
        _say("stack", "stopping")
    finally:
        _stop_children(children)
        if local_sinks is not None:
            for sink in local_sinks:
                sink.stop()
        stack.stop_all(var_dir=var_dir)
        _say("stack", "stopped")


def _stack_env(var_dir: Path, *, with_postgres: bool, kafka_port: int) -> dict[str, str]:
    """The services' environment: Kafka and the database started here unless given."""
    from deploy.local import stack

    env = dict(os.environ)
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        env["KAFKA_BOOTSTRAP_SERVERS"] = stack.start_kafka(var_dir=var_dir, port=kafka_port)
    else:
        _say("stack", f"using the Kafka cluster at {os.environ['KAFKA_BOOTSTRAP_SERVERS']}")
    if with_postgres and not os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = stack.start_postgres(var_dir=var_dir)
    if not env.get("DATABASE_URL"):
        _say("stack", f"database: embedded SQLite files in {var_dir}")
    # The example directory sends alerts to the local sinks and (SMS) a local Kannel when it
    # is installed, replies to router and keywords to rumor_control; real ones come from env.
    example = Path(__file__).parent / "router" / "directory.example.yaml"
    env.setdefault("AVISO_ROUTER_DIRECTORY_FILE", str(example))
    env.update(stack.start_local_kannel(var_dir=var_dir, port_of=service_port))
    env["AVISO_LOG_FORMAT"] = "json"
    env.setdefault("AVISO_DEVELOPMENT_MODE", "true")  # a local stack: the published secrets
    return env


def _spawn(service: str, env: dict[str, str], log_dir: Path) -> subprocess.Popen[str]:
    """`aviso serve SERVICE` as a child whose output is summarised on this terminal."""
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "services.cli", "serve", service],
        env=dict(env, AVISO_LOG_FILE=str(log_dir / f"{service}.log")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    threading.Thread(target=_pump, args=(service, child.stdout), daemon=True).start()
    return child


def _stop_children(children: dict[str, subprocess.Popen[str]]) -> None:
    """SIGTERM every child, give each the grace period, then kill what is left."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=30)
        if child.poll() is None:
            child.kill()


def _console_env(urls: dict[str, str]) -> dict[str, str]:
    """Where the console finds the services and notifications the console; plain http."""
    return {
        "AVISO_CONSOLE_BASE_URL": os.environ.get("AVISO_CONSOLE_BASE_URL", urls["console"]),
        "AVISO_CONSOLE_INTAKE_URL": urls["intake"],
        "AVISO_CONSOLE_ROUTER_URL": urls["router"],
        "AVISO_CONSOLE_RUMOR_CONTROL_URL": urls["rumor_control"],
        "AVISO_CONSOLE_COOKIE_SECURE": os.environ.get("AVISO_CONSOLE_COOKIE_SECURE", "false"),
    }


def _start_sinks(settings: CommonSettings, var_dir: Path) -> tuple[WebhookSink, SmtpSink]:
    """Local receivers standing in for phones, liaisons and a mail server."""
    from deploy.local.sinks import SmtpSink, WebhookSink

    out = var_dir / "sinks"
    webhook = WebhookSink(
        port=8090,
        secrets=[s.get_secret_value().encode() for s in settings.webhook_secrets],
        out_file=out / "webhooks.jsonl",
    ).start()
    smtp = SmtpSink(port=settings.smtp_port, out_file=out / "mail.jsonl").start()
    _say(
        "stack",
        f"delivery sinks: webhooks {webhook.url('/')}, SMTP 127.0.0.1:{smtp.port}; "
        f"recorded in {out}",
    )
    return webhook, smtp


def _interrupt(_signum: int, _frame: object) -> None:
    """The first SIGINT or SIGTERM stops the stack; any later one is ignored.

    One stop sends several: make passes its own on to `aviso up`, and a terminal's Ctrl-C
    and `timeout` signal the whole process group. A second KeyboardInterrupt raised while
    the services stop would cut the `finally` short and leave Kafka and Kannel running.
    The children still stop: each gets SIGTERM, then SIGKILL after its grace period.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


def _fail(message: str) -> int:
    _say("stack", message)
    return 1


def _run_demo(
    urls: dict[str, str], settings: CommonSettings, sinks: tuple[WebhookSink, SmtpSink] | None
) -> None:
    """Play the demo story: a notice, its alert and acknowledgement, rumors, a bulletin."""
    from services.demo import DemoFailed, play

    if sinks is None:
        _say("stack", "the demo needs the local sinks; skipped (--no-sinks)")
        return
    try:
        play(urls, settings, webhook_sink=sinks[0], smtp_sink=sinks[1])
    except DemoFailed as exc:
        # The stack stays up for the user to look into it; the logs say what happened.
        _say("stack", f"demo stopped: {exc}")
