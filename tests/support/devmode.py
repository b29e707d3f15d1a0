"""Tests run in development mode: they use the published development secrets on purpose."""

from __future__ import annotations

import os

__all__ = ["enable_development_mode"]


def enable_development_mode() -> None:
    """Let every service the tests start (in-process or as a child process) run on them.

    Set in the environment rather than per settings object, so child processes of the e2e
    tests inherit it; a test of the refusal builds its settings with development_mode=False.
    """
    os.environ.setdefault("AVISO_DEVELOPMENT_MODE", "true")
