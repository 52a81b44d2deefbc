"""Twilio REST (2010-04-01) for what supactl needs: find a phone number, point its voice webhook at
the function, and tell where each number's calls go.

`TwilioClient` wraps an httpx client from `supactl.cloud.http_client` (timeouts, retries on 429/5xx, one-line
errors); functions such as `link_number` take the client, so tests bind it to a contract server.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from supactl.config import lookup
from supactl.errors import ApiError, CheckFailed, ConfigError, SupactlError
from supactl.project_files import FUNCTION_NAME

if TYPE_CHECKING:
    import httpx

    from supactl.cloud.http_client import RetryPolicy, Trace

TWILIO_API_URL_DEFAULT = "https://api.twilio.com"
API_VERSION = "2010-04-01"

# Formats from Twilio's OpenAPI spec (SID patterns) and the Console (auth token: 32 hex digits).
ACCOUNT_SID_FORMAT = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_FORMAT = re.compile(r"^SK[0-9a-fA-F]{32}$")
AUTH_TOKEN_FORMAT = re.compile(r"^[0-9a-fA-F]{32}$")
NUMBER_SID_FORMAT = re.compile(r"^PN[0-9a-fA-F]{32}$")
E164_FORMAT = re.compile(r"^\+[1-9][0-9]{1,14}$")

CONSOLE_KEYS = "https://console.twilio.com (Account Info; API keys under Account > API keys & tokens)"
CONSOLE_NUMBERS = "Twilio Console > Phone Numbers > Manage > Active numbers"

# The update parameters supactl may send (a subset of UpdateIncomingPhoneNumberRequest), by the
# snake_case name callers use.
UPDATABLE_FIELDS = {
    "voice_url": "VoiceUrl",
    "voice_method": "VoiceMethod",
    "voice_application_sid": "VoiceApplicationSid",
    "trunk_sid": "TrunkSid",
    "voice_fallback_url": "VoiceFallbackUrl",
    "voice_fallback_method": "VoiceFallbackMethod",
    "status_callback": "StatusCallback",
    "status_callback_method": "StatusCallbackMethod",
    "friendly_name": "FriendlyName",
}


class NumberNotFound(ApiError):
    """The phone number is not one of this Twilio account's incoming numbers."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, status=404)


class NumberRoutedElsewhere(SupactlError):
    """A voice application or SIP trunk on the number makes Twilio ignore its VoiceUrl."""


@dataclass(frozen=True)
class IncomingNumber:
    sid: str
    phone_number: str
    voice_url: str | None
    voice_method: str | None
    voice_application_sid: str | None
    trunk_sid: str | None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> "IncomingNumber":
        # Twilio reports an unset SID or URL as "" or null depending on the field and its history.
        def field(name: str) -> str | None:
            return body.get(name) or None

        return cls(sid=body["sid"], phone_number=body["phone_number"], voice_url=field("voice_url"),
                   voice_method=field("voice_method"),
                   voice_application_sid=field("voice_application_sid"), trunk_sid=field("trunk_sid"))

    @property
    def overrides(self) -> list[str]:
        """What makes Twilio ignore VoiceUrl, in the user's words ([] when nothing does)."""
        found = []
        if self.voice_application_sid:
            found.append(f"voice application {self.voice_application_sid}")
        if self.trunk_sid:
            found.append(f"SIP trunk {self.trunk_sid}")
        return found


@dataclass(frozen=True)
class LinkResult:
    changed: bool
    number: IncomingNumber
    cleared: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """Where a call to a number goes, and whether that is this project's function."""

    reaches_function: bool | None  # None: the function URL is unknown
    description: str


def render_twilio_error(response: "httpx.Response") -> str:
    """Twilio's `{code, message, more_info, status}` as one line: message, code, link."""
    from supactl.cloud.http_client import default_render_error, first_line

    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        return default_render_error(response)
    text = first_line(str(body.get("message") or response.reason_phrase))
    text += f" (error {body['code']}"
    if body.get("more_info"):
        text += f", {body['more_info']}"
    return text + ")"


class TwilioClient:
    def __init__(self, http: "httpx.Client", account_sid: str, *, page_size: int | None = None) -> None:
        self.http = http
        self.account_sid = account_sid
        self.page_size = page_size

    @classmethod
    def from_config(
        cls,
        *,
        project_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        base_url: str | None = None,
        retry: "RetryPolicy | None" = None,
        trace: "Trace | None" = None,
        transport: "httpx.BaseTransport | None" = None,
    ) -> "TwilioClient":
        """Credentials from the environment / .env: TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or
        with TWILIO_API_KEY + TWILIO_API_SECRET (preferred when set). Formats are checked here,
        before any request."""
        from supactl.cloud.http_client import Service, api_client

        environ = os.environ if environ is None else environ

        def get(name: str, secret: bool = False) -> str | None:
            value = lookup(name, project_dir=project_dir, environ=environ, secret=secret)
            return value.strip() if value else value

        account_sid = get("TWILIO_ACCOUNT_SID")
        auth_token = get("TWILIO_AUTH_TOKEN", secret=True)
        api_key = get("TWILIO_API_KEY")
        api_secret = get("TWILIO_API_SECRET", secret=True)
        if not account_sid:
            raise _missing("TWILIO_ACCOUNT_SID", "the Account SID (AC…)")
        _check_format("TWILIO_ACCOUNT_SID", account_sid, ACCOUNT_SID_FORMAT, "AC and 32 hex digits")
        if api_key:
            _check_format("TWILIO_API_KEY", api_key, API_KEY_FORMAT, "SK and 32 hex digits")
            if not api_secret:
                raise _missing("TWILIO_API_SECRET", "the secret shown once when the API key was created")
            auth = (api_key, api_secret)
            credential_names = f"TWILIO_API_KEY / TWILIO_API_SECRET (a key of account {account_sid})"
        else:
            if not auth_token:
                raise _missing("TWILIO_AUTH_TOKEN", "the Auth Token next to the Account SID",
                               alternative=" (or TWILIO_API_KEY and TWILIO_API_SECRET)")
            _check_format("TWILIO_AUTH_TOKEN", auth_token, AUTH_TOKEN_FORMAT, "32 hex digits",
                          show_value=False)
            auth = (account_sid, auth_token)
            credential_names = "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN"

        url = (base_url or get("TWILIO_API_URL") or TWILIO_API_URL_DEFAULT).rstrip("/")
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"TWILIO_API_URL must be an http(s) URL, got {url!r}")

        def hint_for_status(status: int) -> str | None:
            if status in (401, 403):
                return f"Twilio refused the credentials: check {credential_names} at {CONSOLE_KEYS}"
            return None

        service = Service("Twilio", render_twilio_error, hint_for_status)
        http = api_client(url, service, auth=auth, retry=retry, trace=trace, transport=transport)
        return cls(http, account_sid)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "TwilioClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------------
    @property
    def _numbers_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers"

    def _pages(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        if self.page_size:
            params = {**params, "PageSize": str(self.page_size)}
        response = self.http.get(f"{self._numbers_path}.json", params=params)
        seen: set[str] = set()
        while True:
            body = response.json()
            yield from body.get("incoming_phone_numbers") or []
            next_uri = body.get("next_page_uri")
            if not next_uri:
                return
            if next_uri in seen:
                raise ApiError(f"Twilio returned the same next page twice ({next_uri}); stopping")
            seen.add(next_uri)
            # next_page_uri is a path with its query, relative to the API host.
            response = self.http.get(next_uri)

    def list_numbers(self, phone_number: str | None = None) -> list[IncomingNumber]:
        """Every incoming number of the account (all pages); `phone_number` filters the way
        Twilio does (partial match, `*` for any digit)."""
        params = {"PhoneNumber": phone_number} if phone_number else {}
        return [IncomingNumber.from_api(item) for item in self._pages(params)]

    def find_number(self, e164: str) -> IncomingNumber:
        check_e164(e164)
        # PhoneNumber is a partial match on Twilio's side: keep only the exact number.
        for number in self.list_numbers(e164):
            if number.phone_number == e164:
                return number
        raise NumberNotFound(
            f"{e164} is not a phone number of Twilio account {self.account_sid}",
            hint=f"buy or port it under {CONSOLE_NUMBERS}, or check TWILIO_ACCOUNT_SID "
            "(a subaccount has its own numbers)",
        )

    def fetch_number(self, sid: str) -> IncomingNumber:
        _check_number_sid(sid)
        return IncomingNumber.from_api(self.http.get(f"{self._numbers_path}/{sid}.json").json())

    def update_number(self, sid: str, **fields: str) -> IncomingNumber:
        """POST the given fields (snake_case: voice_url=…, voice_method=…; "" unsets a SID)."""
        _check_number_sid(sid)
        unknown = set(fields) - set(UPDATABLE_FIELDS)
        if unknown:
            raise TypeError(f"update_number() got unknown fields {sorted(unknown)}; "
                            f"allowed: {sorted(UPDATABLE_FIELDS)}")
        form = {UPDATABLE_FIELDS[name]: value for name, value in fields.items()}
        return IncomingNumber.from_api(self.http.post(f"{self._numbers_path}/{sid}.json", data=form).json())


def link_number(client: TwilioClient, e164: str, voice_url: str, force: bool = False) -> LinkResult:
    """Point `e164`'s voice webhook at `voice_url` (POST), then re-fetch to prove it took.

    A voice application or SIP trunk on the number would make Twilio ignore the webhook, so that
    is refused unless `force`, which clears them."""
    number = client.find_number(e164)
    if number.overrides and not force:
        raise NumberRoutedElsewhere(
            f"{e164} is routed to {' and '.join(number.overrides)}; Twilio ignores the number's "
            "VoiceUrl while that is set, so calls would never reach the function",
            hint=f"re-run with --force to clear it, or remove it under {CONSOLE_NUMBERS}",
        )
    if not number.overrides and _points_at(number, voice_url):
        return LinkResult(changed=False, number=number)
    fields = {"voice_url": voice_url, "voice_method": "POST"}
    if number.voice_application_sid:
        fields["voice_application_sid"] = ""
    if number.trunk_sid:
        fields["trunk_sid"] = ""
    client.update_number(number.sid, **fields)
    confirmed = client.fetch_number(number.sid)
    if confirmed.overrides or not _points_at(confirmed, voice_url):
        raise CheckFailed(
            f"Twilio accepted the update of {e164} but it now reads voice_url={confirmed.voice_url!r} "
            f"({confirmed.voice_method or 'no method'})"
            + (f", still routed to {' and '.join(confirmed.overrides)}" if confirmed.overrides else ""),
            hint=f"check the number under {CONSOLE_NUMBERS}",
        )
    return LinkResult(changed=True, number=confirmed, cleared=tuple(number.overrides))


def route_of(number: IncomingNumber, function_url: str | None) -> Route:
    if number.voice_application_sid:
        return Route(False, f"voice application {number.voice_application_sid} (VoiceUrl ignored)")
    if number.trunk_sid:
        return Route(False, f"SIP trunk {number.trunk_sid} (VoiceUrl ignored)")
    if not number.voice_url:
        return Route(False if function_url else None, "no voice webhook")
    if function_url is None:
        return Route(None, f"{number.voice_method or 'POST'} {number.voice_url}")
    if _same_url(number.voice_url, function_url):
        if (number.voice_method or "POST") != "POST":
            return Route(False, f"this project's function, but with {number.voice_method} (needs POST)")
        return Route(True, "this project's function")
    return Route(False, f"elsewhere: {number.voice_method or 'POST'} {number.voice_url}")


def check_e164(e164: str) -> None:
    if not E164_FORMAT.match(e164 or ""):
        raise SupactlError(
            f"{e164!r} is not an E.164 phone number",
            hint="write it as + and the country code and number, digits only, e.g. +14155550123",
        )


def _points_at(number: IncomingNumber, voice_url: str) -> bool:
    return _same_url(number.voice_url, voice_url) and (number.voice_method or "POST") == "POST"


def _same_url(a: str | None, b: str | None) -> bool:
    # Exact: Twilio signs the URL as configured, and the function checks the signature against
    # its own URL, so even a trailing slash of difference breaks every call.
    return bool(a and b) and a == b


def _check_number_sid(sid: str) -> None:
    if not NUMBER_SID_FORMAT.match(sid or ""):
        raise SupactlError(f"{sid!r} is not a phone number SID (PN and 32 hex digits)")


def _missing(name: str, what: str, alternative: str = "") -> ConfigError:
    return ConfigError(f"{name} is not set{alternative}",
                       hint=f"set {name} in the environment or .env: {what}, from {CONSOLE_KEYS}")


def _check_format(name: str, value: str, pattern: re.Pattern[str], expected: str, show_value: bool = True) -> None:
    if not pattern.match(value):
        shown = f" ({value[:4]}…)" if show_value else ""
        raise ConfigError(f"{name}{shown} is malformed: expected {expected}",
                          hint=f"copy it again from {CONSOLE_KEYS}")
