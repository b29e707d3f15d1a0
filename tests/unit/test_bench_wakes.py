"""Wakes per notice (benchmarks/hot_path/wakes.py): voluntary context switches of every
thread of a process, and of a forking server's children, read from /proc between two
samples; printed under each rate's CPU and beside the pipeline floor's."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from benchmarks.hot_path import report
from benchmarks.hot_path.wakes import (
    WakeSample,
    render_wakes,
    sample_wakes,
    wakes,
    wakes_per_notice,
)
from tests.unit.test_bench_pipeline_report import FLOOR, _reported, _results

_PROCESSES = ("intake", "router", "rumor_control", "postgres", "kafka")


def test_a_sleeping_thread_s_switches_count_while_it_lives() -> None:
    me = {"me": os.getpid()}
    go, done, stop = threading.Event(), threading.Event(), threading.Event()

    def sleeper() -> None:
        go.wait()
        for _ in range(30):
            time.sleep(0.001)
        done.set()
        stop.wait()

    thread = threading.Thread(target=sleeper)
    thread.start()
    try:
        before = sample_wakes(me)
        go.set()
        assert done.wait(30)
        after = sample_wakes(me)
    finally:
        stop.set()
        thread.join()
    assert wakes(before, after)["me"] >= 30


def test_a_forking_server_s_children_are_counted_with_it() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "sys.stdin.readline()\n"
            "for _ in range(30): time.sleep(0.001)\n"
            "print('done', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        server = {"server": os.getpid()}
        before = sample_wakes(server, forking=["server"])
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        after = sample_wakes(server, forking=["server"])
    finally:
        child.stdin.write("end\n")
        child.stdin.flush()
        child.wait(30)
    slept = after.children["server"][child.pid] - before.children["server"][child.pid]
    assert slept >= 30
    assert wakes(before, after)["server"] >= slept


def test_a_child_born_between_the_samples_counts_from_its_start_and_a_gone_one_not_at_all() -> None:
    before = WakeSample({"postgres": 100, "kafka": 50}, {"postgres": {1: 10, 2: 20}})
    after = WakeSample({"postgres": 103, "kafka": 80}, {"postgres": {1: 15, 3: 7}})

    assert wakes(before, after) == {"postgres": 3.0 + 5.0 + 7.0, "kafka": 30.0}


def test_per_notice_and_the_system_s_total_leave_the_bench_and_its_sink_out() -> None:
    before = WakeSample({"router": 0, "kafka": 0, "bench": 0, "sink": 0})
    after = WakeSample({"router": 500, "kafka": 1000, "bench": 700, "sink": 300})

    woke = wakes_per_notice(before, after, 100)

    assert woke["wakes_per_notice"] == {"router": 5.0, "kafka": 10.0, "bench": 7.0, "sink": 3.0}
    assert woke["wakes_per_notice_total"] == 15.0


WAKES = {"intake": 3.0, "router": 6.5, "rumor_control": 0.4, "postgres": 4.0, "kafka": 12.0}


def test_the_wakes_are_printed_under_each_rate_s_cpu() -> None:
    phase = _reported(wakes_per_notice=WAKES, wakes_per_notice_total=25.9)
    lines = report.render(_results([phase])).splitlines()

    row = lines.index(next(line for line in lines if line.split()[-1:] == ["21.6"]))
    assert lines[row + 1].split() == ["wakes", "3.0", "6.5", "0.4", "4.0", "12.0", "25.9"]


def test_a_run_from_before_them_prints_no_wakes_row() -> None:
    assert render_wakes(_reported(), _PROCESSES) == []
    lines = report.render(_results([_reported()])).splitlines()
    assert not any(line.startswith("  wakes") for line in lines)


def test_the_pipeline_floor_puts_the_system_s_wakes_beside_its_own() -> None:
    phase = _reported(wakes_per_notice=WAKES, wakes_per_notice_total=25.9)
    floor = {**FLOOR, "wakes_per_notice": {"kafka": 8.0}, "wakes_per_notice_total": 14.2}

    text = report.render(_results([phase], {"rates": [floor], "idle_cpu_ms_per_s": {}}))

    assert "  wakes per notice, system / floor: 10/s 25.9 / 14.2" in text.splitlines()
