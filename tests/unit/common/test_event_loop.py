"""The services run on uvloop with httptools, and so do the tests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
import uvloop
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.common import serve as serve_module
from services.common.settings import CommonSettings


async def test_tests_run_on_the_services_event_loop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


def test_a_service_is_served_on_uvloop_with_httptools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    served: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: served.append(self.config))
    monkeypatch.setattr(serve_module, "configure_logging", lambda *a, **k: None)

    serve_module.serve("intake", FastAPI, CommonSettings(var_dir=tmp_path), port=0)

    (config,) = served
    # Named, not "auto": a missing package fails at start-up instead of falling back.
    # httptools' protocol, sending a response's head and body at once (serve.py).
    assert (config.loop, config.http) == ("uvloop", serve_module.OneWriteHttpProtocol)
    config.load()
    assert config.http_protocol_class is serve_module.OneWriteHttpProtocol
    assert issubclass(config.http_protocol_class, HttpToolsProtocol)
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
