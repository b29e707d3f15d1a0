"""The bench names the CPython build its processes ran on: libpython shared or linked in
(from the memory map, not sysconfig), the configure flags the build reports, in the JSON
and on the report's head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.hot_path import report
from benchmarks.hot_path.interpreter import describe, python_build

SHARED_MAPS = """\
55d0c0000000-55d0c0001000 r--p 00000000 08:01 1 /opt/py/bin/python3.11
7f00a0000000-7f00a0200000 r-xp 00000000 08:01 2 /opt/py/lib/libpython3.11.so.1.0
7f00b0000000-7f00b0100000 r-xp 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/libc.so.6
"""
STATIC_MAPS = """\
55d0c0000000-55d0c0600000 r-xp 00000000 08:01 1 /usr/bin/python3.11
7f00b0000000-7f00b0100000 r-xp 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/libc.so.6
"""


def test_libpython_is_shared_only_when_the_process_maps_it() -> None:
    assert python_build(SHARED_MAPS)["shared_libpython"] is True
    assert python_build(STATIC_MAPS)["shared_libpython"] is False


def test_this_interpreter_is_described_with_its_version_and_executable() -> None:
    build = python_build()
    assert build["version"].startswith("3.")
    assert Path(build["executable"]).name.startswith("python")
    assert isinstance(build["enable_optimizations"], bool)


def test_the_description_says_how_libpython_is_linked_and_which_flags_the_build_reports() -> None:
    build: dict[str, Any] = {
        "version": "3.11.7",
        "executable": "/opt/py/bin/python3.11",
        "shared_libpython": True,
        "enable_optimizations": False,
        "with_lto": True,
    }
    assert describe(build) == (
        "Python 3.11.7 at /opt/py/bin/python3.11 (libpython shared; its sysconfig says "
        "no --enable-optimizations, --with-lto)"
    )


def test_the_report_head_names_the_build_and_old_runs_print_without_it() -> None:
    results: dict[str, Any] = {"commit": "abc1234", "short": True, "infra": {}}
    assert len(report._head(results)) == 1

    build = python_build(STATIC_MAPS)
    results["machine"] = {"python_build": build}
    assert report._head(results)[1] == describe(build)
    assert "libpython linked in" in report._head(results)[1]
