"""Outbound calls: `supactl dial` places a call through Twilio's Calls API that the function answers.

The rules a dial must pass (checked here before Twilio is asked; the function checks the same):
- TO and FROM are E.164; FROM is a number the tenant owns (tenant_phone_numbers): the function
  finds the tenant of an outbound call by its From.
- The per-call context is a JSON object of at most MAX_CONTEXT_BYTES bytes (UTF-8, compact). It
  rides in the webhook Url's query (`context`, base64url): Twilio signs that URL in
  X-Twilio-Signature, and only the account's credentials can create a call with it, so the function
  can trust it as it trusts the webhook; it is never read from the media stream.
- Status callbacks go to the function (`?event=call-status`) for every event Twilio offers, so the
  call row gets Twilio's view of the call (answered, by whom, how long).
- Recording follows the tenant's record_calls setting (off by default): dual channels, with the
  recording's status callback to the function. Off: no Record parameter at all.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence
from urllib.parse import urlencode

from supactl.cloud.twilio_api import API_VERSION, check_e164
from supactl.errors import ApiError, CheckFailed, SupactlError

if TYPE_CHECKING:
    from supactl.cloud.twilio_api import TwilioClient

MAX_CONTEXT_BYTES = 2048
STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
FINAL_STATUSES = {"completed", "busy", "no-answer", "failed", "canceled"}
UNSUCCESSFUL = FINAL_STATUSES - {"completed"}
# A call rings for at most Twilio's Timeout (60 s by default) and a reminder lasts minutes: --wait
# gives up after this, saying the call is still going.
DEFAULT_WAIT_S = 15 * 60


class DialError(SupactlError):
    """A dial the rules refuse (exit code 1): nothing was sent to Twilio."""


@dataclass(frozen=True)
class Dial:
    to: str
    from_number: str
    form: list[tuple[str, str]]


def parse_context(text: str | None) -> dict[str, Any] | None:
    """The --context value (JSON, or @FILE already read by the caller): a JSON object within the cap."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DialError(f"--context is not JSON ({exc.msg} at character {exc.pos})",
                        hint='give a JSON object, e.g. --context \'{"order": "A-17"}\', or @file.json') from None
    if not isinstance(value, dict):
        raise DialError("--context must be a JSON object", hint='wrap it: {"note": ...}')
    if len(compact(value).encode()) > MAX_CONTEXT_BYTES:
        raise DialError(f"--context is larger than {MAX_CONTEXT_BYTES} bytes as compact JSON",
                        hint="keep only what the agent needs for this call (ids, a name, a reason)")
    return value


def compact(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def choose_from(owned: Sequence[str], requested: str | None, tenant: str) -> str:
    """--from, checked against the tenant's numbers; without it the tenant's first number."""
    if requested is None:
        if not owned:
            raise DialError(f"tenant {tenant} has no phone number to call from",
                            hint=f"add one: supactl numbers add +E164 --tenant {tenant}")
        return owned[0]
    check_e164(requested)
    if requested not in owned:
        raise DialError(f"{requested} is not a number of tenant {tenant}",
                        hint="the function finds an outbound call's tenant by its From: use one of "
                        + (", ".join(owned) or "its numbers (none yet)"))
    return requested


def dial_form(*, to: str, from_number: str, function_url: str, context: dict[str, Any] | None,
              machine_detection: bool, record: bool) -> list[tuple[str, str]]:
    """The Calls API form: Url = the function's webhook (with the context), StatusCallback = its
    status endpoint for every event, MachineDetection and dual-channel recording when asked."""
    check_e164(to)
    url = function_url
    if context is not None:
        encoded = base64.urlsafe_b64encode(compact(context).encode()).decode().rstrip("=")
        url += "?" + urlencode({"context": encoded})
    form = [("To", to), ("From", from_number), ("Url", url), ("Method", "POST"),
            ("StatusCallback", f"{function_url}?event=call-status"), ("StatusCallbackMethod", "POST")]
    form += [("StatusCallbackEvent", event) for event in STATUS_CALLBACK_EVENTS]
    if machine_detection:
        form.append(("MachineDetection", "Enable"))
    if record:
        form += [("Record", "true"), ("RecordingChannels", "dual"),
                 ("RecordingStatusCallback", f"{function_url}?event=recording-status"),
                 ("RecordingStatusCallbackMethod", "POST")]
    return form


def place_call(client: "TwilioClient", form: list[tuple[str, str]]) -> dict[str, Any]:
    # A list of pairs, not a dict: StatusCallbackEvent repeats.
    response = client.http.post(f"/{API_VERSION}/Accounts/{client.account_sid}/Calls.json", content=urlencode(form),
                                headers={"content-type": "application/x-www-form-urlencoded"})
    return response.json()


def fetch_call(client: "TwilioClient", call_sid: str) -> dict[str, Any]:
    return client.http.get(f"/{API_VERSION}/Accounts/{client.account_sid}/Calls/{call_sid}.json").json()


def wait_for_end(client: "TwilioClient", call_sid: str, *, timeout_s: float = DEFAULT_WAIT_S,
                 poll_s: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll Twilio's call resource until a final status; CheckFailed (exit 5) when the call did not
    connect (busy, no-answer, failed, canceled) or is still going after timeout_s."""
    deadline = clock() + timeout_s
    while True:
        call = fetch_call(client, call_sid)
        status = call.get("status")
        if status in UNSUCCESSFUL:
            raise CheckFailed(f"call {call_sid} ended {status}",
                              hint="busy / no-answer: try later; failed: check the number and the Twilio debugger")
        if status == "completed":
            return call
        if clock() >= deadline:
            raise CheckFailed(f"call {call_sid} is still {status} after {timeout_s:.0f} s",
                              hint="it goes on; see it with supactl calls show " + call_sid)
        sleep(poll_s)


def download_recording(client: "TwilioClient", call_sid: str) -> bytes:
    """The call's first completed recording, as WAV, fetched with the account's credentials."""
    base = f"/{API_VERSION}/Accounts/{client.account_sid}"
    recordings = client.http.get(f"{base}/Calls/{call_sid}/Recordings.json").json().get("recordings") or []
    done = [r for r in recordings if r.get("status") == "completed"]
    if not done:
        raise ApiError(f"Twilio has no completed recording of call {call_sid}",
                       hint="recording is off unless the tenant's record_calls setting is on")
    return client.http.get(f"{base}/Recordings/{done[0]['sid']}.wav").content
