"""What the in-process benches hand an ASGI app: the scope of one POST as uvicorn builds it.

benchmarks/edge_layers.py and benchmarks/submission_path.py call a service's app as the
server would, without a socket, so that what they count is the app's own work.
"""

from __future__ import annotations

from typing import Any

__all__ = ["post_scope"]


def post_scope(path: str, body: bytes, *, token: str, port: int) -> dict[str, Any]:
    """The HTTP scope of a JSON POST to `path` on 127.0.0.1:`port` with a bearer `token`."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", port),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", f"127.0.0.1:{port}".encode()),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer " + token.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": {},
    }
