"""What every HTTP contract server shares: a threaded server on 127.0.0.1 with a free port, one log
of the requests it received, the reply writing, and the checks a test makes on that log.

A subclass implements `_answer(request) -> Reply`; the request is logged before it is answered and
its `status` is filled in with what was sent back. The checks follow the Supabase CLI's
`apitest.AssertRequestsDone`: a test fails on a request it did not expect as much as on one that
is missing, and says which ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# RFC 9110 §9.2.1: the methods that ask only to read. Everything else counts as a write.
READ_METHODS = frozenset({"GET", "HEAD"})
# How much of a body a failure message shows.
BODY_PREVIEW = 120


@dataclass
class RecordedRequest:
    method: str
    target: str  # the request-target as sent: path and query string
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int = 0  # what the server answered

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def call(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def is_read(self) -> bool:
        return self.method in READ_METHODS

    @property
    def basic_auth_user(self) -> str | None:
        scheme, _, credentials = self.headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return None
        try:
            return base64.b64decode(credentials, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """The body as application/x-www-form-urlencoded; ValueError when it is not well formed."""
        return parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=bool(self.body))

    def __str__(self) -> str:
        body = ""
        if self.body:
            text = self.body[:BODY_PREVIEW].decode(errors="replace")
            body = f"  {text!r}{'…' if len(self.body) > BODY_PREVIEW else ''}"
        return f"{self.method} {self.target} -> {self.status}{body}"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, value: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(value).encode(), "application/json; charset=utf-8", headers or {})


def text_reply(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Reply:
    return Reply(status, text.encode(), content_type)


# An allowed request: a method and a path, the path given exactly or as a pattern it must match
# in full; or a predicate on the request.
Allowed = tuple[str, str | re.Pattern[str]] | Callable[[RecordedRequest], bool]


def _matches(request: RecordedRequest, allowed: Allowed) -> bool:
    if callable(allowed):
        return allowed(request)
    method, path = allowed
    if method != request.method:
        return False
    return bool(path.fullmatch(request.path)) if isinstance(path, re.Pattern) else path == request.path


def _describe(allowed: Allowed) -> str:
    if callable(allowed):
        return getattr(allowed, "__name__", repr(allowed))
    method, path = allowed
    return f"{method} {path.pattern if isinstance(path, re.Pattern) else path}"


def is_read(request: RecordedRequest) -> bool:
    return request.is_read


def assert_no_unexpected_requests(*servers: LocalHttpServer, allowed: Iterable[Allowed]) -> None:
    """Every request each server received matches one of `allowed`; otherwise fail with a list of
    those that did not, server by server."""
    allowed = list(allowed)
    lines = []
    for server in servers:
        offending = [r for r in server.requests if not any(_matches(r, a) for a in allowed)]
        if offending:
            lines.append(f"{type(server).__name__} received {len(offending)} unexpected request(s):")
            lines.extend(f"  {r}" for r in offending)
    if lines:
        expected = ", ".join(_describe(a) for a in allowed) or "nothing"
        raise AssertionError("\n".join([*lines, f"allowed: {expected}"]))


def assert_only_reads(*servers: LocalHttpServer) -> None:
    """No server received a write (any method but GET and HEAD)."""
    assert_no_unexpected_requests(*servers, allowed=[is_read])


@dataclass
class LocalHttpServer:
    requests: list[RecordedRequest] = field(default_factory=list, kw_only=True, repr=False)
    _httpd: ThreadingHTTPServer | None = field(default=None, init=False, repr=False, compare=False)
    _log_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def _answer(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    # -- the request log -------------------------------------------------------------------
    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request received, in order."""
        return [r.call for r in self.requests]

    def clear_requests(self) -> None:
        with self._log_lock:
            self.requests.clear()

    def assert_requests(self, expected: list[tuple[str, str]]) -> None:
        """Exactly these (method, path) requests, in this order, and no other."""
        assert self.calls() == expected, f"expected {expected}, got:\n" + "\n".join(f"  {r}" for r in self.requests)

    def assert_no_unexpected_requests(self, allowed: Iterable[Allowed]) -> None:
        assert_no_unexpected_requests(self, allowed=allowed)

    def assert_only_reads(self) -> None:
        assert_only_reads(self)

    # -- HTTP ------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        request = RecordedRequest(handler.command, handler.path,
                                  {name.lower(): value for name, value in handler.headers.items()},
                                  handler.rfile.read(length) if length else b"")
        with self._log_lock:
            self.requests.append(request)
        reply = self._answer(request)
        request.status = reply.status
        handler.send_response(reply.status)
        if reply.content_type:
            handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(reply.body)

    def start(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self)

            do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self.base_url

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"
