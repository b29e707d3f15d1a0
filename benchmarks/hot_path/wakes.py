"""How often each process went to sleep and was woken in a phase, per notice.

A thread's `voluntary_ctxt_switches` (/proc/<pid>/task/<tid>/status) counts the times it
gave up the CPU to wait: for a socket, a lock, a timer. Each is followed by a wake, and on
a machine where a process that slept a few milliseconds runs cold (cold_request.py: the
same request two to four times the CPU), each long one costs CPU beyond the work it
wakes for. Summed over every thread of a process, and for a forking server (PostgreSQL's
backends, intake's workers) over its live children too; a child or a thread that exited
in the phase takes its count with it, so the figure is a lower bound. Short waits (a round trip
of a millisecond) count the same as long ones: the figure says how many wakes, not how
cold each was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.hot_path.infra import _children, per_notice, system_total

__all__ = ["WakeSample", "render_wakes", "sample_wakes", "wakes", "wakes_per_notice"]

_FIELD = "voluntary_ctxt_switches:"


def _switches(pid: int) -> int:
    """Voluntary context switches of every thread of `pid` (0 if it is gone)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # the thread ended between the listing and the read
            continue
        total += next((int(x.split()[1]) for x in lines if x.startswith(_FIELD)), 0)
    return total


@dataclass(frozen=True)
class WakeSample:
    """Voluntary switches per process name at one instant (per live child for a forking
    server)."""

    counts: dict[str, int] = field(default_factory=dict)
    children: dict[str, dict[int, int]] = field(default_factory=dict)


def sample_wakes(pids: dict[str, int], *, forking: Iterable[str] = ()) -> WakeSample:
    """Each named process's voluntary switches so far; `forking` ones with their children."""
    forking = set(forking)
    counts = {name: _switches(pid) for name, pid in pids.items()}
    children = {
        name: {child: _switches(child) for child in _children(pid)}
        for name, pid in pids.items()
        if name in forking
    }
    return WakeSample(counts, children)


def wakes(before: WakeSample, after: WakeSample) -> dict[str, float]:
    """Each process's voluntary switches between two samples: its own threads', and its
    children's since the first sample (since its start for a child born in between)."""
    spent: dict[str, float] = {}
    for name, end in after.counts.items():
        count = end - before.counts.get(name, end)
        old = before.children.get(name, {})
        for child, child_end in after.children.get(name, {}).items():
            count += child_end - old.get(child, 0)
        spent[name] = float(max(count, 0))
    return spent


def wakes_per_notice(before: WakeSample, after: WakeSample, notices: int) -> dict[str, Any]:
    """The phase's JSON: per process, and the system's total (the bench and sink apart)."""
    counted = wakes(before, after)
    return {
        "wakes_per_notice": per_notice(counted, notices),
        "wakes_per_notice_total": system_total(counted, notices),
    }


def render_wakes(phase: dict[str, Any], processes: Iterable[str]) -> list[str]:
    """The CPU table's row under a rate: its wakes per notice, when the run counted them."""
    counted = phase.get("wakes_per_notice")
    if not counted:  # results written before the twenty-sixth round
        return []

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    total = phase.get("wakes_per_notice_total")
    return [
        "  wakes  "
        + "".join(f"{cell(counted.get(p)):>14}" for p in processes)
        + f"{cell(total):>14}"
    ]
