"""The deployed function as the voice webhook sees it from outside, tied to the Management API
contract server's state, so `doctor` can be tested without Deno or the network.

It behaves as the platform plus the function would: no deployed function -> 404; `verify_jwt` on
and no bearer token -> 401 (the gateway); otherwise the request must carry X-Twilio-Signature
(missing -> 400) computed with the TWILIO_AUTH_TOKEN *secret the project holds* over the public
URL (wrong -> 403, as twilio-node's middleware answers). A signed call to a tenant's number gets
`<Connect><Stream>`, any other number gets "not in service" — like supabase/functions/twilio-voice.
The secret's value is known here only because the test gives it; the function's check is then
made against the digest the Management API stores, so a changed secret breaks the signature.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from supactl.twilio_signature import sign

from .management_api import ManagementApiServer

PATH = "/functions/v1/twilio-voice"


@dataclass
class FunctionWebhookServer:
    api: ManagementApiServer
    auth_token_candidates: list[str]  # values the test knows; the one whose digest the API stores is used
    tenant_numbers: set[str] = field(default_factory=set)
    slug: str = "twilio-voice"
    received: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> "FunctionWebhookServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status, body = server._answer(self)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml" if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{PATH}"

    def _secret(self) -> str | None:
        digest = self.api.secrets.get("TWILIO_AUTH_TOKEN", {}).get("value")
        return next((t for t in self.auth_token_candidates if hashlib.sha256(t.encode()).hexdigest() == digest), None)

    def _answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, str]:
        length = int(handler.headers.get("Content-Length") or 0)
        params = dict(parse_qsl(handler.rfile.read(length).decode(), keep_blank_values=True))
        status, body = self._route(handler, params)
        self.received.append((status, params))
        return status, body

    def _route(self, handler: BaseHTTPRequestHandler, params: dict[str, str]) -> tuple[int, str]:
        function = self.api.functions.get(self.slug)
        if handler.path != PATH or function is None:
            return 404, "Requested function was not found"
        if function.verify_jwt and not handler.headers.get("Authorization"):
            return 401, "Missing authorization header"
        signature = handler.headers.get("X-Twilio-Signature")
        if not signature:
            return 400, "missing X-Twilio-Signature"
        secret = self._secret()
        if secret is None or sign(secret, self.url, params) != signature:
            return 403, "invalid signature"
        if params.get("To") in self.tenant_numbers:
            stream = self.url.replace("http://", "ws://")
            return 200, (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect action="{self.url}" '
                         f'method="POST"><Stream url="{stream}"/></Connect></Response>')
        return 200, ('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Sorry, the number you have called '
                     "is not in service. Goodbye.</Say><Hangup/></Response>")
