"""Which CPython build the run's processes ran on: the services, the pipeline floor and the
sink start with the bench's own interpreter (`sys.executable`), so this is theirs too.

Two builds of one Python version can differ by a tenth in the CPU figures here: on the
project's test machine Debian's `/usr/bin/python3.11` (libpython linked into the
executable) took ~11 % less CPU a notice at 50/s and ~12 % less of intake's a submission
at c64 than a pyenv build of 3.11 (libpython a shared library, configured without
`--enable-optimizations`). So the report names the build beside the figures.

Whether libpython is shared is read from this process's memory map, since a
distribution's `sysconfig` may describe its shared build while its executable is static
(Debian's does), and may not name the flags that executable was built with.
"""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
from pathlib import Path
from typing import Any

__all__ = ["describe", "python_build"]


def _libpython_mapped(maps: str) -> bool:
    """Whether a libpython shared library is mapped into this process."""
    return any("/libpython" in line for line in maps.splitlines())


def python_build(maps: str | None = None) -> dict[str, Any]:
    """This interpreter's version, executable and build (`maps`: /proc/self/maps's text)."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            maps = ""
    configure = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    return {
        "version": platform.python_version(),
        "executable": os.path.realpath(sys.executable),
        "shared_libpython": _libpython_mapped(maps) if maps else None,
        "enable_optimizations": "--enable-optimizations" in configure,
        "with_lto": "--with-lto" in configure,
    }


def describe(build: dict[str, Any]) -> str:
    """One line for the report's head."""
    shared = build.get("shared_libpython")
    linked = {True: "libpython shared", False: "libpython linked in", None: "libpython unknown"}
    flags = ", ".join(
        ("" if build.get(key) else "no ") + "--" + key.replace("_", "-")
        for key in ("enable_optimizations", "with_lto")
    )
    return (
        f"Python {build.get('version')} at {build.get('executable')} "
        f"({linked[shared]}; its sysconfig says {flags})"
    )
