"""Reading TwiML the way Twilio's voice engine does, for the call simulator.

Only the verbs a Media Streams bridge answers with are understood (<Connect><Stream>, <Say>,
<Pause>, <Hangup>, <Reject>, and <Dial><Number> for a transfer); anything else is reported, as
Twilio would fail the call on it.
https://www.twilio.com/docs/voice/twiml/stream · https://www.twilio.com/docs/voice/twiml/dial
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from supactl.errors import SupactlError


class TwimlError(SupactlError):
    """The function answered something Twilio would refuse."""


@dataclass
class StreamConnect:
    url: str
    parameters: dict[str, str] = field(default_factory=dict)
    action: str | None = None  # absolute; None: the call ends when the stream ends
    method: str = "POST"


@dataclass
class DialNumber:
    """A transfer: Twilio dials `number`; when that leg ends it requests `action` (absolute) with
    DialCallStatus, and that TwiML decides what the caller hears next."""

    number: str
    caller_id: str | None = None
    action: str | None = None
    method: str = "POST"


@dataclass
class Recording:
    """<Start><Recording>: Twilio records the call from here on and posts the recording's status."""

    channels: str = "mono"
    status_callback: str | None = None  # absolute


@dataclass
class Twiml:
    says: list[str] = field(default_factory=list)
    connect: StreamConnect | None = None
    dial: DialNumber | None = None
    hangup: bool = False
    verbs: list[str] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)


_KNOWN_VERBS = {"Connect", "Say", "Pause", "Hangup", "Reject", "Dial", "Start"}
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


def parse_twiml(text: str, request_url: str) -> Twiml:
    """Parse a voice response. `request_url` resolves a relative `action` as Twilio does."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TwimlError(f"the function answered invalid XML: {exc}",
                         hint="Twilio would play 'an application error has occurred' and hang up") from None
    if root.tag != "Response":
        raise TwimlError(f"the TwiML root element is <{root.tag}>, not <Response>")
    twiml = Twiml()
    for verb in root:
        twiml.verbs.append(verb.tag)
        if verb.tag not in _KNOWN_VERBS:
            raise TwimlError(f"the simulator does not understand the TwiML verb <{verb.tag}>")
        if twiml.hangup or twiml.connect is not None or twiml.dial is not None:
            continue  # nothing after <Hangup>, <Connect> or a <Dial> with an action runs
        if verb.tag == "Say":
            twiml.says.append((verb.text or "").strip())
        elif verb.tag in ("Hangup", "Reject"):
            twiml.hangup = True
        elif verb.tag == "Connect":
            twiml.connect = _connect(verb, request_url)
        elif verb.tag == "Dial":
            twiml.dial = _dial(verb, request_url)
        elif verb.tag == "Start":
            twiml.recordings += _start_recordings(verb, request_url)
    return twiml


def _start_recordings(verb: ET.Element, request_url: str) -> list[Recording]:
    """<Start> holds <Recording> (or <Stream>/<Siprec>, which the simulator does not run)."""
    recordings = []
    for child in verb:
        if child.tag != "Recording":
            raise TwimlError(f"the simulator does not understand <Start><{child.tag}>")
        channels = child.get("channels", "mono")
        if channels not in ("mono", "dual"):
            raise TwimlError(f"<Recording channels> must be mono or dual, not {channels!r}")
        callback = child.get("recordingStatusCallback")
        recordings.append(Recording(channels, urljoin(request_url, callback) if callback else None))
    return recordings


def _dial(verb: ET.Element, request_url: str) -> DialNumber:
    numbers = [child for child in verb if child.tag == "Number"]
    text = (verb.text or "").strip()
    if len(numbers) > 1 or (numbers and text):
        raise TwimlError("<Dial> holds more than one number; the function transfers to one")
    number = (numbers[0].text or "").strip() if numbers else text
    if not _E164.match(number):
        raise TwimlError(f"<Dial> number {number!r} is not E.164")
    caller_id = verb.get("callerId")
    if caller_id is not None and not _E164.match(caller_id):
        raise TwimlError(f"<Dial callerId> {caller_id!r} is not E.164 (Twilio refuses a caller ID it cannot present)")
    action = verb.get("action")
    method = (verb.get("method") or "POST").upper()
    if method not in ("GET", "POST"):
        raise TwimlError(f"<Dial method> must be GET or POST, got {method}")
    return DialNumber(number, caller_id, urljoin(request_url, action) if action else None, method)


def _connect(verb: ET.Element, request_url: str) -> StreamConnect:
    streams = [child for child in verb if child.tag == "Stream"]
    if len(streams) != 1:
        raise TwimlError(f"<Connect> must hold exactly one <Stream>, found {len(streams)}")
    stream = streams[0]
    url = (stream.get("url") or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise TwimlError(f"<Stream url> must be an absolute ws:// or wss:// URL, got {url!r}")
    if parts.query:
        raise TwimlError("<Stream url> carries a query string; Twilio drops it",
                         hint="pass values as <Parameter name value> (they arrive in start.customParameters)")
    parameters: dict[str, str] = {}
    for child in stream:
        if child.tag == "Parameter":
            name = child.get("name")
            if not name:
                raise TwimlError("<Parameter> without a name")
            parameters[name] = child.get("value", "")
    action = verb.get("action")
    method = (verb.get("method") or "POST").upper()
    if method not in ("GET", "POST"):
        raise TwimlError(f"<Connect method> must be GET or POST, got {method}")
    return StreamConnect(url, parameters, urljoin(request_url, action) if action else None, method)
