"""Aviso services as real OS processes, for end-to-end tests.

Each service runs as `python -m services.cli serve NAME` with its own port and JSON log
file; a test talks to it over HTTP only, reads its log lines, and can stop it with
SIGTERM (graceful) or SIGKILL (a crash).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deploy.local.common import free_port

__all__ = ["ServiceProcess"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    """One running service instance."""

    service: str
    env: Mapping[str, str]
    log_dir: Path
    instance: str = "1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.service}-{self.instance}.log"

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> ServiceProcess:
        """Spawn the process (and by default wait until /internal/ready answers 200)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.env)
        env["AVISO_LOG_FILE"] = str(self.log_file)
        env["AVISO_LOG_FORMAT"] = "json"
        stderr = (self.log_dir / f"{self.service}-{self.instance}.stderr").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", self.service, "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        if wait:
            self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        """Block until the service reports ready; raise with its log tail if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.service} exited with {self.process.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(f"{self.url}/internal/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.service} not ready within {timeout} s:\n{self.tail()}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path (in-flight work finishes)."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: a crash, nothing gets to clean up."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, signum: int, timeout: float) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON log line the instance wrote so far."""
        if not self.log_file.exists():
            return []
        records = []
        for line in self.log_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.log_file, self.log_dir / f"{self.service}-{self.instance}.stderr"):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text
