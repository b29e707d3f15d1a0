"""py-spy profiles of the services while a phase runs, and where their CPU went.

`make bench ARGS="--short --profile"` samples every service process with py-spy (100 Hz,
non-blocking, by function) for the length of each phase and keeps the collapsed stacks
(`<phase>-<service>.txt`, the format flamegraph.pl, inferno and speedscope read) next
to the run's logs. `summarise` reads one such file: the share of samples per library
(inclusive: a sample counts once for each library on its stack), the hottest leaf
frames (self time) and the hottest functions of our own code (inclusive).

py-spy reads another process's memory, so it needs root or ptrace permission; without
it the phase runs unprofiled and the summary says so.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PhaseProfiler", "render_summaries", "summarise"]

# Which library a frame belongs to, by a piece of its file name (py-spy shortens file
# names to the package part). First match wins; order puts specific before general.
_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("sqlalchemy/", "sqlalchemy"),
    ("asyncpg/", "asyncpg"),
    ("aiosqlite/", "aiosqlite"),
    ("pydantic", "pydantic"),
    ("fastapi/", "fastapi"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn"),
    ("h11/", "h11"),
    ("httptools", "httptools"),
    ("structlog/", "structlog"),
    ("logging/", "logging"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "aiokafka"),
    ("faststream/", "faststream"),
    ("json/", "json"),
    ("cryptography/", "cryptography"),
    ("aiohttp/", "aiohttp"),
    ("httpx/", "httpx"),
    ("httpcore/", "httpx"),
    ("prometheus_client/", "prometheus"),
    ("services/", "aviso (own code)"),
    ("schemas/", "aviso (own code)"),
    ("fast_depends/", "faststream"),
    ("anyio/", "anyio (threads)"),
    ("asyncio/", "asyncio"),
    ("selectors.py", "asyncio"),
    ("threading.py", "threads"),
    ("queue.py", "threads"),
)
# Frames every sample of a served process passes through: no information in them.
_BOOTSTRAP_ENDS = ("(services/cli.py)", "(services/common/serve.py)")


def _library(frame: str) -> str | None:
    for marker, name in _LIBRARIES:
        if marker in frame:
            return name
    return None


def summarise(path: Path, *, top: int = 12) -> dict[str, Any]:
    """Where the samples of one collapsed-stack file went: libraries, leaves, own code."""
    total = 0
    libraries: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    self_libraries: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text("utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaves[frames[-1].strip()] += count
        # Self time by library: the deepest frame that belongs to a known one.
        deepest = next((lib for lib in map(_library, reversed(frames)) if lib), "other")
        self_libraries[deepest] += count
        seen_libraries = {lib for lib in map(_library, frames) if lib is not None}
        for lib in seen_libraries:
            libraries[lib] += count
        for frame in {
            f.strip() for f in frames if "services/" in f and not f.endswith(_BOOTSTRAP_ENDS)
        }:
            own[frame] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "libraries_pct": shares(libraries) if total else [],
        "self_by_library_pct": shares(self_libraries) if total else [],
        "self_pct": shares(leaves) if total else [],
        "own_inclusive_pct": shares(own) if total else [],
    }


@dataclass
class PhaseProfiler:
    """py-spy recorders for one phase, one per service process."""

    out_dir: Path
    records: dict[str, Path] = field(default_factory=dict)
    _running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @staticmethod
    def executable() -> str | None:
        """py-spy beside this interpreter (the venv) or on PATH; None when not installed."""
        beside = Path(sys.executable).parent / "py-spy"
        return str(beside) if beside.exists() else shutil.which("py-spy")

    def start(self, phase: str, pids: dict[str, int], *, duration_s: float) -> None:
        """Sample each pid for `duration_s` seconds in the background."""
        executable = self.executable()
        if executable is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            target = self.out_dir / f"{phase}-{name}.txt"
            self.records[f"{phase}/{name}"] = target
            self._running.append(
                subprocess.Popen(  # noqa: S603 - a fixed argument list
                    [
                        executable,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(max(1, math.ceil(duration_s))),
                        "--rate",
                        "100",
                        "--nonblocking",
                        # A service with worker processes: sample them all.
                        "--subprocesses",
                        "--nolineno",
                        "--format",
                        "raw",
                        "--output",
                        str(target),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def wait(self) -> None:
        """Wait for the recorders of the phase to write their files."""
        for process in self._running:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
        self._running.clear()

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Each recorded phase/service's summary (missing files: no permission to attach)."""
        return {
            key: summarise(path) if path.exists() else {"samples": 0, "error": "not recorded"}
            for key, path in self.records.items()
        }


def render_summaries(summaries: dict[str, dict[str, Any]]) -> str:
    """A plain-text digest of the profiles: the libraries and frames that took the CPU."""
    lines: list[str] = []
    for key, summary in summaries.items():
        lines.append(f"\n== {key}: {summary.get('samples', 0)} samples")
        if not summary.get("samples"):
            continue
        libs = ", ".join(f"{name} {pct}%" for name, pct in summary["libraries_pct"])
        lines.append(f"  libraries (inclusive): {libs}")
        own = ", ".join(f"{name} {pct}%" for name, pct in summary["self_by_library_pct"])
        lines.append(f"  self time by library: {own}")
        lines.append("  self:")
        lines.extend(f"    {pct:5.1f}%  {frame}" for frame, pct in summary["self_pct"][:8])
        lines.append("  own code (inclusive):")
        lines.extend(
            f"    {pct:5.1f}%  {frame}" for frame, pct in summary["own_inclusive_pct"][:10]
        )
    return "\n".join(lines)
