"""A real OpenID Provider for local use and tests: zitadel/oidc's example OP, built with Go.

    python -m deploy.local.oidc build                      (compile once; cached)
    python -m deploy.local.oidc start [--data-dir DIR] [--port N] [--redirect-uri URL ...]
    python -m deploy.local.oidc stop|status [--data-dir DIR]

The provider is github.com/zitadel/oidc/v3 (a certified OpenID Connect library) running
its example server: in-memory storage, RS256 keys published at /keys, a discovery
document, PKCE, and its own login page (username and password). `oidc_provider/main.go`
only wires it: it listens on 127.0.0.1, and takes the issuer, the console's client id,
secret and redirect URIs and the users from the environment. The Go module proxy serves
the library (pinned in oidc_provider/go.sum); the binary is cached under
``$AVISO_CACHE_DIR/oidc-provider-<digest of the sources>/`` (default ``~/.cache/aviso``),
so a second build, or a fresh clone on the same machine, compiles nothing.

The issuer is ``http://localhost:PORT``, another site than the console's
``http://127.0.0.1:PORT``, as a real provider is: the SameSite rules that apply to the
console's cookies in production apply on this machine too.

Everything else (users file, state, pid, log) lives in the data directory, by default
``var/oidc``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.local.common import (
    LOOPBACK,
    InfraError,
    cmdline_of,
    default_var_dir,
    free_port,
    pid_alive,
    read_pid,
    read_state,
    remove_quietly,
    say,
    tail,
    terminate,
    wait_for_port,
    write_pid,
    write_state,
)
from deploy.local.kafka import cache_base

__all__ = [
    "CLIENT_ID",
    "DEV_USERS",
    "SOURCE",
    "OidcEndpoints",
    "OidcUser",
    "binary_path",
    "build",
    "default_redirect_uris",
    "main",
    "start",
    "status",
    "stop",
]

COMPONENT = "oidc"
SOURCE = Path(__file__).resolve().parent / "oidc_provider"
BINARY_NAME = "aviso-oidc-provider"
CLIENT_ID = "aviso-console"
DEFAULT_READY_TIMEOUT = 30.0
BUILD_TIMEOUT = 600.0
CONSOLE_CALLBACK = "/signin/oidc/callback"
_launched: dict[int, subprocess.Popen[bytes]] = {}


def _say(message: str) -> None:
    say(COMPONENT, message)


@dataclass(frozen=True)
class OidcUser:
    """A person the provider knows: `subject` is the `sub` its ID tokens carry."""

    subject: str
    username: str
    password: str
    given_name: str = "Test"
    family_name: str = "User"
    email: str = ""

    def as_stored(self) -> dict[str, object]:
        """The example storage's JSON shape (storage.User)."""
        return {
            "ID": self.subject,
            "Username": self.username,
            "Password": self.password,
            "FirstName": self.given_name,
            "LastName": self.family_name,
            "Email": self.email or self.username,
            "EmailVerified": True,
            "PreferredLanguage": "en",
        }


# People of the local demo (loopback only; `aviso users link LOGIN --oidc-subject SUB`).
DEV_USERS: tuple[OidcUser, ...] = (
    OidcUser("idp-spoc", "spoc@aviso.test", "aviso-idp-dev-1", "A.", "Reyes"),
    OidcUser("idp-vetter", "vetter@aviso.test", "aviso-idp-dev-2", "P.", "Morales"),
    OidcUser("idp-ops", "ops@aviso.test", "aviso-idp-dev-3", "Operations", "Desk"),
)


@dataclass(frozen=True)
class OidcEndpoints:
    """How to reach a running provider, and the console's client there."""

    issuer: str
    client_id: str
    client_secret: str
    port: int

    def env(self) -> dict[str, str]:
        """The environment the console's settings read."""
        return {
            "AVISO_CONSOLE_OIDC_ISSUER": self.issuer,
            "AVISO_CONSOLE_OIDC_CLIENT_ID": self.client_id,
            "AVISO_CONSOLE_OIDC_CLIENT_SECRET": self.client_secret,
            "AVISO_CONSOLE_OIDC_PROVIDER_NAME": "the local identity provider",
        }


def _source_digest() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes())
    return digest.hexdigest()[:16]


def binary_path(cache_dir: Path | None = None) -> Path:
    """Where the binary of the current sources is (or will be) cached."""
    return (cache_dir or cache_base()) / f"oidc-provider-{_source_digest()}" / BINARY_NAME


def _go() -> str:
    found = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin:/usr/lib/go/bin")
    if found is None:
        raise InfraError("go not found: install Go 1.26 (the provider is built from source)")
    return found


def build(*, cache_dir: Path | None = None) -> Path:
    """The provider's binary: compiled once per source digest, then reused."""
    target = binary_path(cache_dir)
    if os.access(target, os.X_OK):
        _say(f"provider binary cached: {target}")
        return target
    go = _go()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    _say(f"building zitadel/oidc's OpenID Provider with {go} (once; cached afterwards) …")
    began = time.monotonic()
    # GOTOOLCHAIN is left as the machine has it: an older Go fetches the one go.mod names.
    env = dict(os.environ, GOFLAGS="-mod=readonly -buildvcs=false")
    try:
        done = subprocess.run(
            [go, "build", "-trimpath", "-o", str(partial), "."],
            cwd=SOURCE,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InfraError(f"go build did not finish within {BUILD_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise InfraError(f"go build failed ({done.returncode}):\n{done.stderr[-4000:]}")
    partial.replace(target)
    _say(f"built {target} in {time.monotonic() - began:.1f} s")
    return target


@dataclass(frozen=True)
class _Layout:
    data_dir: Path

    @property
    def state_file(self) -> Path:
        return self.data_dir / "state.json"

    @property
    def users_file(self) -> Path:
        return self.data_dir / "users.json"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "oidc.pid"

    @property
    def log(self) -> Path:
        return self.data_dir / "logs" / "oidc.log"


def _layout(data_dir: Path | None) -> _Layout:
    return _Layout((data_dir or default_var_dir() / "oidc").resolve())


def _running(layout: _Layout) -> int | None:
    pid = read_pid(layout.pid_file)
    if pid is not None and pid_alive(pid) and BINARY_NAME in cmdline_of(pid):
        return pid
    return None


def _endpoints(state: Mapping[str, object]) -> OidcEndpoints:
    return OidcEndpoints(
        issuer=str(state["issuer"]),
        client_id=str(state["client_id"]),
        client_secret=str(state["client_secret"]),
        port=int(str(state["port"])),
    )


def default_redirect_uris(console_port: int = 8000) -> list[str]:
    """The console's callback on this machine, by address and by name."""
    return [f"http://{host}:{console_port}{CONSOLE_CALLBACK}" for host in (LOOPBACK, "localhost")]


def start(
    *,
    data_dir: Path | None = None,
    port: int | None = None,
    redirect_uris: Sequence[str] | None = None,
    users: Sequence[OidcUser] = DEV_USERS,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> OidcEndpoints:
    """Start (or find) the provider on 127.0.0.1; return it once its discovery answers."""
    layout = _layout(data_dir)
    wanted = list(redirect_uris or default_redirect_uris())
    running = _running(layout)
    state = read_state(layout.state_file)
    if running is not None:
        if state.get("redirect_uris") == wanted and state.get("users") == _users_json(users):
            _say(f"already running (pid {running}) as {state.get('issuer')}")
            return _endpoints(state)
        _say("running with other clients or users; restarting it")
        stop(data_dir=layout.data_dir)
    binary = build()
    began = time.monotonic()
    layout.log.parent.mkdir(parents=True, exist_ok=True)
    chosen = port or free_port()
    state = {
        "issuer": f"http://localhost:{chosen}",
        "client_id": CLIENT_ID,
        "client_secret": str(state.get("client_secret") or secrets.token_urlsafe(24)),
        "port": chosen,
        "redirect_uris": wanted,
        "users": _users_json(users),
    }
    layout.users_file.write_text(str(state["users"]), encoding="utf-8")
    layout.users_file.chmod(0o600)
    write_state(layout.state_file, state)
    layout.state_file.chmod(0o600)
    proc = _launch(binary, layout, state, wanted)
    endpoints = _endpoints(state)
    try:
        _wait_ready(endpoints, proc.pid, timeout)
    except InfraError as error:
        stop(data_dir=layout.data_dir)
        raise InfraError(f"{error}\n--- tail of {layout.log} ---\n{tail(layout.log, 20)}") from None
    _say(
        f"ready as {endpoints.issuer} (pid {proc.pid}), client {CLIENT_ID}, "
        f"{time.monotonic() - began:.1f} s in all"
    )
    return endpoints


def _launch(
    binary: Path, layout: _Layout, state: Mapping[str, object], redirect_uris: Sequence[str]
) -> subprocess.Popen[bytes]:
    """Run the provider with this data dir's issuer, client and users."""
    env = dict(
        os.environ,
        OIDC_LISTEN=f"{LOOPBACK}:{state['port']}",
        # The library's issuer ends with "/", as zitadel's example configures it.
        OIDC_ISSUER=f"http://localhost:{state['port']}/",
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=str(state["client_secret"]),
        OIDC_REDIRECT_URIS=",".join(redirect_uris),
        OIDC_USERS_FILE=str(layout.users_file),
    )
    _say(f"starting the provider on {LOOPBACK}:{state['port']} (logs: {layout.log})")
    with layout.log.open("ab") as out:
        # A new session: Ctrl-C in the terminal that ran `start` must not stop the provider.
        proc = subprocess.Popen(
            [str(binary)],
            cwd=layout.data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _launched[proc.pid] = proc
    write_pid(layout.pid_file, proc.pid)
    return proc


def _users_json(users: Sequence[OidcUser]) -> str:
    return json.dumps({u.subject: u.as_stored() for u in users}, sort_keys=True)


def _wait_ready(endpoints: OidcEndpoints, pid: int, timeout: float) -> None:
    """Wait until the discovery document names the issuer."""
    if not wait_for_port(endpoints.port, timeout=timeout, alive=lambda: pid_alive(pid)):
        raise InfraError(f"the provider did not open {LOOPBACK}:{endpoints.port}")
    url = f"http://{LOOPBACK}:{endpoints.port}/.well-known/openid-configuration"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                document = json.loads(response.read())
            if str(document.get("issuer", "")).rstrip("/") == endpoints.issuer:
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.1)
    raise InfraError(f"the provider's discovery document did not answer within {timeout:.0f} s")


def stop(*, data_dir: Path | None = None) -> bool:
    """Stop this data dir's provider. Return True if it ran."""
    layout = _layout(data_dir)
    pid = _running(layout)
    if pid is None:
        remove_quietly(layout.pid_file)
        _say(f"not running (no live provider in {layout.data_dir})")
        return False
    killed = terminate(pid, timeout=10.0, component=COMPONENT)
    proc = _launched.pop(pid, None)
    if proc is not None:
        proc.wait(timeout=5.0)
    remove_quietly(layout.pid_file)
    _say(f"provider (pid {pid}) {'killed' if killed else 'stopped cleanly'}")
    return True


def status(*, data_dir: Path | None = None) -> OidcEndpoints | None:
    """The running provider's endpoints, or None."""
    layout = _layout(data_dir)
    if _running(layout) is None:
        return None
    return _endpoints(read_state(layout.state_file))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m deploy.local.oidc``."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.oidc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["build", "start", "stop", "status"])
    parser.add_argument("--data-dir", type=Path, default=None, help="default var/oidc")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        help="the console's callback (repeatable; default: port 8000 on 127.0.0.1 and localhost)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build()
            return 0
        if args.command == "start":
            endpoints = start(
                data_dir=args.data_dir, port=args.port, redirect_uris=args.redirect_uri
            )
            for key, value in endpoints.env().items():
                print(f"{key}={value}")
            for user in DEV_USERS:
                _say(f"user {user.username} / {user.password} (subject {user.subject})")
            return 0
        if args.command == "stop":
            stop(data_dir=args.data_dir)
            return 0
        found = status(data_dir=args.data_dir)
        _say(f"running as {found.issuer}" if found else "not running")
        return 0 if found else 3
    except InfraError as error:
        _say(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
