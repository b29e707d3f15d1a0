"""A real Kannel SMS gateway for local use: bearerbox, smsbox and the fake SMSC (fakesmsc).

    python -m deploy.local.kannel start [--data-dir DIR] [--mo-url URL] [--keywords-url URL]
    python -m deploy.local.kannel stop|status [--data-dir DIR]
    python -m deploy.local.kannel inject --from NUMBER --to NUMBER TEXT   (a phone's reply)
    python -m deploy.local.kannel received                               (what phones got)

Debian packages: ``kannel`` (bearerbox, smsbox) and ``kannel-extras``
(``/usr/lib/kannel/test/fakesmsc``). fakesmsc plays the carrier: it logs every
message Kannel hands it (the capture tests read, ``fakesmsc.log``) and sends each
line written to its standard input as a message from a phone. Its stdin is a named
pipe in the data directory, so any process can inject a reply.

Everything (generated ``kannel.conf``, logs, pid files, the pipe, the capture)
lives in the data directory, by default ``var/kannel``. The boxes log at warning
level and the access log omits numbers and text: at info level Kannel writes every
number and message it handles.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
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

__all__ = [
    "FAKESMSC",
    "FakeSms",
    "KannelEndpoints",
    "KannelLayout",
    "inject",
    "installed",
    "main",
    "received",
    "render_config",
    "start",
    "status",
    "stop",
]

COMPONENT = "kannel"
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
USERNAME = "aviso"
# The number replies are sent to and SMS come from, unless Aviso names another.
SHORT_CODE = "12345"
# At least `kannel_max_segments`: Kannel drops the parts beyond it without a word.
MAX_MESSAGES = 10
DEFAULT_READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
# fakesmsc reads stdin into a 256-byte buffer: a longer line is cut into two messages.
MAX_INJECT_LINE = 250
_BOXES = ("smsbox", "fakesmsc", "bearerbox")  # the order they are stopped in
_launched: dict[int, subprocess.Popen[bytes]] = {}


def _say(message: str) -> None:
    say(COMPONENT, message)


@dataclass(frozen=True)
class KannelLayout:
    """Where one local gateway keeps its files."""

    data_dir: Path

    @property
    def config(self) -> Path:
        return self.data_dir / "kannel.conf"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "state.json"

    @property
    def fakesmsc_input(self) -> Path:
        return self.data_dir / "fakesmsc.in"

    @property
    def fakesmsc_log(self) -> Path:
        return self.logs / "fakesmsc.log"

    def pid_file(self, box: str) -> Path:
        return self.data_dir / f"{box}.pid"

    def box_log(self, box: str) -> Path:
        return self.logs / f"{box}.log"

    def stdout_log(self, box: str) -> Path:
        return self.logs / f"{box}.out"


@dataclass(frozen=True)
class KannelEndpoints:
    """How to reach a running gateway."""

    sendsms_url: str
    username: str
    password: str
    admin_port: int
    smsc_port: int

    def env(self, data_dir: Path) -> dict[str, str]:
        """The environment Aviso's settings (and `inject`) read."""
        return {
            "AVISO_KANNEL_SENDSMS_URL": self.sendsms_url,
            "AVISO_KANNEL_USERNAME": self.username,
            "AVISO_KANNEL_PASSWORD": self.password,
            "KANNEL_DATA_DIR": str(data_dir),
        }


def _keyword_service(keywords_url: str | None) -> list[str]:
    """The sms-service that routes community keywords (STOP, ALTO, ...) to rumor_control."""
    if not keywords_url:
        return []
    # Imported lazily, as in render_config.
    from services.common.delivery.sms_reports import mo_get_url
    from services.rumor_control.community.keywords import KEYWORDS

    first, *others = sorted(word.lower() for word in KEYWORDS)
    return [
        "",
        "group = sms-service",
        f"keyword = {first}",
        f'aliases = "{";".join(others)}"',
        f'get-url = "{mo_get_url(keywords_url)}"',
        "max-messages = 0",
        "omit-empty = true",
    ]


def render_config(
    layout: KannelLayout,
    *,
    ports: dict[str, int],
    password: str,
    mo_url: str | None,
    keywords_url: str | None = None,
) -> str:
    """Return kannel.conf for one bearerbox, one smsbox and the fake SMSC, all on loopback.

    Replies go to `mo_url` (router: acknowledgements), except the community keywords,
    which go to `keywords_url` (rumor_control) when it is given: Kannel routes a message
    by its first word, the way a carrier's short code is shared between services.
    """
    # Escape codes Kannel fills in for each reply; imported lazily so the module runs
    # before the project is installed (the stack tooling does).
    from services.common.delivery.sms_reports import mo_get_url

    access_format = "%t %l [SMSC:%i] [SVC:%n] [FID:%F] [flags:%m:%c:%M:%C:%d] [len:%L] [udh:%U]"
    if mo_url:
        service = [f'get-url = "{mo_get_url(mo_url)}"', "catch-all = true"]
    else:
        service = ['text = "not forwarded"']
    lines = [
        "# Generated by deploy/local/kannel.py; rewritten on every start.",
        "group = core",
        f"admin-port = {ports['admin']}",
        f"admin-interface = {LOOPBACK}",
        f'admin-password = "{password}"',
        f"smsbox-port = {ports['smsbox']}",
        f"smsbox-interface = {LOOPBACK}",
        f'box-allow-ip = "{LOOPBACK}"',
        f'log-file = "{layout.box_log("bearerbox")}"',
        "log-level = 2",
        f'access-log = "{layout.logs / "access.log"}"',
        f'access-log-format = "{access_format}"',
        "access-log-clean = true",
        "dlr-storage = internal",
        "",
        "group = smsc",
        "smsc = fake",
        "smsc-id = fake",
        f"port = {ports['smsc']}",
        f'connect-allow-ip = "{LOOPBACK}"',
        "",
        "group = smsbox",
        f"bearerbox-host = {LOOPBACK}",
        f"bearerbox-port = {ports['smsbox']}",
        f"sendsms-port = {ports['sendsms']}",
        f"sendsms-interface = {LOOPBACK}",
        # No space: Kannel would read "+1 555" as two receivers.
        'sendsms-chars = "0123456789+"',
        f"global-sender = {SHORT_CODE}",
        f'log-file = "{layout.box_log("smsbox")}"',
        "log-level = 2",
        # No `http-request-retry`: smsbox repeats a callback the endpoint did receive (a
        # reused connection the receiver had closed counts as failed), and a repeated
        # reply would be acted on twice.
        "",
        "group = sendsms-user",
        f"username = {USERNAME}",
        f'password = "{password}"',
        f"max-messages = {MAX_MESSAGES}",
        "concatenation = true",
        "",
        "group = sms-service",
        "keyword = default",
        *service,
        # 0: the endpoint's answer never becomes an SMS; Aviso replies through sendsms.
        "max-messages = 0",
        "omit-empty = true",
        *_keyword_service(keywords_url),
    ]
    return "\n".join(lines) + "\n"


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise InfraError(f"{name} not found; install Kannel (apt-get install -y kannel)")
    return found


def installed() -> bool:
    """Whether bearerbox, smsbox and the fake SMSC are installed on this machine."""
    boxes = all(
        shutil.which(box) or shutil.which(box, path="/usr/sbin:/usr/local/sbin")
        for box in ("bearerbox", "smsbox")
    )
    return boxes and os.access(FAKESMSC, os.X_OK)


def _fakesmsc() -> str:
    if not os.access(FAKESMSC, os.X_OK):
        raise InfraError(f"{FAKESMSC} not found; install it (apt-get install -y kannel-extras)")
    return str(FAKESMSC)


def _is_ours(pid: int, layout: KannelLayout, box: str) -> bool:
    """True if pid is this data dir's box (guards against pid reuse)."""
    cmdline = cmdline_of(pid)
    if box == "fakesmsc":
        state = read_state(layout.state_file)
        return "fakesmsc" in cmdline and f"-r {state.get('smsc_port', '')}" in cmdline
    return box in cmdline and str(layout.config) in cmdline


def _running(layout: KannelLayout) -> dict[str, int]:
    found: dict[str, int] = {}
    for box in _BOXES:
        pid = read_pid(layout.pid_file(box))
        if pid is not None and pid_alive(pid) and _is_ours(pid, layout, box):
            found[box] = pid
    return found


def _endpoints(state: dict[str, object]) -> KannelEndpoints:
    return KannelEndpoints(
        sendsms_url=f"http://{LOOPBACK}:{state['sendsms_port']}/cgi-bin/sendsms",
        username=USERNAME,
        password=str(state["password"]),
        admin_port=int(str(state["admin_port"])),
        smsc_port=int(str(state["smsc_port"])),
    )


def _launch(layout: KannelLayout, box: str, command: list[str], stdin: int) -> int:
    with layout.stdout_log(box).open("ab") as out:
        # A new session: Ctrl-C in the terminal that ran `start` must not stop the gateway.
        proc = subprocess.Popen(
            command,
            cwd=layout.data_dir,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _launched[proc.pid] = proc
    write_pid(layout.pid_file(box), proc.pid)
    return proc.pid


def start(
    *,
    data_dir: Path | None = None,
    mo_url: str | None = None,
    keywords_url: str | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> KannelEndpoints:
    """Start (or find) the gateway on free loopback ports; return it once it takes messages.

    Replies go to `mo_url`, community keywords to `keywords_url` (see `render_config`).
    """
    layout = KannelLayout((data_dir or default_var_dir() / "kannel").resolve())
    running = _running(layout)
    state = read_state(layout.state_file)
    routes = {"mo_url": mo_url or "", "keywords_url": keywords_url or ""}
    same_routes = all(state.get(key, "") == value for key, value in routes.items())
    if len(running) == len(_BOXES) and same_routes:
        endpoints = _endpoints(state)
        _say(f"already running ({', '.join(f'{b} {p}' for b, p in running.items())})")
        return endpoints
    if running:
        _say("partly running or routing elsewhere; restarting it")
        stop(data_dir=layout.data_dir)
    bearerbox, smsbox, fakesmsc = _binary("bearerbox"), _binary("smsbox"), _fakesmsc()
    began = time.monotonic()
    layout.logs.mkdir(parents=True, exist_ok=True)
    state = read_state(layout.state_file)
    password = str(state.get("password") or secrets.token_urlsafe(18))
    taken: set[int] = set()
    ports: dict[str, int] = {}
    for name in ("admin", "smsbox", "smsc", "sendsms"):
        ports[name] = free_port(exclude=frozenset(taken))
        taken.add(ports[name])
    config = render_config(
        layout, ports=ports, password=password, mo_url=mo_url, keywords_url=keywords_url
    )
    layout.config.write_text(config, encoding="utf-8")
    state = {f"{name}_port": port for name, port in ports.items()}
    state.update(password=password, **routes)
    write_state(layout.state_file, state)
    endpoints = _endpoints(state)
    remove_quietly(layout.fakesmsc_log)
    _say(f"starting bearerbox (admin {ports['admin']}, fake SMSC {ports['smsc']}) …")
    try:
        pid = _launch(
            layout, "bearerbox", [bearerbox, "-v", "2", str(layout.config)], subprocess.DEVNULL
        )
        _wait_port(layout, ports["smsc"], pid, "bearerbox", timeout)
        _start_fakesmsc(layout, fakesmsc, ports["smsc"])
        _say(f"starting smsbox (sendsms on {LOOPBACK}:{ports['sendsms']}) …")
        pid = _launch(layout, "smsbox", [smsbox, "-v", "2", str(layout.config)], subprocess.DEVNULL)
        _wait_port(layout, ports["sendsms"], pid, "smsbox", timeout)
        _wait_online(endpoints, password, timeout)
    except InfraError:
        stop(data_dir=layout.data_dir)
        raise
    _say(f"ready: sendsms {endpoints.sendsms_url}, {time.monotonic() - began:.1f} s in all")
    return endpoints


def _start_fakesmsc(layout: KannelLayout, fakesmsc: str, port: int) -> None:
    remove_quietly(layout.fakesmsc_input)
    os.mkfifo(layout.fakesmsc_input, 0o600)
    # Opened read-write, so the pipe always has a writer and fakesmsc never reads EOF
    # between two injected lines (each `inject` opens, writes one line and closes).
    fd = os.open(layout.fakesmsc_input, os.O_RDWR)
    try:
        # -v 0: fakesmsc logs what it receives at debug level only; that log is the capture.
        command = [fakesmsc, "-H", LOOPBACK, "-r", str(port), "-v", "0"]
        with layout.fakesmsc_log.open("ab") as capture:
            proc = subprocess.Popen(
                command,
                cwd=layout.data_dir,
                stdin=fd,
                stdout=capture,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    finally:
        os.close(fd)
    _launched[proc.pid] = proc
    write_pid(layout.pid_file("fakesmsc"), proc.pid)
    _say(f"started fakesmsc (pid {proc.pid}) as the SMSC; capture: {layout.fakesmsc_log}")


def _wait_port(layout: KannelLayout, port: int, pid: int, box: str, timeout: float) -> None:
    if not wait_for_port(port, timeout=timeout, alive=lambda: pid_alive(pid)):
        raise InfraError(
            f"{box} did not open {LOOPBACK}:{port} within {timeout:.0f} s"
            f"\n--- tail of {layout.stdout_log(box)} ---\n{tail(layout.stdout_log(box), 20)}"
            f"\n--- tail of {layout.box_log(box)} ---\n{tail(layout.box_log(box), 20)}"
        )


def _admin_status(endpoints: KannelEndpoints, password: str) -> str:
    query = urllib.parse.urlencode({"password": password})
    url = f"http://{LOOPBACK}:{endpoints.admin_port}/status.txt?{query}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode("utf-8", "replace"))


def _wait_online(endpoints: KannelEndpoints, password: str, timeout: float) -> None:
    """Wait until bearerbox reports the fake SMSC online and an smsbox connected."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.URLError):
            text = _admin_status(endpoints, password)
            smsc_online = re.search(r"FAKE:\d+\s+\(online", text) is not None
            box_online = re.search(r"smsbox:.*\(on-line", text) is not None
            if smsc_online and box_online:
                return
        time.sleep(0.1)
    raise InfraError(f"Kannel not ready within {timeout:.0f} s; status:\n{text}")


def stop(*, data_dir: Path | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop this data dir's boxes (smsbox, fakesmsc, bearerbox). Return True if any ran."""
    layout = KannelLayout((data_dir or default_var_dir() / "kannel").resolve())
    running = _running(layout)
    for box in set(_BOXES) - set(running):
        remove_quietly(layout.pid_file(box))  # stale
    if not running:
        _say(f"not running (no live box in {layout.data_dir})")
        return False
    began = time.monotonic()
    for box in _BOXES:
        pid = running.get(box)
        if pid is None:
            continue
        killed = terminate(pid, timeout=timeout, component=COMPONENT)
        proc = _launched.pop(pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
        remove_quietly(layout.pid_file(box))
        _say(f"{box} (pid {pid}) {'killed' if killed else 'stopped cleanly'}")
    remove_quietly(layout.fakesmsc_input)
    _say(f"stopped in {time.monotonic() - began:.1f} s")
    return True


def status(*, data_dir: Path | None = None) -> KannelEndpoints | None:
    """Return the running gateway's endpoints, or None."""
    layout = KannelLayout((data_dir or default_var_dir() / "kannel").resolve())
    if len(_running(layout)) != len(_BOXES):
        return None
    return _endpoints(read_state(layout.state_file))


# ------------------------------------------------------------------ the fake carrier

_GOT = re.compile(r"Got message (\d+): <(.*)>$")
_SENT = re.compile(r"fakesmsc: sent message (\d+)")


@dataclass(frozen=True)
class FakeSms:
    """One message (one segment) Kannel handed to the fake SMSC."""

    sender: str
    receiver: str
    udh: bytes
    data: bytes  # GSM text as UTF-8, UCS-2 as UTF-16BE: fakesmsc does not say which

    @property
    def concatenation(self) -> tuple[int, int, int] | None:
        """(reference, parts, this part) from the concatenation header, if any."""
        header = self.udh[1:]
        while len(header) >= 2:
            ie, size, body = header[0], header[1], header[2 : 2 + header[1]]
            if ie == 0x00 and size == 3:
                return body[0], body[1], body[2]
            if ie == 0x08 and size == 4:
                return (body[0] << 8) | body[1], body[2], body[3]
            header = header[2 + size :]
        return None


def _parse_line(line: str) -> FakeSms | None:
    """One line as fakesmsc logs it: `sender receiver [udh X] (text T | data D)`."""
    sender, _, rest = line.partition(" ")
    receiver, _, rest = rest.partition(" ")
    udh = b""
    if rest.startswith("udh "):
        encoded, _, rest = rest[4:].partition(" ")
        udh = _unquote_plus(encoded)
    kind, _, body = rest.partition(" ")
    if kind == "text":
        return FakeSms(sender, receiver, udh, body.encode("utf-8"))
    if kind in ("data", "ucs2"):
        return FakeSms(sender, receiver, udh, _unquote_plus(body))
    return None


def _unquote_plus(encoded: str) -> bytes:
    """Kannel's URL encoding: a space is "+", a literal "+" is "%2B"."""
    return urllib.parse.unquote_to_bytes(encoded.replace("+", " "))


def received(*, data_dir: Path | None = None) -> list[FakeSms]:
    """Every segment the fake SMSC received since the gateway started, oldest first."""
    layout = KannelLayout((data_dir or default_var_dir() / "kannel").resolve())
    try:
        text = layout.fakesmsc_log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    found: list[FakeSms] = []
    for line in text.splitlines():
        match = _GOT.search(line)
        if match is not None and (sms := _parse_line(match.group(2))) is not None:
            found.append(sms)
    return found


def _sent_count(layout: KannelLayout) -> int:
    try:
        text = layout.fakesmsc_log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return 0
    counts = [int(m.group(1)) for m in _SENT.finditer(text)]
    return max(counts, default=0)


def inject(
    sender: str, receiver: str, text: str, *, data_dir: Path | None = None, timeout: float = 10.0
) -> None:
    """Send `text` from phone `sender` to `receiver` (Aviso's number) through the fake SMSC.

    Returns once fakesmsc has passed it to bearerbox. One line at a time: fakesmsc reads
    stdin with select() and fgets(), so a second line written in the same burst would sit
    in its stdio buffer until the next one arrives.
    """
    layout = KannelLayout((data_dir or default_var_dir() / "kannel").resolve())
    if text.isascii() and text.isprintable():
        line = f"{sender} {receiver} text {text}\n"
    else:  # as a phone sends Spanish with á: UCS-2
        line = f"{sender} {receiver} ucs2 {urllib.parse.quote(text.encode('utf-16-be'))}\n"
    if len(line.encode()) > MAX_INJECT_LINE or " " in sender or " " in receiver:
        raise InfraError("message too long (or a number with a space) for fakesmsc's input")
    before = _sent_count(layout)
    try:
        fd = os.open(layout.fakesmsc_input, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        raise InfraError(f"fakesmsc is not running ({error.strerror})") from None
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout
    while _sent_count(layout) <= before:
        if time.monotonic() > deadline:
            raise InfraError(f"fakesmsc did not send the message within {timeout:.0f} s")
        time.sleep(0.05)


# ------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m deploy.local.kannel``."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.kannel",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status", "inject", "received"])
    parser.add_argument("text", nargs="?", default="", help="inject: the reply's text")
    parser.add_argument("--data-dir", type=Path, default=None, help="default var/kannel")
    parser.add_argument("--mo-url", default=None, help="start: where replies are delivered")
    parser.add_argument(
        "--keywords-url", default=None, help="start: where community keywords are delivered"
    )
    parser.add_argument("--from", dest="sender", default="+15555550100", help="inject: phone")
    parser.add_argument("--to", dest="receiver", default=SHORT_CODE, help="inject: Aviso's number")
    args = parser.parse_intermixed_args(argv)
    data_dir: Path = (args.data_dir or default_var_dir() / "kannel").resolve()
    try:
        if args.command == "start":
            endpoints = start(data_dir=data_dir, mo_url=args.mo_url, keywords_url=args.keywords_url)
            for key, value in endpoints.env(data_dir).items():
                print(f"{key}={value}")
            return 0
        if args.command == "stop":
            stop(data_dir=data_dir)
            return 0
        if args.command == "inject":
            inject(args.sender, args.receiver, args.text, data_dir=data_dir)
            _say("injected")
            return 0
        if args.command == "received":
            for sms in received(data_dir=data_dir):
                print(f"{sms.receiver} udh={sms.udh.hex()} {sms.data!r}")
            return 0
        found = status(data_dir=data_dir)
        _say(f"running: sendsms {found.sendsms_url}" if found else "not running")
        return 0 if found else 3
    except InfraError as error:
        _say(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
