"""A small HTTP server (standard library ``ThreadingHTTPServer``) for the viewer and the live page.

An app maps ``GET``/``POST`` paths to handlers returning ``Reply``; static files come from
``static/`` beside this module (package data). Safety for a server on a user's machine:
- bound to 127.0.0.1 unless a host is given explicitly;
- the Host header must name this server (a web page elsewhere cannot reach it by DNS rebinding);
- POST bodies must be ``application/json`` (a cross-site form cannot send that without a CORS
  preflight, which this server never grants), so another site cannot make it write files;
- POSTs (the viewer's Apply, which writes files) are taken only from this machine, also when the
  page is served to other machines with ``--host``.
"""
from __future__ import annotations

import json
import mimetypes
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import EpickError

STATIC = Path(__file__).resolve().parent / "static"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Reply:
    """An HTTP answer: status, content type and body."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200
    cache: bool = False

    @classmethod
    def json(cls, value, status: int = 200) -> "Reply":
        """A JSON reply."""
        return cls(json.dumps(value, allow_nan=False).encode(), "application/json", status)

    @classmethod
    def error(cls, message: str, status: int) -> "Reply":
        """``{"error": message}`` with ``status``."""
        return cls.json({"error": message}, status)


Route = Callable[[str, dict], Reply]       # (rest of the path, query or JSON body) -> Reply


class App:
    """Routes by path prefix; ``pages`` maps page paths to static files."""

    def __init__(self, get: dict[str, Route], post: dict[str, Route] | None = None,
                 pages: dict[str, str] | None = None):
        self.get_routes = get
        self.post_routes = post or {}
        self.pages = pages or {"/": "index.html"}

    def handle(self, method: str, path: str, params: dict) -> Reply:
        """Answer one request; EpickErrors become 400 (404 for NotFound) with the message."""
        from .api import NotFound

        routes = self.get_routes if method == "GET" else self.post_routes
        if method == "GET" and path in self.pages:
            return static_file(self.pages[path])
        if method == "GET" and path.startswith("/static/"):
            return static_file(path[len("/static/"):])
        for prefix, route in routes.items():
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                try:
                    return route(unquote(path[len(prefix):]), params)
                except NotFound as exc:
                    return Reply.error(str(exc), 404)
                except (EpickError, ValueError, KeyError, TypeError) as exc:
                    return Reply.error(str(exc), 400)
        return Reply.error(f"no such page: {path}", 404)


def static_file(name: str) -> Reply:
    """A file from ``static/`` (names with folders or dots in front are refused)."""
    if "/" in name or "\\" in name or name.startswith(".") or not (STATIC / name).is_file():
        return Reply.error(f"no such file: {name}", 404)
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind.endswith("javascript"):
        kind += "; charset=utf-8"
    return Reply((STATIC / name).read_bytes(), kind)


def is_loopback(address: str) -> bool:
    """True for a client on this machine (127.0.0.0/8, ::1, IPv4-mapped loopback)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _handler(app: App, allowed_hosts: set[str]):
    class Handler(BaseHTTPRequestHandler):
        server_version = "epick"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):      # quiet: the terminal shows what matters
            pass

        def _host_ok(self) -> bool:
            host = (self.headers.get("Host") or "").strip().lower()
            if host.startswith("["):
                name = host[: host.find("]") + 1]
            else:
                name = host.rsplit(":", 1)[0] if ":" in host else host
            return "*" in allowed_hosts or name in allowed_hosts

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Cache-Control", "max-age=3600" if reply.cache else "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            if not self._host_ok():
                return self._send(Reply.error("unexpected Host header", HTTPStatus.MISDIRECTED_REQUEST))
            url = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            self._send(app.handle("GET", url.path, params))

        def do_POST(self):  # noqa: N802
            if not self._host_ok():
                return self._send(Reply.error("unexpected Host header", HTTPStatus.MISDIRECTED_REQUEST))
            if not is_loopback(self.client_address[0]):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                return self._send(Reply.error("this writes files, so it is taken only from the machine serving "
                                              "the page; run the `epick filter` command there", 403))
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if kind != "application/json":
                return self._send(Reply.error("POST needs Content-Type: application/json", 415))
            try:
                params = json.loads(body or b"{}")
                if not isinstance(params, dict):
                    raise ValueError("a JSON object is expected")
            except ValueError as exc:
                return self._send(Reply.error(f"bad JSON body: {exc}", 400))
            self._send(app.handle("POST", urlsplit(self.path).path, params))

    return Handler


class Server:
    """``app`` served on ``host:port`` in a background thread (``port=0``: any free port).

    Use as a context manager or call ``start``/``stop``; ``url`` is where a browser finds it.
    """

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0):
        allowed = set(LOCAL_HOSTS)
        if host not in ("127.0.0.1", "localhost", "::1"):
            allowed.add("*")             # listening elsewhere: reached by whatever name the network uses
        try:
            self.httpd = ThreadingHTTPServer((host, int(port)), _handler(app, allowed))
        except OSError as exc:
            raise EpickError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                             "pass another --port (0 picks a free one)") from exc
        self.httpd.daemon_threads = True
        self.host = host
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port/``."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "Server":
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="epick-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
