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
from dataclasses import dataclass, field

from supactl.twilio_signature import sign

from .local_http import LocalHttpServer, RecordedRequest, Reply, text_reply
from .management_api import ManagementApiServer

PATH = "/functions/v1/twilio-voice"


@dataclass
class FunctionWebhookServer(LocalHttpServer):
    api: ManagementApiServer
    auth_token_candidates: list[str]  # values the test knows; the one whose digest the API stores is used
    tenant_numbers: set[str] = field(default_factory=set)
    slug: str = "twilio-voice"

    @property
    def url(self) -> str:
        return self.base_url + PATH

    def _secret(self) -> str | None:
        digest = self.api.secrets.get("TWILIO_AUTH_TOKEN", {}).get("value")
        return next((t for t in self.auth_token_candidates if hashlib.sha256(t.encode()).hexdigest() == digest), None)

    def _answer(self, request: RecordedRequest) -> Reply:
        function = self.api.functions.get(self.slug)
        if request.target != PATH or function is None:
            return text_reply(404, "Requested function was not found")
        if request.method != "POST":
            return text_reply(405, "method not allowed")
        if function.verify_jwt and not request.headers.get("authorization"):
            return text_reply(401, "Missing authorization header")
        signature = request.headers.get("x-twilio-signature")
        if not signature:
            return text_reply(400, "missing X-Twilio-Signature")
        try:
            # A repeated parameter counts once, with its last value, as a dict of the form gives it.
            params = {name: values[-1] for name, values in request.form().items()}
        except (UnicodeDecodeError, ValueError):
            return text_reply(400, "malformed form body")
        secret = self._secret()
        if secret is None or sign(secret, self.url, params) != signature:
            return text_reply(403, "invalid signature")
        if params.get("To") in self.tenant_numbers:
            stream = self.url.replace("http://", "ws://")
            return text_reply(200, f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect action="{self.url}" '
                                   f'method="POST"><Stream url="{stream}"/></Connect></Response>', "text/xml")
        return text_reply(200, '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Sorry, the number you have '
                               "called is not in service. Goodbye.</Say><Hangup/></Response>", "text/xml")
