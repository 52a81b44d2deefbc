"""Twilio's request signature: base64(HMAC-SHA1(auth_token, url + sorted name+value pairs)).

https://www.twilio.com/docs/usage/security#validating-requests
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Iterable, Mapping, Sequence


def _pairs(params: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        if isinstance(value, (list, tuple)):
            pairs.extend((name, str(v)) for v in value)
        else:
            pairs.append((name, str(value)))
    return pairs


def sign(auth_token: str, url: str, params: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]] = ()) -> str:
    """The X-Twilio-Signature Twilio sends for a POST of `params` to `url` (or a WebSocket upgrade
    to `url`, with no params)."""
    # Twilio's own validators sign each distinct (name, value) once, sorted by name then value.
    payload = url + "".join(name + value for name, value in sorted(set(_pairs(params))))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
