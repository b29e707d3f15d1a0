"""The three services as separate processes on free ports, with the sinks they deliver to.

Only what any version of the services keeps is used: `python -m services.cli serve`,
the HTTP APIs, the router's directory file, the department file, and a webhook and an
SMTP receiver (`sink.py`'s process, or deploy.local's sinks on threads). The SPOC's
acknowledgement wait is an hour, so no alert escalates while the benchmark runs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.hot_path.infra import Infra
from benchmarks.hot_path.sink import ProcessSink
from deploy.local.kafka import ensure_topics
from deploy.local.sinks import SmtpSink, WebhookSink
from schemas.topics import ALL_TOPICS
from services.common.auth import Role
from services.common.settings import CommonSettings
from tests.e2e.e2e_support import Cast
from tests.integration.intake.intake_support import KEY_K1
from tests.support.apps import issue_test_token
from tests.support.processes import ServiceProcess

__all__ = ["BenchSystem", "running_services"]

# Throwaway secrets of a throwaway system.
WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105
LINK_SECRET = "bench-link-secret"  # noqa: S105
_SPOC_WAIT_S = 3600.0


@dataclass
class BenchSystem:
    """The running processes, the sinks and the field office's token."""

    intake: ServiceProcess
    router: ServiceProcess
    rumor_control: ServiceProcess
    webhook: ProcessSink | WebhookSink
    cast: Cast
    token: str

    @property
    def processes(self) -> dict[str, ServiceProcess]:
        return {"intake": self.intake, "router": self.router, "rumor_control": self.rumor_control}

    def pids(self) -> dict[str, int]:
        """Each live service's pid."""
        return {
            name: p.process.pid
            for name, p in self.processes.items()
            if p.process is not None and p.process.poll() is None
        }

    def sink_pid(self) -> dict[str, int]:
        """The sinks' own process (none when they are threads of the bench)."""
        pid = self.webhook.pid if isinstance(self.webhook, ProcessSink) else None
        return {} if pid is None else {"sink": pid}

    def spoc_path(self) -> str:
        return f"/hooks/{self.cast.spoc_id}"


@asynccontextmanager
async def running_services(
    infra: Infra,
    work_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    intake_workers: int = 1,
    thread_sink: bool = False,
) -> AsyncIterator[BenchSystem]:
    """Start the sinks and the three services; stop them all afterwards.

    The webhook and SMTP receivers are a process of their own (`sink.py`);
    `thread_sink`: deploy.local's sinks on threads of this process instead, as before the
    ninth round (the SMTP sink until the fourteenth).

    `intake_workers`: intake's worker processes (AVISO_INTAKE_WORKERS; a version of intake
    without the setting ignores it and serves from one process).
    """
    cast = Cast()
    run = uuid.uuid4().hex[:8]
    async with AsyncExitStack() as stack:
        secrets = [WEBHOOK_SECRET.encode()]
        webhook: ProcessSink | WebhookSink
        if thread_sink:
            webhook = stack.enter_context(WebhookSink(secrets=secrets))
            smtp_port = stack.enter_context(SmtpSink()).port
        else:
            webhook = stack.enter_context(
                ProcessSink(
                    work_dir / "webhooks.jsonl", secrets=secrets, mail_file=work_dir / "mail.jsonl"
                )
            )
            assert webhook.smtp_port is not None
            smtp_port = webhook.smtp_port
        directory_file = work_dir / "directory.yaml"
        directory_file.write_text(
            yaml.safe_dump(cast.directory(webhook, spoc_wait_s=_SPOC_WAIT_S)), "utf-8"
        )
        department_file = work_dir / "department.yaml"
        department_file.write_text(
            yaml.safe_dump(cast.department(webhook), allow_unicode=True), "utf-8"
        )
        await ensure_topics(infra.bootstrap, list(ALL_TOPICS))
        var_dir = work_dir / "var"
        settings = CommonSettings(database_url=infra.service_url("intake"), var_dir=var_dir)
        token = await issue_test_token(
            settings, Role.FIELD_OFFICE, "Bench field office", "fo-bench"
        )
        common = {
            "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
            "AVISO_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
            "AVISO_VAR_DIR": str(var_dir),
            "AVISO_SMTP_HOST": "127.0.0.1",
            "AVISO_SMTP_PORT": str(smtp_port),
            "AVISO_WEBHOOK_SECRETS": json.dumps([WEBHOOK_SECRET]),
            "AVISO_LINK_SECRET": LINK_SECRET,
            "AVISO_SHUTDOWN_GRACE_S": "5",
            # The secrets above are published (in this file): a throwaway system only.
            "AVISO_DEVELOPMENT_MODE": "true",
            **(extra_env or {}),
        }

        def env(service: str, **more: str) -> dict[str, str]:
            url = infra.service_url(service)
            database = {} if url is None else {"DATABASE_URL": url, "AVISO_DATABASE_URL": url}
            return {**common, **database, **more}

        log_dir = work_dir / "logs"
        intake = ServiceProcess(
            "intake",
            env(
                "intake",
                AVISO_INTAKE_ENCRYPTION_KEYS=f"k1:{KEY_K1}",
                AVISO_INTAKE_SWEEP_INTERVAL_S="3600",
                AVISO_INTAKE_WORKERS=str(intake_workers),
            ),
            log_dir,
        )
        router = ServiceProcess(
            "router",
            env(
                "router",
                AVISO_ROUTER_DIRECTORY_FILE=str(directory_file),
                AVISO_ROUTER_INTAKE_BASE_URL=intake.url,
                AVISO_ROUTER_GROUP_PREFIX=f"bench-{run}-router",
            ),
            log_dir,
        )
        rumor = ServiceProcess(
            "rumor_control",
            env(
                "rumor_control",
                AVISO_RUMOR_DEPARTMENT_FILE=str(department_file),
                AVISO_RUMOR_GROUP_PREFIX=f"bench-{run}-rumor.",
            ),
            log_dir,
        )
        for instance in (router, rumor):
            instance.env = {**instance.env, "AVISO_PUBLIC_BASE_URL": instance.url}
        everything = [intake, router, rumor]

        async def stop_all() -> None:
            await asyncio.gather(
                *(asyncio.to_thread(p.terminate, 15.0) for p in everything),
                return_exceptions=True,
            )

        stack.push_async_callback(stop_all)
        # Consumer groups are new (a run id in their prefix) and start at the end of each
        # topic only if they exist before anything is published: start them first.
        for process in everything:
            await asyncio.to_thread(process.start)
        yield BenchSystem(intake, router, rumor, webhook, cast, token)
