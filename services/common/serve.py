"""Run one service's HTTP app (and with it its consumers and relay) under uvicorn."""

from __future__ import annotations

import gc
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
    app = app_factory()
    _freeze_startup_heap()
    config = uvicorn.Config(
        app,
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


def _freeze_startup_heap() -> None:
    """Keep what start-up built (modules, models, routes) out of the collector's way.

    A service builds hundreds of thousands of long-lived objects once (FastAPI, pydantic,
    SQLAlchemy, aiokafka); every full collection walked them all again: at 64 clients a
    full collection of intake took ~170 ms of CPU, during which no request moved. Frozen
    objects are never collected (they live as long as the process anyway); what requests
    allocate afterwards is collected as before. Only here, in the process that serves:
    a test process builds and drops many apps and must collect them.
    """
    gc.collect()
    gc.freeze()
