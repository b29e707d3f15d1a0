"""Which intake worker process runs the once-only work (services/common/serve.py).

Built as `aviso serve intake` builds it in each worker, without entering the lifespan:
nothing connects. Worker 0 of a group (and a process serving alone) registers the
sweeper, the audit sealer, the outbox and inbox retention and the directory consumer;
any other worker none of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

import services.common.serve as serve
from services.common.serve import WorkerRole
from services.intake.app import compose
from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import KEY_K1


def _background_work(
    tmp_path: Path, role: WorkerRole, monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    monkeypatch.setattr(serve, "_role", role)
    settings = IntakeSettings(
        var_dir=tmp_path,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        development_mode=True,
        intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"),
        intake_workers=role.count,
    )
    runtime = compose(settings).app.state.runtime
    return {
        "workers": sorted(w.name for w in runtime._workers),
        "subscribers": len(runtime.broker.subscribers),
    }


@pytest.mark.parametrize("role", [WorkerRole(0, 1), WorkerRole(0, 3)])
def test_the_leading_worker_runs_the_sweeper_sealer_and_consumer(
    tmp_path: Path, role: WorkerRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _background_work(tmp_path, role, monkeypatch)
    assert found["workers"] == ["intake-audit-sealer", "intake-sweeper", "messaging-retention"]
    assert found["subscribers"] == 1


@pytest.mark.parametrize("role", [WorkerRole(1, 2), WorkerRole(2, 3)])
def test_other_workers_run_none_of_it(
    tmp_path: Path, role: WorkerRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _background_work(tmp_path, role, monkeypatch)
    assert found == {"workers": [], "subscribers": 0}


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        IntakeSettings(
            var_dir=tmp_path,
            database_url=None,  # the embedded SQLite default, whatever the environment says
            development_mode=True,
            intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"),
            intake_workers=2,
        )
