"""A local stand-in for Twilio's REST API (2010-04-01): IncomingPhoneNumbers here, Calls and
Recordings in twilio_calls.py.

It implements the contract, not a happy path: it checks the method, the path, Basic auth (account
SID + auth token, or an API key SK… + secret, for the account named in the path), the query and
form parameters against the OpenAPI spec (twilio/twilio-oai `twilio_api_v2010.json`, vendored
below as tables), and answers with the spec's JSON shapes and Twilio's error bodies
`{code, message, more_info, status}`. It keeps numbers in memory, pages lists the way Twilio does
(`next_page_uri` with a `PageToken`), can be told to fail the next N requests (429 / 5xx), and
records every request so a test can assert that exactly the expected ones were made.

Stricter than the real service in one place, on purpose: Twilio silently ignores form parameters
it does not know; this server refuses them, so a misspelt `VoiceURL` fails a test instead of
silently doing nothing in production.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from .local_http import LocalHttpServer, RecordedRequest, Reply, json_reply
from .twilio_calls import E164, PATHS as CALL_PATHS, CallsApi, CALL_PATH, CALLS_PATH, RECORDING_MEDIA_PATH

API_VERSION = "2010-04-01"
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")
LIST_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/IncomingPhoneNumbers\.json$")
INSTANCE_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/IncomingPhoneNumbers/([^/]+)\.json$")
NUMBER_SID = re.compile(r"^PN[0-9a-fA-F]{32}$")


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


# From the spec: GET IncomingPhoneNumbers.json query parameters.
LIST_QUERY_PARAMETERS = {"Beta", "FriendlyName", "PhoneNumber", "Origin", "PageSize", "Page", "PageToken"}
MAX_PAGE_SIZE = 1000  # spec: PageSize maximum

# From the spec: UpdateIncomingPhoneNumberRequest properties, each with its constraint:
# a SID prefix (pattern ^XX[0-9a-fA-F]{32}$), "uri", "http-method", "boolean", a tuple of enum
# values, or None for free text.
UPDATE_PARAMETERS: dict[str, Any] = {
    "AccountSid": "AC",
    "ApiVersion": None,
    "FriendlyName": None,
    "SmsApplicationSid": "AP",
    "SmsFallbackMethod": "http-method",
    "SmsFallbackUrl": "uri",
    "SmsMethod": "http-method",
    "SmsUrl": "uri",
    "StatusCallback": "uri",
    "StatusCallbackMethod": "http-method",
    "VoiceApplicationSid": "AP",
    "VoiceCallerIdLookup": "boolean",
    "VoiceFallbackMethod": "http-method",
    "VoiceFallbackUrl": "uri",
    "VoiceMethod": "http-method",
    "VoiceUrl": "uri",
    "EmergencyStatus": ("Active", "Inactive"),
    "EmergencyAddressSid": "AD",
    "TrunkSid": "TK",
    "VoiceReceiveMode": ("voice", "fax"),
    "IdentitySid": "RI",
    "AddressSid": "AD",
    "BundleSid": "BU",
}

# Twilio error codes (https://www.twilio.com/docs/api/errors/<code>).
AUTHENTICATE = 20003
NOT_FOUND = 20404
METHOD_NOT_ALLOWED = 20004
TOO_MANY_REQUESTS = 20429
INVALID_URL = 21502
BAD_REQUEST = 70002
SERVER_ERROR = 20500
SERVICE_UNAVAILABLE = 20503


@dataclass
class _Failure:
    status: int
    code: int
    message: str
    retry_after: str | None


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}", "status": self.status}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass
class TwilioContractServer(LocalHttpServer):
    """`with TwilioContractServer() as twilio:` gives `twilio.base_url`, credentials, state."""

    account_sid: str = field(default_factory=lambda: _sid("AC"))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    api_keys: dict[str, str] = field(default_factory=dict)
    page_size: int = 50
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._page_tokens: set[str] = set()
        self.calls_api = CallsApi(self.account_sid, {n["phone_number"] for n in self.numbers.values()})

    # -- playing the callee of a created call (as Twilio's voice engine would) ------------------
    def answer_call(self, sid: str, script: list, *, answered_by: str | None = None) -> Any:
        """The callee picks up: the call's Url is requested exactly as it was created, signed with the
        account's token (Direction outbound-api; AnsweredBy only when MachineDetection was asked), and
        the stream runs in the project's simulator. Returns its CallReport."""
        import asyncio

        from supactl.simulator.simulated_call import CallOptions, place_call_async

        call = self.calls_api.calls[sid]
        parameters = call["parameters"]
        if answered_by is not None and "MachineDetection" not in parameters:
            raise ValueError("Twilio sends AnsweredBy only for a call created with MachineDetection")
        options = CallOptions(function_url=parameters["Url"], auth_token=self.auth_token, from_number=call["from"],
                              to_number=call["to"], account_sid=self.account_sid, call_sid=sid,
                              direction="outbound-api", answered_by=answered_by)
        return asyncio.run(place_call_async(options, script))

    def deliver_status_callbacks(self, sid: str, *, duration: int, seed: int, copies: int = 2,
                                 final: str = "completed", answered_by: str | None = None) -> list[int]:
        """The call's StatusCallback requests, signed as Twilio signs them, in a shuffled order and
        each sent `copies` times (Twilio retries; order is not guaranteed). The HTTP statuses."""
        import random

        import httpx

        from supactl.twilio_signature import sign

        self.calls_api.finish(sid, final, duration=duration, answered_by=answered_by)
        url = self.calls_api.calls[sid]["parameters"]["StatusCallback"]
        forms = self.calls_api.status_forms(sid, final, duration=duration, answered_by=answered_by) * copies
        random.Random(seed).shuffle(forms)
        return [httpx.post(url, content=urlencode(form), timeout=10,
                           headers={"X-Twilio-Signature": sign(self.auth_token, url, form),
                                    "content-type": "application/x-www-form-urlencoded"}).status_code
                for form in forms]

    # -- test controls ---------------------------------------------------------------------
    def add_api_key(self) -> tuple[str, str]:
        key, secret = _sid("SK"), secrets.token_hex(16)
        self.api_keys[key] = secret
        return key, secret

    def add_number(self, phone_number: str, *, voice_url: str | None = None, voice_method: str = "POST",
                   voice_application_sid: str | None = None, trunk_sid: str | None = None) -> str:
        assert E164.match(phone_number), phone_number
        sid = _sid("PN")
        now = format_datetime(datetime.now(timezone.utc))
        self.numbers[sid] = {
            "account_sid": self.account_sid, "address_sid": None, "address_requirements": "none",
            "api_version": API_VERSION, "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
            "date_created": now, "date_updated": now, "friendly_name": phone_number,
            "identity_sid": None, "phone_number": phone_number, "origin": "twilio", "sid": sid,
            "sms_application_sid": "", "sms_fallback_method": "POST", "sms_fallback_url": "",
            "sms_method": "POST", "sms_url": "", "status_callback": "", "status_callback_method": "POST",
            "trunk_sid": trunk_sid, "uri": self._instance_path(sid), "voice_receive_mode": "voice",
            "voice_application_sid": voice_application_sid or "", "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST", "voice_fallback_url": None, "voice_method": voice_method,
            "voice_url": voice_url, "emergency_status": "Inactive", "emergency_address_sid": None,
            "emergency_address_status": "unregistered", "bundle_sid": None, "status": "in-use",
            "type": "local",
        }
        self.calls_api.owned_numbers.add(phone_number)
        return sid

    def number(self, phone_number: str) -> dict[str, Any]:
        return next(n for n in self.numbers.values() if n["phone_number"] == phone_number)

    def fail_next(self, status: int, times: int = 1, *, retry_after: str | None = None) -> None:
        """Answer the next `times` requests with `status` (429 or 5xx) and Twilio's error body."""
        code, message = {
            429: (TOO_MANY_REQUESTS, "Too Many Requests"),
            500: (SERVER_ERROR, "An internal server error has occurred"),
            503: (SERVICE_UNAVAILABLE, "Service Unavailable"),
        }.get(status, (SERVER_ERROR, HTTPStatus(status).phrase))
        with self._lock:
            self._failures.extend(_Failure(status, code, message, retry_after) for _ in range(times))

    # -- request handling ------------------------------------------------------------------
    def _instance_path(self, sid: str) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{sid}.json"

    def _answer(self, request: RecordedRequest) -> Reply:
        try:
            self._authenticate(request.headers.get("authorization"), request.path)
            failure = self._next_failure()
            if failure:
                headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                raise TwilioError(failure.status, failure.code, failure.message, headers)
            if any(pattern.match(request.path) for pattern in CALL_PATHS):
                return self._route_calls(request)
            return json_reply(200, self._route(request))
        except TwilioError as exc:
            return json_reply(exc.status, exc.body(), exc.headers)

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _authenticate(self, header: str | None, path: str) -> None:
        unauthorized = TwilioError(401, AUTHENTICATE, "Authenticate",
                                   {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if not header or not header.startswith("Basic "):
            raise unauthorized
        try:
            username, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise unauthorized from None
        if username == self.account_sid:
            valid = secrets.compare_digest(password, self.auth_token)
        elif API_KEY_SID.match(username) and username in self.api_keys:
            valid = secrets.compare_digest(password, self.api_keys[username])
        else:
            valid = False
        match = LIST_PATH.match(path) or INSTANCE_PATH.match(path) or next(
            (m for m in (pattern.match(path) for pattern in CALL_PATHS) if m), None)
        # Credentials are good only for their own account: another account's SID in the path is
        # refused the same way as a wrong token.
        if not valid or (match and match.group(1) != self.account_sid):
            raise unauthorized

    def _route(self, request: RecordedRequest) -> dict[str, Any]:
        path, query = request.path, request.query
        if LIST_PATH.match(path):
            if request.method != "GET":
                # Buying numbers (POST to the list) is outside what supactl may do.
                raise TwilioError(405, METHOD_NOT_ALLOWED, "Method not allowed")
            return self._list(path, query)
        match = INSTANCE_PATH.match(path)
        if not match or not NUMBER_SID.match(match.group(2)):
            raise TwilioError(404, NOT_FOUND, f"The requested resource {path} was not found")
        sid = match.group(2)
        if request.method not in ("GET", "POST"):
            raise TwilioError(405, METHOD_NOT_ALLOWED, "Method not allowed")
        if query:
            raise TwilioError(400, BAD_REQUEST, f"Unexpected query parameters: {', '.join(sorted(query))}")
        number = self.numbers.get(sid)
        if number is None:
            raise TwilioError(404, NOT_FOUND, f"The requested resource {path} was not found")
        if request.method == "GET":
            if request.body:
                raise TwilioError(400, BAD_REQUEST, "A fetch takes no body")
            return number
        self._update(number, self._form(request))
        return number

    def _route_calls(self, request: RecordedRequest) -> Reply:
        path = request.path
        if CALLS_PATH.match(path):
            if request.method != "POST":
                raise TwilioError(405, METHOD_NOT_ALLOWED, "Method not allowed")
            return json_reply(201, self.calls_api.create(self._form(request), TwilioError))
        if request.method != "GET":
            raise TwilioError(405, METHOD_NOT_ALLOWED, "Method not allowed")
        call = CALL_PATH.match(path)
        if call:
            return json_reply(200, self.calls_api.fetch(call.group(2), TwilioError))
        media = RECORDING_MEDIA_PATH.match(path)
        if media:
            recording = self.calls_api.recordings.get(media.group(2))
            if recording is None:
                raise TwilioError(404, NOT_FOUND, f"The requested resource {path} was not found")
            if media.group(3) == ".json":
                return json_reply(200, recording)
            return Reply(200, self.calls_api.media[media.group(2)], "audio/x-wav")
        call_sid = path.split("/")[-2]
        items = [r for r in self.calls_api.recordings.values() if r["call_sid"] == call_sid]
        return json_reply(200, {"recordings": items, "page": 0, "page_size": 50, "next_page_uri": None})

    def _list(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        unknown = set(query) - LIST_QUERY_PARAMETERS
        if unknown:
            raise TwilioError(400, BAD_REQUEST, f"Unknown query parameters: {', '.join(sorted(unknown))}")
        if any(len(values) > 1 for values in query.values()):
            raise TwilioError(400, BAD_REQUEST, "A query parameter was given more than once")
        args = {name: values[0] for name, values in query.items()}
        page_size = self._int(args, "PageSize", self.page_size, 1, MAX_PAGE_SIZE)
        page = self._int(args, "Page", 0, 0, None)
        if page > 0 and args.get("PageToken") not in self._page_tokens:
            raise TwilioError(400, BAD_REQUEST, "Page beyond 0 needs the PageToken from next_page_uri")
        matching = [n for n in self.numbers.values() if self._matches(n, args)]
        start = page * page_size
        items = matching[start:start + page_size]
        filters = {k: v for k, v in args.items() if k in ("Beta", "FriendlyName", "PhoneNumber", "Origin")}

        def page_uri(n: int, token: str | None = None) -> str:
            params = {**filters, "PageSize": page_size, "Page": n, **({"PageToken": token} if token else {})}
            return f"{path}?{urlencode(params)}"

        def token_for(n: int, prefix: str, sid: str) -> str:
            token = prefix + sid
            with self._lock:
                self._page_tokens.add(token)
            return page_uri(n, token)

        next_uri = token_for(page + 1, "PA", items[-1]["sid"]) if start + page_size < len(matching) else None
        previous_uri = token_for(page - 1, "PB", items[0]["sid"]) if page and items else None
        return {
            "end": start + max(len(items) - 1, 0), "first_page_uri": page_uri(0),
            "incoming_phone_numbers": items, "next_page_uri": next_uri, "page": page,
            "page_size": page_size, "previous_page_uri": previous_uri,
            "start": start, "uri": page_uri(page, args.get("PageToken")),
        }

    @staticmethod
    def _int(args: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
        if name not in args:
            return default
        try:
            value = int(args[name])
        except ValueError:
            raise TwilioError(400, BAD_REQUEST, f"{name} must be an integer") from None
        if value < low or (high is not None and value > high):
            raise TwilioError(400, BAD_REQUEST, f"{name} is out of range")
        return value

    @staticmethod
    def _matches(number: dict[str, Any], args: dict[str, str]) -> bool:
        wanted = args.get("PhoneNumber")
        if wanted is not None:
            # Twilio: "You can specify partial numbers and use '*' as a wildcard for any digit."
            pattern = re.escape(wanted).replace(r"\*", "[0-9]")
            if not re.search(pattern, number["phone_number"]):
                return False
        if "FriendlyName" in args and args["FriendlyName"] != number["friendly_name"]:
            return False
        return True

    @staticmethod
    def _form(request: RecordedRequest) -> dict[str, list[str]]:
        if (request.content_type or "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise TwilioError(400, BAD_REQUEST, "Updates must be application/x-www-form-urlencoded")
        try:
            return request.form()
        except (UnicodeDecodeError, ValueError):
            raise TwilioError(400, BAD_REQUEST, "Malformed form body") from None

    def _update(self, number: dict[str, Any], form: dict[str, list[str]]) -> None:
        unknown = set(form) - set(UPDATE_PARAMETERS)
        if unknown:
            raise TwilioError(400, BAD_REQUEST, f"Unknown parameters: {', '.join(sorted(unknown))}")
        values = {}
        for name, given in form.items():
            if len(given) != 1:
                raise TwilioError(400, BAD_REQUEST, f"{name} was given more than once")
            values[name] = self._validated(name, given[0])
        if values.get("AccountSid", self.account_sid) != self.account_sid:
            raise TwilioError(400, BAD_REQUEST, "Moving numbers between accounts is not supported here")
        for name, value in values.items():
            key = _snake(name)
            if key in ("voice_application_sid", "trunk_sid") and value == "":
                value = "" if key == "voice_application_sid" else None
            number[key] = value
        # Spec: "Setting a voice_application_sid will automatically delete your trunk_sid and vice versa."
        if values.get("VoiceApplicationSid"):
            number["trunk_sid"] = None
        if values.get("TrunkSid"):
            number["voice_application_sid"] = ""
        number["date_updated"] = format_datetime(datetime.now(timezone.utc))

    @staticmethod
    def _validated(name: str, value: str) -> Any:
        rule = UPDATE_PARAMETERS[name]
        if rule == "uri":
            if value and not re.match(r"^https?://[^/\s?#]+[^\s]*$", value):
                raise TwilioError(400, INVALID_URL, f"The requested {name} '{value}' is not a valid URL.")
            return value
        if rule == "http-method":
            if value.upper() not in ("GET", "POST"):
                raise TwilioError(400, BAD_REQUEST, f"{name} must be GET or POST")
            return value.upper()
        if rule == "boolean":
            if value.lower() not in ("true", "false"):
                raise TwilioError(400, BAD_REQUEST, f"{name} must be true or false")
            return value.lower() == "true"
        if isinstance(rule, tuple):
            if value not in rule:
                raise TwilioError(400, BAD_REQUEST, f"{name} must be one of {', '.join(rule)}")
            return value
        if isinstance(rule, str):
            # An empty SID removes the association (how the Console and SDKs unset it).
            if value and not re.match(rf"^{rule}[0-9a-fA-F]{{32}}$", value):
                raise TwilioError(400, BAD_REQUEST, f"{name} must be a {rule}… SID")
            return value
        return value
