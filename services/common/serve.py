"""Run one service's HTTP app (and with it its consumers and relay) under uvicorn."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from services.common.logging import configure_logging
from services.common.settings import CommonSettings

__all__ = ["serve"]


def serve(
    service: str,
    app_factory: Callable[[], FastAPI],
    settings: CommonSettings,
    *,
    port: int,
) -> None:
    """Serve until SIGTERM or Ctrl-C; shutdown lets in-flight work finish first."""
    configure_logging(
        service, level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file
    )
    config = uvicorn.Config(
        app_factory(),
        host=settings.http_host,
        port=port,
        log_config=None,  # keep our structlog setup for uvicorn's loggers too
        lifespan="on",
        # uvloop and httptools are dependencies, named here so that a missing one is an
        # error at start-up rather than a silent fall-back to the slower pure-Python pair.
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        server_header=False,
    )
    uvicorn.Server(config).run()
