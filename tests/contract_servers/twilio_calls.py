"""The Calls and Recordings resources of the Twilio contract server (twilio.py routes here).

Create a call (`POST /2010-04-01/Accounts/{AC}/Calls.json`) with the parameters of the OpenAPI
spec's CreateCallRequest, checked the way Twilio does: To and From required and E.164 (From a
number of the account), exactly one of Url / Twiml / ApplicationSid, StatusCallbackEvent only
initiated / ringing / answered / completed, MachineDetection Enable / DetectMessageEnd, Record a
boolean, RecordingChannels mono / dual, the callback methods GET / POST, URLs http(s). Unknown
parameters are refused (Twilio ignores them; refusing catches a misspelt one). Fetch a call,
list and fetch its recordings, and download a recording's media (Basic auth, as with the
account's "HTTP Basic Authentication for media" setting on).

Playing the callee is a test control: `deliver_status(sid, events, url_for=...)` builds the form
Twilio posts to StatusCallback for each event, signed with the account's auth token as Twilio
signs webhooks, for the test to send in any order and any number of times.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
URL = re.compile(r"^https?://[^/\s?#]+[^\s]*$")
CALLS_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Calls\.json$")
CALL_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Calls/(CA[0-9a-f]{32})\.json$")
CALL_RECORDINGS_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Calls/(CA[0-9a-f]{32})/Recordings\.json$")
RECORDING_MEDIA_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Recordings/(RE[0-9a-f]{32})(\.json|\.wav|\.mp3)$")
PATHS = (CALLS_PATH, CALL_PATH, CALL_RECORDINGS_PATH, RECORDING_MEDIA_PATH)

STATUS_CALLBACK_EVENTS = {"initiated", "ringing", "answered", "completed"}
# What supactl may send; the spec has more (SIP, trunking, async AMD tuning) that supactl never uses
# and this server refuses so a stray one fails a test.
CREATE_PARAMETERS = {
    "To", "From", "Url", "Twiml", "ApplicationSid", "Method", "StatusCallback", "StatusCallbackEvent",
    "StatusCallbackMethod", "Timeout", "Record", "RecordingChannels", "RecordingStatusCallback",
    "RecordingStatusCallbackMethod", "RecordingStatusCallbackEvent", "MachineDetection", "MachineDetectionTimeout",
    "TimeLimit", "CallerId",
}
REPEATABLE = {"StatusCallbackEvent", "RecordingStatusCallbackEvent"}
# Twilio's error codes for these refusals.
INVALID_TO = 21211
INVALID_FROM = 21212
NOT_OWNED_FROM = 21210
MISSING_URL = 21205
INVALID_PARAMETER = 21201  # "Parameter not valid" (used for enum/boolean problems)


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(token, url + sorted name+value pairs))."""
    payload = url + "".join(name + value for name, value in sorted(set(params)))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


@dataclass
class CallsApi:
    account_sid: str
    owned_numbers: set[str]
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, bytes] = field(default_factory=dict)

    def create(self, form: dict[str, list[str]], error: Any) -> dict[str, Any]:
        unknown = set(form) - CREATE_PARAMETERS
        if unknown:
            raise error(400, INVALID_PARAMETER, f"Unknown parameters: {', '.join(sorted(unknown))}")
        for name, values in form.items():
            if len(values) != 1 and name not in REPEATABLE:
                raise error(400, INVALID_PARAMETER, f"{name} was given more than once")
        one = {name: values[0] for name, values in form.items()}
        to, from_ = one.get("To", ""), one.get("From", "")
        if not to:
            raise error(400, INVALID_PARAMETER, "A 'To' phone number is required.")
        if not from_:
            raise error(400, INVALID_PARAMETER, "A 'From' phone number is required.")
        if not E164.match(to):
            raise error(400, INVALID_TO, f"The 'To' number {to} is not a valid phone number.")
        if not E164.match(from_):
            raise error(400, INVALID_FROM, f"The 'From' number {from_} is not a valid phone number.")
        if from_ not in self.owned_numbers:
            raise error(400, NOT_OWNED_FROM,
                        f"The source phone number provided, {from_}, is not yet verified for your account.")
        targets = [name for name in ("Url", "Twiml", "ApplicationSid") if one.get(name)]
        if len(targets) != 1:
            raise error(400, MISSING_URL, "Exactly one of Url, Twiml or ApplicationSid is required.")
        for name in ("Url", "StatusCallback", "RecordingStatusCallback"):
            if name in one and not URL.match(one[name]):
                raise error(400, 21502, f"The requested {name} '{one[name]}' is not a valid URL.")
        for name in ("Method", "StatusCallbackMethod", "RecordingStatusCallbackMethod"):
            if name in one and one[name].upper() not in ("GET", "POST"):
                raise error(400, INVALID_PARAMETER, f"{name} must be GET or POST")
        events = [event for value in form.get("StatusCallbackEvent", []) for event in value.split(" ") if event]
        if set(events) - STATUS_CALLBACK_EVENTS:
            raise error(400, INVALID_PARAMETER,
                        f"StatusCallbackEvent must be among {', '.join(sorted(STATUS_CALLBACK_EVENTS))}")
        if one.get("MachineDetection", "Enable") not in ("Enable", "DetectMessageEnd"):
            raise error(400, INVALID_PARAMETER, "MachineDetection must be Enable or DetectMessageEnd")
        if one.get("Record", "false").lower() not in ("true", "false"):
            raise error(400, INVALID_PARAMETER, "Record must be true or false")
        if one.get("RecordingChannels", "mono") not in ("mono", "dual"):
            raise error(400, INVALID_PARAMETER, "RecordingChannels must be mono or dual")
        sid = "CA" + secrets.token_hex(16)
        call = {
            "sid": sid, "account_sid": self.account_sid, "to": to, "from": from_, "status": "queued",
            "direction": "outbound-api", "answered_by": None, "duration": None, "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json",
            "parameters": one, "status_callback_events": events,
        }
        self.calls[sid] = call
        return {k: v for k, v in call.items() if k not in ("parameters", "status_callback_events")}

    def fetch(self, sid: str, error: Any) -> dict[str, Any]:
        call = self.calls.get(sid)
        if call is None:
            raise error(404, 20404, f"The requested resource Calls/{sid}.json was not found")
        return {k: v for k, v in call.items() if k not in ("parameters", "status_callback_events")}

    # -- playing the callee ----------------------------------------------------------------
    def finish(self, sid: str, status: str, *, duration: int = 0, answered_by: str | None = None) -> None:
        """The call ended at the far end: Twilio's resource now says so."""
        call = self.calls[sid]
        call.update(status=status, duration=str(duration), answered_by=answered_by)

    def status_forms(self, sid: str, final: str = "completed", *, duration: int = 0,
                     answered_by: str | None = None) -> list[list[tuple[str, str]]]:
        """The StatusCallback forms of the call, one per event it asked for, in Twilio's order."""
        call = self.calls[sid]
        wanted = call["status_callback_events"] or ["completed"]
        statuses = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress", "completed": final}
        forms = []
        for sequence, event in enumerate(e for e in ("initiated", "ringing", "answered", "completed") if e in wanted):
            form = [("AccountSid", self.account_sid), ("CallSid", sid), ("CallStatus", statuses[event]),
                    ("Direction", "outbound-api"), ("From", call["from"]), ("To", call["to"]),
                    ("SequenceNumber", str(sequence)), ("ApiVersion", "2010-04-01")]
            if event == "completed":
                form.append(("CallDuration", str(duration)))
            if answered_by and "MachineDetection" in call["parameters"] and event != "initiated":
                form.append(("AnsweredBy", answered_by))
            forms.append(form)
        return forms

    def add_recording(self, call_sid: str, audio: bytes, *, channels: int = 2, duration: int = 1) -> str:
        sid = "RE" + secrets.token_hex(16)
        self.recordings[sid] = {"sid": sid, "account_sid": self.account_sid, "call_sid": call_sid,
                                "status": "completed", "channels": channels, "duration": str(duration),
                                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}.json"}
        self.media[sid] = audio
        return sid
