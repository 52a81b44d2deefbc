"""Reading TwiML the way Twilio's voice engine does, for the call simulator.

Only the verbs a Media Streams bridge answers with are understood (<Connect><Stream>, <Say>,
<Pause>, <Hangup>, <Reject>); anything else is reported, as Twilio would fail the call on it.
https://www.twilio.com/docs/voice/twiml/stream
"""

from __future__ import annotations

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
class Twiml:
    says: list[str] = field(default_factory=list)
    connect: StreamConnect | None = None
    hangup: bool = False
    verbs: list[str] = field(default_factory=list)


_KNOWN_VERBS = {"Connect", "Say", "Pause", "Hangup", "Reject"}


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
        if twiml.hangup or twiml.connect is not None:
            continue  # nothing after <Hangup> or <Connect> runs
        if verb.tag == "Say":
            twiml.says.append((verb.text or "").strip())
        elif verb.tag in ("Hangup", "Reject"):
            twiml.hangup = True
        elif verb.tag == "Connect":
            twiml.connect = _connect(verb, request_url)
    return twiml


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
