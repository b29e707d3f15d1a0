"""A throwaway PostgreSQL cluster from the system's binaries, for local use and tests.

    python -m deploy.local.postgres start [--port N] [--data-dir DIR] [--fast]
    python -m deploy.local.postgres stop|status [--data-dir DIR]

With ``DATABASE_URL`` set nothing is started and that URL is reported. Otherwise
the highest ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql``
package) runs a private cluster listening only on 127.0.0.1, with trust
authentication for user ``postgres`` and a database ``aviso``. PostgreSQL
refuses to run as root, so as root every server command runs as the
``postgres`` system user (``runuser``) and the directory is owned by it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from deploy.local.common import (
    LOOPBACK,
    InfraError,
    default_var_dir,
    free_port,
    port_in_use,
    read_state,
    run_sync,
    say,
    tail,
    write_state,
)

__all__ = [
    "DEFAULT_DATABASE",
    "PostgresLayout",
    "find_bin_dir",
    "main",
    "purge",
    "server_options",
    "start",
    "status",
    "stop",
    "wal_compression_method",
]

COMPONENT = "postgres"
DEFAULT_DATABASE = "aviso"
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
START_TIMEOUT = 60


def _say(message: str) -> None:
    say(COMPONENT, message)


def find_bin_dir() -> Path:
    """Return the bin directory of the newest installed PostgreSQL.

    ``AVISO_PG_BINDIR`` overrides the search (e.g. a non-Debian layout).
    """
    override = os.environ.get("AVISO_PG_BINDIR", "").strip()
    if override:
        bin_dir = Path(override)
        if not (bin_dir / "initdb").exists():
            raise InfraError(f"AVISO_PG_BINDIR={override} has no initdb")
        return bin_dir
    found: list[tuple[tuple[int, ...], Path]] = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if re.fullmatch(r"\d+(\.\d+)*", version):
            found.append((tuple(int(part) for part in version.split(".")), initdb.parent))
    if found:
        return max(found)[1]
    initdb_on_path = shutil.which("initdb")
    if initdb_on_path:
        return Path(initdb_on_path).parent
    raise InfraError(
        "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin); "
        "install them with `apt-get install -y postgresql`, or set DATABASE_URL"
    )


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_server_user(command: Sequence[str]) -> list[str]:
    """Prefix command so it runs as the postgres system user when we are root."""
    if _running_as_root():
        return ["runuser", "-u", SYSTEM_USER, "--", *command]
    return list(command)


@dataclass(frozen=True)
class PostgresLayout:
    """Where one throwaway cluster keeps its files."""

    base: Path

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "run"

    @property
    def log_file(self) -> Path:
        return self.base / "logs" / "postgres.log"

    @property
    def state_file(self) -> Path:
        return self.base / "state.json"

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()


def _fallback_base(requested: Path) -> Path:
    digest = hashlib.sha256(str(requested).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"aviso-postgres-{digest}"


def _reachable_by_server_user(path: Path) -> bool:
    """True if the postgres user can traverse every directory down to path."""
    if not _running_as_root():
        return True
    probe = subprocess.run(
        _as_server_user(["test", "-x", str(path)]), check=False, stdin=subprocess.DEVNULL
    )
    return probe.returncode == 0


def _locate(data_dir: Path | None) -> PostgresLayout:
    """Return the layout for data_dir, following an earlier fallback to /tmp."""
    requested = (data_dir or default_var_dir() / "postgres").resolve()
    fallback = _fallback_base(requested)
    if not PostgresLayout(requested).initialised and PostgresLayout(fallback).initialised:
        return PostgresLayout(fallback)
    return PostgresLayout(requested)


def _prepare(layout: PostgresLayout) -> PostgresLayout:
    """Create the directories, owned by the server user; fall back to /tmp if unreachable."""
    layout.base.mkdir(parents=True, exist_ok=True)
    # base itself is chowned below; only its ancestors must already let postgres through.
    if not _reachable_by_server_user(layout.base.parent):
        fallback = _fallback_base(layout.base)
        _say(
            f"{layout.base} is not reachable by the '{SYSTEM_USER}' user (a parent directory "
            f"is not traversable); using {fallback} instead"
        )
        layout = PostgresLayout(fallback)
        layout.base.mkdir(parents=True, exist_ok=True)
    for directory in (layout.socket_dir, layout.log_file.parent):
        directory.mkdir(parents=True, exist_ok=True)
    if _running_as_root():
        # Everything under base is written by the server, so it must own it all.
        subprocess.run(
            ["chown", "-R", f"{SYSTEM_USER}:{SYSTEM_USER}", str(layout.base)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
    layout.socket_dir.chmod(0o700)
    return layout


def _run(command: Sequence[str], *, what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        # Own session: a Ctrl-C aimed at the caller must not reach the postmaster.
        start_new_session=True,
    )
    if result.returncode != 0:
        output = result.stdout[-3000:] + result.stderr[-3000:]
        raise InfraError(f"{what} failed (exit {result.returncode}):\n{output}")
    return result


def _initdb(bin_dir: Path, layout: PostgresLayout, *, fast: bool) -> None:
    _say(f"initdb {layout.data} ({bin_dir.parent.name}) …")
    began = time.monotonic()
    command = [
        str(bin_dir / "initdb"),
        "-D",
        str(layout.data),
        "-A",
        "trust",
        "-U",
        SUPERUSER,
        "--encoding=UTF8",
        "--locale=C",
    ]
    if fast:
        command.append("--no-sync")
    _run(_as_server_user(command), what="initdb")
    _say(f"initdb done in {time.monotonic() - began:.1f} s")


def server_options(
    port: int,
    socket_dir: Path,
    *,
    fast: bool,
    wal_compression: str | None = None,
    toast_compression: str | None = None,
) -> str:
    """Return the postgres command-line options passed through ``pg_ctl -o``.

    ``wal_compression`` (a durable cluster only): the method full-page images are
    compressed with, ``lz4`` where the server was built with it (`wal_compression_method`).
    ``toast_compression`` (either kind): the method a new wide value is compressed with.
    """
    options = [
        f"-h {LOOPBACK}",
        f"-p {port}",
        f"-k {socket_dir}",
        "-c max_connections=200",
    ]
    if fast:
        # A throwaway test cluster: losing it on power failure costs nothing,
        # while fsync on every commit makes the test suite several times slower.
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    elif wal_compression is not None:
        # A durable cluster writes a page's full image at its first change after each
        # checkpoint: compressed, the WAL after a checkpoint was ~11-13 % smaller in
        # docs/performance.md's measurement, for a few microseconds of CPU per image.
        options.append(f"-c wal_compression={wal_compression}")
    if toast_compression is not None:
        # A row over ~2 kB (intake's outbox row, its hex fingerprints) is compressed before
        # it is stored. pglz, the default, spent 30-110 us a row on payloads it could not
        # shrink; lz4 gives up or finishes in a fraction of that (docs/performance.md,
        # fourteenth round). Values already stored keep their method; both stay readable.
        options.append(f"-c default_toast_compression={toast_compression}")
    return " ".join(options)


def wal_compression_method(bin_dir: Path) -> str | None:
    """``lz4`` if the server was built with it (PostgreSQL 15 and later), else None."""
    pg_config = bin_dir / "pg_config"
    version = bin_dir.parent.name
    if not pg_config.exists() or not (version.isdigit() and int(version) >= 15):
        return None
    try:
        configure = subprocess.run(
            [str(pg_config), "--configure"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return None
    return "lz4" if "--with-lz4" in configure else None


def _postmaster_port(layout: PostgresLayout) -> int | None:
    """Return the port of the running postmaster (line 4 of postmaster.pid), if any."""
    try:
        lines = (layout.data / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    try:
        return int(lines[3])
    except (IndexError, ValueError):
        return None


def _is_running(bin_dir: Path, layout: PostgresLayout) -> bool:
    if not layout.initialised:
        return False
    probe = subprocess.run(
        _as_server_user([str(bin_dir / "pg_ctl"), "status", "-D", str(layout.data)]),
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return probe.returncode == 0


def _url(port: int, database: str) -> str:
    return f"postgresql+asyncpg://{SUPERUSER}@{LOOPBACK}:{port}/{database}"


async def _ensure_database(port: int, database: str) -> bool:
    """Create database unless it exists; return True if created."""
    connection = await asyncpg.connect(
        host=LOOPBACK, port=port, user=SUPERUSER, database="postgres", timeout=10
    )
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if exists:
            return False
        # Identifiers cannot be bound as parameters; quote it the way PostgreSQL does.
        quoted = '"' + database.replace('"', '""') + '"'
        await connection.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await connection.close()


def _choose_port(port: int | None, layout: PostgresLayout) -> int:
    if port == 0:
        return free_port()
    if port is not None:
        if port_in_use(port):
            raise InfraError(f"port {port} on {LOOPBACK} is already in use")
        return port
    # Keep the previous run's port so a DATABASE_URL written earlier stays valid.
    previous = int(read_state(layout.state_file).get("port", 0))
    if previous and not port_in_use(previous):
        return previous
    return free_port()


def start(
    *,
    port: int | None = None,
    data_dir: Path | None = None,
    fast: bool = False,
    database: str = DEFAULT_DATABASE,
) -> str:
    """Start (or find) the cluster, make sure ``database`` exists, and return its URL.

    ``port=None`` reuses the previous run's port or picks a free one; ``port=0``
    always picks a free one. ``fast`` turns off fsync and friends (tests, CI).
    """
    external = os.environ.get("DATABASE_URL", "").strip()
    if external:
        _say("DATABASE_URL is set: using that database, starting nothing")
        return external

    bin_dir = find_bin_dir()
    layout = _locate(data_dir)
    if _is_running(bin_dir, layout):
        running_port = _postmaster_port(layout)
        if running_port is None:
            raise InfraError(f"a server runs on {layout.data} but its port is unknown")
        _say(f"already running on {LOOPBACK}:{running_port} ({layout.data})")
        run_sync(lambda: _ensure_database(running_port, database))
        return _url(running_port, database)

    began = time.monotonic()
    layout = _prepare(layout)
    if layout.initialised:
        found = (layout.data / "PG_VERSION").read_text(encoding="ascii").strip()
        if found != bin_dir.parent.name and re.fullmatch(r"\d+", bin_dir.parent.name):
            raise InfraError(
                f"{layout.data} was created by PostgreSQL {found} but the binaries are "
                f"{bin_dir.parent.name}; delete {layout.base} to start afresh"
            )
    else:
        _initdb(bin_dir, layout, fast=fast)

    chosen = _choose_port(port, layout)
    lz4 = wal_compression_method(bin_dir)
    mode = "fast: fsync off" if fast else "durable"
    _say(f"starting on {LOOPBACK}:{chosen} ({mode}; log: {layout.log_file})")
    started = time.monotonic()
    try:
        _run(
            _as_server_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(layout.data),
                    "-o",
                    server_options(
                        chosen,
                        layout.socket_dir,
                        fast=fast,
                        wal_compression=None if fast else lz4,
                        toast_compression=lz4,
                    ),
                    "-l",
                    str(layout.log_file),
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                    "start",
                ]
            ),
            what="pg_ctl start",
        )
    except InfraError as error:
        raise InfraError(
            f"{error}\n--- tail of {layout.log_file} ---\n{tail(layout.log_file)}"
        ) from None
    ready_in = time.monotonic() - started
    write_state(layout.state_file, {"base": str(layout.base), "port": chosen})
    if run_sync(lambda: _ensure_database(chosen, database)):
        _say(f"created database {database}")
    _say(
        f"ready on {LOOPBACK}:{chosen}: accepting connections {ready_in:.1f} s after "
        f"pg_ctl start, {time.monotonic() - began:.1f} s in all"
    )
    return _url(chosen, database)


def stop(*, data_dir: Path | None = None) -> bool:
    """Stop the cluster in data_dir (``pg_ctl stop -m fast``). Return True if one ran."""
    layout = _locate(data_dir)
    if not layout.initialised:
        _say(f"not running (no cluster in {layout.base})")
        return False
    bin_dir = find_bin_dir()
    if not _is_running(bin_dir, layout):
        _say(f"not running ({layout.data})")
        return False
    _say(f"stopping {layout.data} …")
    began = time.monotonic()
    _run(
        _as_server_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(layout.data),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ]
        ),
        what="pg_ctl stop",
    )
    _say(f"stopped in {time.monotonic() - began:.1f} s")
    return True


def purge(*, data_dir: Path | None = None) -> None:
    """Stop the cluster and delete its directory (and any /tmp fallback of it)."""
    stop(data_dir=data_dir)
    requested = (data_dir or default_var_dir() / "postgres").resolve()
    for base in (requested, _fallback_base(requested)):
        shutil.rmtree(base, ignore_errors=True)


def status(*, data_dir: Path | None = None, database: str = DEFAULT_DATABASE) -> str | None:
    """Return the URL of the running local cluster, or None."""
    layout = _locate(data_dir)
    if not layout.initialised:
        return None
    if not _is_running(find_bin_dir(), layout):
        return None
    running_port = _postmaster_port(layout)
    return _url(running_port, database) if running_port else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m deploy.local.postgres``."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.postgres",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: previous run's, else free; 0 = free)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="cluster directory (default var/postgres)"
    )
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fsync/synchronous_commit/full_page_writes off: for tests and CI only",
    )
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="database to create")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            url = start(
                port=args.port, data_dir=args.data_dir, fast=args.fast, database=args.database
            )
            print(f"DATABASE_URL={url}")
            return 0
        if args.command == "stop":
            stop(data_dir=args.data_dir)
            return 0
        found = status(data_dir=args.data_dir, database=args.database)
        if found:
            _say(f"running: {found}")
            print(f"DATABASE_URL={found}")
            return 0
        _say("not running")
        return 3
    except InfraError as error:
        _say(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
