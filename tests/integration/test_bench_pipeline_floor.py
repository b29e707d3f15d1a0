"""The bench's pipeline floor against a real Kafka and PostgreSQL: its three processes
take a few notices from the front to the webhook sink and into the projection, and the
phase reports CPU per notice for each of them."""

from __future__ import annotations

from pathlib import Path

from benchmarks.hot_path.infra import Infra
from benchmarks.hot_path.pipeline_floor import SINK_PATH
from benchmarks.hot_path.pipeline_run import measure_pipeline_floor

_NOTICES = 10


async def test_the_floor_delivers_every_notice_and_reports_its_cpu(
    kafka_bootstrap: str, pg_database: str, tmp_path: Path
) -> None:
    infra = Infra(
        bootstrap=kafka_bootstrap, database_url=pg_database, own=False, state_dir=tmp_path
    )
    plan = {
        "rates": [10.0],
        "durations": {10.0: _NOTICES / 10.0},
        "drain_timeout_s": 60.0,
        "idle_settle_s": 0.0,
        "idle_s": 0.5,
    }

    measured = await measure_pipeline_floor(infra, plan, tmp_path)

    (phase,) = measured["rates"]
    assert phase["sent"] == phase["accepted"] == phase["delivered"] == _NOTICES
    assert phase["errors"] == 0
    assert phase["e2e_ms"]["p50"] is not None
    cpu = phase["cpu_ms_per_notice"]
    assert {"intake", "router", "rumor_control", "sink"} <= cpu.keys()
    assert all(cpu[name] is not None and cpu[name] >= 0 for name in cpu)
    assert phase["cpu_ms_per_notice_total"] > 0
    assert {"intake", "router", "rumor_control"} <= measured["idle_cpu_ms_per_s"].keys()
    # Every webhook signed as router signs (the sink verified it) and on the floor's path.
    hooks = (tmp_path / "pipeline-floor-webhooks.jsonl").read_text().splitlines()
    assert len(hooks) >= _NOTICES + 10  # the warm-up's and the phase's
    assert all(f'"path": "{SINK_PATH}"' in line for line in hooks)
    assert all('"signature_valid": true' in line for line in hooks)
    # The projection saw each notice and each relayed record before the CPU was read.
    assert phase["projected"]["missing"] == 0
